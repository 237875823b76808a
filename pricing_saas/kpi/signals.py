"""Refresh the KPI facts after an import: receivers of the ImportJob's save signals, connected in
`KpiConfig.ready()` (the catalog sits below this app and cannot call it)."""

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
