"""Writes of the KPI facts: `refresh_kpis` recomputes the daily facts of a date range and a set
of products from the sales, the products' costs and the competitor prices, in one set-based
statement under the current tenant's row-level security; `scope_of_import` says which dates and
products an import touched, so that a refresh after it recomputes those alone.

Idempotent by construction: every fact is recomputed from SalesRecord (whose rows the importer
upserts), never incremented, so a late or repeated sales row cannot be counted twice.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

from django.db import connection, transaction

from ml.panel import COMPETITOR_CARRY_DAYS
from ml.science.competitor import MATCH_RATIO
from pricing_saas.catalog.models import CompetitorOffer, ImportJob, Product, SalesRecord
from tenants.context import require_current_tenant

from .models import DailyKpi

logger = logging.getLogger(__name__)

KPI = DailyKpi._meta.db_table
SALES = SalesRecord._meta.db_table
OFFERS = CompetitorOffer._meta.db_table
PRODUCTS = Product._meta.db_table

# A cost is "derived" (an estimate, labelled as such) when the product's cost_source attribute
# says so, as the SKU page reads it.
DERIVED_SQL = "coalesce(p.attributes->>'cost_source', '') LIKE 'derived%%'"
# Above this share of the tenant's products, a refresh reads every product (one scan is cheaper
# than looking up a long list).
ALL_PRODUCTS_SHARE = 0.5
# Serialises refreshes of one tenant (two imports ending together): the plain-INSERT path
# assumes nobody else writes the range meanwhile.
LOCK_CLASS = 0x4B5049  # "KPI"

COLUMNS = (
    "tenant_id, product_id, date, units, revenue, unit_cost, cost_known, cost_derived, profit, "
    "competitor_price"
)
CHANGED = COLUMNS.split(", ")[3:]  # what an upsert may change: all but the key


@dataclass(frozen=True)
class Scope:
    """What a refresh recomputes: the days `since`..`until` (inclusive; None: unbounded) of the
    products `product_ids` (None: every product; empty: nothing)."""

    since: date | None = None
    until: date | None = None
    product_ids: tuple[int, ...] | None = None

    @property
    def is_empty(self) -> bool:
        return self.product_ids == () or (
            self.since is not None and self.until is not None and self.since > self.until
        )

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "products": None if self.product_ids is None else len(self.product_ids),
        }


@dataclass(frozen=True)
class Refreshed:
    scope: Scope
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "scope": self.scope.as_dict()}


# --- the refresh -------------------------------------------------------------------------------


@transaction.atomic
def refresh_kpis(
    *,
    since: date | None = None,
    until: date | None = None,
    product_ids=None,
) -> Refreshed:
    """Recompute the current tenant's daily facts of days `since`..`until` (inclusive, None:
    unbounded) for `product_ids` (None: all).

    One statement: the facts are aggregated from the sales (joined to the product for its cost
    and to the competitor prices in force), then upserted (`INSERT … ON CONFLICT DO UPDATE …
    WHERE IS DISTINCT FROM`: an unchanged fact is not rewritten) while the facts of the range
    that no longer have a sales row are deleted. A range without any fact yet (a first refresh)
    takes a plain INSERT, about twice as fast as the upsert.
    """
    started = time.perf_counter()
    tenant = require_current_tenant()
    ids = None if product_ids is None else tuple(sorted({int(i) for i in product_ids}))
    scope = Scope(since=since, until=until, product_ids=ids)
    if scope.is_empty:
        return Refreshed(scope=scope)
    params = {
        "t": int(tenant.pk),
        "tz": tenant.timezone,
        "since": since,
        "until": until,
        "ids": list(ids) if ids is not None else None,
        # A competitor's observation holds for COMPETITOR_CARRY_DAYS after its day.
        "offers_from": since - timedelta(days=COMPETITOR_CARRY_DAYS) if since else None,
        "offers_to": until + timedelta(days=1) if until else None,
        "carry": COMPETITOR_CARRY_DAYS,
        "match": MATCH_RATIO,
        "lock": LOCK_CLASS,
    }
    fresh = _fresh_sql(scope)
    target = _where(scope, "k")
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%(lock)s, %(t)s::int)", params)
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM {KPI} k WHERE {target})", params)
        if not cur.fetchone()[0]:
            cur.execute(f"INSERT INTO {KPI} ({COLUMNS}) {fresh}", params)
            result = Refreshed(scope=scope, inserted=cur.rowcount)
        else:
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in CHANGED)
            old = ", ".join(f"k.{c}" for c in CHANGED)
            new = ", ".join(f"EXCLUDED.{c}" for c in CHANGED)
            # The upsert and the delete touch disjoint rows (a fact is in `fresh` or it is not)
            # and both read the statement's one snapshot.
            cur.execute(
                f"""
                WITH fresh AS MATERIALIZED ({fresh}),
                written AS (
                    INSERT INTO {KPI} AS k ({COLUMNS}) SELECT * FROM fresh
                    ON CONFLICT (tenant_id, product_id, date) DO UPDATE SET {sets}
                    WHERE ({old}) IS DISTINCT FROM ({new})
                    RETURNING (xmax = 0) AS inserted
                ),
                gone AS (
                    DELETE FROM {KPI} k WHERE {target} AND NOT EXISTS (
                        SELECT 1 FROM fresh f
                        WHERE f.product_id = k.product_id AND f.date = k.date
                    ) RETURNING 1
                )
                SELECT (SELECT count(*) FILTER (WHERE inserted) FROM written),
                       (SELECT count(*) FILTER (WHERE NOT inserted) FROM written),
                       (SELECT count(*) FROM gone)
                """,
                params,
            )
            inserted, updated, deleted = cur.fetchone()
            result = Refreshed(
                scope=scope, inserted=int(inserted), updated=int(updated), deleted=int(deleted)
            )
    return replace(result, seconds=round(time.perf_counter() - started, 3))


def _where(scope: Scope, alias: str, column: str = "date") -> str:
    """The scope's conditions on a table with tenant_id, product_id and a date column."""
    parts = [f"{alias}.tenant_id = %(t)s"]
    if scope.since is not None:
        parts.append(f"{alias}.{column} >= %(since)s")
    if scope.until is not None:
        parts.append(f"{alias}.{column} <= %(until)s")
    if scope.product_ids is not None:
        parts.append(f"{alias}.product_id = ANY(%(ids)s::bigint[])")
    return " AND ".join(parts)


