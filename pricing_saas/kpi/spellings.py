"""One spelling per competitor in everything that names one: the stored readings
(`catalog.spellings.merge_stored`), then the undercut alerts and the recommendations that
cited a competitor (any spelling of a competitor the readings name), under the tenant's
spelling of it. The `merge_competitor_spellings` command runs it per tenant (readings stored
before an import read a competitor's spellings as one keep their own until then).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from pricing_saas.catalog.spellings import Merged, key_sql, merge_stored
from pricing_saas.pricing.models import Recommendation
from tenants import audit
from tenants.context import require_current_tenant

from . import undercuts
from .alerts import policy as alert_policy
from .models import UndercutAlert
from .services import request_refresh

ALERTS = UndercutAlert._meta.db_table
# (the competitor's name is the alert's own column: a long one would not fit beside this)
MERGED = "another spelling of this competitor: the alert of the tenant's spelling stays open"
AUDITED_SPELLINGS = 100  # the audit record names at most this many renamed spellings
RECOMMENDATIONS = Recommendation._meta.db_table


@transaction.atomic
def merge_competitor_spellings(*, dry_run: bool = False) -> dict:
    """Merge the current tenant's spellings of each competitor (one transaction: all or
    nothing). Where two open undercut alerts of one SKU name the same competitor, the one under
    the tenant's spelling stays open (else the latest) and the other is resolved, saying so.
    Returns the counts; with `dry_run`, counts what it would do and changes nothing."""
    tenant = require_current_tenant()
    t = int(tenant.pk)
    with connection.cursor() as cur:  # no undercut evaluation meanwhile (undercuts.evaluate)
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s::int)", [undercuts.LOCK_CLASS, t])
    merged = merge_stored(dry_run=dry_run)
    counts = {**merged.as_dict(), "alerts": 0, "alerts_resolved": 0, "recommendations": 0}
    if merged.spellings:
        counts.update(_rename_elsewhere(t, merged, dry_run=dry_run))
    if not dry_run and any(counts.values()):
        named = dict(list(merged.renamed.items())[:AUDITED_SPELLINGS])
        audit.record(
            "catalog.competitor_spellings_merged",
            target_type="CompetitorOffer",
            summary=f"competitor spellings merged: {counts['spellings']} spellings, "
            f"{counts['readings']} readings moved, {counts['duplicates']} duplicates removed",
            after={**counts, "renamed": named},
        )
    if not dry_run and merged.earliest is not None:
        # the days' competitor prices (the lowest in force, per competitor) from the oldest
        # reading moved or deleted on; the undercuts are checked after the refresh
        since = merged.earliest.date() - timedelta(days=1)
        _after_commit(lambda: request_refresh(since=since))
    return counts


def _after_commit(work) -> None:
    """Queue `work` once the merge commits; the merge stands if the queue refuses it (a broker
    down: logged; `refresh_kpis SLUG --since DAY` does the refresh by hand)."""
    transaction.on_commit(work, robust=True)


def _rename_elsewhere(t: int, merged: Merged, *, dry_run: bool) -> dict:
    """The alerts and cited names of each competitor the readings name, under the tenant's
    spelling of it (by key: also spellings no reading carries any more)."""
    keys, names = list(merged.spellings), list(merged.spellings.values())
    params = {"keys": keys, "names": names, "t": t, "now": timezone.now(),
              "resolution": MERGED}  # fmt: skip
    m = "SELECT * FROM unnest(%(keys)s::text[], %(names)s::text[]) AS m (k, t)"
    # one open alert per SKU and competitor (the partial unique constraint): the tenant's
    # spelling's stays open, else the latest opened
    ranked = f"""
        WITH m AS ({m}), ranked AS (
            SELECT a.id, row_number() OVER (
                PARTITION BY a.product_id, m.t
                ORDER BY (a.competitor = m.t) DESC, a.opened_at DESC, a.id DESC) AS rank
            FROM {ALERTS} a JOIN m ON {key_sql("a.competitor")} = m.k
            WHERE a.tenant_id = %(t)s AND a.status = 'open')
    """
    # which rows take the tenant's spelling: one condition that the dry run counts and the
    # run updates (`m` the merged spellings, `a` an alert, `r` a recommendation)
    renamed = f"""a.tenant_id = %(t)s AND {key_sql("a.competitor")} = m.k
        AND a.competitor <> m.t"""
    cited = f"""r.tenant_id = %(t)s AND r.competitor_name <> ''
        AND {key_sql("r.competitor_name")} = m.k AND r.competitor_name <> m.t"""
    with connection.cursor() as cur:
        if dry_run:
            cur.execute(
                f"""
                {ranked}
                SELECT (SELECT count(*) FROM {ALERTS} a, m WHERE {renamed}),
                       (SELECT count(*) FROM ranked WHERE rank > 1),
                       (SELECT count(*) FROM {RECOMMENDATIONS} r, m WHERE {cited})
                """,
                params,
            )
            alerts, resolved, recommendations = cur.fetchone()
            return {"alerts": alerts, "alerts_resolved": resolved,
                    "recommendations": recommendations}  # fmt: skip
        cur.execute(
            f"""
            {ranked}
            UPDATE {ALERTS} a SET status = 'resolved', resolved_at = %(now)s,
                checked_at = %(now)s, resolution = %(resolution)s
            FROM ranked WHERE a.tenant_id = %(t)s AND a.id = ranked.id AND ranked.rank > 1
            RETURNING a.id
            """,
            params,
        )
        resolved = sorted(i for (i,) in cur.fetchall())
        cur.execute(
            f"WITH m AS ({m}) UPDATE {ALERTS} a SET competitor = m.t FROM m WHERE {renamed}",
            params,
        )
        alerts = cur.rowcount
        cur.execute(
            f"WITH m AS ({m}) UPDATE {RECOMMENDATIONS} r SET competitor_name = m.t "
            f"FROM m WHERE {cited}",
            params,
        )
        recommendations = cur.rowcount
    if resolved:  # the alerts' webhook hears of them as of any alert cleared
        current, cleared = alert_policy(), undercuts.Evaluated(cleared=resolved)
        _after_commit(lambda: undercuts.notify(t, cleared, current))
    return {"alerts": alerts, "alerts_resolved": len(resolved), "recommendations": recommendations}
