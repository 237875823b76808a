from tenants.tasks import tenant_task

from . import services


@tenant_task(
    name="catalog.run_import", queue="ingest", time_limit=3 * 3600, soft_time_limit=3 * 3600 - 60
)
def run_import(self, tenant, job_id: int) -> str | None:
    job = services.run_import_job(job_id=job_id)
    return job.status if job else None