def _fresh_sql(scope: Scope) -> str:
    """SELECT of the scope's facts, in COLUMNS order.

    Competitor prices follow the demand panel's rule (ml.panel._competitor_prices): per
    competitor, product and local day the lowest in-stock price; it holds from its day for
    COMPETITOR_CARRY_DAYS, until that competitor's next observation of the product, or only its
    own day when the competitor's last observation that day was out of stock. A fact takes the
    lowest price in force on its day, or NULL. An in-stock observation too far from the
    product's price today to be the same item (ml.science.competitor.matches) is left out (the
    panel compares with the SKU's median shelf price over its history).
    """
    offers = [
        "o.tenant_id = %(t)s",
        "(NOT o.in_stock OR o.price BETWEEN m.price / %(match)s AND m.price * %(match)s)",
    ]
    if scope.since is not None:
        offers.append("o.observed_at >= (%(offers_from)s::date)::timestamp AT TIME ZONE %(tz)s")
    if scope.until is not None:
        offers.append("o.observed_at < (%(offers_to)s::date)::timestamp AT TIME ZONE %(tz)s")
    if scope.product_ids is not None:
        offers.append("o.product_id = ANY(%(ids)s::bigint[])")
    days = []
    if scope.since is not None:
        days.append("h.first_day + g.i >= %(since)s")
    if scope.until is not None:
        days.append("h.first_day + g.i <= %(until)s")
    in_range = "".join(f" AND {d}" for d in days)
    return f"""
        WITH sales AS (
            SELECT s.product_id, s.date, sum(s.units)::int AS units, sum(s.revenue) AS revenue
            FROM {SALES} s WHERE {_where(scope, "s")}
            GROUP BY s.product_id, s.date
        ),
        seen AS (
            SELECT o.competitor, o.product_id, (o.observed_at AT TIME ZONE %(tz)s)::date AS day,
                   min(o.price) FILTER (WHERE o.in_stock) AS low,
                   max(o.observed_at) FILTER (WHERE o.in_stock) AS last_in,
                   max(o.observed_at) FILTER (WHERE NOT o.in_stock) AS last_out
            FROM {OFFERS} o JOIN {PRODUCTS} m ON m.tenant_id = %(t)s AND m.id = o.product_id
            WHERE {" AND ".join(offers)}
            GROUP BY 1, 2, 3
        ),
        held AS (
            SELECT product_id, low, day AS first_day,
                   CASE WHEN last_out IS NOT NULL AND (last_in IS NULL OR last_out > last_in)
                        THEN day
                        ELSE least(day + %(carry)s,
                                   coalesce(lead(day) OVER w - 1, day + %(carry)s)) END
                       AS last_day
            FROM seen WINDOW w AS (PARTITION BY competitor, product_id ORDER BY day)
        ),
        competitor AS (
            SELECT h.product_id, h.first_day + g.i AS date, min(h.low) AS price
            FROM held h CROSS JOIN LATERAL generate_series(0, h.last_day - h.first_day) AS g(i)
            WHERE h.low IS NOT NULL{in_range}
            GROUP BY 1, 2
        )
        SELECT %(t)s::bigint, s.product_id, s.date, s.units, s.revenue, p.cost,
               p.cost IS NOT NULL, p.cost IS NOT NULL AND {DERIVED_SQL},
               s.revenue - s.units * p.cost, c.price
        FROM sales s
        JOIN {PRODUCTS} p ON p.tenant_id = %(t)s AND p.id = s.product_id
        LEFT JOIN competitor c ON c.product_id = s.product_id AND c.date = s.date
    """


