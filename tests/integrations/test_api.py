"""/api/v1/connections/: admins and owners only, secrets never shown, the tenant boundary."""

from __future__ import annotations

import pytest

from pricing_saas.integrations.models import Connection
from tenants.context import tenant_context
from tenants.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def payload(fake_shop, **kw):
    return {
        "platform": "shopify",
        "shop_url": "https://fake-shop.myshopify.com",
        "api_base_url": fake_shop.url,
        "access_token": fake_shop.token,
        "app_secret": "app-secret",
        **kw,
    }


def test_create_tests_and_never_shows_the_secrets(world_a, fake_shop):
    client = world_a.api(Role.ADMIN)
    response = client.post("/api/v1/connections/", payload(fake_shop), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "connected" and body["has_webhook_secret"] is True
    assert body["webhook_url"].endswith(f"/webhooks/shopify/{world_a.tenant.slug}/{body['id']}/")
    listed = client.get("/api/v1/connections/")
    for text in (response.content, listed.content):
        assert fake_shop.token.encode() not in text and b"app-secret" not in text


def test_wrong_token_is_400_naming_the_field(world_a, fake_shop):
    response = world_a.api(Role.ADMIN).post(
        "/api/v1/connections/", payload(fake_shop, access_token="nope"), format="json"
    )
    assert response.status_code == 400
    assert response.json()["attr"] == "access_token"


def test_missing_field_is_named(world_a, fake_shop):
    body = payload(fake_shop)
    del body["shop_url"]
    response = world_a.api(Role.ADMIN).post("/api/v1/connections/", body, format="json")
    assert response.status_code == 400 and response.json()["attr"] == "shop_url"


@pytest.mark.parametrize("role", [Role.APPROVER, Role.ANALYST, Role.VIEWER])
def test_only_admins_and_owners(world_a, fake_shop, role):
    client = world_a.api(role)
    assert client.get("/api/v1/connections/").status_code == 403
    assert client.post("/api/v1/connections/", payload(fake_shop), format="json").status_code == 403


def test_test_sync_runs_and_disconnect(world_a, fake_shop):
    fake_shop.add_product("Tea", [{"sku": "TEA", "price": "4.50"}])
    client = world_a.api(Role.ADMIN)
    pk = client.post("/api/v1/connections/", payload(fake_shop), format="json").json()["id"]
    assert client.post(f"/api/v1/connections/{pk}/test/").json()["status"] == "connected"
    run = client.post(f"/api/v1/connections/{pk}/sync/", {"kind": "products"}, format="json")
    assert run.status_code == 202
    runs = client.get(f"/api/v1/connections/{pk}/runs/").json()["results"]
    assert runs[0]["status"] == "succeeded" and runs[0]["products"] == 1
    bad = client.post(f"/api/v1/connections/{pk}/sync/", {"kind": "nope"}, format="json")
    assert bad.status_code == 400 and bad.json()["attr"] == "kind"
    patched = client.patch(f"/api/v1/connections/{pk}/", {"publishes": False}, format="json")
    assert patched.json()["publishes"] is False
    gone = client.post(f"/api/v1/connections/{pk}/disconnect/").json()
    assert gone["status"] == "disconnected" and gone["has_credentials"] is False
    with tenant_context(world_a.tenant):
        assert Connection.objects.get().credentials == ""


def test_another_tenants_connection_is_404(world_a, world_b, fake_shop):
    pk = (
        world_b.api(Role.ADMIN)
        .post("/api/v1/connections/", payload(fake_shop), format="json")
        .json()["id"]
    )
    client = world_a.api(Role.ADMIN)
    for path in (f"/api/v1/connections/{pk}/", f"/api/v1/connections/{pk}/runs/"):
        assert client.get(path).status_code == 404
    for action in ("test", "sync", "disconnect"):
        assert client.post(f"/api/v1/connections/{pk}/{action}/").status_code == 404
    assert (
        client.get("/api/v1/connections/").json()["results"] == []
        or client.get("/api/v1/connections/").json() == []
    )
    with tenant_context(world_b.tenant):
        assert Connection.objects.get().status == "connected"
