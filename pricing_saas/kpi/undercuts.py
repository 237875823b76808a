"""Competitor undercut alerts: after each import (the KPI refresh task, tasks.refresh) every
competitor offer in force is compared with our price in one set-based statement. An in-stock
offer below our price by more than the alert policy's `undercut_threshold` opens an
`UndercutAlert` for that SKU and competitor, once: while it lasts the same alert is updated
(their price, the gap); when an evaluation finds it cleared (the gap closed, the offer is out of
stock or no longer in force, the product inactive) it is resolved, and a later undercut opens a
new one. New alerts go out through the KPI alerts' channels: one e-mail to owners and admins
listing them (if the policy's `email_admins`) and one signed webhook event for the batch
(`undercut.opened`; `undercut.resolved` for those cleared).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from ml.science.competitor import MATCH_RATIO
from pricing_saas.catalog.models import CompetitorOffer, Product
from tenants import audit
from tenants.context import require_current_tenant

from . import alerts
from .competitors import in_force_since
from .models import AlertPolicy, UndercutAlert

LOCK_CLASS = 0x554E44  # "UND": one evaluation per tenant at a time
ALERTS = UndercutAlert._meta.db_table
OFFERS = CompetitorOffer._meta.db_table
PRODUCTS = Product._meta.db_table
WEBHOOK_BATCH = 500  # alerts per webhook event (a larger batch is sent as several events)


@dataclass
class Evaluated:
    opened: list[int] = field(default_factory=list)
    still_open: int = 0
    cleared: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"opened": len(self.opened), "still_open": self.still_open,
                "cleared": len(self.cleared)}  # fmt: skip


EVALUATE_SQL = f"""
    WITH latest AS (
        SELECT DISTINCT ON (o.product_id, o.competitor)
               o.product_id, o.competitor, o.price, o.in_stock, o.observed_at, o.url
        FROM {OFFERS} o WHERE o.tenant_id = %(t)s AND o.observed_at >= %(in_force)s
        ORDER BY o.product_id, o.competitor, o.observed_at DESC, o.price
    ), breach AS (
        SELECT l.product_id, l.competitor, p.price AS our_price, l.price AS their_price,
               round(1 - l.price / p.price, 4) AS gap, l.url, l.observed_at
        FROM latest l
        JOIN {PRODUCTS} p ON p.id = l.product_id AND p.tenant_id = %(t)s AND p.active
        WHERE %(threshold)s::numeric IS NOT NULL AND l.in_stock
          AND l.price < p.price * (1 - %(threshold)s::numeric)
          -- a price this far under ours is of another item (a wrong match), as the reprice
          -- reads it (ml.science.competitor.MATCH_RATIO): no undercut
          AND l.price >= p.price / %(match)s::numeric
    ), cleared AS (
        UPDATE {ALERTS} a SET status = 'resolved', resolved_at = %(now)s, checked_at = %(now)s,
            resolution = CASE
                WHEN %(threshold)s::numeric IS NULL THEN 'undercut alerts were switched off'
                WHEN EXISTS (SELECT 1 FROM latest l JOIN {PRODUCTS} p
                             ON p.id = l.product_id AND p.tenant_id = %(t)s
                             WHERE l.product_id = a.product_id AND l.competitor = a.competitor
                             AND l.in_stock AND l.price < p.price / %(match)s::numeric)
                THEN 'their price is too far under ours to be the same item: check the match'
                WHEN EXISTS (SELECT 1 FROM latest l WHERE l.product_id = a.product_id
                             AND l.competitor = a.competitor AND l.in_stock)
                THEN 'the gap is within the threshold now'
                ELSE 'no in-stock offer in force any more' END
        WHERE a.tenant_id = %(t)s AND a.status = 'open' AND NOT EXISTS (
            SELECT 1 FROM breach b
            WHERE b.product_id = a.product_id AND b.competitor = a.competitor)
        RETURNING a.id
    ), written AS (
        INSERT INTO {ALERTS} AS a (tenant_id, product_id, competitor, status, our_price,
            their_price, gap, threshold, url, observed_at, opened_at, checked_at, resolution,
            webhook_status, webhook_error)
        SELECT %(t)s, b.product_id, b.competitor, 'open', b.our_price, b.their_price, b.gap,
               %(threshold)s, b.url, b.observed_at, %(now)s, %(now)s, '', '', ''
        FROM breach b
        ON CONFLICT (tenant_id, product_id, competitor) WHERE status = 'open' DO UPDATE SET
            our_price = EXCLUDED.our_price, their_price = EXCLUDED.their_price,
            gap = EXCLUDED.gap, threshold = EXCLUDED.threshold, url = EXCLUDED.url,
            observed_at = EXCLUDED.observed_at, checked_at = EXCLUDED.checked_at
        RETURNING a.id, (xmax = 0) AS inserted
    )
    SELECT coalesce((SELECT array_agg(id ORDER BY id) FROM written WHERE inserted), '{{}}'),
           (SELECT count(*) FROM written WHERE NOT inserted),
           coalesce((SELECT array_agg(id ORDER BY id) FROM cleared), '{{}}')
