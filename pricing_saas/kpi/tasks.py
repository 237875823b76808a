from __future__ import annotations

from datetime import date

from pricing_saas.catalog.models import ImportJob
from tenants.tasks import tenant_task

from . import services


@tenant_task(name="kpi.refresh", queue="default", time_limit=3600, soft_time_limit=3500)
def refresh(
    self,
    tenant,
    import_job_id: int | None = None,
    since: str | None = None,
    until: str | None = None,
    product_ids: list[int] | None = None,
) -> dict | None:
    """Refresh the tenant's KPI facts: what a finished import touched (`import_job_id`), or the
    days `since`..`until` (ISO dates, None: unbounded) of `product_ids` (None: all)."""
    if import_job_id is not None:
        job = ImportJob.objects.filter(pk=import_job_id).first()
        if job is None or job.status != ImportJob.Status.SUCCEEDED:
            return None
        scope = services.scope_of_import(job)
    else:
        scope = services.Scope(
            since=date.fromisoformat(since) if since else None,
            until=date.fromisoformat(until) if until else None,
            product_ids=None if product_ids is None else tuple(product_ids),
        )
    return services.refresh_kpis(
        since=scope.since, until=scope.until, product_ids=scope.product_ids
    ).as_dict()
