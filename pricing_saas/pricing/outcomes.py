"""What published price changes did: per change, per job, per category, the realised lift
against the counterfactual (ml.science.outcomes: a difference-in-differences against SKUs whose
price did not change) beside the forecast the change went out with.

Reads only. Days are the tenant's local days; a change is measured over the `window` days
from the day it was published (fewer while the window is still running: `days_observed`),
against the PRE_DAYS before it. Days without a sales row count as 0 units (the product was on
sale). A change needs MIN_DAYS of post-change sales before it is measured.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from django.db import connection

from ml.science.outcomes import (
    Part,
    category_drifts,
    combined_se,
    drift,
    forecast_accuracy,
    realised_lift,
)
from pricing_saas.catalog.models import Product, SalesRecord
from tenants.context import require_current_tenant

from .models import PriceChange

MIN_CATEGORY_CONTROLS = 10  # unchanged SKUs (with sales before) a category's own drift needs
WINDOWS = (14, 28)  # the windows a merchant reads (days after publication)
PRE_DAYS = 28  # the level before a change, at its old price
MIN_DAYS = 7  # a week of sales after a change before it is measured


@dataclass
class ChangeOutcome:
    change_id: int
    product_id: int
    sku: str
    category: str
    old_price: float
    new_price: float
    published_on: date
    days_observed: int
    units_actual: float  # per day after the change
    units_counterfactual: float  # per day, at the old price, moved with the market
    units_forecast: float | None  # what the model expected at the new price
    units_se: float  # of the unit lift (window noise and the counterfactual's)
    profit_lift: float  # per day, realised (revenue where no cost is known)
    profit_low: float
    profit_high: float
    forecast_profit_lift: float | None  # per day, as forecast when it went out
    by_revenue: bool  # no cost known: revenue, not profit
    # The market drift behind the counterfactual: the SKU's category's own unchanged SKUs, or
    # the tenant's (`drift_note` says why: too few unchanged SKUs in the category).
    drift_scope: str = "category"
    drift_note: str = ""
    market_drift: float = 1.0  # the controls' units after / before (1.1: the market rose 10 %)


@dataclass
class Outcome:
    window: int
    changes: list[ChangeOutcome] = field(default_factory=list)
    waiting: int = 0  # published too recently to be measured
    total: float = 0.0  # per day, the sum over measured changes
    total_low: float = 0.0
    total_high: float = 0.0
    forecast_total: float = 0.0
    controls: int = 0

    def by_category(self) -> dict[str, dict]:
        out: dict[str, dict] = defaultdict(lambda: {"changes": 0, "profit_lift": 0.0})
        for c in self.changes:
            out[c.category]["changes"] += 1
            out[c.category]["profit_lift"] += c.profit_lift
        return dict(out)


def _today() -> date:
    from django.utils import timezone

    return timezone.now().astimezone(ZoneInfo(require_current_tenant().timezone)).date()


def _sums(product_ids: list[int], start: date, end: date, weekly: bool) -> dict:
    """Units per product (and per week from `start` when `weekly`) over [start, end)."""
    table = SalesRecord._meta.db_table
    week = "(date - %s) / 7" if weekly else "0"
    sql = (
        f"SELECT product_id, {week} AS w, SUM(units) FROM {table} "
        "WHERE tenant_id = %s AND date >= %s AND date < %s AND product_id = ANY(%s) "
        "GROUP BY 1, 2"
    )
    params = ([start] if weekly else []) + [require_current_tenant().pk, start, end, product_ids]
    out: dict = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for pk, w, units in cursor.fetchall():
            out[pk][int(w)] = float(units)
    return out


def _control_sums(exclude: set[int], start: date, split: date, end: date):
    """Per active product that did not change price: units before and after `split` (a
    discontinued product's fall to zero is no market drift), and its category."""
    table = SalesRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.product_id, COALESCE(SUM(s.units) FILTER (WHERE s.date < %s), 0), "
            f"COALESCE(SUM(s.units) FILTER (WHERE s.date >= %s), 0), MIN(p.category) "
            f"FROM {table} s "
            f"JOIN {Product._meta.db_table} p ON p.id = s.product_id AND p.active "
            "WHERE s.tenant_id = %s AND s.date >= %s AND s.date < %s GROUP BY s.product_id",
            [split, split, require_current_tenant().pk, start, end],
        )
        rows = [r for r in cursor.fetchall() if r[0] not in exclude]
    return (
        np.array([float(r[1]) for r in rows]),
        np.array([float(r[2]) for r in rows]),
        np.array([r[3] or "" for r in rows], dtype=object),
    )


