"""The team REST API (`pricing_saas/portal/api.py`): members, API keys, invitations."""

from __future__ import annotations

import pytest
from django.core import mail
from rest_framework.test import APIClient

from tenants.context import tenant_context
from tenants.models import ApiKey, Invitation, Membership
from tenants.roles import Role

pytestmark = pytest.mark.django_db


def test_members_list_and_role_change(world_a, owner_session):
    client = owner_session(world_a)
    response = client.get("/api/v1/members/")
    assert response.status_code == 200
    assert response.json()["count"] == 5
    target = next(m for m in response.json()["results"] if m["role"] == Role.VIEWER)
    response = client.patch(f"/api/v1/members/{target['id']}/", {"role": "analyst"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["role"] == "analyst"


def test_invalid_role_is_validation_error_naming_the_field(world_a, owner_session):
    client = owner_session(world_a)
    with tenant_context(world_a.tenant):
        member = Membership.objects.get(user=world_a.users[Role.VIEWER])
    response = client.patch(f"/api/v1/members/{member.pk}/", {"role": "emperor"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error" and body["attr"] == "role"
    assert body["code"] == "invalid_choice"


def test_last_owner_cannot_be_demoted_or_removed(world_a, owner_session):
    client = owner_session(world_a)
    with tenant_context(world_a.tenant):
        owner = Membership.objects.get(role=Role.OWNER)
    response = client.patch(f"/api/v1/members/{owner.pk}/", {"role": "viewer"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "last_owner"
    assert client.delete(f"/api/v1/members/{owner.pk}/").status_code == 400
    with tenant_context(world_a.tenant):
        assert Membership.objects.get(pk=owner.pk).role == Role.OWNER


def test_api_key_created_once_and_usable(world_a, owner_session):
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


def test_owner_role_key_is_refused(world_a, owner_session):
    response = owner_session(world_a).post(
        "/api/v1/api-keys/", {"name": "x", "role": "owner"}, format="json"
    )
    assert response.status_code == 400 and response.json()["attr"] == "role"


def test_oversize_fields_are_400_not_500(world_a, owner_session):
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


def test_invitation_sends_mail_and_token_accepts(
    world_a, user, django_capture_on_commit_callbacks, owner_session
):
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


@pytest.mark.parametrize("path", ["/api/v1/audit-events/", "/api/v1/audit-events/export/"])
@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("offset", ["+16:00", "-16:00", "+23:59"])
def test_audit_since_or_until_with_an_offset_of_16_hours_or_more_is_a_400_naming_it(
    world_a, owner_session, path, name, offset
):
    response = owner_session(world_a).get(path, {name: f"2024-01-01T10:00:00{offset}"})
    assert response.status_code == 400, response.content[:300]
    assert response.json()["attr"] == name and "offset" in response.json()["detail"]


def test_audit_since_with_an_offset_within_range_filters(world_a, owner_session):
    response = owner_session(world_a).get(
        "/api/v1/audit-events/", {"since": "2024-01-01T10:00:00+15:59"}
    )
    assert response.status_code == 200
