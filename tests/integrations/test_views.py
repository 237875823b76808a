"""The Shopify webhook endpoint: signature first, one event per id, stale and echoed events,
processing on the ingest queue."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal

import pytest
from django.test import Client

from pricing_saas.catalog.models import Product, SalesRecord
from pricing_saas.integrations.models import Connection, WebhookEvent
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


@pytest.fixture
def hooked(world_a, connect, sync, fake_shop):
    fake_shop.add_product("Tea", [{"sku": "TEA", "price": "4.50"}])
    connection = connect(world_a)
    sync(world_a, connection, kind="products")
    return connection


def post(
    world,
    connection,
    topic,
    body: dict,
    *,
    event="e1",
    secret="app-secret",  # noqa: S107 (the fake shop's test secret)
    triggered="2030-01-01T00:00:00Z",
    signature=None,
):
    raw = json.dumps(body).encode()
    digest = base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()
    return Client().post(
        f"/webhooks/shopify/{world.tenant.slug}/{connection.pk}/",
        raw,
        content_type="application/json",
        HTTP_X_SHOPIFY_TOPIC=topic,
        HTTP_X_SHOPIFY_HMAC_SHA256=signature if signature is not None else digest,
        HTTP_X_SHOPIFY_EVENT_ID=event,
        HTTP_X_SHOPIFY_TRIGGERED_AT=triggered,
    )


def product_body(fake_shop, price, updated="2030-01-01T00:00:00Z"):
    v = fake_shop.variant("TEA")
    return {
        "id": 1,
        "admin_graphql_api_id": next(iter(fake_shop.products)),
        "title": "Tea",
        "vendor": "",
        "product_type": "",
        "status": "active",
        "updated_at": updated,
        "variants": [
            {
                "id": 2,
                "admin_graphql_api_id": v["id"],
                "sku": "TEA",
                "title": "Default Title",
                "price": price,
                "inventory_quantity": 3,
            }
        ],
    }


def order_body(line_gid="gid://shopify/LineItem/77", refunds=(), updated="2030-01-02T00:00:00Z"):
    return {
        "id": 5,
        "admin_graphql_api_id": "gid://shopify/Order/5",
        "name": "#1",
        "created_at": "2030-01-01T12:00:00Z",
        "updated_at": updated,
        "currency": "USD",
        "line_items": [
            {
                "id": 77,
                "admin_graphql_api_id": line_gid,
                "sku": "TEA",
                "quantity": 3,
                "price": "4.50",
                "discount_allocations": [{"amount": "1.50"}],
            }
        ],
        "refunds": [{"refund_line_items": [{"line_item_id": 77, "quantity": q}]} for q in refunds],
    }


@pytest.mark.parametrize("signature", ["", "AAAA", "bm90IHRoZSByaWdodCBvbmU="])
def test_bad_or_missing_signature_is_401_and_changes_nothing(world_a, hooked, fake_shop, signature):
    response = post(
        world_a, hooked, "products/update", product_body(fake_shop, "1.00"), signature=signature
    )
    assert response.status_code == 401
    with tenant_context(world_a.tenant):
        assert not WebhookEvent.objects.exists()
        assert Product.objects.get(sku="TEA").price == Decimal("4.5")


def test_wrong_secret_unknown_tenant_or_connection_all_answer_401(
    world_a, world_b, hooked, fake_shop
):
    body = product_body(fake_shop, "1.00")
    assert post(world_a, hooked, "products/update", body, secret="guess").status_code == 401
    raw = json.dumps(body).encode()
    for path in (
        f"/webhooks/shopify/nobody/{hooked.pk}/",
        f"/webhooks/shopify/{world_b.tenant.slug}/{hooked.pk}/",
    ):
        assert Client().post(path, raw, content_type="application/json").status_code == 401


def test_an_external_price_change_reaches_the_catalog_once(world_a, hooked, fake_shop):
    assert (
        post(world_a, hooked, "products/update", product_body(fake_shop, "3.99")).status_code == 200
    )
    again = post(world_a, hooked, "products/update", product_body(fake_shop, "3.99"))
    assert again.json()["status"] == "duplicate"
    with tenant_context(world_a.tenant):
        event = WebhookEvent.objects.get()
        assert event.status == "processed" and "changed in the shop 4.5" in event.message
        assert Product.objects.get(sku="TEA").price == Decimal("3.99")


def test_a_stale_product_event_is_ignored(world_a, hooked, fake_shop):
    post(world_a, hooked, "products/update", product_body(fake_shop, "3.99"), event="new")
    post(
        world_a,
        hooked,
        "products/update",
        product_body(fake_shop, "2.00", updated="2029-01-01T00:00:00Z"),
        event="old",
    )
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="TEA").price == Decimal("3.99")
        assert "stale" in WebhookEvent.objects.get(event_id="old").message


def test_the_echo_of_our_own_write_is_recognised(world_a, hooked, fake_shop):
    from pricing_saas.integrations.models import ShopVariant

    with tenant_context(world_a.tenant):
        ShopVariant.objects.filter(sku="TEA").update(pushed_price=Decimal("4.99"))
    post(world_a, hooked, "products/update", product_body(fake_shop, "4.99"))
    with tenant_context(world_a.tenant):
        assert "echo of our own price write" in WebhookEvent.objects.get().message


def test_orders_count_once_and_out_of_order_refunds_never_roll_back(world_a, hooked):
    post(world_a, hooked, "orders/create", order_body(updated="2030-01-01T12:00:00Z"), event="c")
    post(world_a, hooked, "orders/create", order_body(updated="2030-01-01T12:00:00Z"), event="c")
    with tenant_context(world_a.tenant):
        sale = SalesRecord.objects.get()
        assert (sale.units, sale.price) == (3, Decimal("4.0"))  # 4.50 less 1.50 over 3 units
    post(
        world_a,
        hooked,
        "orders/updated",
        order_body(refunds=[1], updated="2030-01-03T00:00:00Z"),
        event="r",
    )
    # the older update arrives late: ignored
    post(
        world_a, hooked, "orders/updated", order_body(updated="2030-01-02T00:00:00Z"), event="late"
    )
    with tenant_context(world_a.tenant):
        assert SalesRecord.objects.get().units == 2
        assert "stale" in WebhookEvent.objects.get(event_id="late").message


def test_app_uninstalled_disconnects(world_a, hooked):
    assert post(world_a, hooked, "app/uninstalled", {"id": 1}).status_code == 200
    with tenant_context(world_a.tenant):
        connection = Connection.objects.get()
    assert connection.status == "disconnected" and connection.credentials == ""
