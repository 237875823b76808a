"""The refresh after an import (`pricing_saas/kpi/signals.py`): an import job of any kind that
ends well queues `kpi.refresh` once, after its commit; other endings queue nothing."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from pricing_saas.catalog import services as catalog_services
from pricing_saas.catalog.importer import ImportOptions
from pricing_saas.catalog.models import ImportJob
from pricing_saas.kpi import tasks
from pricing_saas.kpi.models import DailyKpi
from tenants.context import tenant_context
from tests.factories import ImportJobFactory

from .conftest import EXPECTED, MARCH

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


@pytest.fixture
def queued(monkeypatch):
    """The kpi.refresh calls queued (not run)."""
    calls = []
    monkeypatch.setattr(tasks.refresh, "delay", lambda *a, **k: calls.append((a, k)))
    return calls


def upload(world, kind: str, text: str) -> ImportJob:
    with tenant_context(world.tenant):
        job = catalog_services.create_import_job(
            kind=kind, upload=SimpleUploadedFile("f.csv", text.encode()), options=ImportOptions()
        )
        return ImportJob.objects.get(pk=job.pk)


def test_a_sales_import_refreshes_the_days_it_brought(refreshed):
    """End to end with the eager task: the upload's job runs, ends, and the facts of its days
    follow; the other days' facts are not rewritten."""
    with tenant_context(refreshed.tenant):
        DailyKpi.objects.filter(date=MARCH[0]).update(units=99)  # outside the import: kept
    job = upload(refreshed, "sales", "date,sku,units,price\n2024-03-02,TEA-A,4,10\n")
    assert job.status == ImportJob.Status.SUCCEEDED
    with tenant_context(refreshed.tenant):
        rows = DailyKpi.objects.values_list("product_id", "date", "units", "revenue")
        facts = {(p, d): (u, r) for p, d, u, r in rows}
    assert facts[(refreshed.ids["TEA-A"], MARCH[1])] == (4, 40)
    assert facts[(refreshed.ids["TEA-A"], MARCH[0])][0] == 99
    assert len(facts) == len(EXPECTED)


@pytest.mark.parametrize("kind", ["sales", "products", "competitor_prices"])
def test_each_kind_of_import_queues_one_refresh_once(world_a, queued, kind):
    job = ImportJobFactory(tenant=world_a.tenant, kind=kind, status="running")
    with tenant_context(world_a.tenant):
        job.finish(message="done")
        job.save()  # a later save of the finished job queues nothing more
        ImportJob.objects.get(pk=job.pk).save()
    assert queued == [((world_a.tenant.pk,), {"import_job_id": job.pk})]


def test_failed_and_waiting_imports_queue_nothing(world_a, queued):
    job = ImportJobFactory(tenant=world_a.tenant, kind="sales", status="running")
    with tenant_context(world_a.tenant):
        job.fail("broken")
    ImportJobFactory(tenant=world_a.tenant, kind="sales", status="needs_mapping")
    assert queued == []


def test_the_apis_json_sales_refresh_the_days_they_name(refreshed):
    """Rows that come without an import job (POST /api/v1/sales/bulk/) refresh their days."""
    with tenant_context(refreshed.tenant):
        DailyKpi.objects.filter(date=MARCH[0]).update(units=99)  # another day: kept
    rows = [{"date": "2024-03-02", "sku": "TEA-A", "units": 5, "price": "10"}]
    got = refreshed.api("analyst").post("/api/v1/sales/bulk/", rows, format="json")
    assert got.status_code == 200, got.content
    with tenant_context(refreshed.tenant):
        facts = {
            (p, d): u for p, d, u in DailyKpi.objects.values_list("product_id", "date", "units")
        }
    assert facts[(refreshed.ids["TEA-A"], MARCH[1])] == 5
    assert facts[(refreshed.ids["TEA-A"], MARCH[0])] == 99


def test_the_apis_json_products_refresh_the_products_whose_cost_changed(refreshed, queued):
    rows = [{"sku": "TEA-A", "title": "Green tea", "price": "10", "cost": "5"}]
    got = refreshed.api("analyst").post("/api/v1/products/bulk/", rows, format="json")
    assert got.status_code == 200, got.content
    assert queued == [((refreshed.tenant.pk,), {"product_ids": [refreshed.ids["TEA-A"]]})]


def test_the_apis_json_competitor_prices_refresh_the_days_their_price_holds(refreshed, queued):
    rows = [{"sku": "TEA-A", "competitor": "Z", "price": "7", "observed_at": "2024-03-02T10:00Z"}]
    got = refreshed.api("analyst").post("/api/v1/competitor-offers/bulk/", rows, format="json")
    assert got.status_code == 200, got.content
    (call,) = queued
    assert call[1]["since"] == "2024-03-01" and call[1]["until"] > "2024-03-02"
