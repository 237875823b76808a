"""Subscribing a shop's webhooks to the connection's address, on both platforms."""

from __future__ import annotations

import pytest

from pricing_saas.integrations import services
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_shopify_webhooks_are_subscribed_once(world_a, connect, fake_shop, settings):
    settings.PUBLIC_BASE_URL = "https://pricing.example.com"
    connection = connect(world_a)
    with tenant_context(world_a.tenant):
        first = services.register_webhooks(connection=connection)
        again = services.register_webhooks(connection=connection)
        assert AuditEvent.objects.filter(action="connection.webhooks").count() == 2
    assert set(first.values()) == {"created"} and set(again.values()) == {"present"}
    url = f"https://pricing.example.com/webhooks/shopify/{world_a.tenant.slug}/{connection.pk}/"
    assert sorted(fake_shop.webhooks.values()) == sorted(
        (topic, url)
        for topic in ("PRODUCTS_UPDATE", "ORDERS_CREATE", "ORDERS_UPDATED", "APP_UNINSTALLED")
    )


def test_woocommerce_webhooks_get_a_secret_the_endpoint_then_verifies(
    world_a, connect_woo, fake_woo, settings
):
    settings.PUBLIC_BASE_URL = "https://pricing.example.com"
    connection = connect_woo(world_a, app_secret="")
    with tenant_context(world_a.tenant):
        outcome = services.register_webhooks(connection=connection)
        connection.refresh_from_db()
        secret = connection.secrets()["app_secret"]
        assert set(services.register_webhooks(connection=connection).values()) == {"present"}
    assert set(outcome.values()) == {"created"} and len(fake_woo.webhooks) == 4
    assert {h["secret"] for h in fake_woo.webhooks.values()} == {secret} and len(secret) > 30
    assert {h["topic"] for h in fake_woo.webhooks.values()} == {
        "product.created",
        "product.updated",
        "order.created",
        "order.updated",
    }


def test_an_http_public_address_is_refused_outside_tests(world_a, connect, settings):
    connection = connect(world_a)
    settings.PUBLIC_BASE_URL = "http://pricing.example.com"
    settings.CONNECTOR_ALLOW_HTTP = False
    with tenant_context(world_a.tenant), pytest.raises(ServiceError, match="https"):
        services.register_webhooks(connection=connection)


def test_the_api_registers_and_another_tenant_gets_404(world_a, world_b, connect, fake_shop):
    connection = connect(world_a)
    answer = world_a.api().post(
        f"/api/v1/connections/{connection.pk}/register-webhooks/", format="json"
    )
    assert answer.status_code == 200 and answer.json()["topics"]["PRODUCTS_UPDATE"] == "created"
    other = world_b.api().post(
        f"/api/v1/connections/{connection.pk}/register-webhooks/", format="json"
    )
    assert other.status_code == 404
    assert (
        world_a.api("viewer")
        .post(f"/api/v1/connections/{connection.pk}/register-webhooks/", format="json")
        .status_code
        == 403
    )


def test_a_woocommerce_secret_is_kept_even_when_the_shop_fails_half_way(
    world_a, connect_woo, fake_woo, settings
):
    settings.PUBLIC_BASE_URL = "https://pricing.example.com"
    connection = connect_woo(world_a, app_secret="")
    url = f"https://pricing.example.com/webhooks/woocommerce/{world_a.tenant.slug}/{connection.pk}/"
    fake_woo.webhooks[1] = {  # made by hand before, with a secret nobody here knows
        "id": 1,
        "topic": "order.created",
        "delivery_url": url,
        "secret": "unknown",
        "status": "active",
    }
    fake_woo._faults += ["", "", "500", "500"]  # the list and one update pass, then 500s
    with tenant_context(world_a.tenant), pytest.raises(ServiceError):
        services.register_webhooks(connection=connection)
    with tenant_context(world_a.tenant):
        connection.refresh_from_db()
        secret = connection.secrets()["app_secret"]  # stored before any hook was made
        outcome = services.register_webhooks(connection=connection)
    assert outcome["order.created"] == "updated"  # its unknown secret replaced by ours
    assert {h["secret"] for h in fake_woo.webhooks.values()} == {secret}
    assert len(fake_woo.webhooks) == 4
