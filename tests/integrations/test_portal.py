"""The portal's Connections page (pricing_saas/integrations/portal.py), as an admin uses it
against the fake shop: list, connect, test, sync, publishes, webhook secret, disconnect, the
sync history; admins and owners only; another tenant's connection is a 404; no secret is ever
on a page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client

from pricing_saas.catalog.models import Product
from pricing_saas.integrations import portal, services
from pricing_saas.integrations.models import Connection, SyncRun
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.factories import SyncRunFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]

ACTIONS = ("test", "sync", "publishes", "webhook-secret", "webhooks", "disconnect")


def portal_as(world, role=Role.OWNER) -> Client:
    return world.portal(Client(), role)


def form(fake_shop, **kw) -> dict:
    return {
        "platform": "shopify",
        "shop_url": fake_shop.url,  # plain http is allowed in tests (CONNECTOR_ALLOW_HTTP)
        "access_token": fake_shop.token,
        "app_secret": "app-secret",
        "publishes": "on",
        **kw,
    }


def audited(world, action: str, connection) -> list[AuditEvent]:
    with tenant_context(world.tenant):
        return list(
            AuditEvent.objects.filter(action=action, target_id=str(connection.pk)).order_by("pk")
        )


def reload(world, connection) -> Connection:
    with tenant_context(world.tenant):
        return Connection.objects.get(pk=connection.pk)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_list_shows_only_the_tenants_own_connections(world_a, world_b, connect):
    mine = connect(world_a, shop_url="https://alpha-tea.myshopify.com")
    connect(world_b, shop_url="https://bravo-coffee.myshopify.com")
    page = portal_as(world_a).get("/connections/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "https://alpha-tea.myshopify.com" in html and "bravo-coffee" not in html
    assert f'id="connection-{mine.pk}"' in html
    # the webhook address to paste into the shop, and the state of the connection
    assert f"/webhooks/shopify/{world_a.tenant.slug}/{mine.pk}/" in html
    assert re.search(r'class="status connected"[^>]*>Connected<', html)
    assert "USD" in html and "Publishes prices</dt><dd" in html


@pytest.mark.parametrize("direction", ["a_to_b", "b_to_a"])
def test_another_tenants_connection_is_404_on_every_action(world_a, world_b, connect, direction):
    me, other = (world_a, world_b) if direction == "a_to_b" else (world_b, world_a)
    theirs = connect(other, shop_url="https://theirs.myshopify.com")
    with tenant_context(other.tenant):
        SyncRunFactory(tenant=other.tenant, connection=theirs)
    before = reload(other, theirs)
    client = portal_as(me)
    assert client.get(f"/connections/{theirs.pk}/").status_code == 404
    assert client.get(f"/connections/{theirs.pk}/", HTTP_HX_REQUEST="true").status_code == 404
    for action in ACTIONS:
        response = client.post(
            f"/connections/{theirs.pk}/{action}/",
            {"kind": "products", "publishes": "0", "app_secret": "hijacked"},
        )
        assert response.status_code == 404, action
    after = reload(other, theirs)
    assert (after.status, after.publishes, after.credentials) == (
        before.status,
        before.publishes,
        before.credentials,
    )
    assert after.secrets()["app_secret"] == "app-secret"
    with tenant_context(other.tenant):
        assert SyncRun.objects.filter(connection=theirs).count() == 1


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST, Role.APPROVER])
def test_roles_without_manage_settings_get_403_and_no_nav_entry(world_a, connect, role):
    connection = connect(world_a)
    client = portal_as(world_a, role)
    assert client.get("/connections/").status_code == 403
    assert client.get(f"/connections/{connection.pk}/").status_code == 403
    assert client.post("/connections/", {"platform": "shopify"}).status_code == 403
    for action in ACTIONS:
        assert client.post(f"/connections/{connection.pk}/{action}/").status_code == 403
    assert 'href="/connections/"' not in client.get("/").content.decode()
    assert reload(world_a, connection).status == Connection.Status.CONNECTED


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
def test_admins_and_owners_see_the_nav_entry(world_a, role):
    html = portal_as(world_a, role).get("/connections/").content.decode()
    assert re.search(r'<a href="/connections/"\s+aria-current="page">Connections</a>', html)


def test_connect_from_the_form(world_a, fake_shop):
    client = portal_as(world_a, Role.ADMIN)
    response = client.post("/connections/", form(fake_shop))
    with tenant_context(world_a.tenant):
        connection = Connection.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/connections/{connection.pk}/"
    assert connection.status == Connection.Status.CONNECTED and connection.publishes
    assert connection.name == "Fake Shop" and connection.currency == "USD"
    assert connection.secrets() == {"access_token": fake_shop.token, "app_secret": "app-secret"}
    assert connection.created_by == world_a.users[Role.ADMIN].email
    assert audited(world_a, "connection.create", connection)
    page = client.get(response["Location"])
    assert any("connected" in m for m in messages_of(page))


def test_connect_without_publishing(world_a, fake_shop):
    data = form(fake_shop)
    del data["publishes"]  # an unticked checkbox is not sent
    assert portal_as(world_a).post("/connections/", data).status_code == 302
    with tenant_context(world_a.tenant):
        assert Connection.objects.get().publishes is False


def test_refused_token_is_shown_next_to_the_token_field_and_nothing_is_stored(world_a, fake_shop):
    response = portal_as(world_a).post(
        "/connections/", form(fake_shop, access_token="shpat_refused_by_the_shop")
    )
    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["access_token"]
    html = response.content.decode()
    error = re.search(r'<span class="errorlist" id="id_access_token_error"[^>]*>([^<]+)<', html)
    assert error and error.group(1).strip()
    token_input = re.search(r"<input[^>]*name=\"access_token\"[^>]*>", html).group(0)
    assert 'aria-describedby="id_access_token_helptext id_access_token_error"' in token_input
    assert 'aria-invalid="true"' in token_input and "value=" not in token_input
    # the non-secret inputs are kept, the secrets are not sent back
    assert f'value="{fake_shop.url}"' in html
    assert re.search(r'<option value="shopify" selected>', html)
    assert "shpat_refused_by_the_shop" not in html and "app-secret" not in html
    with tenant_context(world_a.tenant):
        assert not Connection.objects.exists()
        assert not AuditEvent.objects.filter(action__startswith="connection.").exists()


def test_a_shop_already_connected_is_a_message_next_to_the_address(world_a, fake_shop):
    client = portal_as(world_a)
    assert client.post("/connections/", form(fake_shop)).status_code == 302
    again = client.post("/connections/", form(fake_shop))
    assert again.status_code == 400
    assert list(again.context["form"].errors) == ["shop_url"]
    assert "already connected" in again.content.decode()
    with tenant_context(world_a.tenant):
        assert Connection.objects.count() == 1


def woo_form(fake_woo, **values):
    return {
        "platform": "woocommerce",
        "shop_url": fake_woo.url,  # plain http is allowed in tests (CONNECTOR_ALLOW_HTTP)
        "access_token": "typed-before-switching",  # another platform's field: never sent
        "consumer_key": fake_woo.key,
        "consumer_secret": fake_woo.secret,
        "app_secret": "woo-hook-secret",
        "publishes": "on",
        **values,
    }


def test_connect_a_woocommerce_shop_from_the_form(world_a, fake_woo):
    response = portal_as(world_a).post("/connections/", woo_form(fake_woo))
    assert response.status_code == 302
    with tenant_context(world_a.tenant):
        connection = Connection.objects.get()
    assert connection.platform == "woocommerce" and connection.currency == "USD"
    assert connection.secrets() == {
        "consumer_key": fake_woo.key,
        "consumer_secret": fake_woo.secret,
        "app_secret": "woo-hook-secret",
    }


def test_a_refused_woocommerce_key_is_shown_next_to_the_field(world_a, fake_woo):
    response = portal_as(world_a).post(
        "/connections/", woo_form(fake_woo, consumer_secret="cs_wrong")
    )
    assert response.status_code == 400
    html = response.content.decode()
    error = re.search(r'id="id_consumer_key_error"[^>]*>([^<]+)<', html)
    assert error and "refused" in error.group(1)
    assert re.search(r'<option value="woocommerce" selected>', html)
    assert f'value="{fake_woo.url}"' in html
    for secret in (fake_woo.key, "cs_wrong", "woo-hook-secret", "typed-before"):
        assert secret not in html
    with tenant_context(world_a.tenant):
        assert not Connection.objects.exists()


def test_a_service_error_without_a_field_is_shown_above_the_form(world_a, monkeypatch):
    def refuse(**kw):
        raise ServiceError("the shop platform is down for maintenance")

    monkeypatch.setattr(services, "connect", refuse)
    response = portal_as(world_a).post(
        "/connections/", {"platform": "shopify", "shop_url": "https://x.myshopify.com"}
    )
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [
        "the shop platform is down for maintenance"
    ]


def test_secrets_never_appear_in_any_page(world_a, fake_shop, sync):
    client = portal_as(world_a)
    fake_shop.add_product("Tea", [{"sku": "", "price": "4.50"}])  # skipped: in the report
    response = client.post("/connections/", form(fake_shop))
    with tenant_context(world_a.tenant):
        connection = Connection.objects.get()
    client.post(f"/connections/{connection.pk}/sync/", {"kind": "products"})
    client.post(f"/connections/{connection.pk}/webhook-secret/", {"app_secret": "rotated-secret"})
    refused = client.post("/connections/", form(fake_shop, access_token="shpat_wrong_one"))
    pages = [
        client.get("/connections/"),
        client.get(response["Location"]),
        client.get(f"/connections/{connection.pk}/", HTTP_HX_REQUEST="true"),
        refused,
        client.get("/"),
        client.get("/audit/"),
    ]
    for page in pages:
        html = page.content.decode()
        for secret in (fake_shop.token, "app-secret", "rotated-secret", "shpat_wrong_one"):
            assert secret not in html, (page.request["PATH_INFO"], secret)
        for tag in re.findall(r"<input[^>]*type=\"password\"[^>]*>", html):
            assert "value=" not in tag
    assert "Webhook secret</dt><dd>set</dd>" in pages[0].content.decode()


def test_test_connection_follows_the_shop_and_is_audited(world_a, connect, fake_shop):
    connection = connect(world_a)
    client = portal_as(world_a)
    token = fake_shop.token
    fake_shop.revoke()
    page = client.post(f"/connections/{connection.pk}/test/", follow=True)
    assert page.status_code == 200
    assert reload(world_a, connection).status == Connection.Status.FAILING
    assert any("is failing" in m for m in messages_of(page))
    html = page.content.decode()
    assert re.search(r'class="status failing"[^>]*>Failing</span> <span class="reason">', html)
    fake_shop.token = token
    page = client.post(
        f"/connections/{connection.pk}/test/", {"next": "/connections/"}, follow=True
    )
    assert page.redirect_chain[-1][0] == "/connections/"
    assert reload(world_a, connection).status == Connection.Status.CONNECTED
    assert any("connected" in m for m in messages_of(page))
    statuses = [e.after["status"] for e in audited(world_a, "connection.status", connection)]
    assert statuses == ["failing", "connected"]


def test_next_never_leaves_the_site(world_a, connect):
    connection = connect(world_a)
    response = portal_as(world_a).post(
        f"/connections/{connection.pk}/test/", {"next": "https://evil.example.com/"}
    )
    assert response["Location"] == f"/connections/{connection.pk}/"


def test_sync_now_runs_and_shows_in_the_history(world_a, connect, fake_shop):
    fake_shop.add_product("Tea", [{"sku": "TEA", "price": "4.50"}])
    connection = connect(world_a)
    client = portal_as(world_a, Role.ADMIN)
    response = client.post(
        f"/connections/{connection.pk}/sync/", {"kind": "products", "full": "on"}
    )
    assert response["Location"] == f"/connections/{connection.pk}/"
    with tenant_context(world_a.tenant):
        run = SyncRun.objects.get()
        assert Product.objects.filter(sku="TEA").exists()
    assert (run.kind, run.full, run.trigger) == ("products", True, "manual")
    assert run.status == "succeeded" and run.products == 1
    # the run is the sync's record (as an import's or a reprice job's): who, what, what came
    assert run.created_by == world_a.users[Role.ADMIN].email
    page = client.get(response["Location"])
    assert any(f"Sync {run.pk}" in m for m in messages_of(page))
    row = re.search(rf'<tr id="run-{run.pk}">(.*?)</tr>', page.content.decode(), re.S).group(1)
    assert "Products (full)" in row and "Succeeded" in row and run.created_by in row
    assert reload(world_a, connection).last_products_sync_at is not None


def test_a_bad_sync_kind_is_a_message(world_a, connect):
    connection = connect(world_a)
    page = portal_as(world_a).post(
        f"/connections/{connection.pk}/sync/", {"kind": "everything"}, follow=True
    )
    assert any(m.startswith("kind: unknown kind") for m in messages_of(page))
    with tenant_context(world_a.tenant):
        assert not SyncRun.objects.exists()


def test_publishes_toggle_is_audited(world_a, connect):
    connection = connect(world_a)
    client = portal_as(world_a)
    html = client.get("/connections/").content.decode()
    assert "Stop publishing prices here" in html
    client.post(f"/connections/{connection.pk}/publishes/", {"publishes": "0"})
    assert reload(world_a, connection).publishes is False
    assert "Publish prices here" in client.get("/connections/").content.decode()
    client.post(f"/connections/{connection.pk}/publishes/", {"publishes": "1"})
    assert reload(world_a, connection).publishes is True
    changes = [
        (e.before["publishes"], e.after["publishes"])
        for e in audited(world_a, "connection.update", connection)
    ]
    assert changes == [(True, False), (False, True)]


def test_replace_webhook_secret(world_a, connect):
    connection = connect(world_a)
    client = portal_as(world_a)
    blank = client.post(
        f"/connections/{connection.pk}/webhook-secret/", {"app_secret": "  "}, follow=True
    )
    assert any(m.startswith("app_secret:") for m in messages_of(blank))
    assert reload(world_a, connection).secrets()["app_secret"] == "app-secret"
    page = client.post(
        f"/connections/{connection.pk}/webhook-secret/", {"app_secret": "new-secret"}, follow=True
    )
    assert reload(world_a, connection).secrets()["app_secret"] == "new-secret"
    assert "new-secret" not in page.content.decode()
    (event,) = audited(world_a, "connection.update", connection)
    assert event.after["webhook_secret"] == "replaced"
    assert "new-secret" not in str(event.after) + str(event.before)


def test_disconnect_deletes_credentials_and_keeps_the_data(world_a, connect, sync, fake_shop):
    fake_shop.add_product("Tea", [{"sku": "TEA", "price": "4.50"}])
    connection = connect(world_a)
    sync(world_a, connection, kind="products")
    client = portal_as(world_a)
    html = client.get("/connections/").content.decode()
    confirm = re.search(r"<summary>Disconnect…</summary>(.*?)</details>", html, re.S).group(1)
    assert "deletes this shop's credentials" in confirm and "stay" in confirm
    page = client.post(
        f"/connections/{connection.pk}/disconnect/", {"reason": "moving shops"}, follow=True
    )
    gone = reload(world_a, connection)
    assert gone.status == Connection.Status.DISCONNECTED and gone.credentials == ""
    assert gone.status_reason == "moving shops"
    with tenant_context(world_a.tenant):
        assert Product.objects.filter(sku="TEA").exists()  # what was imported stays
    (event,) = audited(world_a, "connection.disconnect", connection)
    assert event.after["credentials"] == "deleted"
    html = page.content.decode()
    assert any("disconnected" in m for m in messages_of(page))
    assert "Webhook secret</dt><dd>deleted</dd>" in html
    assert f'action="/connections/{connection.pk}/sync/"' not in html  # no more actions
    # an action sent anyway (an old tab) is refused with a message, not a 500
    again = client.post(f"/connections/{connection.pk}/sync/", {"kind": "all"}, follow=True)
    assert any("disconnected" in m for m in messages_of(again))
    test = client.post(f"/connections/{connection.pk}/test/", follow=True)
    assert any("disconnected" in m for m in messages_of(test))


def test_history_partial_shows_a_running_syncs_progress(world_a, connect):
    connection = connect(world_a)
    report = [{"item": f"SKU GONE-{i}", "reason": "not in the catalog"} for i in range(25)]
    with tenant_context(world_a.tenant):
        done = SyncRunFactory(
            tenant=world_a.tenant, connection=connection, status="succeeded", message="done",
            products=40, orders=5, sales_rows=9, skipped=25, calls=11, throttled=2, report=report,
        )  # fmt: skip
        running = SyncRunFactory(
            tenant=world_a.tenant, connection=connection, status="running", phase="orders",
            products=12, orders=3, sales_rows=7, message="",
        )  # fmt: skip
    client = portal_as(world_a)
    partial = client.get(f"/connections/{connection.pk}/", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "HX-Refresh" not in partial
    assert [t.name for t in partial.templates] == ["integrations/_runs.html"]
    html = partial.content.decode()
    assert "<html" not in html
    assert f'hx-get="/connections/{connection.pk}/"' in html and 'hx-trigger="every 2s"' in html
    progress = re.search(r'<div id="sync-progress".*?</div>', html, re.S).group(0)
    assert "<progress" in progress and "orders" in progress
    assert "12 products, 3 orders, 7 sales rows so far" in progress
    done_row = re.search(rf'<tr id="run-{done.pk}">(.*?)<td class="message">done', html, re.S)
    cells = re.findall(r'<td class="num">(\d+)</td>', done_row.group(1))
    assert cells == ["40", "5", "9", "25", "11", "2"]
    assert "What was skipped (first 20 of 25)" in html
    assert "SKU GONE-19" in html and "SKU GONE-20" not in html
    assert f'<tr id="run-{running.pk}">' in html
    # the full page holds the same partial; once nothing runs, the polling stops
    assert 'id="sync-runs" hx-get=' in client.get(f"/connections/{connection.pk}/").content.decode()
    with tenant_context(world_a.tenant):
        running.finish(message="finished")
    ended = client.get(f"/connections/{connection.pk}/", HTTP_HX_REQUEST="true")
    html = ended.content.decode()
    assert "hx-get" not in html and "<progress" not in html
    assert ended["HX-Refresh"] == "true"  # the whole page again: the connection's new times


def test_times_are_shown_in_the_tenants_time_zone(world_a, connect):
    world_a.tenant.timezone = "Asia/Tokyo"
    world_a.tenant.save()
    connection = connect(world_a)
    with tenant_context(world_a.tenant):
        Connection.objects.filter(pk=connection.pk).update(
            last_products_sync_at=dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
        )
    html = portal_as(world_a).get("/connections/").content.decode()
    assert "<dt>Products synced</dt><dd>2030-01-01 09:00 JST</dd>" in html


def test_only_the_chosen_platforms_credentials_go_to_the_service():
    shopify = portal.ConnectForm(
        {
            "platform": "shopify",
            "shop_url": "https://a.myshopify.com",
            "access_token": "t",
            "consumer_key": "k",
            "consumer_secret": "s",
        }
    )
    assert shopify.is_valid()
    assert shopify.service_arguments() == {
        "platform": "shopify",
        "shop_url": "https://a.myshopify.com",
        "access_token": "t",
        "app_secret": "",
        "publishes": False,
    }


def test_subscribe_webhooks_from_the_page(world_a, connect, fake_shop):
    connection = connect(world_a)
    page = portal_as(world_a).post(f"/connections/{connection.pk}/webhooks/", follow=True)
    assert any("4 subscribed" in m for m in messages_of(page))
    assert len(fake_shop.webhooks) == 4
