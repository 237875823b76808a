from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pytest
from rest_framework.test import APIClient

from pricing_saas.catalog.importer import import_rows
from pricing_saas.portal.services import create_api_key
from pricing_saas.pricing import approvals, services
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tenants.roles import Role

from .factories import MembershipFactory, TenantFactory, UserFactory, synthetic_catalog


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    """pytest-django's set-up, with the test database created and migrated by the role that
    owns the tables (as `migrate` does in production); the tests then run as the application
    role, which only reads and writes rows."""
    from django.test.utils import setup_databases, teardown_databases

    from tenants.rls import as_owner

    verbosity = request.config.option.verbose
    with django_db_blocker.unblock(), as_owner():
        config = setup_databases(verbosity=verbosity, interactive=False)
    yield
    with django_db_blocker.unblock(), as_owner():
        try:
            teardown_databases(config, verbosity=verbosity)
        except Exception as exc:  # as pytest-django does: e.g. a worker still connected
            request.node.warn(
                pytest.PytestWarning(f"Error when trying to teardown test databases: {exc!r}")
            )


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
def owner_session():
    """`owner_session(world)`: an API client logged in (a session, not a key) as the world's
    owner; owners have no API key."""

    def owner_session(world) -> APIClient:
        client = APIClient()
        client.force_login(world.users[Role.OWNER])
        return client

    return owner_session


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


@pytest.fixture
def shop(world_a):
    rng = np.random.default_rng(3)
    products = [
        {
            "sku": f"P{i}",
            "title": f"Product {i}",
            "price": 20,
            "cost": 8 + i % 5,
            "category": "a" if i < 10 else "b",
        }
        for i in range(20)
    ]
    products.append({"sku": "NEW", "title": "No history", "price": 30, "cost": 12, "category": "a"})
    # The margin floor (40 x 1.1 = 44) above the max price: contradictory rules.
    products.append(
        {"sku": "BAD", "title": "Broken rules", "price": 30, "cost": 40, "max_price": 40}
    )
    sales = []
    for i in range(20):
        true = -0.6 if i < 10 else -2.5
        for day in range(150):
            price = 20 * float(np.exp(rng.normal(0, 0.1)))
            units = int(rng.poisson(6 * (price / 20) ** true))
            if units:
                date = (dt.date(2024, 1, 1) + dt.timedelta(days=day)).isoformat()
                sales.append(
                    {"date": date, "sku": f"P{i}", "units": units, "price": round(price, 2)}
                )
    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=products)
        import_rows(kind="sales", rows=sales)
    return world_a


@pytest.fixture
def repriced(shop):
    """A shop with a finished reprice job whose recommendations all wait for a person."""
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        job = services.start_reprice(enqueue=False)
        services.run_reprice(job_id=job.pk)
    return shop


@pytest.fixture
def stocked(world_a):
    """World A with 150 products whose titles say what they cost (`synthetic_catalog`), no
    sales: what the reference-price model trains on."""
    texts, prices = synthetic_catalog(150)
    rows = [
        {"sku": f"S{i}", "title": t, "price": p}
        for i, (t, p) in enumerate(zip(texts, prices, strict=True))
    ]
    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=rows)
    return world_a
