"""tenant_view: one declarative permission per page, and another for its writes."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.roles import Perm, Role, has_perm

# The portal pages whose GET any member may see but whose POST needs a permission.
WRITES = [
    ("/catalog/imports/", Perm.IMPORT_DATA),
    ("/pricing/recommendations/", Perm.APPROVE),
    ("/pricing/jobs/", Perm.RUN_JOBS),
    ("/pricing/publications/", Perm.PUBLISH),
    ("/pricing/settings/", Perm.MANAGE_SETTINGS),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "perm"), WRITES)
def test_a_page_reads_for_every_member_and_writes_only_with_its_permission(world_a, url, perm):
    for role in Role.values:
        client = world_a.portal(Client(), role)
        assert client.get(url).status_code == 200, (url, role)
        if not has_perm(role, perm):
            # refused before the view runs: nothing is created, started or saved
            assert client.post(url, {}).status_code == 403, (url, role)


@pytest.mark.django_db
def test_the_viewer_cannot_start_a_job_by_post_and_nothing_starts(world_a):
    from pricing_saas.pricing.models import RepriceJob
    from tenants.context import tenant_context

    client = world_a.portal(Client(), Role.VIEWER)
    assert client.post("/pricing/jobs/").status_code == 403
    with tenant_context(world_a.tenant):
        assert not RepriceJob.objects.exists()
    analyst = world_a.portal(Client(), Role.ANALYST)
    assert analyst.post("/pricing/jobs/").status_code == 302  # started, redirected to the job
