"""Layer 2 of tenant isolation (`tenants/context.py`): the tenant context is always reset,
after a block, an error or a request, and the pre-tenant lookups take safe values only."""

from __future__ import annotations

import pytest

from tenants.context import get_current_tenant, rls_lookup, tenant_context
from tenants.roles import Role

pytestmark = pytest.mark.django_db


def test_context_is_reset_after_block_and_after_error(world_a):
    assert get_current_tenant() is None
    with pytest.raises(ValueError), tenant_context(world_a.tenant):
        assert get_current_tenant() == world_a.tenant
        raise ValueError("boom")
    assert get_current_tenant() is None


def test_rls_lookup_rejects_unsafe_values():
    with pytest.raises(ValueError), rls_lookup(key_prefix="x'; DROP TABLE x; --"):
        pass


def test_portal_and_api_requests_leave_no_tenant_behind(world_a, client):
    client.force_login(world_a.users[Role.OWNER])
    assert client.get("/team/").status_code == 200
    assert get_current_tenant() is None
    assert world_a.api(Role.VIEWER).get("/api/v1/members/").status_code == 200
    assert get_current_tenant() is None
