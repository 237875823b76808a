from ml import tasks as ml_tasks
from pricing_saas.integrations.publishers import TransientPublishError
from tenants.jobs import retry_while_running
from tenants.tasks import tenant_task

from . import partitioned, publishing, services
from .models import Publication, RepriceJob


@tenant_task(
    name="pricing.reprice", queue="reprice", max_retries=0, **RepriceJob.time_limit.task_options
)
def reprice(self, tenant, job_id: int) -> str | None:
    job = services.run_reprice(job_id=job_id)
    if job is not None and job.parts:  # in parts: they run as tasks of their own
        return job.status
    retry_while_running(self, job)
    return job.status if job else None


@tenant_task(
    name="pricing.scheduled_reprice",
    queue="reprice",
    max_retries=0,
    **RepriceJob.time_limit.task_options,
)
def scheduled_reprice(self, tenant, schedule_id: int | None = None) -> str | None:
    """Fired by celery beat: a new job unless one is queued or running for the tenant."""
    job = services.start_reprice(trigger="schedule", enqueue=False)
    if job.trigger != "schedule" or job.status != job.Status.QUEUED:
        return f"skipped: job {job.pk} is {job.status}"
    job = services.run_reprice(job_id=job.pk)
    return job.status if job else None


@tenant_task(
    name="pricing.publish",
    queue="publish",
    max_retries=5,
    rate_limit="30/m",
    **Publication.time_limit.task_options,
)
def publish(self, tenant, publication_id: int) -> str | None:
    """Push a publication; a transient failure of the publisher (network, rate limit) is retried
    with backoff, and after the last retry its changes fail (retry them from the portal/API)."""
    try:
        publication = publishing.run_publication(publication_id=publication_id)
    except TransientPublishError as exc:
        if self.request.retries >= self.max_retries:
            publication = publishing.give_up(publication_id=publication_id, reason=str(exc))
            return publication.status if publication else None
        raise self.retry(exc=exc, countdown=min(600, 30 * 2**self.request.retries)) from exc
    retry_while_running(self, publication)
    return publication.status if publication else None


# A reprice in parts (pricing.partitioned): its stages, each a task any worker host can run.
@tenant_task(
    name="pricing.reprice_part",
    queue="reprice",
    max_retries=0,
    **RepriceJob.time_limit.task_options,
)
def reprice_part(self, tenant, job_id: int, index: int) -> None:
    partitioned.run_part(job_id, index)


@tenant_task(
    name="pricing.reprice_reduce",
    queue="reprice",
    max_retries=0,
    **RepriceJob.time_limit.task_options,
)
def reprice_reduce(self, tenant, job_id: int) -> str | None:
    job = partitioned.run_reduce(job_id)
    return job.status if job else None


# A job in parts and the demand fit it may start: `manage.py reprice --sync` runs them in the
# command's process (tenants.tasks.tasks_run_here).
PART_TASKS = frozenset({reprice_part.name, reprice_reduce.name}) | ml_tasks.PART_TASKS
