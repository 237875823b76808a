"""What every connector does with what it pulled, whatever the platform.

- products: `import_products` upserts catalog rows through the catalog's JSON bulk upsert (the
  importer's checks, then the `rows_upserted` signal on which the KPI facts refresh) and the
  shop's ids of each SKU (`ShopVariant`), in one transaction;
- orders: `store_lines` upserts order lines (an older version of an order never replaces a
  newer one) and returns the (SKU, day) pairs touched; `write_sales` recomputes those days'
  sales from every line kept, so a refund or an order seen twice never counts twice;
- `Report` keeps what was skipped and why (the first 200) on the sync run;
- `save_state` stores where the next sync resumes, after each committed batch.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from pricing_saas.catalog.importer import ImportOptions
from pricing_saas.catalog.models import Product
from pricing_saas.catalog.services import bulk_upsert

from .models import Connection, ShopOrderLine, ShopVariant, SyncRun

REPORT_MAX = 200


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def money(value) -> Decimal | None:
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


def run_pull(*, run: SyncRun, connection: Connection, client, pull_products, pull_orders) -> None:
    """One sync run of a platform: products, then orders (as the run's kind says), the run's
    progress and counts kept up to date, the client's calls and throttled answers added, the
    run finished with a summary. Everything it upserts announces itself to the KPI facts once,
    at the end (`deferred_upserts`), also when the run stops half-way."""
    from pricing_saas.catalog.signals import deferred_upserts

    report = Report(run)
    try:
        with deferred_upserts():
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


def save_state(connection: Connection, **values) -> None:
    connection.sync_state = {**connection.sync_state, **values}
    Connection.objects.filter(pk=connection.pk).update(
        sync_state=connection.sync_state, updated_at=timezone.now()
    )


def external_changes(connection: Connection, prices: dict[str, Decimal]) -> list[tuple]:
    """Before the catalog takes `prices` (SKU -> the shop's price): the products whose price a
    person changed in the shop since we last saw it (not our own push echoed back), as
    [(product id, the catalog's price, the shop's)]."""
    seen = {
        sku: (price, pushed)
        for sku, price, pushed in ShopVariant.objects.filter(
            connection=connection, sku__in=list(prices)
        ).values_list("sku", "price", "pushed_price")
    }
    catalog = {
        sku: (pk, price)
        for sku, pk, price in Product.objects.filter(sku__in=list(seen)).values_list(
            "sku", "pk", "price"
        )
    }
    changes = []
    for sku, (known, pushed) in seen.items():
        new = prices[sku]
        if known is None or new in (known, pushed) or sku not in catalog:
            continue
        pk, current = catalog[sku]
        if current != new:
            changes.append((pk, current, new))
    return changes


def announce(connection: Connection, changes: list[tuple]) -> None:
    """After the catalog took the shop's prices: the external changes it really took enter
    the SKUs' price history (through the catalog's signal; pricing records them)."""
    from pricing_saas.catalog.signals import shop_prices_changed

    if not changes:
        return
    now = dict(
        Product.objects.filter(pk__in=[pk for pk, _, _ in changes]).values_list("pk", "price")
    )
    taken = [(pk, old, new) for pk, old, new in changes if now.get(pk) == new]
    if taken:
        shop_prices_changed.send(
            sender=Connection,
            changes=taken,
            source=f"{connection.get_platform_display()} {connection.shop_url}",
        )


def _read_before_our_write(connection, refs: dict) -> set[str]:
    """SKUs whose row was read from the shop before what we know of them now: the shop's time
    of the row is older than a later event already stored, or older than our own push (a
    sync that paged past a variant, then a publication wrote it). Their prices are stale."""
    from .models import ShopVariant

    stale = set()
    for sku, seen, pushed in ShopVariant.objects.filter(
        connection=connection, sku__in=list(refs)
    ).values_list("sku", "shop_updated_at", "pushed_at"):
        at = refs[sku][3]
        if at is not None and ((seen and at < seen) or (pushed and at < pushed)):
            stale.add(sku)
    return stale


def import_products(run, connection, rows: dict, refs: dict, report) -> None:
    stale = _read_before_our_write(connection, refs)
    if stale:  # the next sync reads them again as they are now
        rows = {sku: row for sku, row in rows.items() if sku not in stale}
        refs = {sku: ref for sku, ref in refs.items() if sku not in stale}
    if not rows:
        return
    external = external_changes(connection, {sku: ref[2] for sku, ref in refs.items()})
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
        announce(connection, external)
    run.products += len(rows)
    run.set_progress(products=run.products)


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


def take_product_event(connection: Connection, rows: list[dict], refs: dict) -> list[dict]:
    """A product webhook's rows into the catalog (refs: SKU -> (product ref, variant ref,
    price, shop time)). Only products the catalog has are updated: a new one arrives with the
    next sync's full picture. A price a person changed in the shop enters the SKUs' history.
    Returns the rows taken."""
    known = set(
        Product.objects.filter(sku__in=[r["sku"] for r in rows]).values_list("sku", flat=True)
    )
    rows = [r for r in rows if r["sku"] in known]
    if not rows:
        return rows
    external = external_changes(connection, {r["sku"]: refs[r["sku"]][2] for r in rows})
    bulk_upsert(kind="products", rows=rows, options=ImportOptions(skip_invalid=True))
    for row in rows:
        product_ref, ref, price, at = refs[row["sku"]]
        ShopVariant.objects.update_or_create(
            connection=connection,
            sku=row["sku"],
            defaults={
                "tenant": connection.tenant,
                "product_ref": product_ref,
                "variant_ref": ref,
                "price": price,
                "shop_updated_at": at,
            },
        )
    announce(connection, external)
    return rows
