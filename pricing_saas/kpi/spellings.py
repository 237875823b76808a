"""One spelling per competitor in everything that names one: the stored readings
(`catalog.spellings.merge_stored`), then the undercut alerts and the recommendations that
cited a competitor, under the tenant's spelling of it. The `merge_competitor_spellings`
command runs it per tenant (readings stored before an import read a competitor's spellings as
one keep their own until then).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from pricing_saas.catalog.spellings import Merged, merge_stored
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
    if merged.renamed:
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
        request_refresh(since=merged.earliest.date() - timedelta(days=1))
    return counts


def _rename_elsewhere(t: int, merged: Merged, *, dry_run: bool) -> dict:
    spelt, to = list(merged.renamed), list(merged.renamed.values())
    params = {"spelt": spelt, "to": to, "t": t, "now": timezone.now(), "resolution": MERGED}
    with connection.cursor() as cur:
        if dry_run:
            return _count_elsewhere(cur, params)
        cur.execute(  # one open alert per SKU and competitor (the partial unique constraint)
            f"""
            WITH m AS (SELECT * FROM unnest(%(spelt)s::text[], %(to)s::text[]) AS m (spelt, t)
                       UNION SELECT DISTINCT t, t FROM unnest(%(to)s::text[]) AS u (t)),
            ranked AS (
                SELECT a.id, m.t, row_number() OVER (
                    PARTITION BY a.product_id, m.t
                    ORDER BY (a.competitor = m.t) DESC, a.opened_at DESC, a.id DESC) AS rank
                FROM {ALERTS} a JOIN m ON a.competitor = m.spelt
                WHERE a.tenant_id = %(t)s AND a.status = 'open')
            UPDATE {ALERTS} a SET status = 'resolved', resolved_at = %(now)s,
                checked_at = %(now)s,
                resolution = %(resolution)s
            FROM ranked WHERE a.tenant_id = %(t)s AND a.id = ranked.id AND ranked.rank > 1
            RETURNING a.id
            """,
            params,
        )
        resolved = sorted(i for (i,) in cur.fetchall())
        cur.execute(
            f"UPDATE {ALERTS} a SET competitor = m.t "
            f"FROM unnest(%(spelt)s::text[], %(to)s::text[]) AS m (spelt, t) "
            f"WHERE a.tenant_id = %(t)s AND a.competitor = m.spelt",
            params,
        )
        alerts = cur.rowcount
        cur.execute(
            f"UPDATE {RECOMMENDATIONS} r SET competitor_name = m.t "
            f"FROM unnest(%(spelt)s::text[], %(to)s::text[]) AS m (spelt, t) "
            f"WHERE r.tenant_id = %(t)s AND r.competitor_name = m.spelt",
            params,
        )
        recommendations = cur.rowcount
    if resolved:  # the alerts' webhook hears of them as of any alert cleared
        undercuts.notify(t, undercuts.Evaluated(cleared=resolved), alert_policy())
    return {"alerts": alerts, "alerts_resolved": len(resolved), "recommendations": recommendations}


def _count_elsewhere(cur, params: dict) -> dict:
    cur.execute(
        f"""
        WITH m AS (SELECT * FROM unnest(%(spelt)s::text[], %(to)s::text[]) AS m (spelt, t)
                   UNION SELECT DISTINCT t, t FROM unnest(%(to)s::text[]) AS u (t)),
        open AS (
            SELECT row_number() OVER (PARTITION BY a.product_id, m.t) AS rank
            FROM {ALERTS} a JOIN m ON a.competitor = m.spelt
            WHERE a.tenant_id = %(t)s AND a.status = 'open')
        SELECT (SELECT count(*) FROM {ALERTS} a
                WHERE a.tenant_id = %(t)s AND a.competitor = ANY(%(spelt)s)),
               (SELECT count(*) FROM open WHERE rank > 1),
               (SELECT count(*) FROM {RECOMMENDATIONS} r
                WHERE r.tenant_id = %(t)s AND r.competitor_name = ANY(%(spelt)s))
        """,
        params,
    )
    alerts, resolved, recommendations = cur.fetchone()
    return {"alerts": alerts, "alerts_resolved": resolved, "recommendations": recommendations}
