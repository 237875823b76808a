"""The operators' and integrators' management commands."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tenants.context import tenant_context
from tenants.models import Membership, Tenant

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_tenant_with_new_owner():
    out, _ = run(
        "create_tenant", "corner-shop", "--name", "Corner Shop", "--owner", "o@corner.example"
    )
    tenant = Tenant.objects.get(slug="corner-shop")
    assert "created tenant corner-shop" in out
    with tenant_context(tenant):
        assert Membership.objects.get().role == "owner"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Slug!", "--name", "x"], "slug"),
        (["ok-slug", "--name", "x", "--timezone", "Mars/Olympus"], "time zone"),
        (["ok-slug", "--name", "x", "--currency", "euro"], "ISO 4217"),
    ],
)
def test_create_tenant_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_tenant", *args)
    assert Tenant.objects.count() == 0


def test_create_tenant_twice_is_refused(tenant):
    with pytest.raises(CommandError, match="already exists"):
        run("create_tenant", tenant.slug, "--name", "again")


def test_create_api_key_prints_a_working_key_once(tenant):
    out, err = run("create_api_key", tenant.slug, "--role", "analyst")
    key = out.strip()
    assert key.startswith("pk_") and "shown once" in err
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    body = client.get("/api/v1/tenant/").json()
    assert body["slug"] == tenant.slug and body["role"] == "analyst"


def test_create_api_key_unknown_tenant(db):
    with pytest.raises(CommandError, match="unknown tenant"):
        run("create_api_key", "nobody", "--role", "viewer")


def test_create_api_key_refuses_owner_role(tenant):
    with pytest.raises(CommandError):
        run("create_api_key", tenant.slug, "--role", "owner")
