"""Celery tasks of ml: thin wrappers that load by id and call a service."""

from tenants.jobs import retry_while_running
from tenants.tasks import tenant_task

from . import services
from .models import ModelVersion


@tenant_task(
    name="ml.train_model_version",
    queue="ml_train",
    max_retries=0,
    **ModelVersion.time_limit.task_options,
)
def train_model_version(self, tenant, version_id: int) -> str | None:
    version = services.run_training(version_id=version_id)
    retry_while_running(self, version)
    return version.status if version else None


@tenant_task(name="ml.refresh_reference_prices", queue="ml_train", time_limit=3600)
def refresh_reference_prices(self, tenant, version_id: int) -> int:
    return services.refresh_reference_prices(version_id=version_id)
