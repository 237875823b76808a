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
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from pricing_saas.catalog.importer import ImportOptions
from pricing_saas.catalog.models import Product
from pricing_saas.catalog.services import bulk_upsert

from ..models import Connection, ShopOrderLine, ShopVariant, SyncRun
from . import queries
from .client import ShopifyClient
from .connector import client_for

BATCH = 2000
REPORT_MAX = 200


class SyncRefused(Exception):
    """The shop's data cannot be taken (e.g. another currency)."""


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _money(value) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class Report:
    def __init__(self, run: SyncRun):
        self.run = run

    def skip(self, what: str, reason: str) -> None:
        self.run.skipped += 1
        if len(self.run.report) < REPORT_MAX:
            self.run.report.append({"item": what[:200], "reason": reason[:300]})


def sync(*, run: SyncRun, connection: Connection, client: ShopifyClient | None = None) -> None:
    client = client or client_for(connection)
    report = Report(run)
    try:
        if run.kind in (SyncRun.Kind.ALL, SyncRun.Kind.PRODUCTS):
            run.set_progress(phase="products")
            pull_products(run=run, connection=connection, client=client, report=report)
        if run.kind in (SyncRun.Kind.ALL, SyncRun.Kind.ORDERS):
            run.set_progress(phase="orders")
            pull_orders(run=run, connection=connection, client=client, report=report)
    finally:
        run.calls += client.stats.calls
        run.throttled += client.stats.throttled
        run.set_progress(
            calls=run.calls, throttled=run.throttled, report=run.report, skipped=run.skipped
        )
        client.close()
    run.finish(
        message=f"{run.products} products, {run.orders} orders ({run.sales_rows} daily sales "
        f"rows)" + (f"; {run.skipped} skipped (see the report)" if run.skipped else ""),
        phase="done",
    )


def _save_state(connection: Connection, **values) -> None:
    connection.sync_state = {**connection.sync_state, **values}
    Connection.objects.filter(pk=connection.pk).update(
        sync_state=connection.sync_state, updated_at=timezone.now()
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
    price = _money(node.get("price"))
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
    compare_at = _money(node.get("compareAtPrice"))
    if compare_at is not None:
        row["compare_at_price"] = str(compare_at)
    cost = _money(((node.get("inventoryItem") or {}).get("unitCost") or {}).get("amount"))
    if cost is not None and cost >= 0:
        row["cost"] = str(cost)
    return row, ""


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
    while True:
        variables = {"first": queries.VARIANTS_PAGE, "after": cursor, "query": query}
        data = client.execute(
            queries.VARIANTS,
            variables,
            operation="Variants",
            estimate=queries.estimate("Variants", variables),
        )
        page = data["productVariants"]
        for node in page["nodes"]:
            row, reason = variant_row(node)
            if row is None:
                report.skip(f"variant {node.get('id')}", reason)
                continue
            if row["sku"] in rows:
                report.skip(
                    f"SKU {row['sku']}",
                    "two variants of the shop share this SKU; the first is kept",
                )
                continue
            rows[row["sku"]] = row
            refs[row["sku"]] = (
                node["product"]["id"],
                node["id"],
                Decimal(row["price"]),
                _parse_time(node.get("updatedAt")),
            )
        cursor = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
        if len(rows) >= BATCH or cursor is None:
            _import_products(run, connection, rows, refs, report)
            rows, refs = {}, {}
            _save_state(connection, products_cursor=cursor, products_cursor_since=since)
        if cursor is None:
            break
    _save_state(connection, products_cursor=None, products_since=_iso(started))
    Connection.objects.filter(pk=connection.pk).update(last_products_sync_at=timezone.now())


def _import_products(run, connection, rows: dict, refs: dict, report) -> None:
    if not rows:
        return
    with_cost = [r for r in rows.values() if "cost" in r]
    without = [r for r in rows.values() if "cost" not in r]
    with transaction.atomic():
        for batch in (with_cost, without):
            if batch:
                result = bulk_upsert(
                    kind="products", rows=batch, options=ImportOptions(skip_invalid=True)
                )
                for error in result.errors:
                    sku = batch[error.row]["sku"] if error.row is not None else ""
                    report.skip(f"SKU {sku}", f"{error.column}: {error.reason}")
        ShopVariant.objects.bulk_create(
            [
                ShopVariant(
                    tenant=connection.tenant,
                    connection=connection,
                    sku=sku,
                    product_ref=p,
                    variant_ref=v,
                    price=price,
                    shop_updated_at=at,
                )
                for sku, (p, v, price, at) in refs.items()
            ],
            update_conflicts=True,
            unique_fields=["tenant", "connection", "sku"],
            update_fields=["product_ref", "variant_ref", "price", "shop_updated_at"],
        )
    run.products += len(rows)
    run.set_progress(products=run.products)


# --- orders -----------------------------------------------------------------------------------


def order_lines(order: dict, *, tz: ZoneInfo, currency: str) -> tuple[list[dict], str]:
    """The kept lines of an order node (REST-shaped webhook orders are mapped to the same
    shape first), or ([], the reason it is refused)."""
    order_currency = (order.get("currencyCode") or "").upper()
    if order_currency and order_currency != currency:
        return [], (
            f"the order is in {order_currency}, your account's currency is {currency}: refused"
        )
    created = _parse_time(order["createdAt"])
    updated = _parse_time(order.get("updatedAt")) or created
    refunded: dict[str, int] = defaultdict(int)
    for refund in order.get("refunds") or []:
        for item in (refund.get("refundLineItems") or {}).get("nodes") or []:
            refunded[item["lineItem"]["id"]] += int(item.get("quantity") or 0)
    lines = []
    for line in (order.get("lineItems") or {}).get("nodes") or []:
        money = (line.get("discountedUnitPriceAfterAllDiscountsSet") or {}).get("shopMoney") or {}
        price = _money(money.get("amount"))
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
                "currency": (money.get("currencyCode") or currency)[:3],
                "cancelled": bool(order.get("cancelledAt")),
                "order_updated_at": updated,
            }
        )
    return lines, ""