"""


@transaction.atomic
def evaluate() -> Evaluated:
    """Open, update and resolve the current tenant's undercut alerts against its offers in
    force and its policy's threshold (one statement); notify the new and the cleared ones."""
    tenant = require_current_tenant()
    current = alerts.policy()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s::int)", [LOCK_CLASS, int(tenant.pk)])
        cur.execute(
            EVALUATE_SQL,
            {
                "t": int(tenant.pk),
                "in_force": in_force_since(),
                "threshold": current.undercut_threshold,
                "match": MATCH_RATIO,
                "now": timezone.now(),
            },
        )
        opened, still_open, cleared = cur.fetchone()
    result = Evaluated(opened=list(opened), still_open=int(still_open), cleared=list(cleared))
    if result.opened or result.cleared:
        audit.record(
            "kpi.undercuts_checked",
            target_type="UndercutAlert",
            summary=f"competitor undercuts: {len(result.opened)} opened, "
            f"{len(result.cleared)} cleared, {result.still_open} still open",
            after=result.as_dict(),
        )
        notify(tenant.pk, result, current)
    return result


def notify(tenant_id: int, result: Evaluated, current: AlertPolicy) -> None:
    from .tasks import deliver_undercut_webhook, email_undercuts

    opened, cleared = result.opened, result.cleared
    if opened and current.email_admins:
        transaction.on_commit(lambda: email_undercuts.delay(tenant_id, opened))
    if current.webhook_url:
        for event, ids in (("undercut.opened", opened), ("undercut.resolved", cleared)):
            for start in range(0, len(ids), WEBHOOK_BATCH):
                batch = ids[start : start + WEBHOOK_BATCH]
                transaction.on_commit(
                    lambda e=event, b=batch: deliver_undercut_webhook.delay(tenant_id, b, e)
                )


def payload(rows: list[UndercutAlert], event: str) -> dict:
    tenant = require_current_tenant()
    first = rows[0].pk if rows else 0
    return {
        "id": f"evt_undercut_{first}_{len(rows)}_{event.split('.')[-1]}",
        "type": event,
        "created": timezone.now().isoformat(),
        "tenant": tenant.slug,
        "undercuts": [
            {
                "id": a.pk,
                "sku": a.product.sku,
                "competitor": a.competitor,
                "status": a.status,
                "our_price": str(a.our_price),
                "their_price": str(a.their_price),
                "gap": str(a.gap),
                "threshold": str(a.threshold),
                "url": a.url or None,
                "observed_at": a.observed_at.isoformat(),
                "opened_at": a.opened_at.isoformat(),
                "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
                "resolution": a.resolution,
            }
            for a in rows
        ],
    }