def _drifts(control_pre, control_post, categories, wanted, pre_days, observed):
    """The market drift for each category in `wanted`: from its own unchanged SKUs where it has
    MIN_CATEGORY_CONTROLS of them with sales before (a season or a promotion of one category
    is not credited to the price changes of another), drawn toward the tenant's as far as the
    categories move alike (ml.science.outcomes.category_drifts); else the tenant's, with the
    reason. Returns {category: (Drift, scope, note, (weight on its own ratio, that ratio's
    variance))} and the tenant-wide Drift."""
    tenant = drift(control_pre / pre_days, control_post / observed)
    own, out = {}, {}
    counts = {c: int(((categories == c) & (control_pre > 0)).sum()) for c in set(categories)}
    for category in counts:  # every category with enough controls informs the spread
        if counts[category] >= MIN_CATEGORY_CONTROLS:
            mine = (categories == category) & (control_pre > 0)
            own[category] = drift(control_pre[mine] / pre_days, control_post[mine] / observed)
    drawn = category_drifts(own, tenant)
    for category in wanted:
        if category in drawn:
            market, weight = drawn[category]
            note = (
                f"category {category or '(none)'}: {own[category].ratio:.3f} from "
                f"{own[category].controls} unchanged SKUs, weighted {weight:.0%} against the "
                f"tenant's {tenant.ratio:.3f}"
            )
            out[category] = (market, "category", note, (weight, own[category].var))
        else:
            n = counts.get(category, 0)
            note = (
                f"{n} unchanged SKU{'s' if n != 1 else ''} with sales in category "
                f"{category or '(none)'}, fewer than {MIN_CATEGORY_CONTROLS}: the tenant's "
                f"drift ({tenant.controls} SKUs) is used"
            )
            out[category] = (tenant, "tenant", note, (0.0, 0.0))
    return out, tenant


def _measure(result: Outcome, group, products, drifts, day, observed, market):
    """The changes of one publication day that share one market drift: their lifts appended
    to `result`; returns the Lift and the sum of their forecast lifts."""
    start, end = day - timedelta(PRE_DAYS), day + timedelta(observed)
    ids = [c.product_id for c in group]
    before = _sums(ids, start, day, weekly=True)
    after = _sums(ids, day, end, weekly=False)
    weeks = PRE_DAYS // 7
    weekly = np.array([[before.get(pk, {}).get(w, 0.0) / 7 for w in range(weeks)] for pk in ids])
    pre_mean = weekly.mean(axis=1)
    pre_var = weekly.var(axis=1, ddof=1) * 7
    post_mean = np.array([after.get(pk, {}).get(0, 0.0) / observed for pk in ids])
    cost = np.array([
        float(c.forecast_unit_cost) if c.forecast_unit_cost is not None
        else float(products[c.product_id][2]) if products[c.product_id][2] else np.nan
        for c in group
    ])  # fmt: skip
    old = np.array([float(c.old_price) for c in group])
    new = np.array([float(c.new_price) for c in group])
    lift = realised_lift(
        pre_mean,
        pre_var,
        np.full(len(ids), PRE_DAYS),
        post_mean,
        np.full(len(ids), observed),
        old,
        new,
        cost,
        market,
    )
    forecast = 0.0
    for i, change in enumerate(group):
        sku, category, _cost = products[change.product_id]
        _market, scope, note, _weight = drifts[category or ""]
        margin = 0.0 if np.isnan(cost[i]) else cost[i]
        predicted = None
        if change.forecast_units_new is not None and change.forecast_units_old is not None:
            predicted = (new[i] - margin) * change.forecast_units_new - (
                old[i] - margin
            ) * change.forecast_units_old
            forecast += predicted
        result.changes.append(
            ChangeOutcome(
                change_id=change.pk,
                product_id=change.product_id,
                sku=sku,
                category=category,
                old_price=old[i],
                new_price=new[i],
                published_on=day,
                days_observed=observed,
                units_actual=float(lift.units_actual[i]),
                units_counterfactual=float(lift.units_counterfactual[i]),
                units_forecast=change.forecast_units_new,
                units_se=float(lift.unit_se[i]),
                profit_lift=float(lift.profit_lift[i]),
                profit_low=float(lift.low[i]),
                profit_high=float(lift.high[i]),
                forecast_profit_lift=predicted,
                by_revenue=bool(np.isnan(cost[i])),
                drift_scope=scope,
                drift_note=note,
                market_drift=float(market.ratio),
            )
        )
    return lift, forecast


