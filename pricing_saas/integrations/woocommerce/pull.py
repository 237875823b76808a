"""Pull a WooCommerce shop into the catalog: products and variations -> products, orders ->
daily sales (through `integrations.ingest`, the same idempotent path as Shopify).

Listings are walked in order of modification (`orderby=modified&order=asc`) and resumed by
the newest modification seen: each request asks for `modified_after` one second before it
(WooCommerce's filter is strict and its times have one-second resolution), so what shares that
second is read again (upserts make that harmless) and nothing is skipped when a product or an
order changes while the sync pages through. Only a page full of one second's changes is paged
on by number. After each committed batch the position is stored on the connection, so a sync
stopped half-way (a revoked key, a worker lost) keeps what it wrote and the next one resumes.

- Products: a simple product is one product; a variable product is one product per variation
  ("Shirt - Blue, L"), read from `products/{id}/variations`. name -> title, description (tags
  stripped), brands -> brand, the first category -> category, the active `price` (what buyers
  pay), `stock_quantity` where stock is managed, the regular price -> `compare_at_price` while
  on sale, the cost of goods sold where the shop records one, active when published. Grouped and
  external products have no price of their own to set and are skipped, said in the report.
- Orders: each line's quantity and the price actually paid (`total` / quantity: after coupons,
  before tax), the order's day in the tenant's time zone; refunded quantities from the order's
  refunds (`orders/{id}/refunds`, read only for orders that have any); orders that are not
  paid (pending, failed, cancelled, refunded, draft) count no units. An order in another
  currency than the tenant's is refused; lines of SKUs the catalog lacks are kept and reported.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone
from django.utils.html import strip_tags

from ..ingest import import_products, money, run_pull, save_state, store_lines, write_sales
from ..models import Connection, SyncRun
from .client import PER_PAGE, WooClient
from .connector import client_for

BATCH = 2000
PAID = {"processing", "completed", "on-hold"}  # statuses whose lines are sales


def gmt(value: str | None) -> dt.datetime | None:
    """WooCommerce's `*_gmt` fields: ISO 8601 without a zone, in UTC."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # a shop or a plugin writing something else: no time, not a crash
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def gmt_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def walk(client: WooClient, path: str, *, since: str | None, page: int = 1, params=None):
    """Pages of a listing in order of modification, from `since` (a GMT time) on.

    Yields (items, position) where position = (since, page) is where the walk goes on after
    these items, or None after the last page."""
    while True:
        query = {**(params or {}), "orderby": "modified", "order": "asc", "page": page}
        if since:
            query["modified_after"] = gmt_text(gmt(since) - dt.timedelta(seconds=1))
            query["dates_are_gmt"] = "true"
        result = client.page(path, query)
        items = result.items
        if len(items) < PER_PAGE or page >= result.total_pages:
            yield items, None
            return
        newest = max((gmt(i.get("date_modified_gmt")) for i in items), default=None, key=_key)
        if newest is not None and (since is None or newest > gmt(since)):
            since, page = gmt_text(newest), 1
        else:  # a full page of one second's changes: page on
            page += 1
        yield items, (since, page)


def _key(value):
    return value or dt.datetime.min.replace(tzinfo=dt.UTC)


def sync(*, run: SyncRun, connection: Connection, client: WooClient | None = None) -> None:
    run_pull(
        run=run,
        connection=connection,
        client=client or client_for(connection),
        pull_products=pull_products,
        pull_orders=pull_orders,
    )


def _position(state: dict, prefix: str, full: bool) -> tuple[str | None, int]:
    cursor = state.get(f"{prefix}_cursor")
    if cursor:
        return cursor.get("since"), int(cursor.get("page") or 1)
    return (None if full else state.get(f"{prefix}_since")), 1


def _start_newest(state: dict, prefix: str, full: bool, since: str | None) -> str | None:
    """Where the next incremental sync starts if this one sees nothing newer: the last one's
    mark (not after a full sync's start), or the resumed position."""
    marks = [m for m in (since, None if full else state.get(f"{prefix}_since")) if m]
    return max(marks) if marks else None


# --- products ---------------------------------------------------------------------------------


def _text(value: str | None) -> str:
    return strip_tags(value or "").strip()