_UPSERT_LINES = """
INSERT INTO {table} AS t (tenant_id, connection_id, order_ref, line_ref, sku, date, quantity,
    refunded, unit_price, currency, cancelled, order_updated_at)
SELECT %(tenant)s, %(connection)s, v.order_ref, v.line_ref, v.sku, v.date, v.quantity,
       v.refunded, v.unit_price, v.currency, v.cancelled, v.updated
FROM unnest(%(order_ref)s::text[], %(line_ref)s::text[], %(sku)s::text[], %(date)s::date[],
            %(quantity)s::int[], %(refunded)s::int[], %(unit_price)s::numeric[],
            %(currency)s::text[], %(cancelled)s::boolean[], %(updated)s::timestamptz[])
     AS v(order_ref, line_ref, sku, date, quantity, refunded, unit_price, currency, cancelled,
          updated)
ON CONFLICT (tenant_id, connection_id, line_ref) DO UPDATE SET
    sku = EXCLUDED.sku, date = EXCLUDED.date, quantity = EXCLUDED.quantity,
    refunded = EXCLUDED.refunded, unit_price = EXCLUDED.unit_price,
    currency = EXCLUDED.currency, cancelled = EXCLUDED.cancelled,
    order_updated_at = EXCLUDED.order_updated_at
WHERE t.order_updated_at <= EXCLUDED.order_updated_at
RETURNING t.sku, t.date
"""


def store_lines(connection: Connection, lines: list[dict]) -> set[tuple[str, dt.date]]:
    """Upsert order lines (an older version of an order never replaces a newer one); returns
    the (SKU, day) pairs whose sales must be recomputed."""
    if not lines:
        return set()
    columns = [
        "order_ref",
        "line_ref",
        "sku",
        "date",
        "quantity",
        "refunded",
        "unit_price",
        "currency",
        "cancelled",
    ]
    params = {c: [line[c] for line in lines] for c in columns}
    params["updated"] = [line["order_updated_at"] for line in lines]
    with db.cursor() as cursor:
        cursor.execute(
            _UPSERT_LINES.format(table=ShopOrderLine._meta.db_table),
            {**params, "tenant": connection.tenant_id, "connection": connection.pk},
        )
        return {(sku, date) for sku, date in cursor.fetchall() if sku}


