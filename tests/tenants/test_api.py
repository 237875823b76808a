"""The REST API: authentication, error shape, members, invitations, API keys."""

from __future__ import annotations

import pytest
from django.core import mail
from rest_framework.test import APIClient

from tenants.context import tenant_context
from tenants.models import ApiKey, Invitation, Membership
from tenants.roles import Role

pytestmark = pytest.mark.django_db

ERROR_KEYS = {"type", "code", "detail", "attr"}


def owner_session(world) -> APIClient:
    client = APIClient()
    client.force_login(world.users[Role.OWNER])
    return client


def test_api_key_authenticates_to_its_tenant(world_a):
    response = world_a.api(Role.VIEWER).get("/api/v1/tenant/")
    assert response.status_code == 200
    assert response.json()["slug"] == world_a.tenant.slug
    assert response.json()["role"] == Role.VIEWER
    with tenant_context(world_a.tenant):
        assert ApiKey.objects.get(name="viewer key").last_used_at is not None


@pytest.mark.parametrize(
    "header",
    [
        "Api-Key nonsense",
        "Api-Key pk_000000000000.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "Bearer " + "x" * 5000,
        "Api-Key ",
        "Api-Key pk_zzzz'; DROP TABLE tenants_apikey; --.secret",
    ],
)
def test_malformed_or_unknown_key_is_401_with_error_shape(world_a, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/tenant/")
    assert response.status_code == 401
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["type"] == "client_error"


def test_right_prefix_wrong_secret_is_401(world_a):
    prefix = world_a.keys[Role.ADMIN].split(".")[0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {prefix}.{'A' * 43}")
    assert client.get("/api/v1/tenant/").status_code == 401


def test_revoked_key_is_401(world_a):
    with tenant_context(world_a.tenant):
        ApiKey.objects.filter(name="admin key").update(revoked_at="2026-01-01T00:00Z")
    assert world_a.api(Role.ADMIN).get("/api/v1/tenant/").status_code == 401


def test_no_credentials_is_401_or_403(db):
    response = APIClient().get("/api/v1/members/")
    assert response.status_code in (401, 403)
    assert set(response.json()) == ERROR_KEYS


def test_unknown_api_route_is_json_404(world_a):
    response = world_a.api().get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert set(response.json()) == ERROR_KEYS


def test_members_list_and_role_change(world_a):
    client = owner_session(world_a)
    response = client.get("/api/v1/members/")
    assert response.status_code == 200
    assert response.json()["count"] == 5
    target = next(m for m in response.json()["results"] if m["role"] == Role.VIEWER)
    response = client.patch(f"/api/v1/members/{target['id']}/", {"role": "analyst"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["role"] == "analyst"


def test_invalid_role_is_validation_error_naming_the_field(world_a):
    client = owner_session(world_a)
    with tenant_context(world_a.tenant):
        member = Membership.objects.get(user=world_a.users[Role.VIEWER])
    response = client.patch(f"/api/v1/members/{member.pk}/", {"role": "emperor"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error" and body["attr"] == "role"
    assert body["code"] == "invalid_choice"


def test_last_owner_cannot_be_demoted_or_removed(world_a):
    client = owner_session(world_a)
    with tenant_context(world_a.tenant):
        owner = Membership.objects.get(role=Role.OWNER)
    response = client.patch(f"/api/v1/members/{owner.pk}/", {"role": "viewer"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "last_owner"
    assert client.delete(f"/api/v1/members/{owner.pk}/").status_code == 400
    with tenant_context(world_a.tenant):
        assert Membership.objects.get(pk=owner.pk).role == Role.OWNER


def test_api_key_created_once_and_usable(world_a):
    client = owner_session(world_a)
    response = client.post("/api/v1/api-keys/", {"name": "shop", "role": "analyst"}, format="json")
    assert response.status_code == 201
    key = response.json()["key"]
    assert key.startswith(response.json()["prefix"] + ".")
    listed = client.get("/api/v1/api-keys/").json()["results"]
    assert all("key" not in item for item in listed)
    with tenant_context(world_a.tenant):
        stored = ApiKey.objects.get(pk=response.json()["id"])
    assert key.split(".")[1] not in stored.secret_hash
    new = APIClient()
    new.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert new.get("/api/v1/tenant/").json()["role"] == "analyst"
    assert client.delete(f"/api/v1/api-keys/{stored.pk}/").status_code == 204
    assert new.get("/api/v1/tenant/").status_code == 401


def test_owner_role_key_is_refused(world_a):
    response = owner_session(world_a).post(
        "/api/v1/api-keys/", {"name": "x", "role": "owner"}, format="json"
    )
    assert response.status_code == 400 and response.json()["attr"] == "role"


def test_oversize_fields_are_400_not_500(world_a):
    client = owner_session(world_a)
    response = client.post(
        "/api/v1/api-keys/", {"name": "n" * 5000, "role": "viewer"}, format="json"
    )
    assert response.status_code == 400 and response.json()["attr"] == "name"
    response = client.post(
        "/api/v1/invitations/", {"email": "a" * 300 + "@x.com", "role": "viewer"}, format="json"
    )
    assert response.status_code == 400 and response.json()["attr"] == "email"
    with tenant_context(world_a.tenant):
        assert Invitation.objects.count() == 0


def test_invitation_sends_mail_and_token_accepts(world_a, user, django_capture_on_commit_callbacks):
    client = owner_session(world_a)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/invitations/", {"email": user.email, "role": "approver"}, format="json"
        )
    assert response.status_code == 201
    assert len(mail.outbox) == 1 and response.json()["token"] in mail.outbox[0].body
    other = APIClient()
    other.force_login(user)
    page = other.post(f"/invite/{response.json()['token']}/")
    assert page.status_code == 302
    with tenant_context(world_a.tenant):
        assert Membership.objects.get(user=user).role == "approver"


def test_session_user_can_pick_tenant_with_header_only_if_member(world_a, world_b):
    client = owner_session(world_a)
    assert client.get("/api/v1/tenant/", HTTP_X_TENANT=world_a.tenant.slug).status_code == 200
    response = client.get("/api/v1/tenant/", HTTP_X_TENANT=world_b.tenant.slug)
    assert response.status_code == 404
    assert client.get("/api/v1/tenant/", HTTP_X_TENANT="no-such-slug").status_code == 404


def test_openapi_schema_is_served(db):
    response = APIClient().get("/api/v1/schema/")
    assert response.status_code == 200
    assert b"/api/v1/api-keys/" in response.content


def test_openapi_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "ApiKeyAuth" in text and "/api/v1/members/{id}/" in text