def outcome(changes, window: int = WINDOWS[0]) -> Outcome:
    """The realised lift of `changes` (a queryset of PriceChange; the published price changes
    a recommendation made are measured, rollbacks are not) over `window` days after each was
    published, or until the SKU's next published change (a rollback of it included), so the
    next change's effect is never credited to this one."""
    if window < MIN_DAYS or window > 365:
        raise ValueError(f"window must be {MIN_DAYS}-365 days, not {window}")
    zone = ZoneInfo(require_current_tenant().timezone)
    today = _today()
    live = list(
        changes.filter(
            status=PriceChange.Status.PUBLISHED,
            kind=PriceChange.Kind.RECOMMENDATION,
            published_at__isnull=False,
        ).order_by("pk")
    )
    result = Outcome(window=window)
    if not live:
        return result
    products = {
        pk: (sku, category, cost)
        for pk, sku, category, cost in Product.objects.filter(
            pk__in={c.product_id for c in live}
        ).values_list("pk", "sku", "category", "cost")
    }
    # Every product whose price moved near these changes is no control.
    first = min(c.published_at for c in live).astimezone(zone).date() - timedelta(PRE_DAYS)
    moved = set(
        PriceChange.objects.filter(
            status=PriceChange.Status.PUBLISHED, published_at__date__gte=first
        ).values_list("product_id", flat=True)
    )
    # each SKU's published changes in order: a change's window ends at the next one
    later: dict[int, list[date]] = defaultdict(list)
    for product_id, at in PriceChange.objects.filter(
        product_id__in=products, status=PriceChange.Status.PUBLISHED, published_at__isnull=False
    ).values_list("product_id", "published_at"):
        later[product_id].append(at.astimezone(zone).date())
    groups: dict[tuple[date, int], list[PriceChange]] = defaultdict(list)
    for change in live:
        day = change.published_at.astimezone(zone).date()
        ends = [d for d in later[change.product_id] if d > day]
        # whole days since it went out (today still running), up to the next change
        observed = min(window, (today - day).days, *[(d - day).days for d in ends])
        if observed < MIN_DAYS:
            result.waiting += 1
            continue
        groups[(day, observed)].append(change)
    spreads, sums, forecast = [], [], 0.0
    scans: dict[tuple, tuple] = {}
    for (day, observed), whole in sorted(groups.items()):
        start, end = day - timedelta(PRE_DAYS), day + timedelta(observed)
        if (start, day, end) not in scans:  # one scan per window shape, however many changes
            scans[(start, day, end)] = _control_sums(moved, start, day, end)
        control_pre, control_post, control_category = scans[(start, day, end)]
        drifts, tenant_drift = _drifts(
            control_pre,
            control_post,
            control_category,
            {products[c.product_id][1] or "" for c in whole},
            PRE_DAYS,
            observed,
        )
        result.controls = max(result.controls, tenant_drift.controls)
        # one estimate per drift: the changes of a category with its own, and those falling
        # back on the tenant's together (that shared drift is counted once in their sum)
        parts: dict[str, list[PriceChange]] = defaultdict(list)
        for change in whole:
            category = products[change.product_id][1] or ""
            parts[category if drifts[category][1] == "category" else "\0tenant"].append(change)
        measured = []
        for _part, group in sorted(parts.items()):
            category = products[group[0].product_id][1] or ""
            market, _scope, _note, (weight, own_var) = drifts[category]
            lift, predicted = _measure(result, group, products, drifts, day, observed, market)
            measured.append(Part(lift, weight, own_var))
            sums.append(lift.total)
            forecast += predicted
        # the day's parts share the tenant's drift: combined once (ml.science.outcomes)
        spreads.append(combined_se(measured, tenant_drift))
    if sums:
        # publication days are measured apart (their drifts are independent estimates)
        result.total = float(np.sum(sums))
        se = float(np.sqrt(np.sum(np.square(spreads))))
        result.total_low, result.total_high = result.total - 1.96 * se, result.total + 1.96 * se
        result.forecast_total = forecast
    return result


def accuracy(window: int = WINDOWS[-1]) -> list[dict]:
    """Forecast against actual per demand-model version, over every measured published change
    it forecast (ml.science.outcomes.forecast_accuracy: the predicted price effect applied to
    the counterfactual; WAPE, bias and the 95 % predictive interval's coverage)."""
    changes = PriceChange.objects.exclude(forecast_version=None)
    measured = {c.change_id: c for c in outcome(changes, window).changes}
    rows = list(
        changes.filter(pk__in=measured).values_list(
            "pk",
            "forecast_version_id",
            "forecast_units_new",
            "forecast_units_old",
            "forecast_units_new_low",
            "forecast_units_new_high",
        )
    )
    out = []
    for version in sorted({r[1] for r in rows}):
        part = [r for r in rows if r[1] == version]
        got = [measured[r[0]] for r in part]
        result = forecast_accuracy(
            np.array([g.units_actual for g in got]),
            np.array([g.units_se for g in got]),
            np.array([g.units_counterfactual for g in got]),
            np.array([r[2] for r in part]),
            np.array([r[3] for r in part]),
            np.array([r[4] for r in part]),
            np.array([r[5] for r in part]),
        )
        figures = {k: None if v != v else v for k, v in vars(result).items()}  # NaN: null
        out.append({"model_version": version, "window": window, **figures})
    return out
