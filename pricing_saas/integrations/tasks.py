from tenants.tasks import tenant_task

from . import services
from .models import SyncRun


@tenant_task(
    name="integrations.sync", queue="ingest", max_retries=0, **SyncRun.time_limit.task_options
)
def sync(self, tenant, run_id: int) -> str | None:
    run = services.run_sync(run_id=run_id)
    return run.status if run else None


@tenant_task(name="integrations.webhook", queue="ingest", time_limit=600, soft_time_limit=570)
def process_webhook(self, tenant, event_id: int) -> str | None:
    from .events import process

    event = process(event_id=event_id)
    return event.status if event else None
