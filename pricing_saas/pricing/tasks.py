from tenants.tasks import tenant_task

from . import services


@tenant_task(
    name="pricing.reprice", queue="reprice", time_limit=3600, soft_time_limit=3500, max_retries=0
)
def reprice(self, tenant, job_id: int) -> str | None:
    job = services.run_reprice(job_id=job_id)
    return job.status if job else None
