"""A stored model file that no version names (a worker killed between storing a version's
artifact and committing its row) is deleted by the daily sweep once older than a training can
run; a version's artifact, a fresh file and another tenant's files are left alone."""

from __future__ import annotations

import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from ml import services, tasks
from ml.models import ModelVersion
from tenants.context import tenant_context
from tests.factories import ModelVersionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]
OLD = services.ARTIFACT_ORPHAN_AFTER.total_seconds() / 3600 + 1  # hours


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """An empty MEDIA_ROOT: files of earlier runs under the same tenant ids stay out."""
    settings.MEDIA_ROOT = str(tmp_path)


def _age(name: str, hours: float) -> None:
    past = time.time() - hours * 3600
    os.utime(default_storage.path(name), (past, past))


def _stored(name: str, hours_old: float) -> str:
    saved = default_storage.save(name, ContentFile(b"PK\x03\x04 not a real model"))
    _age(saved, hours_old)
    return saved


def test_the_sweep_deletes_only_old_model_files_no_version_names_of_its_own_tenant(
    world_a, world_b
):
    a, b = world_a.tenant.pk, world_b.tenant.pk
    with tenant_context(world_a.tenant):
        version = ModelVersionFactory(tenant=world_a.tenant, kind="demand")
        version.artifact.save(f"{a}-demand-v1.npz", ContentFile(b"estimates"))
        assert version.artifact.name.startswith(f"models/tenants/{a}/")  # the tenant's own
        _age(version.artifact.name, OLD)
    orphan = _stored(f"models/tenants/{a}/2026/12/{a}-text-v7.zip", hours_old=OLD)
    fresh = _stored(f"models/tenants/{a}/2026/12/{a}-text-v8.zip", hours_old=1)  # commit follows
    other = _stored(f"models/tenants/{b}/2026/12/{b}-text-v7.zip", hours_old=OLD)
    # before the tenant prefix: models/<year>/<month>/ (for a tenant whose id is the year, its
    # own folder's name): never listed
    legacy = _stored(f"models/{a}/11/{b}-text-v1.zip", hours_old=OLD)
    stray = _stored(f"models/tenants/{a}/2026/12/{b}-text-v9.zip", hours_old=OLD)  # not A's name

    with tenant_context(world_a.tenant):
        assert services.sweep_orphan_artifacts() == 1
        assert ModelVersion.objects.get(pk=version.pk).artifact.name == version.artifact.name
    assert not default_storage.exists(orphan)
    assert default_storage.exists(version.artifact.name) and default_storage.exists(fresh)
    assert default_storage.exists(other)  # tenant B's files are judged by tenant B's rows
    assert default_storage.exists(legacy) and default_storage.exists(stray)

    assert tasks.sweep_orphan_artifacts_all() >= 2  # one sweep per active tenant (eager here)
    assert not default_storage.exists(other)
    assert default_storage.exists(version.artifact.name) and default_storage.exists(fresh)


def test_tenant_b_does_not_delete_tenant_as_artifact_from_its_side(world_a, world_b):
    a = world_a.tenant.pk
    with tenant_context(world_a.tenant):
        version = ModelVersionFactory(tenant=world_a.tenant)
        version.artifact.save(f"{a}-text-v1.zip", ContentFile(b"model"))
        _age(version.artifact.name, OLD)
    with tenant_context(world_b.tenant):
        assert services.sweep_orphan_artifacts() == 0  # A's rows are invisible, and so its files
    assert default_storage.exists(version.artifact.name)


def test_a_tenant_without_model_files_sweeps_nothing(world_a):
    with tenant_context(world_a.tenant):
        assert services.sweep_orphan_artifacts() == 0


def test_no_sweep_while_a_version_of_the_tenant_is_training(world_a):
    a = world_a.tenant.pk
    orphan = _stored(f"models/tenants/{a}/2026/12/{a}-text-v7.zip", hours_old=OLD)
    with tenant_context(world_a.tenant):
        running = ModelVersionFactory(tenant=world_a.tenant, status="training")
        assert services.sweep_orphan_artifacts() == 0  # it may be storing its file now
        ModelVersion.objects.filter(pk=running.pk).update(status="failed")
        assert services.sweep_orphan_artifacts() == 1
    assert not default_storage.exists(orphan)


def test_a_file_gone_meanwhile_does_not_stop_the_sweep(world_a, monkeypatch):
    a = world_a.tenant.pk
    first = _stored(f"models/tenants/{a}/2026/12/{a}-text-v7.zip", hours_old=OLD)
    second = _stored(f"models/tenants/{a}/2026/12/{a}-text-v8.zip", hours_old=OLD)
    modified = default_storage.get_modified_time

    def racing(name):
        if name == first:  # another sweep deleted it between the listing and this look
            default_storage.delete(name)
        return modified(name)

    monkeypatch.setattr(default_storage, "get_modified_time", racing)
    with tenant_context(world_a.tenant):
        assert services.sweep_orphan_artifacts() == 1
    assert not default_storage.exists(second)
