"""API authentication (`pricing_saas/web/auth.py`): an API key opens its own tenant only
while it is valid; a session user picks a tenant it is a member of."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tenants.context import tenant_context
from tenants.models import ApiKey
from tenants.roles import Role

pytestmark = pytest.mark.django_db


def test_api_key_authenticates_to_its_tenant(world_a):
    response = world_a.api(Role.VIEWER).get("/api/v1/tenant/")
    assert response.status_code == 200
    assert response.json()["slug"] == world_a.tenant.slug
    assert response.json()["role"] == Role.VIEWER
    with tenant_context(world_a.tenant):
        assert ApiKey.objects.get(name="viewer key").last_used_at is not None


def test_right_prefix_wrong_secret_is_401(world_a):
    prefix = world_a.keys[Role.ADMIN].split(".")[0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {prefix}.{'A' * 43}")
    assert client.get("/api/v1/tenant/").status_code == 401


def test_revoked_key_is_401(world_a):
    with tenant_context(world_a.tenant):
        ApiKey.objects.filter(name="admin key").update(revoked_at="2026-01-01T00:00Z")
    assert world_a.api(Role.ADMIN).get("/api/v1/tenant/").status_code == 401


def test_session_user_can_pick_tenant_with_header_only_if_member(world_a, world_b, owner_session):
    client = owner_session(world_a)
    assert client.get("/api/v1/tenant/", HTTP_X_TENANT=world_a.tenant.slug).status_code == 200
    response = client.get("/api/v1/tenant/", HTTP_X_TENANT=world_b.tenant.slug)
    assert response.status_code == 404
    assert client.get("/api/v1/tenant/", HTTP_X_TENANT="no-such-slug").status_code == 404


def test_a_prefix_that_another_tenant_also_holds_opens_each_key_with_its_own_secret(
    world_a, world_b
):
    """A prefix is unique per tenant only (a distributed table's unique keys hold tenant_id,
    docs/citus.md): of two rows with one prefix, the secret decides."""
    from tenants.services import authenticate_api_key, secret_digest

    raw_a = world_a.keys[Role.ADMIN]
    prefix, twin_secret = raw_a.split(".")[0], "B" * 43
    with tenant_context(world_b.tenant):
        ApiKey.objects.create(
            name="twin", prefix=prefix, secret_hash=secret_digest(twin_secret), role=Role.VIEWER
        )
    assert authenticate_api_key(raw_a).tenant_id == world_a.tenant.pk
    assert authenticate_api_key(f"{prefix}.{twin_secret}").tenant_id == world_b.tenant.pk
    assert authenticate_api_key(f"{prefix}.{'C' * 43}") is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {prefix}.{twin_secret}")
    assert client.get("/api/v1/tenant/").json()["slug"] == world_b.tenant.slug


def test_a_new_key_never_takes_a_prefix_another_tenant_holds(world_a, world_b, monkeypatch):
    from pricing_saas.portal import services

    taken = world_a.keys[Role.ADMIN].split(".")[0].removeprefix("pk_")
    draws = iter([taken, "0123456789ab"])
    monkeypatch.setattr(services.secrets, "token_hex", lambda n: next(draws))
    with tenant_context(world_b.tenant):
        issued = services.create_api_key(
            tenant=world_b.tenant, actor=None, actor_role=Role.OWNER, name="new", role="viewer"
        )
    assert issued.api_key.prefix == "pk_0123456789ab"