def request_refresh(*, since: date | None = None) -> None:
    """Queue a refresh of the current tenant's facts (all of them, or from `since`) once the
    surrounding transaction commits."""
    from .tasks import refresh

    tenant_id = require_current_tenant().pk
    day = since.isoformat() if since else None
    transaction.on_commit(lambda: refresh.delay(tenant_id, since=day))


# --- what an import touched --------------------------------------------------------------------


def scope_of_import(job: ImportJob) -> Scope:
    """The dates and products whose facts an import may have changed (a superset is harmless:
    the upsert rewrites only facts that differ).

    - sales: the file's days, its products;
    - competitor prices: from the file's first day (a day earlier: the file's time zone may
      differ from the tenant's) to COMPETITOR_CARRY_DAYS after its last, its products;
    - products: every day of the products whose facts were computed with another cost (or
      another derived label) than the product has now.

    The file is read again (COPY into a temporary table, two columns parsed in SQL); if that
    fails, the whole history is refreshed rather than a fact missed.
    """
    if job.kind == ImportJob.Kind.PRODUCTS:
        return Scope(product_ids=products_with_changed_cost(since=job.started_at))
    try:
        since, until, ids = _file_extent(job)
    except Exception:
        logger.warning("import %s: could not read its extent; refreshing everything", job.pk)
        return Scope()
    if job.kind == ImportJob.Kind.COMPETITOR_PRICES:
        since = since - timedelta(days=1) if since else None
        until = until + timedelta(days=COMPETITOR_CARRY_DAYS + 1) if until else None
    if ids is not None and len(ids) >= ALL_PRODUCTS_SHARE * max(Product.objects.count(), 1):
        ids = None
    return Scope(since=since, until=until, product_ids=ids)


def products_with_changed_cost(*, since: datetime | None = None) -> tuple[int, ...]:
    """Products (changed since `since`, when given) whose stored facts carry another cost or
    derived label than the product has now: their whole history needs a refresh."""
    tenant = require_current_tenant()
    changed = ""
    params: dict = {"t": int(tenant.pk)}
    if since is not None:
        # The import stamps updated_at with its transaction's start, after the job's claim;
        # a few minutes of slack for clocks that differ between web and database hosts.
        changed = "AND p.updated_at >= %(since)s"
        params["since"] = since - timedelta(minutes=5)
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT p.id FROM {PRODUCTS} p
            WHERE p.tenant_id = %(t)s {changed} AND EXISTS (
                SELECT 1 FROM {KPI} k WHERE k.tenant_id = %(t)s AND k.product_id = p.id
                AND (k.unit_cost IS DISTINCT FROM p.cost
                     OR k.cost_derived <> (p.cost IS NOT NULL AND {DERIVED_SQL})))
            ORDER BY p.id
            """,
            params,
        )
        return tuple(row[0] for row in cur.fetchall())


def _file_extent(job: ImportJob) -> tuple[date | None, date | None, tuple[int, ...]]:
    """The first and last day and the products named in an import's file (sales or competitor
    prices), read with the importer's own sniffing and header mapping. A day that is not a
    valid ISO date leaves that end open."""
    from pricing_saas.catalog.files import local_file
    from pricing_saas.catalog.formats import get_format
    from pricing_saas.catalog.importer import map_headers, sniff, xlsx_to_csv

    fmt = get_format(job.kind)
    day_column = "date" if job.kind == ImportJob.Kind.SALES else "observed_at"
    with tempfile.TemporaryDirectory() as folder, local_file(job.file) as path:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            converted = Path(folder) / "sheet.csv"
            xlsx_to_csv(path, converted, job.kind)
            path = converted
        sniffed = sniff(path, job.kind)
        mapping = map_headers(fmt, sniffed.headers, job.column_map or {})
        names = [name if role == "column" else None for role, name in mapping.targets]
        day, sku = f"c{names.index(day_column)}", f"c{names.index('sku')}"
        stage = f"kpi_extent_{secrets.token_hex(4)}"
        columns = ", ".join(f"c{i} text" for i in range(len(sniffed.headers)))
        delimiter = sniffed.delimiter.replace("'", "''")
        with transaction.atomic(), connection.cursor() as cur, open(path, "rb") as handle:
            cur.execute(f"CREATE TEMP TABLE {stage} ({columns}) ON COMMIT DROP")
            cur.cursor.copy_expert(
                f"COPY {stage} FROM STDIN WITH (FORMAT csv, HEADER true, "
                f"DELIMITER '{delimiter}', ENCODING '{sniffed.encoding}')",
                handle,
            )
            iso = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
            cur.execute(
                f"SELECT min(left(btrim({day}), 10)), max(left(btrim({day}), 10)) "
                f"FROM {stage} WHERE btrim({day}) ~ %s",
                [iso],
            )
            first, last = cur.fetchone()
            cur.execute(
                f"SELECT DISTINCT p.id FROM {stage} s JOIN {PRODUCTS} p "
                f"ON p.tenant_id = %s AND p.sku = btrim(s.{sku}) ORDER BY p.id",
                [int(job.tenant_id)],
            )
            ids = tuple(row[0] for row in cur.fetchall())
    return _iso_or_none(first), _iso_or_none(last), ids


def _iso_or_none(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None
