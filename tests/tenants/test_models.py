"""Layer 1 of tenant isolation (`tenants/models.py`): the scoped manager fails closed,
`unscoped` is explicit, and `save()` keeps a row in its tenant."""

from __future__ import annotations

import pytest

from tenants.context import TenantNotSet, tenant_context
from tenants.models import Membership
from tenants.roles import Role

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
