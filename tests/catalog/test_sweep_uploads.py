"""A stored upload that no import job names (a web process killed between storing the file and
committing its job) is deleted by the hourly sweep once old; a job's file, a fresh upload and
another tenant's files are left alone."""

from __future__ import annotations

import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from pricing_saas.catalog import services, tasks
from pricing_saas.catalog.models import ImportJob
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """An empty MEDIA_ROOT: files of earlier runs under the same tenant ids stay out."""
    settings.MEDIA_ROOT = str(tmp_path)


def _stored(name: str, hours_old: float) -> str:
    saved = default_storage.save(name, ContentFile(b"sku,title,price\n"))
    past = time.time() - hours_old * 3600
    os.utime(default_storage.path(saved), (past, past))
    return saved


def test_the_sweep_deletes_only_old_uploads_no_job_names_of_its_own_tenant(world_a, world_b):
    with tenant_context(world_a.tenant):
        job = services.create_import_job(
            kind="products",
            upload=SimpleUploadedFile("kept.csv", b"sku,title,price\nK1,Kept,2.50\n"),
            options=services.options_from({}),
        )
        job.refresh_from_db()
        assert job.file.name.startswith(f"imports/tenants/{world_a.tenant.pk}/")
        os.utime(default_storage.path(job.file.name), (time.time() - 7200,) * 2)
    a, b = world_a.tenant.pk, world_b.tenant.pk
    orphan = _stored(f"imports/tenants/{a}/2026/12/99990001.csv", hours_old=2)
    fresh = _stored(f"imports/tenants/{a}/2026/12/99990002.csv", hours_old=0.1)  # commit follows
    other = _stored(f"imports/tenants/{b}/2026/12/99990003.csv", hours_old=2)
    earlier = _stored(f"imports/{a}/2026/11/99990004.csv", hours_old=2)  # the layout before
    # the oldest layout, imports/<year>/<month>/: for a tenant whose id is the year it lies in
    # the tenant's old folder, one level up; another tenant's rows name it
    oldest = _stored(f"imports/{a}/11/99990005.csv", hours_old=2)

    with tenant_context(world_a.tenant):
        assert services.sweep_orphan_uploads() == 2
        assert ImportJob.objects.get(pk=job.pk).file.name == job.file.name
    assert not default_storage.exists(orphan) and not default_storage.exists(earlier)
    assert default_storage.exists(job.file.name) and default_storage.exists(fresh)
    assert default_storage.exists(other)  # tenant B's files are judged by tenant B's rows
    assert default_storage.exists(oldest)

    assert tasks.sweep_orphan_uploads_all() >= 2  # one sweep per active tenant (eager here)
    assert not default_storage.exists(other)
    assert default_storage.exists(job.file.name) and default_storage.exists(fresh)


def test_a_tenant_without_uploads_sweeps_nothing(world_a):
    with tenant_context(world_a.tenant):
        assert services.sweep_orphan_uploads() == 0
