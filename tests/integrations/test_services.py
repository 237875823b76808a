"""Connections: test on save, encrypted credentials, audit, disconnect; the tenant boundary."""

from __future__ import annotations

import pytest

from pricing_saas.integrations import services
from pricing_saas.integrations.models import Connection
from pricing_saas.web.errors import ConflictError, ServiceError
from tenants.context import tenant_context
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_connect_tests_the_token_and_stores_it_encrypted(world_a, connect, fake_shop):
    connection = connect(world_a)
    assert connection.status == "connected" and connection.name == "Fake Shop"
    assert fake_shop.token not in connection.credentials
    with tenant_context(world_a.tenant):
        assert Connection.objects.get().secrets()["access_token"] == fake_shop.token
        event = AuditEvent.objects.get(action="connection.create")
    assert fake_shop.token not in str(event.after) and "app-secret" not in str(event.after)
    assert fake_shop.token not in repr(connection)


def test_wrong_token_is_refused_and_nothing_is_stored(world_a, connect):
    with pytest.raises(ServiceError, match="refused the access token") as exc:
        connect(world_a, access_token="shpat_wrong")
    assert exc.value.attr == "access_token"
    with tenant_context(world_a.tenant):
        assert not Connection.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "attr"),
    [
        ("shop_url", "ftp://x", "shop_url"),
        ("shop_url", "https://u:p@x.com", "shop_url"),
        ("access_token", "", "access_token"),
        ("access_token", "a b", "access_token"),
    ],
)
def test_bad_input_names_the_field(world_a, connect, field, value, attr):
    with pytest.raises(ServiceError) as exc:
        connect(world_a, **{field: value})
    assert exc.value.attr == attr


def test_a_shop_in_another_currency_is_refused(world_a, connect, fake_shop):
    fake_shop.currency = "EUR"
    with pytest.raises(ServiceError, match="sells in EUR") as exc:
        connect(world_a)
    assert exc.value.code == "currency_mismatch"


def test_the_same_shop_twice_conflicts(world_a, connect):
    connect(world_a)
    with pytest.raises(ConflictError):
        connect(world_a)


def test_test_connection_marks_failing_then_connected(world_a, connect, fake_shop):
    connection = connect(world_a)
    real = fake_shop.token
    fake_shop.revoke()
    with tenant_context(world_a.tenant):
        connection = services.test_connection(connection=connection)
        assert connection.status == "failing" and "refused" in connection.status_reason
        fake_shop.token = real
        assert services.test_connection(connection=connection).status == "connected"
        actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count("connection.status") == 2


def test_disconnect_deletes_the_credentials(world_a, connect):
    connection = connect(world_a)
    with tenant_context(world_a.tenant):
        connection = services.disconnect(connection=connection)
        assert connection.credentials == "" and connection.status == "disconnected"
        assert AuditEvent.objects.filter(action="connection.disconnect").exists()
        with pytest.raises(ConflictError):
            services.start_sync(connection=connection, enqueue=False)


def test_connections_are_tenant_scoped_both_ways(world_a, world_b, connect):
    a = connect(world_a)
    b = connect(world_b, shop_url="https://other.myshopify.com")
    with tenant_context(world_a.tenant):
        assert list(Connection.objects.values_list("pk", flat=True)) == [a.pk]
        with pytest.raises(Exception):  # noqa: B017 (NotFoundError)
            services.get_connection(b.pk)
    with tenant_context(world_b.tenant):
        assert list(Connection.objects.values_list("pk", flat=True)) == [b.pk]


def test_a_disconnected_shop_can_be_connected_again_as_the_same_connection(
    world_a, connect, sync, fake_shop
):
    from pricing_saas.integrations.models import ShopVariant

    fake_shop.add_product("Tea", [{"sku": "TEA", "price": "4.50"}])
    first = connect(world_a)
    sync(world_a, first, kind="products")
    with tenant_context(world_a.tenant):
        services.disconnect(connection=first)
    again = connect(world_a)
    assert again.pk == first.pk and again.status == "connected" and again.has_credentials
    with tenant_context(world_a.tenant):
        assert ShopVariant.objects.filter(connection=again).count() == 1  # kept
        assert AuditEvent.objects.filter(action="connection.reconnect").count() == 1
        assert AuditEvent.objects.filter(action="connection.sync").count() == 1
    with pytest.raises(ConflictError):
        connect(world_a)  # connected now: a second connect is refused


def test_test_connection_with_unreadable_credentials_says_failing(
    world_a, connect, fake_shop, settings
):
    from cryptography.fernet import Fernet

    connection = connect(world_a)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key dropped
    with tenant_context(world_a.tenant):
        connection = services.test_connection(connection=connection)
    assert connection.status == "failing" and "FIELD_ENCRYPTION_KEYS" in connection.status_reason


def test_a_shop_address_inside_the_platforms_network_is_refused(world_a, settings):
    settings.CONNECTOR_ALLOW_PRIVATE = False
    for url in ("https://127.0.0.1:8443", "https://10.0.0.5", "https://[::1]", "https://localhost"):
        with tenant_context(world_a.tenant), pytest.raises(ServiceError) as caught:
            services.connect(platform="shopify", shop_url=url, access_token="shpat_x")
        assert caught.value.attr == "shop_url" and "private or local" in caught.value.detail, url


def test_a_sync_refuses_a_shop_whose_name_now_resolves_inside(
    world_a, connect, sync, fake_shop, settings
):
    connection = connect(world_a)  # the fake shop is on 127.0.0.1: allowed when connected
    settings.CONNECTOR_ALLOW_PRIVATE = False
    run = sync(world_a, connection, kind="products")
    assert run.status == "failed" and "private or local" in run.message
