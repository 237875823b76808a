from tenants.tasks import tenant_task

from . import services
from .models import ImportJob


@tenant_task(name="catalog.run_import", queue="ingest", **ImportJob.time_limit.task_options)
def run_import(self, tenant, job_id: int) -> str | None:
    job = services.run_import_job(job_id=job_id)
    return job.status if job else None
