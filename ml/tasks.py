"""Celery tasks of ml: thin wrappers that load by id and call a service."""

from celery import shared_task

from tenants.jobs import retry_while_running
from tenants.tasks import each_active_tenant, tenant_task

from . import partitioned, services
from .models import ModelVersion


@tenant_task(
    name="ml.train_model_version",
    queue="ml_train",
    max_retries=0,
    **ModelVersion.time_limit.task_options,
)
def train_model_version(self, tenant, version_id: int) -> str | None:
    version = services.run_training(version_id=version_id)
    if partitioned.is_partitioned(version):  # its parts run as tasks of their own
        return version.status
    retry_while_running(self, version)
    return version.status if version else None


@tenant_task(name="ml.refresh_reference_prices", queue="ml_train", time_limit=3600)
def refresh_reference_prices(self, tenant, version_id: int) -> int:
    return services.refresh_reference_prices(version_id=version_id)


# The partitioned demand fit of a very large tenant (ml.partitioned): its stages, each a task
# any worker host can run; the run's ModelVersion carries the plan and the parts done.
PART_OPTIONS = {"max_retries": 0, **ModelVersion.time_limit.task_options}


@tenant_task(name="ml.train_pooled", queue="ml_train", **PART_OPTIONS)
def train_pooled(self, tenant, version_id: int) -> None:
    partitioned.run_pooled(version_id)


@tenant_task(name="ml.train_part", queue="ml_train", **PART_OPTIONS)
def train_part(self, tenant, version_id: int, index: int) -> None:
    partitioned.run_part(version_id, index)


@tenant_task(name="ml.train_reduce", queue="ml_train", **PART_OPTIONS)
def train_reduce(self, tenant, version_id: int) -> str | None:
    version = partitioned.run_reduce(version_id)
    return version.status if version else None


# The stages of a fit in parts: `manage.py train --sync` (and `reprice --sync`) run them in
# the command's process (tenants.tasks.tasks_run_here).
PART_TASKS = frozenset({train_pooled.name, train_part.name, train_reduce.name})


@tenant_task(name="ml.sweep_orphan_artifacts", queue="default")
def sweep_orphan_artifacts(self, tenant) -> int:
    return services.sweep_orphan_artifacts()


@shared_task(name="ml.sweep_orphan_artifacts_all", queue="default")
def sweep_orphan_artifacts_all() -> int:
    """Daily (celery beat): one sweep of stored model files per active tenant, each in its own
    tenant's context."""
    return each_active_tenant(sweep_orphan_artifacts)
