from celery import shared_task

from pricing_saas.web.uploads import sweep_dead_uploads
from tenants.jobs import retry_while_running
from tenants.tasks import each_active_tenant, tenant_task

from . import services
from .models import ImportJob


@tenant_task(name="catalog.run_import", queue="ingest", **ImportJob.time_limit.task_options)
def run_import(self, tenant, job_id: int) -> str | None:
    job = services.run_import_job(job_id=job_id)
    retry_while_running(self, job)
    return job.status if job else None


@tenant_task(name="catalog.sweep_orphan_uploads", queue="default")
def sweep_orphan_uploads(self, tenant) -> int:
    return services.sweep_orphan_uploads()


@shared_task(name="catalog.sweep_orphan_uploads_all", queue="default")
def sweep_orphan_uploads_all() -> int:
    """Hourly (celery beat): one sweep per active tenant, each in its own tenant's context, and
    the partial uploads of this host's web processes that died (pricing_saas.web.uploads)."""
    sweep_dead_uploads()
    return each_active_tenant(sweep_orphan_uploads)
