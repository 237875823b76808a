"""A FilterSet's related-object choices read in the request's own tenant, whichever tenant was
current when the FilterSet class was built (the first request of a process loads the URLs, and
so the API's FilterSets, inside the portal's tenant middleware)."""

from __future__ import annotations

import django_filters
import pytest

from pricing_saas.pricing.models import Recommendation
from pricing_saas.web.filters import rescope
from tenants.context import tenant_context
from tests.factories import RepriceJobFactory

pytestmark = pytest.mark.django_db


def test_a_filterset_built_under_one_tenant_accepts_another_tenants_own_ids(world_a, world_b):
    with tenant_context(world_a.tenant):

        class JobFilter(django_filters.FilterSet):
            class Meta:
                model = Recommendation
                fields = ["job"]

        JobFilter.base_filters["job"].field  # noqa: B018 (a form field built early, as schemas do)
    job_b = RepriceJobFactory(tenant=world_b.tenant)
    with tenant_context(world_b.tenant):
        stale = JobFilter(data={"job": str(job_b.pk)}, queryset=Recommendation.objects.all())
        assert not stale.is_valid()  # what happened before: B's own job an "invalid choice"
        fresh = JobFilter(data={"job": str(job_b.pk)}, queryset=Recommendation.objects.all())
        rescope(fresh)
        assert fresh.is_valid(), fresh.errors
    with tenant_context(world_a.tenant):  # and A still cannot name B's job
        other = JobFilter(data={"job": str(job_b.pk)}, queryset=Recommendation.objects.all())
        rescope(other)
        assert not other.is_valid()
