"""Reads of the competitor view: the offers in force per SKU, a summary and a price index per
competitor, and the competitors' price moves with the price changes of ours that followed them.

Definitions (README, "Competitors"):
- An offer is *in force* when it is the competitor's latest observation of the SKU and at most
  IN_FORCE_DAYS (the reprice's COMPETITOR_CARRY_DAYS, 14) old: what the reprice reads
  (pricing.services.Market).
- The *price index* of a competitor on a day is their price / ours over the SKUs both sell,
  averaged with each SKU weighted by our revenue from it over the last WEIGHT_DAYS (so a gap on a
  best seller counts more than one on a shelf warmer); on a day when none of those SKUs sold, a
  plain average. 1.00: level; 0.95: they are 5 % cheaper. Their price on a day is the
  latest in-stock observation held for IN_FORCE_DAYS (until their next one); ours is the price
  the first change published after that day replaced, or today's when none followed.
- A *move* is an observation whose price differs from that competitor's previous observation of
  the SKU (at most IN_FORCE_DAYS before). A price change of ours *followed* a move when it was
  published for the same SKU within FOLLOW_DAYS after it; of several, the one whose
  recommendation named that competitor as the lowest in force (it *cites* it), else the first.

Every statement filters on the current tenant explicitly as well as through row-level security.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from ml.panel import COMPETITOR_CARRY_DAYS
from ml.science.competitor import MATCH_RATIO, matches
from pricing_saas.catalog.models import CompetitorOffer, Product, SalesRecord
from pricing_saas.catalog.spellings import key_sql
from pricing_saas.pricing.models import PriceChange, Recommendation
from tenants.context import require_current_tenant

from .models import UndercutAlert

IN_FORCE_DAYS = COMPETITOR_CARRY_DAYS
WEIGHT_DAYS = 90
FOLLOW_DAYS = 7
DEFAULT_INDEX_DAYS = 90
DEFAULT_MOVE_DAYS = 30
MAX_DAYS = 365

OFFERS = CompetitorOffer._meta.db_table
PRODUCTS = Product._meta.db_table
SALES = SalesRecord._meta.db_table
CHANGES = PriceChange._meta.db_table
RECOMMENDATIONS = Recommendation._meta.db_table


# A reading of the competitor the parameter `competitor` names: any spelling an import reads as
# it (case, runs of white space), so also readings stored under another spelling of it before
# the spellings were one (catalog.spellings)
SAME_COMPETITOR = f"{key_sql('o.competitor')} = {key_sql('%(competitor)s::text')}"


def in_force_since() -> datetime:
    return timezone.now() - timedelta(days=IN_FORCE_DAYS)


def offers_in_force() -> QuerySet[CompetitorOffer]:
    """Each competitor's latest observation of each SKU, if at most IN_FORCE_DAYS old (in or
    out of stock), SKU then competitor order."""
    latest = (
        CompetitorOffer.objects.filter(observed_at__gte=in_force_since())
        .order_by("product_id", "competitor", "-observed_at", "price")
        .distinct("product_id", "competitor")
        .values("pk")
    )
    return (
        CompetitorOffer.objects.filter(pk__in=latest)
        .select_related("product")
        .order_by("product__sku", "competitor")
    )


def gap(ours, theirs) -> float | None:
    """1 - theirs / ours: 0.08 is "8 % below our price", -0.05 "5 % above"."""
    if ours is None or theirs is None or Decimal(ours) <= 0:
        return None
    return float(1 - Decimal(theirs) / Decimal(ours))


def same_item(ours, theirs) -> bool:
    """Whether a competitor's price may be of this product (`ml.science.competitor.matches`:
    within MATCH_RATIO of ours either way; True where either is unknown): one further off is
    most likely another item, a wrong match in the feed, which the reprice, the demand fit,
    the price index and the alerts leave out."""
    if ours is None or theirs is None or Decimal(ours) <= 0:
        return True
    return bool(matches(float(theirs), float(ours)))


def gap_words(ours, theirs, match: bool = True) -> str:
    """The gap in plain words, from the merchant's side (with `match`, a price too far from
    ours to be the same item says so)."""
    share = gap(ours, theirs)
    if share is None:
        return "—"
    pct = abs(share) * 100
    if pct < 0.05:
        return "same price as us"
    text = f"{pct:.1f}".rstrip("0").rstrip(".")
    words = f"{text} % cheaper than us" if share > 0 else f"{text} % dearer than us"
    if match and not same_item(ours, theirs):
        words += ": most likely another item (check the match), left out"
    return words


def index_words(index: float | None) -> str:
    if index is None:
        return "no in-stock offers"
    return gap_words(1, index, match=False).replace("than us", "than us on average")


# --- per competitor ---------------------------------------------------------------------------


def _params(**extra) -> dict:
    tenant = require_current_tenant()
    today = timezone.localdate(timezone=_zone(tenant.timezone))
    return {
        "t": int(tenant.pk),
        "tz": tenant.timezone,
        "today": today,
        "in_force": in_force_since(),
        "weight_from": today - timedelta(days=WEIGHT_DAYS),
        "carry": IN_FORCE_DAYS,
        "match": MATCH_RATIO,
        **extra,
    }


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


WEIGHTS_SQL = f"""
    SELECT s.product_id, greatest(sum(s.revenue), 0) AS w FROM {SALES} s
    WHERE s.tenant_id = %(t)s AND s.date >= %(weight_from)s GROUP BY s.product_id
