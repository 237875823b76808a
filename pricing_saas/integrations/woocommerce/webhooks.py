"""WooCommerce webhooks: product.updated, product.created, order.created, order.updated.

The view (`integrations.views.woocommerce_webhook`) verifies `X-WC-Webhook-Signature` (base64
of the HMAC-SHA256 of the raw body under the webhook's secret, compared in constant time)
before anything is parsed. WooCommerce sends no event id: an event is identified by its topic,
the resource's id and its `date_modified_gmt`, so a repeated delivery of the same version is
dropped, and an older version arriving after a newer one is stale (never rolls a price or a
refund back). The event is stored once and processed on the `ingest` queue; the answer goes
back at once. The ping WooCommerce sends when a webhook is saved (`webhook_id=N`, unsigned) is
answered 200 and nothing else.

- product.*: the product's (or its variations', read from the shop) price: a price equal to the
  one we last pushed is the echo of our own write; any other is an external change (a person in
  the WooCommerce admin) and the catalog takes it, so a pending change made against the old
  price is refused at publishing, never overwriting the shop's price.
- order.*: the order's lines are upserted if newer than what is stored and the touched days
  recomputed (refunds read from the shop).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from zoneinfo import ZoneInfo

from ..ingest import take_product_event
from ..models import Connection, ShopVariant, WebhookEvent
from . import pull

logger = logging.getLogger(__name__)
TOPICS = {"product.created", "product.updated", "order.created", "order.updated"}


def event_key(topic: str, payload: dict) -> str:
    return f"{topic}:{payload.get('id')}:{payload.get('date_modified_gmt') or ''}"[:100]


def receive(*, connection: Connection, topic: str, payload: dict) -> tuple[str, object]:
    """Store a verified event once and queue it: ("queued" | "duplicate" | "ignored", event)."""
    if topic not in TOPICS or not payload.get("id"):
        return "ignored", None
    from ..events import store

    return store(
        connection=connection,
        event_id=event_key(topic, payload),
        topic=topic,
        triggered_at=pull.gmt(payload.get("date_modified_gmt")),
        payload=payload,
    )


def process(event: WebhookEvent) -> tuple[str, str]:
    """(status, message) of one stored event (called by the shared webhook task)."""
    connection = event.connection
    if event.topic.startswith("product."):
        return _product(connection, event)
    return _order(connection, event)


def _product(connection: Connection, event: WebhookEvent) -> tuple[str, str]:
    from .connector import client_for

    product = event.payload
    updated = pull.gmt(product.get("date_modified_gmt"))
    kind = product.get("type") or "simple"
    if kind in ("grouped", "external"):
        return WebhookEvent.Status.IGNORED, f"a {kind} product has no price of its own"
    if kind == "variable":
        client = client_for(connection)
        try:
            pairs = [(v, str(v.get("id"))) for v in pull._variations(client, product["id"])]
        finally:
            client.close()
    else:
        pairs = [(None, str(product["id"]))]
    stored = {
        v.variant_ref: v
        for v in ShopVariant.objects.filter(
            connection=connection, variant_ref__in=[ref for _, ref in pairs]
        )
    }
    rows, refs, notes = [], {}, []
    for variation, ref in pairs:
        known = stored.get(ref)
        at = pull.gmt((variation or product).get("date_modified_gmt")) or updated
        if known and known.shop_updated_at and at and known.shop_updated_at > at:
            notes.append(f"{ref}: stale event ignored")
            continue
        row, reason = pull.product_row(product, variation)
        if row is None:
            notes.append(f"{ref}: {reason}")
            continue
        price = Decimal(row["price"])
        if known and known.pushed_price is not None and price == known.pushed_price:
            notes.append(f"{row['sku']}: echo of our own price write")
        elif known and known.price is not None and price != known.price:
            notes.append(f"{row['sku']}: price changed in the shop {known.price} -> {price}")
        rows.append(row)
        refs[row["sku"]] = (str(product["id"]), ref, price, at)
    # A product the catalog does not have yet arrives with the next sync's full picture.
    rows = take_product_event(connection, rows, refs)
    return WebhookEvent.Status.PROCESSED, "; ".join(notes) or f"{len(rows)} products updated"


class _Notes:
    def __init__(self):
        self.items: list[str] = []

    def skip(self, what, why):
        self.items.append(f"{what}: {why}")


def _order(connection: Connection, event: WebhookEvent) -> tuple[str, str]:
    from .connector import client_for

    tenant = connection.tenant
    order = event.payload
    refunds = []
    if order.get("refunds"):
        client = client_for(connection)
        try:
            refunds = client.page(f"orders/{order['id']}/refunds").items
        finally:
            client.close()
    lines, reason = pull.order_lines(
        order, tz=ZoneInfo(tenant.timezone), currency=tenant.default_currency, refunds=refunds
    )
    if reason:
        return WebhookEvent.Status.IGNORED, reason
    touched = pull.store_lines(connection, lines)
    if not touched:
        return WebhookEvent.Status.IGNORED, "stale: a newer version of this order is stored"
    notes = _Notes()
    written = pull.write_sales(connection, touched, notes)
    return WebhookEvent.Status.PROCESSED, "; ".join([f"{written} daily sales rows", *notes.items])
