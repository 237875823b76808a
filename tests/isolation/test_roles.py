"""Roles on every route: a viewer changes nothing; only owners manage members and keys."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.roles import Role

from .routes import (
    API_CREATE_PAYLOADS,
    API_PARAM_PAGES,
    PORTAL_OBJECT_ROUTES,
    PORTAL_POSTS_WITHOUT_ID,
    PUBLIC,
    READ_ONLY_POSTS,
    all_routes,
)
from .test_cross_tenant import UNSAFE, object_of, snapshot, tenant_models

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(world_a):
    for model in tenant_models():
        object_of(world_a, model)
    return world_a


def test_viewer_key_cannot_change_anything_through_the_api(world):
    before = snapshot(world)
    client = world.api(Role.VIEWER)
    for route in all_routes():
        if not route.is_api or route.name in PUBLIC:
            continue
        if route.name in API_PARAM_PAGES:
            path = route.path(**API_PARAM_PAGES[route.name][0])
        elif route.kwargs:
            path = route.path(pk=object_of(world, route.view_class.model).pk)
        else:
            path = route.path()
        payload = API_CREATE_PAYLOADS.get(route.name, lambda w: {"role": "owner"})(world)
        for method in UNSAFE:
            if method == "post" and route.name in READ_ONLY_POSTS:
                continue  # a read; the snapshot below still proves nothing changed
            response = getattr(client, method)(path, payload, format="json")
            assert response.status_code in (403, 405), (
                f"viewer {method.upper()} {path}: {response.status_code}"
            )
    assert snapshot(world) == before


def test_viewer_cannot_change_anything_in_the_portal(world):
    before = snapshot(world)
    client = Client()
    client.force_login(world.users[Role.VIEWER])
    for route in all_routes():
        if route.name in PORTAL_OBJECT_ROUTES:
            path = route.path(pk=object_of(world, PORTAL_OBJECT_ROUTES[route.name]).pk)
            assert client.post(path, {"role": "owner"}).status_code in (403, 405), path
        elif route.name in PORTAL_POSTS_WITHOUT_ID and route.name != "portal:switch_tenant":
            assert (
                client.post(
                    route.path(), {"email": "x@example.com", "role": "owner", "name": "k"}
                ).status_code
                == 403
            )
    assert snapshot(world) == before


@pytest.mark.parametrize("role", [Role.ADMIN, Role.APPROVER, Role.ANALYST, Role.VIEWER])
def test_only_owners_manage_members_and_keys_via_api(world, role):
    before = snapshot(world)
    client = world.api(role)
    member = object_of(world, PORTAL_OBJECT_ROUTES["portal:change_role"])
    key = object_of(world, PORTAL_OBJECT_ROUTES["portal:revoke_api_key"])
    assert (
        client.post("/api/v1/api-keys/", {"name": "k", "role": "viewer"}, format="json").status_code
        == 403
    )
    assert client.delete(f"/api/v1/api-keys/{key.pk}/").status_code == 403
    assert client.get("/api/v1/api-keys/").status_code == 403
    assert (
        client.patch(f"/api/v1/members/{member.pk}/", {"role": "admin"}, format="json").status_code
        == 403
    )
    assert client.delete(f"/api/v1/members/{member.pk}/").status_code == 403
    assert (
        client.post(
            "/api/v1/invitations/", {"email": "n@example.com", "role": "viewer"}, format="json"
        ).status_code
        == 403
    )
    assert client.get("/api/v1/members/").status_code == 200  # reading the team is allowed
    assert snapshot(world) == before


@pytest.mark.parametrize("role", [Role.ADMIN, Role.APPROVER, Role.ANALYST, Role.VIEWER])
def test_only_owners_manage_members_and_keys_in_portal(world, role):
    before = snapshot(world)
    client = Client()
    client.force_login(world.users[role])
    member = object_of(world, PORTAL_OBJECT_ROUTES["portal:change_role"])
    assert (
        client.post("/team/invite/", {"email": "n@example.com", "role": "viewer"}).status_code
        == 403
    )
    assert client.post(f"/team/{member.pk}/role/", {"role": "admin"}).status_code == 403
    assert client.get("/keys/").status_code == 403
    assert client.post("/keys/", {"name": "k", "role": "viewer"}).status_code == 403
    assert snapshot(world) == before


def test_owner_can_manage_members_and_keys(world):
    client = Client()
    client.force_login(world.users[Role.OWNER])
    member = object_of(world, PORTAL_OBJECT_ROUTES["portal:change_role"])
    assert client.post(f"/team/{member.pk}/role/", {"role": "analyst"}).status_code == 302
    response = client.post("/keys/", {"name": "shop", "role": "viewer"})
    assert response.status_code == 200 and "Copy this key now" in response.content.decode()
