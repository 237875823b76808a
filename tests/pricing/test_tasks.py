"""The pricing Celery tasks (`pricing_saas/pricing/tasks.py`)."""

from __future__ import annotations

import pytest

from pricing_saas.pricing import services
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_scheduled_task_runs_a_job_for_its_tenant(shop):
    from pricing_saas.pricing.tasks import scheduled_reprice

    assert scheduled_reprice.apply(args=[shop.tenant.pk]).get() == "succeeded"
    with tenant_context(shop.tenant):
        assert services.RepriceJob.objects.get().trigger == "schedule"
