"""KPI refresh of a large tenant: the daily facts of 100,000 SKUs x 365 days, against one plain
`INSERT ... SELECT` aggregate of the same sales rows into the same table.

    .venv/bin/python benchmarks/kpi_refresh.py [--skus 100000] [--days 365] [--keep]

The tenant's rows are generated in SQL (this measures the refresh, not the importer): products
with costs, one sales row per SKU and day, and for a fifth of the SKUs a competitor observed
once a week. Timed, in one run, side by side:

- plain: `INSERT INTO kpi_dailykpi SELECT tenant, product, date, sum(units), sum(revenue) ...
  GROUP BY` (units and revenue only: no cost, profit or competitor price), rolled back;
- first refresh: `refresh_kpis()` on a tenant without facts (the plain-INSERT path with the
  cost, profit and competitor price in force computed too);
- a week of sales re-imported for a tenth of the SKUs: `refresh_kpis(since=...)` of those 7 days
  (the upsert path: only the facts that differ are written);
- the whole history again with nothing changed (the upsert finds nothing to write);
- the Performance read of the whole tenant over the year (kpi.selectors.performance).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from pricing_saas.catalog.importer import planner  # noqa: E402
from pricing_saas.catalog.models import CompetitorOffer, Product, SalesRecord  # noqa: E402
from pricing_saas.kpi import selectors  # noqa: E402
from pricing_saas.kpi.models import DailyKpi  # noqa: E402
from pricing_saas.kpi.services import refresh_kpis  # noqa: E402
from tenants.context import tenant_context  # noqa: E402
from tenants.services import create_tenant, delete_tenant  # noqa: E402

PRODUCTS = Product._meta.db_table
SALES = SalesRecord._meta.db_table
OFFERS = CompetitorOffer._meta.db_table
KPI = DailyKpi._meta.db_table


def timed(label: str, fn, results: list) -> object:
    started = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - started
    results.append((label, seconds))
    print(f"{label}: {seconds:.2f} s", flush=True)
    return out


def generate(tenant_id: int, skus: int, days: int, first: date) -> int:
    """Products, sales and competitor prices of the tenant, in SQL; returns the sales rows."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO {PRODUCTS} (tenant_id, sku, title, description, category, brand,
                attributes, cost, price, currency, active, created_at, updated_at)
            SELECT %(t)s, 'K' || lpad(i::text, 7, '0'), 'Item ' || i, '', 'cat' || (i %% 40),
                   '', '{{}}'::jsonb, round((5 + (i %% 97))::numeric * 0.6, 2),
                   (5 + (i %% 97))::numeric, 'EUR', true, now(), now()
            FROM generate_series(1, %(n)s) AS g(i)
            """,
            {"t": tenant_id, "n": skus},
        )
        cur.execute(
            f"""
            INSERT INTO {SALES} (tenant_id, product_id, date, channel, units, price, revenue,
                promo)
            SELECT %(t)s, p.id, %(first)s::date + d, '', u.units, p.price, u.units * p.price,
                   false
            FROM {PRODUCTS} p CROSS JOIN generate_series(0, %(days)s - 1) AS d
            CROSS JOIN LATERAL (SELECT ((p.id * 7 + d * 13) %% 9)::int AS units) u
            WHERE p.tenant_id = %(t)s
            """,
            {"t": tenant_id, "first": first, "days": days},
        )
        rows = cur.rowcount
        cur.execute(
            f"""
            INSERT INTO {OFFERS} (tenant_id, product_id, competitor, price, observed_at,
                in_stock, url)
            SELECT %(t)s, p.id, 'Rival', round(p.price * 0.97, 2),
                   (%(first)s::date + w * 7)::timestamp AT TIME ZONE 'UTC' + interval '9 hours',
                   true, ''
            FROM {PRODUCTS} p CROSS JOIN generate_series(0, %(weeks)s - 1) AS w
            WHERE p.tenant_id = %(t)s AND p.id %% 5 = 0
            """,
            {"t": tenant_id, "first": first, "weeks": (days + 6) // 7},
        )
    for table in (PRODUCTS, SALES, OFFERS):
        planner.refresh(table)  # as the owner: the application role's own ANALYZE is skipped
    return rows


def plain_insert_select(tenant_id: int) -> int:
    """The reference: one aggregate of the same rows into the same table, then rolled back."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO {KPI} (tenant_id, product_id, date, units, revenue, cost_known,
                cost_derived)
            SELECT tenant_id, product_id, date, sum(units), sum(revenue), false, false
            FROM {SALES} WHERE tenant_id = %s GROUP BY tenant_id, product_id, date
            """,
            [tenant_id],
        )
        rows = cur.rowcount
        transaction.set_rollback(True)
    return rows


def reimport_week(tenant_id: int, last: date) -> int:
    """A week of sales changed for a tenth of the SKUs (what an import of corrections does)."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"UPDATE {SALES} SET units = units + 1, revenue = revenue + price "
            "WHERE tenant_id = %s AND date > %s AND product_id %% 10 = 0",
            [tenant_id, last - timedelta(days=7)],
        )
        return cur.rowcount


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keep", action="store_true", help="keep the tenant (for profiling)")
    args = parser.parse_args()
    tenant = create_tenant(name="KPI refresh benchmark", slug=f"bench-kpi-{os.getpid()}")
    first = date(2025, 1, 1)
    last = first + timedelta(days=args.days - 1)
    results: list[tuple[str, float]] = []
    try:
        with tenant_context(tenant):
            rows = timed(
                "generate the tenant (SQL)",
                lambda: generate(tenant.pk, args.skus, args.days, first),
                results,
            )
            print(f"{args.skus} SKUs x {args.days} days: {rows} sales rows", flush=True)
            plain_rows = timed("plain INSERT ... SELECT aggregate (rolled back)",
                               lambda: plain_insert_select(tenant.pk), results)  # fmt: skip
            done = timed("first refresh (refresh_kpis)", refresh_kpis, results)
            assert done.inserted == plain_rows == DailyKpi.objects.count(), (done, plain_rows)
            changed = reimport_week(tenant.pk, last)
            week = timed(
                "refresh of the last 7 days after a re-import",
                lambda: refresh_kpis(since=last - timedelta(days=6)),
                results,
            )
            assert week.updated == changed, (week, changed)
            again = timed("whole history again, nothing changed", refresh_kpis, results)
            assert again.updated == again.inserted == again.deleted == 0, again
            filters = selectors.filters_from({"from": first.isoformat(), "to": last.isoformat()})
            data = timed(
                "Performance read: whole tenant, the year",
                lambda: selectors.performance(filters),
                results,
            )
            assert len(data.series) == args.days
    finally:
        if not args.keep:
            delete_tenant(tenant=tenant)
    seconds = dict(results)
    plain = seconds["plain INSERT ... SELECT aggregate (rolled back)"]
    print()
    print(f"| step ({args.skus:,} SKUs x {args.days} days, {rows:,} sales rows) | seconds | "
          "x plain INSERT ... SELECT |")  # fmt: skip
    print("| --- | --- | --- |")
    for label, value in results[1:]:
        print(f"| {label} | {value:.2f} | {value / plain:.2f} |")
    print(f"\nwritten facts: {plain_rows}; re-imported sales rows: {changed}")


if __name__ == "__main__":
    main()
