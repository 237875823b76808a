"""Pull a Shopify shop into the catalog: variants -> products, orders -> daily sales.

Both go through the catalog's JSON bulk upsert (`catalog.services.bulk_upsert`: the importer's
`import_rows`, then the `rows_upserted` signal on which the KPI facts refresh), in batches;
after each batch the cursor is stored on the connection, so a sync stopped half-way (a revoked
token, a worker lost) keeps what it wrote and the next one resumes from there.

- Products: every variant with a SKU is a product (title "Product - Variant" when the product
  has named variants): description, vendor -> brand, product type -> category, price, unit cost
  (when the token may read it; rows without one never clear a cost set otherwise), inventory ->
  stock, compare-at price -> the `compare_at_price` attribute, active when the product is.
  Incremental by the variants' `updated_at` after the first sync.
- Orders: each line is kept (`ShopOrderLine`, the quantity, the refunded quantity, the unit
  price actually paid after all discounts, the order's day in the tenant's time zone); the
  days and SKUs an order touches are recomputed from every line kept, so a refund or an order
  seen twice never counts twice. Sales land under the connection's own channel. Incremental by
  the orders' `updated_at`. An order in another currency than the tenant's is refused, lines
  for SKUs not in the catalog are kept and reported.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from ..ingest import (  # noqa: F401 (daily_sales, store_lines, write_sales: webhooks use them)
    daily_sales,
    import_products,
    iso,
    money,
    parse_time,
    run_pull,
    save_state,
    store_lines,
    write_sales,
)
from ..models import Connection, SyncRun
from . import bulk, queries
from .client import ShopifyClient
from .connector import client_for

BATCH = 2000


def sync(*, run: SyncRun, connection: Connection, client: ShopifyClient | None = None) -> None:
    run_pull(
        run=run,
        connection=connection,
        client=client or client_for(connection),
        pull_products=pull_products,
        pull_orders=pull_orders,
    )


# --- products ---------------------------------------------------------------------------------


def variant_row(node: dict) -> tuple[dict | None, str]:
    """A product row from a productVariants node, or (None, the reason it is skipped)."""
    product = node.get("product") or {}
    sku = (node.get("sku") or "").strip()
    if not sku:
        return None, "the variant has no SKU"
    if len(sku) > 64:
        return None, "the SKU is longer than 64 characters"
    price = money(node.get("price"))
    if price is None or price <= 0:
        return None, f"price {node.get('price')!r} is not above 0"
    title = product.get("title") or sku
    variant_title = node.get("title") or ""
    if variant_title and variant_title != "Default Title":
        title = f"{title} - {variant_title}"
    row = {
        "sku": sku,
        "title": title[:500],
        "description": (product.get("description") or "")[:20000],
        "brand": (product.get("vendor") or "")[:200],
        "category": (product.get("productType") or "")[:200],
        "price": str(price),
        "active": (product.get("status") or "ACTIVE") == "ACTIVE",
    }
    if node.get("inventoryQuantity") is not None:
        row["stock"] = max(0, int(node["inventoryQuantity"]))
    compare_at = money(node.get("compareAtPrice"))
    if compare_at is not None:
        row["compare_at_price"] = str(compare_at)
    cost = money(((node.get("inventoryItem") or {}).get("unitCost") or {}).get("amount"))
    if cost is not None and cost >= 0:
        row["cost"] = str(cost)
    return row, ""


def _pages(client: ShopifyClient, kind: str, *, cursor: str | None, query: str | None):
    """(nodes, the cursor after them or None at the end) of variants or orders: one bulk
    operation where that is cheaper (a first or full sync of a large shop), else cursor pages
    (a sync resumed from a cursor, an incremental one, a small shop, or a bulk query refused)."""
    if cursor is None and query is None and bulk.worthwhile(client, kind):
        nodes = bulk.run(client, kind)
        if nodes is not None:
            yield from bulk.pages(nodes, BATCH)
            return
    name, field, size = (
        ("Variants", "productVariants", queries.VARIANTS_PAGE)
        if kind == "variants"
        else ("Orders", "orders", queries.ORDERS_PAGE)
    )
    text = queries.VARIANTS if kind == "variants" else queries.ORDERS
    while True:
        variables = {"first": size, "after": cursor, "query": query}
        data = client.execute(
            text, variables, operation=name, estimate=queries.estimate(name, variables)
        )
        page = data[field]
        cursor = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
        yield page["nodes"], cursor
        if cursor is None:
            return


def _resumable(cursor):
    """What a sync stopped here resumes from: a page cursor; a bulk result has none (the next
    sync runs it again: every write is an upsert)."""
    return None if cursor == bulk.MORE else cursor


def pull_products(*, run, connection, client, report) -> None:
    state = connection.sync_state
    cursor = state.get("products_cursor")
    since = None if run.full else state.get("products_since")
    if cursor:
        since = state.get("products_cursor_since")
    started = timezone.now() - dt.timedelta(minutes=5)  # overlap: clocks differ
    query = f"updated_at:>'{since}'" if since else None
    rows: dict[str, dict] = {}
    refs: dict[str, tuple[str, str, Decimal, dt.datetime | None]] = {}
    for nodes, cursor in _pages(
        client, "variants", cursor=state.get("products_cursor"), query=query
    ):
        for node in nodes:
            try:
                row, reason = variant_row(node)
                product_ref = node["product"]["id"] if row is not None else ""
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                # one malformed item must not stop every sync at this page
                row, reason = None, f"not a variant the connector can read ({exc!r:.100})"
            if row is None:
                report.skip(f"variant {node.get('id') if isinstance(node, dict) else ''}", reason)
                continue
            if row["sku"] in rows:
                report.skip(
                    f"SKU {row['sku']}",
                    "two variants of the shop share this SKU; the first is kept",
                )
                continue
            rows[row["sku"]] = row
            refs[row["sku"]] = (
                product_ref,
                node["id"],
                Decimal(row["price"]),
                parse_time(node.get("updatedAt")),
            )
        if len(rows) >= BATCH or cursor is None:
            import_products(run, connection, rows, refs, report)
            rows, refs = {}, {}
            save_state(connection, products_cursor=_resumable(cursor), products_cursor_since=since)
    save_state(connection, products_cursor=None, products_since=iso(started))
    Connection.objects.filter(pk=connection.pk).update(last_products_sync_at=timezone.now())


# --- orders -----------------------------------------------------------------------------------


def order_lines(order: dict, *, tz: ZoneInfo, currency: str) -> tuple[list[dict], str]:
    """The kept lines of an order node (REST-shaped webhook orders are mapped to the same
    shape first), or ([], the reason it is refused)."""
    order_currency = (order.get("currencyCode") or "").upper()
    if order_currency and order_currency != currency:
        return [], (
            f"the order is in {order_currency}, your account's currency is {currency}: refused"
        )
    created = parse_time(order["createdAt"])
    updated = parse_time(order.get("updatedAt")) or created
    refunded: dict[str, int] = defaultdict(int)
    for refund in order.get("refunds") or []:
        for item in (refund.get("refundLineItems") or {}).get("nodes") or []:
            refunded[item["lineItem"]["id"]] += int(item.get("quantity") or 0)
    lines = []
    for line in (order.get("lineItems") or {}).get("nodes") or []:
        paid = (line.get("discountedUnitPriceAfterAllDiscountsSet") or {}).get("shopMoney") or {}
        price = money(paid.get("amount"))
        if price is None:
            continue
        lines.append(
            {
                "order_ref": order["id"],
                "line_ref": line["id"],
                "sku": (line.get("sku") or "").strip()[:64],
                "date": created.astimezone(tz).date(),
                "quantity": int(line.get("quantity") or 0),
                "refunded": min(refunded.get(line["id"], 0), int(line.get("quantity") or 0)),
                "unit_price": price,
                "currency": (paid.get("currencyCode") or currency)[:3],
                "cancelled": bool(order.get("cancelledAt")),
                "order_updated_at": updated,
            }
        )
    return lines, ""


def complete(client: ShopifyClient, order: dict, report) -> dict:
    """The order with every line and refund: an order the page could not hold (more than 25
    lines, 2 refunds or more) is read on by itself, 100 lines and 10 refunds a call. What even
    that cannot hold (more than 10 refunds, a refund of more than 25 lines) is reported."""
    info = order["lineItems"].get("pageInfo") or {}
    refunds_read = all("refundLineItems" in r for r in order.get("refunds") or [])
    if (
        not info.get("hasNextPage")
        and len(order.get("refunds") or []) < queries.REFUNDS_PAGE
        and refunds_read  # a bulk result names refunds by id only
    ):
        return order
    lines = list(order["lineItems"]["nodes"])
    after = info.get("endCursor") if info.get("hasNextPage") else None
    refunds = order.get("refunds") or []
    first = True
    while first or after:
        variables = {"id": order["id"], "after": after}
        data = client.execute(
            queries.ORDER_REST,
            variables,
            operation="OrderRest",
            estimate=queries.estimate("OrderRest", variables),
        )
        rest = data.get("order")
        if rest is None:  # deleted meanwhile: what the page gave is what there is
            break
        if after:
            lines += rest["lineItems"]["nodes"]
        if first:
            refunds = rest.get("refunds") or []
        page = rest["lineItems"]["pageInfo"]
        after = page["endCursor"] if after and page["hasNextPage"] else None
        first = False
    partial = len(refunds) >= queries.REST_REFUNDS or any(
        ((r.get("refundLineItems") or {}).get("pageInfo") or {}).get("hasNextPage") for r in refunds
    )
    if partial:
        report.skip(
            f"order {order.get('name')}",
            f"{queries.REST_REFUNDS} refunds or more, or a refund of more than "
            f"{queries.LINES_PAGE} lines: only those were read",
        )
    return {**order, "lineItems": {"nodes": lines}, "refunds": refunds}


def pull_orders(*, run, connection, client, report) -> None:
    tenant = connection.tenant
    tz = ZoneInfo(tenant.timezone)
    state = connection.sync_state
    cursor = state.get("orders_cursor")
    since = None if run.full else state.get("orders_since")
    if cursor:
        since = state.get("orders_cursor_since")
    query = f"updated_at:>='{since}'" if since else None
    newest = since
    touched: set = set()
    pending_orders = 0
    for nodes, cursor in _pages(client, "orders", cursor=state.get("orders_cursor"), query=query):
        lines: list[dict] = []
        for order in nodes:
            try:
                order = complete(client, order, report)
                kept, reason = order_lines(order, tz=tz, currency=tenant.default_currency)
            except (AttributeError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
                kept, reason = [], f"not an order the connector can read ({exc!r:.100})"
            if reason:
                name = (order.get("name") or order.get("id")) if isinstance(order, dict) else ""
                report.skip(f"order {name}", reason)
                continue
            lines += kept
            pending_orders += 1
            newest = max(newest or "", order.get("updatedAt") or "") or None
        with transaction.atomic():
            touched |= store_lines(connection, lines)
        if len(touched) >= BATCH or cursor is None:
            with transaction.atomic():
                run.sales_rows += write_sales(connection, touched, report)
            run.orders += pending_orders
            touched, pending_orders = set(), 0
            run.set_progress(orders=run.orders, sales_rows=run.sales_rows)
            save_state(connection, orders_cursor=_resumable(cursor), orders_cursor_since=since)
    save_state(connection, orders_cursor=None, orders_since=newest)
    Connection.objects.filter(pk=connection.pk).update(last_orders_sync_at=timezone.now())
