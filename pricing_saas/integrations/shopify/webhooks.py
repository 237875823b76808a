"""Shopify webhooks: products/update, orders/create, orders/updated, app/uninstalled.

The view (`integrations.views.shopify_webhook`) verifies `X-Shopify-Hmac-Sha256` (base64 of
the HMAC-SHA256 of the raw body under the app's client secret, compared in constant time)
before anything is parsed, then `receive()` stores the event once per `X-Shopify-Event-Id`
(a duplicate delivery is answered 200 and dropped) and queues `process()` on the `ingest`
queue; the answer goes back at once.

`process()` maps the REST-shaped payload onto what the sync reads and ignores what is stale:
- products/update: a variant whose stored `updated_at` is newer than the event's is left
  alone; a price equal to the one we last pushed is the echo of our own write (nothing to do);
  any other price is an external change (a person in the Shopify admin) and the catalog takes
  it, so a pending change made against the old price is refused at publishing, never
  overwriting the shop's price.
- orders/*: order lines are upserted only if the event's order is newer than what is stored
  (an out-of-order delivery never rolls a refund back) and the touched days recomputed.
- app/uninstalled: the connection is disconnected and its credentials deleted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from decimal import Decimal
from zoneinfo import ZoneInfo

from ..ingest import parse_time, take_product_event
from ..models import Connection, ShopVariant, WebhookEvent
from . import pull

TOPICS = {"products/update", "orders/create", "orders/updated", "app/uninstalled"}


def signature(raw: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def verify(raw: bytes, header: str, secret: str) -> bool:
    """Constant-time check of X-Shopify-Hmac-Sha256 (a missing secret or header fails, after
    the same amount of work)."""
    expected = signature(raw, secret or "no secret configured")
    return bool(secret) and bool(header) and hmac.compare_digest(expected, header.strip())


def receive(
    *, connection: Connection, topic: str, event_id: str, triggered_at: str, payload: dict
) -> tuple[str, WebhookEvent | None]:
    """Store a verified event once and queue it. Returns ("queued" | "duplicate" | "ignored",
    the event)."""
    if topic not in TOPICS:
        return "ignored", None
    triggered = parse_time(triggered_at) if triggered_at else None
    from ..events import store

    return store(
        connection=connection,
        event_id=event_id[:100],
        topic=topic,
        triggered_at=triggered,
        payload=payload,
    )


def handle(event: WebhookEvent) -> tuple[str, str]:
    """(status, message) of one stored event (called by `integrations.events.process`)."""
    connection = event.connection
    if event.topic == "products/update":
        return _product_update(connection, event)
    if event.topic in ("orders/create", "orders/updated"):
        return _order(connection, event)
    from ..services import disconnect

    disconnect(connection=connection, reason="the app was uninstalled from the shop")
    return WebhookEvent.Status.PROCESSED, "disconnected"


def _product_update(connection: Connection, event: WebhookEvent) -> tuple[str, str]:
    product = event.payload
    updated = parse_time(product.get("updated_at")) or event.triggered_at
    stored = {
        v.variant_ref: v
        for v in ShopVariant.objects.filter(connection=connection).filter(
            variant_ref__in=[v.get("admin_graphql_api_id") for v in product.get("variants") or []]
        )
    }
    rows, refs, notes = [], {}, []
    for variant in product.get("variants") or []:
        ref = (
            variant.get("admin_graphql_api_id")
            or f"gid://shopify/ProductVariant/{variant.get('id')}"
        )
        known = stored.get(ref)
        if known and known.shop_updated_at and updated and known.shop_updated_at > updated:
            notes.append(f"{variant.get('sku')}: stale event ignored")
            continue
        node = {
            "id": ref,
            "sku": variant.get("sku"),
            "title": variant.get("title"),
            "price": variant.get("price"),
            "compareAtPrice": variant.get("compare_at_price"),
            "inventoryQuantity": variant.get("inventory_quantity"),
            "product": {
                "id": product.get("admin_graphql_api_id")
                or f"gid://shopify/Product/{product.get('id')}",
                "title": product.get("title"),
                "description": _text(product.get("body_html")),
                "vendor": product.get("vendor"),
                "productType": product.get("product_type"),
                "status": (product.get("status") or "active").upper(),
            },
        }
        row, reason = pull.variant_row(node)
        if row is None:
            notes.append(f"variant {ref}: {reason}")
            continue
        price = Decimal(row["price"])
        if known and known.pushed_price is not None and price == known.pushed_price:
            notes.append(f"{row['sku']}: echo of our own price write")
        elif known and known.price is not None and price != known.price:
            notes.append(f"{row['sku']}: price changed in the shop {known.price} -> {price}")
        rows.append(row)
        refs[row["sku"]] = (node["product"]["id"], ref, price, updated)
    # A product the catalog does not have yet arrives with the next sync's full picture.
    rows = take_product_event(connection, rows, refs)
    return WebhookEvent.Status.PROCESSED, "; ".join(notes) or f"{len(rows)} variants updated"


def rest_order(order: dict) -> dict:
    """A REST-shaped webhook order in the GraphQL shape `pull.order_lines` reads."""
    currency = order.get("currency") or ""
    lines = []
    for line in order.get("line_items") or []:
        quantity = int(line.get("quantity") or 0)
        discount = sum(
            Decimal(str(d.get("amount") or 0)) for d in line.get("discount_allocations") or []
        )
        unit = Decimal(str(line.get("price") or 0)) - (discount / quantity if quantity else 0)
        lines.append(
            {
                "id": line.get("admin_graphql_api_id")
                or f"gid://shopify/LineItem/{line.get('id')}",
                "sku": line.get("sku"),
                "quantity": quantity,
                "discountedUnitPriceAfterAllDiscountsSet": {
                    "shopMoney": {
                        "amount": str(unit.quantize(Decimal("0.0001"))),
                        "currencyCode": currency,
                    }
                },
            }
        )
    refunds = [
        {
            "refundLineItems": {
                "nodes": [
                    {
                        "quantity": item.get("quantity") or 0,
                        "lineItem": {"id": f"gid://shopify/LineItem/{item.get('line_item_id')}"},
                    }
                    for item in refund.get("refund_line_items") or []
                ]
            }
        }
        for refund in order.get("refunds") or []
    ]
    return {
        "id": order.get("admin_graphql_api_id") or f"gid://shopify/Order/{order.get('id')}",
        "name": order.get("name"),
        "createdAt": order.get("created_at"),
        "updatedAt": order.get("updated_at") or order.get("created_at"),
        "cancelledAt": order.get("cancelled_at"),
        "currencyCode": currency,
        "lineItems": {"nodes": lines},
        "refunds": refunds,
    }


def _order(connection: Connection, event: WebhookEvent) -> tuple[str, str]:
    tenant = connection.tenant
    order = rest_order(event.payload)
    lines, reason = pull.order_lines(
        order, tz=ZoneInfo(tenant.timezone), currency=tenant.default_currency
    )
    if reason:
        return WebhookEvent.Status.IGNORED, reason
    touched = pull.store_lines(connection, lines)
    if not touched:
        return WebhookEvent.Status.IGNORED, "stale: a newer version of this order is stored"

    class _Notes:
        items: list[str] = []

        def skip(self, what, why):
            self.items.append(f"{what}: {why}")

    notes = _Notes()
    notes.items = []
    written = pull.write_sales(connection, touched, notes)
    return WebhookEvent.Status.PROCESSED, "; ".join([f"{written} daily sales rows", *notes.items])


def _text(html: str | None) -> str:
    if not html:
        return ""
    from django.utils.html import strip_tags

    return strip_tags(html)