"""

# Whether their price may be of the same item as ours (ml.science.competitor.matches).
SAME_ITEM = "{theirs} BETWEEN {ours} / %(match)s AND {ours} * %(match)s"

# The weighted mean of `ratio` over rows with weight `w` (a plain mean when all weigh nothing).
INDEX_SQL = """CASE WHEN sum(coalesce(w.w, 0)) FILTER (WHERE {ok}) > 0
    THEN sum(coalesce(w.w, 0) * {ratio}) FILTER (WHERE {ok})
         / sum(coalesce(w.w, 0)) FILTER (WHERE {ok})
    ELSE avg({ratio}) FILTER (WHERE {ok}) END"""


def summary(competitor: str | None = None) -> list[dict]:
    """Per competitor with an offer in force: SKUs matched, in stock, cheaper and dearer than
    ours, today's price index, the last observation, the moves of the last DEFAULT_MOVE_DAYS and
    the open undercut alerts; most SKUs first. With `competitor`, only the spellings of the
    competitor it names (SAME_COMPETITOR)."""
    only = f"AND {SAME_COMPETITOR}" if competitor else ""
    # a price too far from ours to be the same item (a wrong match in the feed, as the reprice
    # reads it: ml.science.competitor.MATCH_RATIO) is in no index and no count of cheaper
    ok = f"l.in_stock AND {SAME_ITEM.format(theirs='l.price', ours='p.price')}"
    index = INDEX_SQL.format(ok=ok, ratio="l.price / p.price")
    sql = f"""
        WITH latest AS (
            SELECT DISTINCT ON (o.product_id, o.competitor)
                   o.product_id, o.competitor, o.price, o.in_stock, o.observed_at
            FROM {OFFERS} o WHERE o.tenant_id = %(t)s AND o.observed_at >= %(in_force)s {only}
            ORDER BY o.product_id, o.competitor, o.observed_at DESC, o.price
        ), weights AS ({WEIGHTS_SQL})
        SELECT l.competitor, count(*), count(*) FILTER (WHERE l.in_stock),
               count(*) FILTER (WHERE {ok} AND l.price < p.price),
               count(*) FILTER (WHERE {ok} AND l.price > p.price),
               {index}, max(l.observed_at)
        FROM latest l
        JOIN {PRODUCTS} p ON p.id = l.product_id AND p.tenant_id = %(t)s AND p.active
        LEFT JOIN weights w ON w.product_id = l.product_id
        GROUP BY l.competitor ORDER BY count(*) DESC, l.competitor
    """
    with connection.cursor() as cur:
        cur.execute(sql, _params(competitor=competitor))
        rows = cur.fetchall()
    moved = move_counts(DEFAULT_MOVE_DAYS)
    open_alerts = dict(
        _open_undercuts_by_competitor().values_list("competitor", "n")  # type: ignore[arg-type]
    )
    out = []
    for name, skus, in_stock, cheaper, dearer, idx, last_seen in rows:
        idx = None if idx is None else float(idx)
        out.append(
            {
                "competitor": name,
                "skus": skus,
                "in_stock": in_stock,
                "cheaper": cheaper,
                "dearer": dearer,
                "price_index": idx,
                "price_index_words": index_words(idx),
                "last_seen": last_seen,
                "moves": moved.get(name, 0),
                "open_undercuts": open_alerts.get(name, 0),
            }
        )
    return out


def _open_undercuts_by_competitor():
    from django.db.models import Count

    return (
        UndercutAlert.objects.filter(status=UndercutAlert.Status.OPEN)
        .values("competitor")
        .annotate(n=Count("pk"))
        .order_by()
    )


def competitor_names() -> list[str]:
    """Every competitor with an observation in the last MAX_DAYS, by name."""
    since = timezone.now() - timedelta(days=MAX_DAYS)
    return list(
        CompetitorOffer.objects.filter(observed_at__gte=since)
        .order_by("competitor")
        .values_list("competitor", flat=True)
        .distinct()
    )


def index_series(days: int = DEFAULT_INDEX_DAYS, competitor: str | None = None) -> dict:
    """{competitor: [{"date", "index", "skus"}, ...]} for the last `days` days (the tenant's
    local days, oldest first); a day without an in-stock offer in force has no point."""
    params = _params(competitor=competitor)
    params["since"] = params["today"] - timedelta(days=days - 1)
    params["obs_from"] = params["since"] - timedelta(days=IN_FORCE_DAYS)
    only = f"AND {SAME_COMPETITOR}" if competitor else ""
    ours = "coalesce(c.old_price, p.price)"
    ok = SAME_ITEM.format(theirs="h.price", ours=ours)
    index = INDEX_SQL.format(ok=ok, ratio=f"h.price / {ours}")
    sql = f"""
        WITH daily AS (
            SELECT DISTINCT ON (o.product_id, o.competitor,
                               (o.observed_at AT TIME ZONE %(tz)s)::date)
                   o.product_id, o.competitor, (o.observed_at AT TIME ZONE %(tz)s)::date AS day,
                   o.price, o.in_stock
            FROM {OFFERS} o
            WHERE o.tenant_id = %(t)s
              AND o.observed_at >= (%(obs_from)s::date)::timestamp AT TIME ZONE %(tz)s {only}
            ORDER BY o.product_id, o.competitor, (o.observed_at AT TIME ZONE %(tz)s)::date,
                     o.observed_at DESC, o.price
        ), spans AS (
            SELECT d.*, lead(d.day) OVER (PARTITION BY d.product_id, d.competitor ORDER BY d.day)
                   AS next_day
            FROM daily d
        ), held AS (
            SELECT s.product_id, s.competitor, s.price, g.day::date AS day
            FROM spans s, generate_series(
                s.day,
                least(coalesce(s.next_day - 1, s.day + %(carry)s - 1), s.day + %(carry)s - 1,
                      %(today)s),
                interval '1 day') AS g(day)
            WHERE s.in_stock
        ), changes AS (
            SELECT c.product_id, (c.published_at AT TIME ZONE %(tz)s)::date AS day, c.old_price,
                   lag((c.published_at AT TIME ZONE %(tz)s)::date)
                       OVER (PARTITION BY c.product_id ORDER BY c.published_at, c.id) AS prev_day
            FROM {CHANGES} c
            WHERE c.tenant_id = %(t)s AND c.status = 'published' AND c.published_at IS NOT NULL
              AND c.published_at >= (%(obs_from)s::date)::timestamp AT TIME ZONE %(tz)s
        ), weights AS ({WEIGHTS_SQL})
        SELECT h.competitor, h.day, {index}, count(*) FILTER (WHERE {ok})
        FROM held h
        JOIN {PRODUCTS} p ON p.id = h.product_id AND p.tenant_id = %(t)s AND p.active
        LEFT JOIN changes c ON c.product_id = h.product_id
             AND h.day >= coalesce(c.prev_day, '-infinity'::date) AND h.day < c.day
        LEFT JOIN weights w ON w.product_id = h.product_id
        WHERE h.day >= %(since)s
        GROUP BY h.competitor, h.day ORDER BY h.competitor, h.day
    """
    out: dict[str, list[dict]] = {}
    with connection.cursor() as cur:
        cur.execute(sql, params)
        for name, day, idx, skus in cur.fetchall():
            if idx is None:  # only listings of other items that day
                continue
            out.setdefault(name, []).append(
                {"date": day, "index": round(float(idx), 4), "skus": skus}
            )
    return out


# --- moves -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoveFilters:
    days: int = DEFAULT_MOVE_DAYS
    competitor: str | None = None
    product_id: int | None = None
    sku: str | None = None
    followed: bool | None = None  # True: only moves a change of ours followed


def move_counts(days: int) -> dict[str, int]:
    sql, params = _moves_sql(MoveFilters(days=days), "count_by_competitor")
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return dict(cur.fetchall())


FOLLOWING_SQL = f"""
    SELECT c.id, c.old_price, c.new_price, c.published_at, c.publication_id, c.job_id,
           coalesce(r.competitor_name = m.competitor, false) AS cites
    FROM {CHANGES} c
    LEFT JOIN {RECOMMENDATIONS} r ON r.id = c.recommendation_id AND r.tenant_id = %(t)s
    WHERE c.tenant_id = %(t)s AND c.product_id = m.product_id
      AND c.status = 'published' AND c.published_at >= m.observed_at
      AND c.published_at < m.observed_at + %(follow)s
