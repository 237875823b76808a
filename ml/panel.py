"""The demand panel: a tenant's sales and competitor prices read from the database into the
arrays the pure demand model takes (ml.science.demand.Panel), one binary COPY per query."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

from tenants.bulk import copy_columns
from tenants.context import require_current_tenant

PRICE_TOLERANCE = 0.005  # prices within 0.5 % count as the same price


# A SKU's sales rows are a daily report (days without a sale listed as 0 units) when it has
# 0-unit rows with a price and rows on at least this share of the days between its first and
# last row; otherwise an order export, whose 0-unit rows (refunds, empty channels) are dropped.
DAILY_REPORT_COVERAGE = 0.8


def demand_panel(block: dict | None = None):
    """Daily units per product (channels summed) between its first and last sale. Days without a
    sale count as zero units while the product is active and its price is known: recorded as a
    row with 0 units and the day's price, or unchanged between the sales around them; see the
    comments below. Every product is handled at once with numpy (no loop per product).

    `block` (a partitioned fit, ml.partitioned): only the products with ids in
    [block["low"], block["high"]), with the tenant-wide facts given (block["tracks"]: whether
    the tenant's files record revenue; block["competitor_sd"]); the competitor prices are
    attached even where none is known on the block's rows, and the stats carry the category
    names ("category_names") and counts instead of shares."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    import numpy as np

    from pricing_saas.catalog.models import Product, SalesRecord

    from .science.demand import Panel

    # Channels summed per product and day, read with one binary COPY straight into numpy (the
    # ORM built 2 million Python tuples for a 100,000-SKU tenant: 30 s of a 100 s training).
    within = (
        ""
        if block is None
        else (f"AND product_id >= {int(block['low'])} AND product_id < {int(block['high'])} ")
    )
    data = copy_columns(
        "SELECT product_id, (date - DATE '0001-01-01') + 1, SUM(units), "
        "COALESCE(SUM(revenue), 0), BOOL_OR(promo)::int, "
        # the listed price of the day: units-weighted over channels (MAX for 0-unit rows)
        "COALESCE(SUM(price * units) / NULLIF(SUM(units), 0), MAX(price)) "
        f"FROM {SalesRecord._meta.db_table} WHERE tenant_id = {int(require_current_tenant().pk)} "
        + within
        + "GROUP BY product_id, date ORDER BY product_id, date",
        6,
    )
    if len(data) == 0:
        return None, [], {}
    products_of = Product.objects.all()
    if block is not None:
        products_of = products_of.filter(pk__gte=block["low"], pk__lt=block["high"])
    active = dict(products_of.values_list("pk", "active"))
    categories = dict(products_of.values_list("pk", "category"))
    today = dict(products_of.values_list("pk", "price"))
    products, sku = np.unique(data[:, 0].astype(int), return_inverse=True)
    days, units, revenue, promo = data[:, 1].astype(int), data[:, 2], data[:, 3], data[:, 4]
    # A row with 0 units and a price is a day on sale without a sale (a daily report): the
    # price it lists is the price nobody bought at, an observed zero.
    recorded_zero = (units == 0) & (data[:, 5] > 0)
    # The own price is the listed (shelf) price the merchant sets; what buyers paid below it
    # (a promotion, a coupon) is the discount depth, a control of its own: the two move demand
    # differently (a discount comes with display and advertising). Where the file lists the
    # paid price only, the depth is 0 and the price is the paid one.
    paid = np.where(units > 0, revenue / np.maximum(units, 1), np.nan)
    listed = data[:, 5]
    price = np.where(listed > 0, listed, paid)
    # A sale nobody paid for (fully discounted, free) has no price to learn from; but where the
    # tenant's files do not record revenue (0 on most sales), sales are at the listed price.
    sold_rows = units > 0
    tracks = bool(sold_rows.any()) and float(np.mean(revenue[sold_rows] > 0)) >= 0.5
    if block is not None:
        tracks = bool(block["tracks"])  # the tenant's files, not the block's
    free = sold_rows & ~(paid > 0) & tracks
    price = np.where(recorded_zero | ((units > 0) & ~free & (price > 0)), price, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(
            (units > 0) & (paid > 0) & (listed > 0), np.minimum(np.log(paid / listed), 0.0), 0.0
        )
    # Per product (rows are sorted by product, then day), all at once:
    starts = np.flatnonzero(np.r_[True, sku[1:] != sku[:-1]])
    n_products = len(products)
    priced = np.isfinite(price) & (price > 0)  # free (fully discounted) sales have no price
    # Never sold at a price: no volume to learn from (cold start), left out of the panel.
    sold = np.bincount(sku, weights=priced & (units > 0), minlength=n_products) > 0
    # A daily report: 0-unit rows, and rows on most days of the SKU's span. A stray 0-unit row
    # in an order export (a refunded line) does not make one: it is dropped instead.
    span = days[np.r_[starts[1:], len(sku)] - 1] - days[starts] + 1
    daily = (np.bincount(sku, weights=recorded_zero, minlength=n_products) > 0) & (
        np.bincount(sku, weights=priced, minlength=n_products) >= DAILY_REPORT_COVERAGE * span
    )
    rows = priced & sold[sku] & (daily[sku] | ~recorded_zero)
    kept = [int(pk) for pk in products[sold]]  # panel index order
    index = np.cumsum(sold) - 1  # product -> panel index
    owner = sku[rows]
    d, u, p, pr, dp = days[rows], units[rows], price[rows], promo[rows], depth[rows]
    on_daily = daily[owner]
    # A daily report lists every day on sale (none is there because it sold) and a missing day
    # was not on sale. An order export has a price only on days with a sale: where the price
    # was the same at the sales before and after a day without one, the day had that price and
    # counts as zero units; where the price moved in between, the day is left out, and the
    # sales days whose inclusion depended on selling (their price differs from a neighbour's)
    # get a zero-truncated likelihood.
    same_owner = owner[1:] == owner[:-1]
    same_price = np.abs(p[1:] / p[:-1] - 1) <= PRICE_TOLERANCE
    same_next = np.r_[same_price | ~same_owner, True]  # the last row of a product: True
    same_prev = np.r_[True, same_next[:-1]]
    truncated = ~on_daily & ~(same_prev & same_next)
    is_active = np.array([active.get(int(pk), True) for pk in products], dtype=bool)[owner]
    gaps = np.diff(d) - 1  # days without a sale between consecutive sales of a product
    fill = np.flatnonzero(
        same_owner & ~on_daily[:-1] & is_active[:-1] & (gaps > 0) & same_next[:-1]
    )
    run = gaps[fill]  # every day strictly between the sales k and k + 1, for each k in fill
    zero_days = (
        np.repeat(d[fill] + 1, run) + np.arange(run.sum()) - np.repeat(np.cumsum(run) - run, run)
    )
    # Each product's sales rows, then its zero days (the order the fit has always seen).
    both_owner = np.r_[owner, np.repeat(owner[fill], run)]
    order = np.lexsort((np.r_[np.zeros(len(owner)), np.ones(len(zero_days))], both_owner))
    if not kept:
        return None, [], {}
    names = sorted({categories.get(pk, "") for pk in kept})
    cat_index = {name: j for j, name in enumerate(names)}
    category = np.array([cat_index[categories.get(pk, "")] for pk in kept])
    panel = Panel(
        sku=index[both_owner][order],
        day=np.r_[d, zero_days][order],
        units=np.r_[u, np.zeros(len(zero_days))][order],
        price=np.r_[p, np.repeat(p[fill], run)][order],
        promo=np.r_[pr, np.zeros(len(zero_days))][order],
        discount=np.r_[dp, np.zeros(len(zero_days))][order],
        category=category,
        current_price=np.array([float(today[pk]) if today.get(pk) else np.nan for pk in kept]),
        truncated=np.r_[truncated, np.zeros(len(zero_days), dtype=bool)][order],
    )
    # each SKU's typical shelf price (its rows' median): what a competitor reading must be near
    # to be the same item (not the day's price, which made a competitor flicker in and out)
    by_price = panel.price[np.lexsort((panel.price, panel.sku))]
    count = np.bincount(panel.sku, minlength=len(kept))
    first_row = np.cumsum(count) - count
    at = lambda k: by_price[np.minimum(first_row + k, len(by_price) - 1)]  # noqa: E731
    typical = np.where(count > 0, (at(np.maximum(count - 1, 0) // 2) + at(count // 2)) / 2, np.nan)
    competitor = _competitor_prices(kept, panel.sku, panel.day, typical)
    # today's competitor price as a reprice reads it again (ml.selectors.demand_curve): the
    # last week's up to today (the day after the last day of sales, for a history that ends
    # long ago), its readings matched against today's price, as a reprice matches them
    if block is not None and "reading_day" in block:
        reading_day = int(block["reading_day"])
    else:
        reading_day = reading_day_of(int(panel.day.max()))
    match = np.where(np.isfinite(panel.current_price) & (panel.current_price > 0),
                     panel.current_price, typical)  # fmt: skip
    # (and the days of its week whose lowest price was read that day: stored with the level's
    # position, how much of a reading's jitter its median holds)
    panel.competitor_today, panel.competitor_today_k = competitor_today(
        kept, match, reading_day, readings=True
    )
    panel.reading_day = reading_day
    if block is not None:
        panel.competitor_price, panel.competitor_sd = competitor, float(block["competitor_sd"])
        return (
            panel,
            kept,
            {
                "category_names": [categories.get(pk, "") for pk in kept],
                "rows": len(panel.units),
                "zero": int(np.sum(panel.units == 0)),
                "truncated": int(np.sum(panel.truncated)),
                "competitor": int(np.sum(np.isfinite(competitor))),
                "discounted": int(np.sum(panel.discount < -0.01)),
            },
        )
    if np.isfinite(competitor).any():
        panel.competitor_price = competitor
        # how far a reading carried over the days may be off, over the panel's days
        first = dt.date.fromordinal(int(panel.day.min()) - COMPETITOR_CARRY_DAYS)
        panel.competitor_sd = competitor_jitter(
            dt.datetime.combine(first, dt.time(), ZoneInfo(require_current_tenant().timezone))
        )
    return (
        panel,
        kept,
        {
            "zero_share": float(np.mean(panel.units == 0)),
            "truncated_share": float(np.mean(panel.truncated)),
            "competitor_share": float(np.mean(np.isfinite(competitor))),
            "discounted_share": float(np.mean(panel.discount < -0.01)),
        },
    )


COMPETITOR_CARRY_DAYS = 14  # an observed competitor price holds for two weeks, then unknown


def _competitor_prices(product_ids: list[int], sku, day, typical=None, observed: bool = False):
    """The lowest competitor price per panel row (SKU, day): each competitor's price holds from
    its observation for COMPETITOR_CARRY_DAYS, until its next observation, or until it is seen
    out of stock (on the day itself when its last observation that day was out of stock), and
    the row takes the lowest of those in force (NaN where none is). Days are the tenant's local
    days, as sales dates are. All competitors at once, so a marketplace feed with many sellers
    costs what one does. The demand model controls for the gap to it (buyers drift away when a
    competitor is cheaper). With `typical` (per product, its typical shelf price), an in-stock
    reading too far from it to be the same item (ml.science.competitor.matches, in SQL) is
    left out: it is no news of the competitor's price, so the one before it holds on (as in the
    reprice and the KPI facts, which compare with the product's price today). `observed`: also,
    per product, the number of its rows whose lowest price was read on the row's day (a reading
    in force from before, or carried over days, is no new reading)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    import numpy as np

    from ml.science.competitor import MATCH_RATIO
    from pricing_saas.catalog.models import CompetitorOffer

    out = np.full(len(sku), np.nan)
    none = np.zeros(len(product_ids), int)
    if not len(sku) or not len(product_ids):
        return (out, none) if observed else out
    tenant = require_current_tenant()
    zone = ZoneInfo(tenant.timezone)
    day = np.asarray(day, np.int64)
    first = dt.date.fromordinal(int(day.min()) - COMPETITOR_CARRY_DAYS)
    after = dt.date.fromordinal(int(day.max()) + 1)
    # Per competitor (numbered), product and local day: the day's lowest in-stock price (NaN if
    # only seen out of stock) and whether the last observation of the day was out of stock.
    obs = copy_columns(
        "SELECT DENSE_RANK() OVER (ORDER BY competitor), product_id, "
        "(d - DATE '0001-01-01') + 1, COALESCE(low, 'NaN'), "
        "(last_out IS NOT NULL AND (last_in IS NULL OR last_out > last_in))::int "
        "FROM (SELECT o.competitor, o.product_id, (o.observed_at AT TIME ZONE %s)::date AS d, "
        "MIN(o.price) FILTER (WHERE o.in_stock AND same)::float8 AS low, "
        "MAX(o.observed_at) FILTER (WHERE o.in_stock AND same) AS last_in, "
        "MAX(o.observed_at) FILTER (WHERE NOT o.in_stock) AS last_out "
        "FROM (SELECT o.*, coalesce(o.price BETWEEN t.typical / %s AND t.typical * %s, true)"
        f" AS same FROM {CompetitorOffer._meta.db_table} o JOIN unnest(%s::bigint[],"
        " %s::float8[]) AS t (pid, typical) ON t.pid = o.product_id WHERE o.tenant_id = %s "
        # the panel's products' id range: a block of a partitioned fit reads its own offers
        "AND o.product_id >= %s AND o.product_id <= %s "
        "AND o.observed_at >= %s AND o.observed_at < %s) AS o GROUP BY 1, 2, 3 "
        # a day with only readings of another item is no observation
        "HAVING bool_or(o.in_stock AND same) OR bool_or(NOT o.in_stock)) AS g",
        5,
        [
            tenant.timezone,
            MATCH_RATIO,
            MATCH_RATIO,
            [int(pk) for pk in product_ids],
            [  # NULL where unknown (or not positive): every reading may be the item's
                float(v) if typical is not None and np.isfinite(v) and v > 0 else None
                for v in (typical if typical is not None else [None] * len(product_ids))
            ],
            int(tenant.pk),
            int(min(product_ids)),
            int(max(product_ids)),
            dt.datetime.combine(first, dt.time(), zone),
            dt.datetime.combine(after, dt.time(), zone),
        ],
    )
    known = np.asarray(product_ids, np.int64)  # ascending, as the panel numbers them
    pos = np.minimum(np.searchsorted(known, obs[:, 1].astype(np.int64)), len(known) - 1)
    obs = obs[known[pos] == obs[:, 1]]
    if not len(obs):
        return (out, none) if observed else out
    comp, ident = obs[:, 0].astype(np.int64), np.searchsorted(known, obs[:, 1].astype(np.int64))
    on, price, sold_out = obs[:, 2].astype(np.int64), obs[:, 3], obs[:, 4] > 0
    order = np.lexsort((on, ident, comp))
    comp, ident, on, price, sold_out = (a[order] for a in (comp, ident, on, price, sold_out))
    # An observation holds until the same competitor's next one for the product, for at most
    # COMPETITOR_CARRY_DAYS, and only its own day when the competitor sold out that day.
    same = np.r_[(comp[1:] == comp[:-1]) & (ident[1:] == ident[:-1]), False]
    next_on = np.where(same, np.r_[on[1:], 0], np.iinfo(np.int64).max)
    until = np.where(sold_out, on, np.minimum(on + COMPETITOR_CARRY_DAYS, next_on - 1))
    holds = np.isfinite(price)
    length = np.where(holds, until - on + 1, 0)
    days_in_force = (
        np.repeat(on, length)
        + np.arange(length.sum())
        - np.repeat(np.cumsum(length) - length, length)
    )
    span = 1 << 22  # day ordinals stay below it until the year 11,000
    key = np.repeat(ident, length) * span + days_in_force
    row_key = np.asarray(sku, np.int64) * span + day  # one panel row per product and day
    rows = np.argsort(row_key)
    at = np.minimum(np.searchsorted(row_key[rows], key), len(rows) - 1)
    match = row_key[rows][at] == key
    np.fmin.at(out, rows[at[match]], np.repeat(price, length)[match])
    if not observed:
        return out
    # the rows whose lowest price was read on the row's own day (a dearer seller read daily
    # beside a cheaper one read once is no new reading of the lowest)
    read_that_day = (days_in_force == np.repeat(on, length))[match]
    lowest = np.repeat(price, length)[match] == out[rows[at[match]]]
    fresh = np.unique(rows[at[match]][read_that_day & lowest])
    return out, np.bincount(np.asarray(sku, np.int64)[fresh], minlength=len(known))


def reading_day_of(last_sales_day: int) -> int:
    """The day (ordinal) a fit reads today's competitor price up to: today, the tenant's local
    day, or the day after its last day of sales where those end before (a history imported
    long after it ends is read where it ends)."""
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    today = timezone.localdate(timezone=ZoneInfo(require_current_tenant().timezone))
    return min(today.toordinal(), int(last_sales_day) + 1)


def competitor_today(product_ids, typical, last_day: int, readings: bool = False):
    """Per product (`product_ids` ascending; `typical`: the price a reading must be near to be
    the same item, today's price), the competitor's price on the days up to `last_day` (a day
    ordinal, the tenant's local day) as the demand panel's rows read it: the median over the
    last TODAY_READINGS_DAYS days of each day's lowest reading in force (NaN: none). The fit
    reads each product's level at today's price against it (`reading_day_of` its last day of
    sales); a later curve reads it again on its today to measure how far the position has
    moved since, in the same terms (ml.selectors.demand_curve). `readings`: also, per product,
    the number of those days whose lowest price was read that day (0: none; a reading in force
    over several days counts once, a lowest price read again every day as often), which says
    how much of a reading's jitter the median still holds."""
    import numpy as np

    n = len(product_ids)
    if not n:
        return (np.full(0, np.nan), np.zeros(0, int)) if readings else np.full(0, np.nan)
    sku, day = _last_week(n, last_day)
    if not readings:
        return _week_median(_competitor_prices(list(product_ids), sku, day, typical), n)
    prices, read = _competitor_prices(list(product_ids), sku, day, typical, observed=True)
    return _week_median(prices, n), read


def _last_week(n: int, last_day: int):
    """The (product, day) rows of the last TODAY_READINGS_DAYS days up to `last_day`, for `n`
    products, product by product."""
    import numpy as np

    from .science.demand import TODAY_READINGS_DAYS

    days = np.arange(int(last_day) - TODAY_READINGS_DAYS + 1, int(last_day) + 1)
    return np.repeat(np.arange(n, dtype=np.int64), len(days)), np.tile(days, n)


def _week_median(values, n: int):
    """Per product, the median of its `_last_week` rows' values (NaN: none known)."""
    import numpy as np

    week = np.asarray(values, float).reshape(n, -1)
    out = np.full(n, np.nan)
    read = np.isfinite(week).any(axis=1)  # (a product without a reading: NaN, no warning)
    out[read] = np.nanmedian(week[read], axis=1)
    return out


COMPETITOR_JITTER_DAYS = 90  # the competitor readings that say how far one may be off (reprice)
# work_mem of the statements that sort a tenant's competitor readings by series (a sort past
# it spills to disk: 2.4 million readings took three 30 MB files under the default 4 MB)
SORT_MEMORY = "64MB"


def competitor_jitter(since) -> float:
    """How far a competitor's reading may be off its price, in log price: the robust scale of
    the change between a competitor's consecutive in-stock readings of a product observed from
    `since` (1.4826 x median |change| / sqrt 2: two readings' errors in each change; the median
    keeps a real re-price from counting as jitter). A reading that never changes is exact (0).
    The reprice judges the competitor's price at its pessimistic end by it, and the demand model
    smooths the hinge above the competitor over it (ml.science.curve.ramp)."""
    import numpy as np

    with _sorting_readings() as cur:
        cur.execute(
            "WITH d AS (" + _changes_sql() + ") SELECT percentile_cont(0.5) WITHIN GROUP"
            " (ORDER BY change) FROM d WHERE change IS NOT NULL",
            _changes_params(since),
        )
        row = cur.fetchone()
    return float(row[0]) * 1.4826 / np.sqrt(2) if row and row[0] is not None else 0.0


@contextmanager
def _sorting_readings():
    """A cursor in a transaction whose work_mem is SORT_MEMORY, and whose planner joins
    without nested loops, until it ends (the settings before it are put back): the
    competitor readings' series are sorted once, in memory where they fit, and the readings
    are joined to their products by hash. Every reading of the tenant is read, so a nested
    loop is never the right join; the planner still took one on statistics that predate a
    fresh import (a new tenant's first training right after importing 100,000 readings spent
    minutes in this statement)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT current_setting('work_mem'), current_setting('enable_nestloop')")
        memory, nestloop = cur.fetchone()
        cur.execute(
            "SELECT set_config('work_mem', %s, true), set_config('enable_nestloop', 'off', true)",
            [SORT_MEMORY],
        )
        yield cur
        cur.execute(
            "SELECT set_config('work_mem', %s, true), set_config('enable_nestloop', %s, true)",
            [memory, nestloop],
        )


def _changes_sql() -> str:
    """Per competitor reading of a product observed from a time (named parameters: t, the
    tenant; since; match, ml.science.competitor.MATCH_RATIO): the log change from the reading
    before (`step`; `change` its size), NULL where either is out of stock (a sold-out reading
    ends a run of prices, as `ml.science.competitor.level` reads them) or the first of its
    series; and the step before it (`step_before`). A reading of another item (too far from
    the product's price: `matches`) is left out, as the reprice leaves it out of a run."""
    from pricing_saas.catalog.models import CompetitorOffer, Product

    # one window over each series: the reading before and the one before that (the step
    # before is the previous row's step; a reading out of stock is a NULL price, so either
    # step it is in is NULL), so the readings are sorted and walked once
    return (
        "SELECT competitor, abs(step) AS change, step, step_before FROM (SELECT competitor,"
        " ln(price / price_1) AS step, ln(price_1 / price_2) AS step_before FROM (SELECT"
        " competitor, price, LAG(price) OVER w AS price_1, LAG(price, 2) OVER w AS price_2"
        " FROM (SELECT o.product_id, o.competitor,"
        " o.observed_at, CASE WHEN o.in_stock AND o.price > 0 THEN o.price::float8 END AS price"
        " FROM "
        + CompetitorOffer._meta.db_table
        + " o JOIN "
        + Product._meta.db_table
        + " p ON p.tenant_id = %(t)s AND p.id = o.product_id WHERE o.tenant_id = %(t)s AND"
        " o.observed_at >= %(since)s AND (NOT o.in_stock OR o.price BETWEEN p.price / %(match)s"
        " AND p.price * %(match)s)) AS o WINDOW w AS (PARTITION BY product_id, competitor ORDER"
        " BY observed_at)) AS r) AS s"
    )


def _changes_params(since) -> dict:
    from ml.science.competitor import MATCH_RATIO

    return {"t": require_current_tenant().pk, "since": since, "match": MATCH_RATIO}


def competitor_noise(since):
    """`competitor_jitter` with the share and size of the real re-prices among the same changes
    (`ml.science.competitor.noise_of_histogram`, on the histogram of |change| counted over
    the same changes), the tenant's over every seller's changes and each seller's own where
    it has SELLER_MIN_CHANGES and differs clearly (`own_noise_differs`, `Noise.sellers`):
    what tells, in the reprice, which of a competitor's recent readings still say today's
    price."""
    import numpy as np

    from ml.science.competitor import (
        CHANGE_BINS,
        CHANGE_EDGES,
        PAIR_STEP_MAX,
        noise_of_histogram,
        sellers_noise,
    )

    low, high = (float(np.log(edge)) for edge in CHANGE_EDGES)
    pair = (
        "abs(step) >= %(low)s::float8 AND abs(step) < %(pair_max)s::float8 AND abs(step_before)"
        " >= %(low)s::float8 AND abs(step_before) < %(pair_max)s::float8"
    )
    with _sorting_readings() as cur:
        # the changes are read twice: the tenant's median; the histogram of each seller with
        # each bin's part of the pairs' sums (a seller's median is read off its histogram)
        cur.execute(
            "WITH d AS MATERIALIZED (" + _changes_sql() + " WHERE step IS NOT NULL)"
            " SELECT (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY change) FROM d),"
            " competitor,"
            " sum(step * step_before) FILTER (WHERE " + pair + "),"
            " sum((step * step_before) ^ 2) FILTER (WHERE " + pair + "),"
            " count(*) FILTER (WHERE " + pair + "),"
            " CASE WHEN change < %(low)s::float8 THEN 0 ELSE LEAST(width_bucket(ln(change),"
            "  %(log_low)s::float8, %(log_high)s::float8, %(bins)s), %(bins)s) END AS bin,"
            " count(*) FROM d GROUP BY competitor, bin",
            {**_changes_params(since), "low": CHANGE_EDGES[0], "log_low": low,
             "log_high": high, "bins": CHANGE_BINS, "pair_max": PAIR_STEP_MAX},
        )  # fmt: skip
        rows = cur.fetchall()

    def scale(median) -> float:
        return float(median) * 1.4826 / np.sqrt(2) if median is not None else 0.0

    parts: dict[str, list] = {}  # seller: [counts, total, squares, pairs]
    for _median, seller, part, part_squares, part_n, at, count in rows:
        own = parts.setdefault(seller, [np.zeros(CHANGE_BINS + 1), 0.0, 0.0, 0])
        own[0][int(at)] += int(count)
        own[1] += float(part or 0.0)
        own[2] += float(part_squares or 0.0)
        own[3] += int(part_n)
    if not rows:
        return noise_of_histogram(0.0, np.zeros(CHANGE_BINS + 1), None)
    counts = sum(own[0] for own in parts.values())
    pairs = tuple(sum(own[i] for own in parts.values()) for i in (1, 2, 3))
    tenant = noise_of_histogram(scale(rows[0][0]), counts, pairs)
    sellers = sellers_noise(
        tenant, {seller: (own[0], tuple(own[1:])) for seller, own in parts.items()}
    )
    return replace(tenant, sellers=sellers)


def tenant_facts() -> dict:
    """What every block of a partitioned demand fit must agree on, read once for the tenant:
    the products with sales rows (ascending), the first and last day of the priced rows (the
    trend and the error blocks are measured from them), whether the files record revenue, and
    the jitter of the competitor readings over those days, and where some product sold at a
    price as the demand panel reads a sale (units summed over its channels, priced by the
    revenue where the files record it, else the listed price): on which weekdays (day
    ordinals mod 7) and whether on a promotion (the pooled stage checks its sample's controls
    against them, ml.partitioned). One aggregate over the sales; the one-process panel takes
    the day range from the rows it keeps, which is the same unless the first or last days hold
    only rows of products never sold at a price."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    import numpy as np
    from django.db import connection

    from pricing_saas.catalog.models import CompetitorOffer, SalesRecord

    tenant = require_current_tenant()
    products = copy_columns(
        f"SELECT DISTINCT product_id FROM {SalesRecord._meta.db_table} "
        f"WHERE tenant_id = {int(tenant.pk)} ORDER BY 1",
        1,
    )[:, 0].astype(np.int64)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT MIN(d) FILTER (WHERE priced), MAX(d) FILTER (WHERE priced), "
            "AVG(CASE WHEN r > 0 THEN 1.0 ELSE 0.0 END) FILTER (WHERE u > 0), "
            # where something sold: by revenue, then by listed price (`tracks` picks one)
            "ARRAY_AGG(DISTINCT d %% 7) FILTER (WHERE u > 0 AND r > 0), "
            "ARRAY_AGG(DISTINCT d %% 7) FILTER (WHERE u > 0 AND p > 0), "
            "COALESCE(BOOL_OR(pr AND u > 0 AND r > 0), FALSE), "
            "COALESCE(BOOL_OR(pr AND u > 0 AND p > 0), FALSE) FROM ("
            " SELECT (date - DATE '0001-01-01') + 1 AS d, SUM(units) AS u,"
            " COALESCE(SUM(revenue), 0) AS r, MAX(price) AS p, BOOL_OR(promo) AS pr,"
            " (MAX(price) > 0 OR (SUM(units) > 0 AND COALESCE(SUM(revenue), 0) > 0)) AS priced"
            f" FROM {SalesRecord._meta.db_table} WHERE tenant_id = %s GROUP BY product_id, date"
            ") AS g",
            [tenant.pk],
        )
        first, last, revenue_share, by_revenue, by_price, promo_r, promo_p = cur.fetchone()
    tracks = revenue_share is not None and float(revenue_share) >= 0.5
    competitor_sd = 0.0
    if first is not None and CompetitorOffer.objects.exists():
        since = dt.date.fromordinal(int(first) - COMPETITOR_CARRY_DAYS)
        competitor_sd = competitor_jitter(
            dt.datetime.combine(since, dt.time(), ZoneInfo(tenant.timezone))
        )
    return {
        "products": products,
        "day_range": None if first is None else (int(first), int(last)),
        "tracks": tracks,
        "competitor_sd": competitor_sd,
        "sold_weekdays": sorted(int(k) for k in ((by_revenue if tracks else by_price) or [])),
        "promo_sold": bool(promo_r if tracks else promo_p),
    }
