"""Refresh the KPI facts after an import: receivers of the ImportJob's save signals and of the
catalog's `rows_upserted` (the API's JSON bulk upserts), connected in `KpiConfig.ready()` (the
catalog sits below this app and cannot call it)."""

from __future__ import annotations

from django.db import transaction

from pricing_saas.catalog.models import ImportJob

# The imports whose rows feed the facts: sales (units, revenue), products (cost), competitor
# prices (the price index).
KINDS = frozenset(ImportJob.Kind.values)


def remember_status(sender, instance: ImportJob, **kwargs) -> None:
    """The status the row had when loaded (post_init), so that only the save that ends the job
    (and not a later save of a finished job) queues a refresh."""
    instance._kpi_loaded_status = instance.status


def import_saved(sender, instance: ImportJob, created: bool = False, **kwargs) -> None:
    succeeded = ImportJob.Status.SUCCEEDED
    if instance.status != succeeded or instance.kind not in KINDS:
        return
    if not created and getattr(instance, "_kpi_loaded_status", None) == succeeded:
        return
    instance._kpi_loaded_status = succeeded
    from .tasks import refresh

    tenant_id, job_id = instance.tenant_id, instance.pk
    transaction.on_commit(lambda: refresh.delay(tenant_id, import_job_id=job_id))


def rows_upserted(sender, kind: str, rows: list, **kwargs) -> None:
    """After the API's JSON rows: refresh the days they name (sales: their dates; competitor
    prices: from their first day to COMPETITOR_CARRY_DAYS after their last, as scope_of_import
    does for a file), or the products whose cost changed. A day that cannot be read widens the
    refresh to every day rather than miss one."""
    from datetime import date, timedelta

    from ml.panel import COMPETITOR_CARRY_DAYS
    from tenants.context import require_current_tenant

    from .services import products_with_changed_cost
    from .tasks import refresh

    tenant_id = require_current_tenant().pk
    if kind == ImportJob.Kind.PRODUCTS:
        ids = list(products_with_changed_cost())
        if ids:
            transaction.on_commit(lambda: refresh.delay(tenant_id, product_ids=ids))
        return
    field = "date" if kind == ImportJob.Kind.SALES else "observed_at"
    days = []
    for row in rows:
        try:
            days.append(date.fromisoformat(str(row.get(field, ""))[:10]))
        except ValueError:
            continue  # a row the importer refused or skipped: it wrote no fact
    since = until = None
    if days:
        since, until = min(days), max(days)
        if kind == ImportJob.Kind.COMPETITOR_PRICES:
            since, until = since - timedelta(days=1), until + timedelta(COMPETITOR_CARRY_DAYS + 1)
    first, last = (since.isoformat(), until.isoformat()) if days else (None, None)
    transaction.on_commit(lambda: refresh.delay(tenant_id, since=first, until=last))