"""

MOVE_COLUMNS = (
    "m.id, m.product_id, m.sku, m.title, m.our_price, m.competitor, m.prev_price, m.price, "
    "m.in_stock, m.observed_at, m.url, f.id, f.old_price, f.new_price, f.published_at, "
    "f.publication_id, f.job_id, f.cites"
)


def _moves_sql(
    filters: MoveFilters, mode: str, limit: int | None = None, offset: int = 0
) -> tuple[str, dict]:
    """The moves matching `filters`: `mode` "count", "count_by_competitor" or "page" (newest
    first, `limit` from `offset`). The change of ours that followed each is looked up only for
    the page's rows (or, filtering on it, as an EXISTS), not for every move counted."""
    params = _params(
        since=timezone.now() - timedelta(days=filters.days),
        competitor=filters.competitor,
        product=filters.product_id,
        sku=filters.sku,
        follow=timedelta(days=FOLLOW_DAYS),
        limit=limit,
        offset=int(offset),
    )
    params["obs_from"] = params["since"] - timedelta(days=IN_FORCE_DAYS)
    where = ["o.tenant_id = %(t)s", "o.observed_at >= %(obs_from)s"]
    if filters.competitor:
        where.append(SAME_COMPETITOR)
    if filters.product_id is not None:
        where.append("o.product_id = %(product)s")
    if filters.sku:
        where.append(f"o.product_id IN (SELECT id FROM {PRODUCTS} WHERE tenant_id = %(t)s"
                     " AND sku = %(sku)s)")  # fmt: skip
    moved = ["m.observed_at >= %(since)s", "m.prev_price IS NOT NULL", "m.price <> m.prev_price",
             "m.observed_at - m.prev_at <= make_interval(days => %(carry)s)"]  # fmt: skip
    if filters.followed is not None:
        moved.append(("" if filters.followed else "NOT ") + f"EXISTS ({FOLLOWING_SQL})")
    moves = f"""
        WITH obs AS (
            SELECT o.id, o.product_id, o.competitor, o.price, o.in_stock, o.observed_at, o.url,
                   lag(o.price) OVER w AS prev_price, lag(o.observed_at) OVER w AS prev_at
            FROM {OFFERS} o WHERE {" AND ".join(where)}
            WINDOW w AS (PARTITION BY o.product_id, o.competitor ORDER BY o.observed_at)
        )
        SELECT m.*, p.sku, p.title, p.price AS our_price
        FROM obs m JOIN {PRODUCTS} p ON p.id = m.product_id AND p.tenant_id = %(t)s
        WHERE {" AND ".join(moved)}
    """
    if mode == "count":
        return f"SELECT count(*) FROM ({moves}) m", params
    if mode == "count_by_competitor":
        return f"SELECT m.competitor, count(*) FROM ({moves}) m GROUP BY m.competitor", params
    page = "LIMIT %(limit)s OFFSET %(offset)s" if limit is not None else "OFFSET %(offset)s"
    sql = f"""
        SELECT {MOVE_COLUMNS}
        FROM ({moves} ORDER BY m.observed_at DESC, m.id DESC {page}) m
        LEFT JOIN LATERAL ({FOLLOWING_SQL} ORDER BY 7 DESC, c.published_at, c.id LIMIT 1) f
             ON true
        ORDER BY m.observed_at DESC, m.id DESC
    """
    return sql, params


