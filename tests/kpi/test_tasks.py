"""The `kpi.refresh` Celery task (`pricing_saas/kpi/tasks.py`), run as a task."""

from __future__ import annotations

import pytest

from pricing_saas.kpi.models import DailyKpi
from pricing_saas.kpi.tasks import refresh
from tenants.context import tenant_context
from tests.factories import ImportJobFactory

from .conftest import MARCH

pytestmark = pytest.mark.django_db


def test_the_task_refreshes_its_tenant_in_the_range_it_is_given(small_shop, world_b):
    assert refresh.queue == "default" and refresh.name == "kpi.refresh"
    result = refresh.apply(
        args=[small_shop.tenant.pk],
        kwargs={"since": "2024-03-02", "until": "2024-03-02", "product_ids": None},
    ).get()
    assert result["inserted"] == 2 and result["scope"]["since"] == "2024-03-02"
    with tenant_context(small_shop.tenant):
        assert set(DailyKpi.objects.values_list("date", flat=True)) == {MARCH[1]}
    with tenant_context(world_b.tenant):
        assert DailyKpi.objects.count() == 0


def test_the_task_skips_an_import_that_did_not_succeed(small_shop):
    job = ImportJobFactory(tenant=small_shop.tenant, kind="sales", status="failed")
    assert (
        refresh.apply(args=[small_shop.tenant.pk], kwargs={"import_job_id": job.pk}).get() is None
    )
    assert refresh.apply(args=[small_shop.tenant.pk], kwargs={"import_job_id": 10**9}).get() is None
    with tenant_context(small_shop.tenant):
        assert DailyKpi.objects.count() == 0


def test_the_task_of_an_unknown_tenant_does_nothing(db):
    assert refresh.apply(args=[10**9]).get() is None


def test_a_failing_alert_schedule_does_not_fail_the_refresh(small_shop, monkeypatch):
    from pricing_saas.kpi import alerts

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(alerts, "request_evaluation", broken)
    result = refresh.apply(args=[small_shop.tenant.pk]).get()
    assert result["inserted"] > 0 and result["alert_check_scheduled"] is None
    with tenant_context(small_shop.tenant):
        assert DailyKpi.objects.exists()