def product_row(product: dict, variation: dict | None = None) -> tuple[dict | None, str]:
    """A catalog row from a simple product, or from one variation of a variable product; or
    (None, the reason it is skipped)."""
    item = variation or product
    sku = (item.get("sku") or "").strip()
    if not sku:
        return None, "no SKU"
    if len(sku) > 64:
        return None, "the SKU is longer than 64 characters"
    price = money(item.get("price"))
    if price is None or price <= 0:
        return None, f"price {item.get('price')!r} is not above 0"
    title = product.get("name") or sku
    if variation is not None:
        options = [a.get("option") for a in variation.get("attributes") or [] if a.get("option")]
        if options:
            title = f"{title} - {', '.join(options)}"
    categories = product.get("categories") or []
    brands = product.get("brands") or []
    row = {
        "sku": sku,
        "title": title[:500],
        "description": (
            _text(item.get("description"))
            or _text(product.get("description"))
            or _text(product.get("short_description"))
        )[:20000],
        "brand": ((brands[0].get("name") if brands else "") or "")[:200],
        "category": ((categories[0].get("name") if categories else "") or "")[:200],
        "price": str(price),
        "active": product.get("status") == "publish"
        and (variation is None or variation.get("status", "publish") == "publish"),
    }
    if item.get("manage_stock") and item.get("stock_quantity") is not None:
        row["stock"] = max(0, int(item["stock_quantity"]))
    regular = money(item.get("regular_price"))
    if item.get("on_sale") and regular is not None and regular > price:
        row["compare_at_price"] = str(regular)
    cogs = item.get("cost_of_goods_sold") or {}
    cost = money(cogs.get("total_value")) if isinstance(cogs, dict) else None
    if cost is not None and cost > 0:
        row["cost"] = str(cost)
    return row, ""


def _variations(client: WooClient, product_id) -> list[dict]:
    items, page = [], 1
    while True:
        result = client.page(f"products/{product_id}/variations", {"page": page})
        items += result.items
        if len(result.items) < PER_PAGE or page >= result.total_pages:
            return items
        page += 1


def pull_products(*, run, connection, client, report) -> None:
    since, page = _position(connection.sync_state, "products", run.full)
    newest = _start_newest(connection.sync_state, "products", run.full, since)
    rows: dict[str, dict] = {}
    refs: dict[str, tuple] = {}
    for items, position in walk(client, "products", since=since, page=page):
        for product in items:
            modified = gmt(product.get("date_modified_gmt"))
            if modified is not None:
                newest = max(newest or "", gmt_text(modified))
            kind = product.get("type") or "simple"
            if kind in ("grouped", "external"):
                report.skip(
                    f"product {product.get('id')}",
                    f"a {kind} product has no price of its own to set here",
                )
                continue
            pairs = (
                [(v, str(v.get("id"))) for v in _variations(client, product["id"])]
                if kind == "variable"
                else [(None, str(product["id"]))]
            )
            for variation, ref in pairs:
                try:
                    row, reason = product_row(product, variation)
                except (AttributeError, KeyError, TypeError, ValueError) as exc:
                    # one malformed item (a plugin's odd field) must not stop every sync here
                    row, reason = None, f"not a product the connector can read ({exc!r:.100})"
                if row is None:
                    report.skip(f"product {product.get('id')} / {ref}", reason)
                    continue
                if row["sku"] in rows and refs[row["sku"]][1] != ref:
                    report.skip(
                        f"SKU {row['sku']}",
                        "two products of the shop share this SKU; the first is kept",
                    )
                    continue
                # the same product read again (it changed while the sync paged): the newer wins
                rows[row["sku"]] = row
                at = gmt((variation or product).get("date_modified_gmt")) or modified
                refs[row["sku"]] = (str(product["id"]), ref, Decimal(row["price"]), at)
        if len(rows) >= BATCH or position is None:
            import_products(run, connection, rows, refs, report)
            rows, refs = {}, {}
            save_state(
                connection,
                products_cursor={"since": position[0], "page": position[1]} if position else None,
            )
    save_state(connection, products_cursor=None, products_since=newest)
    Connection.objects.filter(pk=connection.pk).update(last_products_sync_at=timezone.now())


