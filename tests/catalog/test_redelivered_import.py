"""An import whose worker died is run again when its task comes back, unless a later import of
the same kind succeeded meanwhile: the older file would put back what the newer replaced."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from pricing_saas.catalog import services
from pricing_saas.catalog.models import ImportJob, Product
from tenants.context import tenant_context
from tenants.jobs import LOST_MESSAGE

pytestmark = pytest.mark.django_db


def _queued(monkeypatch, body: bytes) -> ImportJob:
    monkeypatch.setattr(services, "_enqueue", lambda job: None)
    return services.create_import_job(
        kind="products",
        upload=SimpleUploadedFile("catalog.csv", body),
        options=services.options_from({}),
    )


def _died_running(job: ImportJob) -> None:
    """Claimed by a worker that died; past the stale limit (the redelivery's moment)."""
    ImportJob.claim(job.pk)
    past = timezone.now() - ImportJob.time_limit.stale_after - timedelta(seconds=5)
    ImportJob.objects.filter(pk=job.pk).update(started_at=past)


def test_a_dead_workers_import_is_run_again(world_a, monkeypatch):
    with tenant_context(world_a.tenant):
        job = _queued(monkeypatch, b"sku,title,price\nA1,Old,5.00\n")
        _died_running(job)
        services.run_import_job(job_id=job.pk)
        assert ImportJob.objects.get(pk=job.pk).status == ImportJob.Status.SUCCEEDED
        assert Product.objects.get(sku="A1").price == 5


def test_a_dead_workers_import_overtaken_by_a_newer_one_is_marked_lost(world_a, monkeypatch):
    with tenant_context(world_a.tenant):
        older = _queued(monkeypatch, b"sku,title,price\nA1,Old,5.00\n")
        _died_running(older)
        newer = _queued(monkeypatch, b"sku,title,price\nA1,New,7.00\n")
        services.run_import_job(job_id=newer.pk)
        services.run_import_job(job_id=older.pk)  # the redelivered task of the dead worker
        lost = ImportJob.objects.get(pk=older.pk)
        assert lost.status == ImportJob.Status.FAILED and lost.message == LOST_MESSAGE
        assert Product.objects.get(sku="A1").price == 7  # the newer file's price stays