class Moves:
    """The moves matching `filters`, newest first: lazy, counted and sliced in SQL (what the
    API's paginator and the portal's Paginator ask of a queryset)."""

    def __init__(self, filters: MoveFilters):
        self.filters = filters
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            sql, params = _moves_sql(self.filters, "count")
            with connection.cursor() as cur:
                cur.execute(sql, params)
                self._count = cur.fetchone()[0]
        return self._count

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, key):
        if isinstance(key, int):
            return self[key : key + 1][0]
        start, stop = int(key.start or 0), key.stop
        limit = None if stop is None else max(int(stop) - start, 0)
        sql, params = _moves_sql(self.filters, "page", limit=limit, offset=start)
        with connection.cursor() as cur:
            cur.execute(sql, params)
            return [_move(row) for row in cur.fetchall()]


def _move(row) -> dict:
    (offer, product, sku, title, ours, competitor, before, after, in_stock, at, url,
     change, old, new, published_at, publication, job, cites) = row  # fmt: skip
    return {
        "offer": offer,
        "product": product,
        "sku": sku,
        "title": title,
        "competitor": competitor,
        "old_price": before,
        "new_price": after,
        "change": float(after / before - 1) if before else None,
        "in_stock": in_stock,
        "observed_at": at,
        "url": url or None,
        "our_price": ours,
        "gap_words": gap_words(ours, after),
        "followed_by": None
        if change is None
        else {
            "price_change": change,
            "old_price": old,
            "new_price": new,
            "published_at": published_at,
            "publication": publication,
            "job": job,
            "cites_competitor": bool(cites),
        },
    }


def day_range(days: int) -> list[date]:
    today = timezone.localdate(timezone=_zone(require_current_tenant().timezone))
    return [today - timedelta(days=days - 1 - i) for i in range(days)]
