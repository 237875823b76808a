"""Layers 1 and 2: the scoped manager fails closed, the context is always reset."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants.context import TenantNotSet, get_current_tenant, rls_lookup, tenant_context
from tenants.models import Membership
from tenants.roles import Role
from tenants.tasks import ping

pytestmark = pytest.mark.django_db


def test_default_manager_raises_without_tenant(world_a):
    with pytest.raises(TenantNotSet):
        list(Membership.objects.all())


def test_default_manager_filters_by_current_tenant_in_sql(world_a, world_b):
    with tenant_context(world_a.tenant):
        sql = str(Membership.objects.all().query)
        assert f'"tenants_membership"."tenant_id" = {world_a.tenant.pk}' in sql
        assert {m.tenant_id for m in Membership.objects.all()} == {world_a.tenant.pk}


def test_unscoped_manager_is_explicit_and_still_under_rls(world_a, world_b):
    assert Membership.unscoped.count() == 0  # no tenant set: RLS shows nothing
    with tenant_context(world_b.tenant):
        assert Membership.unscoped.count() == 5


def test_save_refuses_a_row_of_another_tenant(world_a, world_b):
    with tenant_context(world_a.tenant):
        membership = Membership(
            tenant=world_b.tenant, user=world_a.users["viewer"], role=Role.VIEWER
        )
        with pytest.raises(PermissionError):
            membership.save()


def test_save_fills_tenant_from_context(world_a, user):
    with tenant_context(world_a.tenant):
        membership = Membership.objects.create(user=user, role=Role.VIEWER)
    assert membership.tenant_id == world_a.tenant.pk


def test_context_is_reset_after_block_and_after_error(world_a):
    assert get_current_tenant() is None
    with pytest.raises(ValueError), tenant_context(world_a.tenant):
        assert get_current_tenant() == world_a.tenant
        raise ValueError("boom")
    assert get_current_tenant() is None


def test_every_statement_carries_the_tenant_setting(world_a):
    with tenant_context(world_a.tenant), CaptureQueriesContext(connection) as queries:
        Membership.objects.count()
    assert f"set_config('app.tenant_id', '{world_a.tenant.pk}', true)" in queries[0]["sql"]


def test_rls_lookup_rejects_unsafe_values():
    with pytest.raises(ValueError), rls_lookup(key_prefix="x'; DROP TABLE x; --"):
        pass


def test_task_decorator_sets_and_resets_tenant(world_a, world_b):
    result = ping.delay(world_a.tenant.pk, echo="hi").get()
    assert result == {"tenant": world_a.tenant.slug, "members": 5, "echo": "hi"}
    assert get_current_tenant() is None
    assert ping.delay(world_b.tenant.pk).get()["tenant"] == world_b.tenant.slug


def test_task_for_unknown_tenant_does_nothing(db):
    assert ping.delay(999_999).get() is None


def test_portal_and_api_requests_leave_no_tenant_behind(world_a, client):
    client.force_login(world_a.users[Role.OWNER])
    assert client.get("/team/").status_code == 200
    assert get_current_tenant() is None
    assert world_a.api(Role.VIEWER).get("/api/v1/members/").status_code == 200
    assert get_current_tenant() is None