# --- orders -----------------------------------------------------------------------------------


def refunded_quantities(order: dict, refunds: list[dict]) -> dict[str, int]:
    """Refunded quantity per order line id. A refund line names the line it refunds in its
    `_refunded_item_id` meta; without it, the order's line of the same product and variation."""
    by_product = {
        (line.get("product_id"), line.get("variation_id")): str(line.get("id"))
        for line in order.get("line_items") or []
    }
    refunded: dict[str, int] = defaultdict(int)
    for refund in refunds:
        for item in refund.get("line_items") or []:
            target = next(
                (
                    str(m.get("value"))
                    for m in item.get("meta_data") or []
                    if m.get("key") == "_refunded_item_id"
                ),
                None,
            ) or by_product.get((item.get("product_id"), item.get("variation_id")))
            if target:
                refunded[target] += abs(int(item.get("quantity") or 0))
    return refunded


def order_lines(
    order: dict, *, tz: ZoneInfo, currency: str, refunds: list[dict] | None = None
) -> tuple[list[dict], str]:
    """The kept lines of an order, or ([], the reason it is refused)."""
    order_currency = (order.get("currency") or "").upper()
    if order_currency and order_currency != currency:
        return [], (
            f"the order is in {order_currency}, your account's currency is {currency}: refused"
        )
    created = gmt(order.get("date_created_gmt"))
    if created is None:
        return [], "the order has no creation date"
    updated = gmt(order.get("date_modified_gmt")) or created
    refunded = refunded_quantities(order, refunds or [])
    not_sold = (order.get("status") or "") not in PAID
    lines = []
    for line in order.get("line_items") or []:
        quantity = int(line.get("quantity") or 0)
        total = money(line.get("total"))
        if total is None or quantity <= 0:
            continue
        line_id = str(line.get("id"))
        lines.append(
            {
                "order_ref": str(order.get("id")),
                "line_ref": line_id,
                "sku": (line.get("sku") or "").strip()[:64],
                "date": created.astimezone(tz).date(),
                "quantity": quantity,
                "refunded": min(refunded.get(line_id, 0), quantity),
                "unit_price": (total / quantity).quantize(Decimal("0.0001")),
                "currency": (order_currency or currency)[:3],
                "cancelled": not_sold,
                "order_updated_at": updated,
            }
        )
    return lines, ""


def pull_orders(*, run, connection, client, report) -> None:
    tenant = connection.tenant
    tz = ZoneInfo(tenant.timezone)
    since, page = _position(connection.sync_state, "orders", run.full)
    newest = _start_newest(connection.sync_state, "orders", run.full, since)
    touched: set = set()
    pending_orders = 0
    for items, position in walk(client, "orders", since=since, page=page):
        lines: list[dict] = []
        for order in items:
            if not isinstance(order, dict) or not order.get("id"):
                report.skip("an order", "not an order the connector can read")
                continue
            refunds = (
                client.page(f"orders/{order['id']}/refunds").items if order.get("refunds") else []
            )
            try:
                kept, reason = order_lines(
                    order, tz=tz, currency=tenant.default_currency, refunds=refunds
                )
            except (AttributeError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
                kept, reason = [], f"not an order the connector can read ({exc!r:.100})"
            if reason:
                report.skip(f"order {order.get('number') or order.get('id')}", reason)
                continue
            lines += kept
            pending_orders += 1
            modified = gmt(order.get("date_modified_gmt"))
            if modified is not None:
                newest = max(newest or "", gmt_text(modified))
        with transaction.atomic():
            touched |= store_lines(connection, lines)
        if len(touched) >= BATCH or position is None:
            with transaction.atomic():
                run.sales_rows += write_sales(connection, touched, report)
            run.orders += pending_orders
            touched, pending_orders = set(), 0
            run.set_progress(orders=run.orders, sales_rows=run.sales_rows)
            save_state(
                connection,
                orders_cursor={"since": position[0], "page": position[1]} if position else None,
            )
    save_state(connection, orders_cursor=None, orders_since=newest)
    Connection.objects.filter(pk=connection.pk).update(last_orders_sync_at=timezone.now())