def daily_sales(connection: Connection, touched: set[tuple[str, dt.date]]) -> list[dict]:
    """The sales rows of the (SKU, day) pairs touched, from every line kept for them."""
    skus = sorted({s for s, _ in touched})
    days = sorted({d for _, d in touched})
    totals: dict[tuple[str, dt.date], list] = {}
    lines = ShopOrderLine.objects.filter(connection=connection, sku__in=skus, date__in=days)
    for sku, date, qty, refunded, price, cancelled in lines.values_list(
        "sku", "date", "quantity", "refunded", "unit_price", "cancelled"
    ):
        if (sku, date) not in touched:
            continue
        units = 0 if cancelled else max(0, qty - refunded)
        total = totals.setdefault((sku, date), [0, Decimal(0), Decimal(0), 0])
        total[0] += units
        total[1] += units * price
        total[2] += price
        total[3] += 1
    rows = []
    for (sku, date), (units, revenue, price_sum, n) in sorted(totals.items()):
        price = (revenue / units) if units else (price_sum / n)
        rows.append(
            {
                "date": date.isoformat(),
                "sku": sku,
                "units": units,
                "price": str(price.quantize(Decimal("0.0001"))),
                "revenue": str(revenue.quantize(Decimal("0.0001"))),
                "channel": connection.channel,
            }
        )
    return rows


def write_sales(connection: Connection, touched: set, report) -> int:
    """Recompute and import the touched days' sales; lines of SKUs the catalog lacks stay
    kept and are reported. Returns the rows written."""
    if not touched:
        return 0
    rows = daily_sales(connection, touched)
    known = set(
        Product.objects.filter(sku__in={r["sku"] for r in rows}).values_list("sku", flat=True)
    )
    keep = []
    for row in rows:
        if row["sku"] not in known:
            report.skip(
                f"SKU {row['sku']} on {row['date']}",
                "sold in the shop but not in the "
                "catalog: the order lines are kept; sync products, then orders --full",
            )
        elif Decimal(row["price"]) <= 0:
            report.skip(
                f"SKU {row['sku']} on {row['date']}",
                "sold at a price of 0 (fully "
                "discounted): not a price the demand model can learn from",
            )
        else:
            keep.append(row)
    for start in range(0, len(keep), 10_000):
        bulk_upsert(kind="sales", rows=keep[start : start + 10_000], options=ImportOptions())
    return len(keep)


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
    while True:
        variables = {"first": queries.ORDERS_PAGE, "after": cursor, "query": query}
        data = client.execute(
            queries.ORDERS,
            variables,
            operation="Orders",
            estimate=queries.estimate("Orders", variables),
        )
        page = data["orders"]
        lines: list[dict] = []
        for order in page["nodes"]:
            kept, reason = order_lines(order, tz=tz, currency=tenant.default_currency)
            if reason:
                report.skip(f"order {order.get('name') or order['id']}", reason)
                continue
            if (order["lineItems"].get("pageInfo") or {}).get("hasNextPage"):
                report.skip(
                    f"order {order.get('name')}",
                    f"more than {queries.LINES_PAGE} lines: only the first were read",
                )
            if len(order.get("refunds") or []) >= queries.REFUNDS_PAGE:
                report.skip(
                    f"order {order.get('name')}",
                    f"{queries.REFUNDS_PAGE} refunds or more: only the first were read",
                )
            lines += kept
            pending_orders += 1
            newest = max(newest or "", order["updatedAt"])
        with transaction.atomic():
            touched |= store_lines(connection, lines)
        cursor = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
        if len(touched) >= BATCH or cursor is None:
            with transaction.atomic():
                run.sales_rows += write_sales(connection, touched, report)
            run.orders += pending_orders
            touched, pending_orders = set(), 0
            run.set_progress(orders=run.orders, sales_rows=run.sales_rows)
            _save_state(connection, orders_cursor=cursor, orders_cursor_since=since)
        if cursor is None:
            break
    _save_state(connection, orders_cursor=None, orders_since=newest)
    Connection.objects.filter(pk=connection.pk).update(last_orders_sync_at=timezone.now())
