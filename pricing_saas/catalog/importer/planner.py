"""The planner's statistics after a large import.

A first import of a tenant's history puts millions of rows into tables whose statistics say
the tenant has none: the planner then picks nested loops that read those rows once per row of
the other side (a first training right after a fresh import once spent minutes so). Autovacuum
refreshes statistics only once a tenth of the whole table has changed, which a tenant's import
into a shared table may never reach. So an import that writes at least as many rows as the
planner believes the tenant has in that table (and at least `MIN_ROWS`) refreshes them, through
`catalog_refresh_statistics` (catalog migration 0005: ANALYZE runs as the tables' owner). It is
skipped where an ANALYZE (autovacuum's too) has ended since the import committed (that one saw
its rows), and where a VACUUM or ANALYZE holds the table (never waited for: autovacuum is never
cancelled for it); a skip is logged. The planner's belief is read after the commit, when its
estimate already scales with the table's new size: "at least doubles" is approximate, which is
all it needs to be. `MIN_ROWS` is above the API's bulk batches
(`catalog.services.MAX_BULK_ROWS`): a first history comes as a file, a shop sync's pages or many
batches, and a batch never pays for an ANALYZE inside its request.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction

log = logging.getLogger(__name__)

MIN_ROWS = 50_000  # below this, a mis-estimate costs little: not worth an ANALYZE
TABLES = ("catalog_product", "catalog_salesrecord", "catalog_competitoroffer")


def planned_rows(table: str, tenant_id: int) -> float:
    """How many of the tenant's rows the planner believes `table` holds (no rows are read)."""
    if table not in TABLES:
        raise ValueError(f"not a table an import writes: {table!r}")
    with connection.cursor() as cur:
        cur.execute(
            f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table} WHERE tenant_id = %s", [tenant_id]
        )
        plan = cur.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return float(plan[0]["Plan"]["Plan Rows"])


def is_stale(table: str, tenant_id: int, written: int) -> bool:
    """Whether `written` new rows at least double what the planner believes the tenant has."""
    return written >= MIN_ROWS and written >= planned_rows(table, tenant_id)


def refresh(table: str, since: datetime | None = None) -> bool:
    """ANALYZE `table` as its owner; False where an ANALYZE has ended since `since` (None:
    analyze anyway) or a VACUUM or ANALYZE holds the table (skipped, never waited for)."""
    with connection.cursor() as cur:
        cur.execute("SELECT public.catalog_refresh_statistics(%s, %s)", [table, since])
        return bool(cur.fetchone()[0])


def refresh_after_commit(table: str, tenant_id: int, written: int) -> None:
    """After the import's transaction commits, refresh `table`'s statistics if the import made
    them stale for this tenant. A failure is logged, never raised: the rows are in."""
    if written < MIN_ROWS or not getattr(settings, "IMPORT_REFRESH_STATISTICS", True):
        return

    def run() -> None:
        try:
            with connection.cursor() as cur:  # on_commit: the import's rows are in (the
                cur.execute("SELECT clock_timestamp()")  # database's clock, as its stats')
                committed = cur.fetchone()[0]
            if is_stale(table, tenant_id, written):
                if refresh(table, since=committed):
                    log.info("planner statistics of %s refreshed", table)
                else:
                    log.info("planner statistics of %s not refreshed: analyzed since the "
                             "import, or a vacuum held the table", table)  # fmt: skip
        except Exception:  # the import has landed; stale statistics only cost time
            log.exception("could not refresh the planner statistics of %s", table)

    transaction.on_commit(run)
