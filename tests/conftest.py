from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from tenants.context import tenant_context
from tenants.models import Tenant, User
from tenants.roles import Role
from tenants.services import create_api_key

from .factories import MembershipFactory, TenantFactory, UserFactory


@dataclass
class World:
    """One tenant with a member of each role and an API key per role."""

    tenant: Tenant
    users: dict[str, User]
    keys: dict[str, str]

    def api(self, role: str = Role.ADMIN) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {self.keys[role]}")
        return client

    def portal(self, client, role: str = Role.OWNER):
        client.force_login(self.users[role])
        return client


def make_world(name: str) -> World:
    tenant = TenantFactory(name=f"{name} Store", slug=f"{name.lower()}-store")
    users, keys = {}, {}
    for role in Role.values:
        user = UserFactory(email=f"{role}@{name.lower()}.example.com")
        MembershipFactory(tenant=tenant, user=user, role=role)
        users[role] = user
        if role != Role.OWNER:
            with tenant_context(tenant):
                keys[role] = create_api_key(
                    tenant=tenant, actor=None, actor_role=Role.OWNER, name=f"{role} key", role=role
                ).key
    return World(tenant=tenant, users=users, keys=keys)


@pytest.fixture
def world_a(db) -> World:
    return make_world("Alpha")


@pytest.fixture
def world_b(db) -> World:
    return make_world("Bravo")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db) -> User:
    return UserFactory()


@pytest.fixture
def tenant(db) -> Tenant:
    return TenantFactory()


@pytest.fixture
def run_on_commit_at_once(monkeypatch):
    """Tests run in one transaction that never commits: run on-commit work (enqueueing the
    eager Celery tasks) right away. Opt in with `pytestmark` or a module-level autouse."""
    from django.db import transaction

    monkeypatch.setattr(transaction, "on_commit", lambda fn, *a, **k: fn())
