"""Every read of the pricing pages: querysets and figures, scoped to the current tenant by the
managers. Views format what these return; services write."""

from __future__ import annotations

import numpy as np
from django.db.models import Count, F, Min
from django.db.models.functions import Coalesce

from pricing_saas.catalog.models import CompetitorOffer, Product, SalesRecord

from . import approvals, publishing
from .models import PriceChange, Publication, Recommendation, RepriceJob, RepriceSchedule, RuleSet

# What shaped a recommended price, in plain words (the rule names of
# ml.science.optimizer.RULES stored in `binding_rules`; approvals.NO_REASON: none bound it).
REASONS = {
    approvals.NO_REASON: "Best price for the expected demand (no rule held it)",
    "restores_rule": "Today's price breaks a rule",
    "min_margin": "Minimum markup over cost",
    "min_price": "Minimum price",
    "max_price": "Maximum price",
    "map": "Minimum advertised price (MAP)",
    "competitor": "Competitor position",
    "max_step": "Largest change per reprice",
    "window": "Most change allowed in the window",
    "wait": "Waiting for sales after a recent change",
    "evidence": "Kept near the prices it has sold at",
    "uncertainty": "Smaller move: the demand estimate is uncertain",
    "competitor_hinge": "Not raised past the competitor: demand may fall away above it",
    "ending": "Price ending",
    "min_gain": "Kept: the gain is too small or too uncertain",
    "min_units": "Keep minimum units (volume or clearance)",
    "min_revenue": "Keep minimum revenue",
    "reference": "No sales yet: moved toward the market price",
    "no_estimate": "No estimate of demand",
    "no_cost": "No cost known: revenue maximised",
    "no_cost_kept": "No cost known: today's price kept",
    "price_doubt": "Today's price in doubt: kept, check it",
    "conflict": "Contradictory rules",
}

# The sortable columns of the recommendations page: ?sort=<key> ascending, ?sort=-<key>
# descending; anything else is the default order (the largest profit impact first).
SORTS = {
    "sku": F("product__sku"),
    "title": F("product__title"),
    "price": F("current_price"),
    "new_price": Coalesce(F("approved_price"), F("recommended_price")),
    "change": F("change"),
    "gain": F("profit_delta"),
    "status": F("status"),
}
DEFAULT_SORT = "-gain"


def sort_key(value: str) -> str:
    """The whitelisted sort of a request's `sort` (the default for anything else)."""
    return value if value.removeprefix("-") in SORTS else DEFAULT_SORT


def recommendations(status: str, bulk_filter: approvals.BulkFilter, sort: str = DEFAULT_SORT):
    """The recommendations list in the status and filter, in a whitelisted order (see SORTS;
    empty values last either way). Any status (empty) leaves out the superseded ones, rows of
    older jobs that a newer job replaced; they show only when asked for by name."""
    sort = sort_key(sort)
    expr = SORTS[sort.removeprefix("-")]
    order = expr.desc(nulls_last=True) if sort.startswith("-") else expr.asc(nulls_last=True)
    queryset = Recommendation.objects.select_related("product").order_by(order, "pk")
    if status:
        queryset = queryset.filter(status=status)
    else:
        queryset = queryset.exclude(status=Recommendation.Status.SUPERSEDED)
    return approvals.filtered(queryset, bulk_filter)


def latest_recommended_job() -> int | None:
    """The newest job that left recommendations (its id), for "any status": the rows of the
    latest reprice, not every job's mixed."""
    return Recommendation.objects.order_by("-job_id").values_list("job_id", flat=True).first()


def bulk_preview(
    *, approve: bool, where: approvals.BulkFilter | None = None, ids: list[int] | None = None
) -> dict:
    """What a bulk decision over the pending recommendations matching `where`, or the ones
    named by `ids` (refused as the decision would refuse them: approvals.pending_by_ids),
    would do, read in one query: how many, how many prices go up and down, the average
    change, the expected profit and revenue change per day summed, and the token that the
    decision must present (approvals.bulk_token) so that it acts on exactly these rows."""
    if ids is not None:
        queryset = approvals.pending_by_ids(ids)
    else:
        pending = Recommendation.objects.filter(status=Recommendation.Status.PENDING)
        queryset = approvals.filtered(pending, where or approvals.BulkFilter())
    rows = list(
        queryset.order_by("pk")
        .values_list(
            "pk", "recommended_price", "current_price", "change", "profit_delta",
            "expected_revenue", "expected_revenue_now",
        )
    )  # fmt: skip
    up = sum(1 for r in rows if r[1] is not None and r[1] > r[2])
    down = sum(1 for r in rows if r[1] is not None and r[1] < r[2])
    profits = [r[4] for r in rows if r[4] is not None]
    return {
        "approve": approve,
        "count": len(rows),
        "up": up,
        "down": down,
        "same": len(rows) - up - down,
        "average_change": sum(r[3] for r in rows) / len(rows) if rows else 0.0,
        "profit_per_day": sum(profits),
        "without_profit": len(rows) - len(profits),  # no cost known: no profit figure
        "revenue_per_day": sum(r[5] - r[6] for r in rows),
        "token": approvals.bulk_token(approve=approve, rows=[(r[0], r[1]) for r in rows]),
    }


def publisher_words(name: str) -> dict:
    """The publisher a publication goes through, in words: a file made here, or a shop."""
    from pricing_saas.integrations.publishers import PUBLISHERS

    found = PUBLISHERS.get(name)
    return {
        "name": name,
        "label": found.label if found else name,
        "remote": bool(found and found.remote),
    }


def publish_preview(recommendation_ids: list[int] | None = None) -> dict:
    """What publishing now would send (every approved price, or the approved ones named),
    read as publish() reads it (publishing.approved, publishing.publishable):
    how many prices, how many go up and down, the average change, the expected profit and
    revenue change per day summed from the recommendations' forecasts (an edited price has
    none: its forecast is for the recommended price), how many were made against a price
    that has moved since (they fail, not sent), the publisher, and the token publish()
    must be given to act on exactly these (approvals.confirm_token)."""
    rows, _older, prices = publishing.publishable(publishing.approved(recommendation_ids))
    new = [publishing.new_price_of(r) for r in rows]
    forecast = [
        r for r in rows if r.approved_price is None or r.approved_price == r.recommended_price
    ]
    profits = [r.profit_delta for r in forecast if r.profit_delta is not None]
    changes = [float(p / r.current_price - 1) for r, p in zip(rows, new, strict=True)]
    up = sum(1 for r, p in zip(rows, new, strict=True) if p > r.current_price)
    down = sum(1 for r, p in zip(rows, new, strict=True) if p < r.current_price)
    return {
        "count": len(rows),
        "up": up,
        "down": down,
        "same": len(rows) - up - down,
        "average_change": sum(changes) / len(changes) if changes else 0.0,
        "profit_per_day": sum(profits),
        "revenue_per_day": sum(r.expected_revenue - r.expected_revenue_now for r in forecast),
        "without_profit": len(forecast) - len(profits),  # no cost known: no profit figure
        "edited": len(rows) - len(forecast),
        "moved": sum(1 for r in rows if prices.get(r.product_id) != r.current_price),
        "publisher": publisher_words(approvals.policy().publisher),
        "token": approvals.confirm_token(
            action=publishing.publish_action(), rows=publishing.publish_token_rows(rows)
        ),
    }


ROLLBACK_SAMPLE = 50  # the changes a rollback summary lists (the figures count them all)


def rollback_preview(job: RepriceJob) -> dict:
    """What rolling back the whole job would do, read as rollback() reads it
    (publishing.rollback_targets; its NotFoundError / ConflictError when it would be
    refused): how many prices return to the previous one, how many go up and down, the
    average change, the expected profit and revenue change per day from the forecasts made
    when they were published (back at the old price minus at the new one), the first
    ROLLBACK_SAMPLE of them (SKU, price now, price it returns to), and the token."""
    targets = sorted(publishing.rollback_targets(job=job), key=lambda c: c.pk)
    forecasts = {}
    ids = [c.pk for c in targets]
    for start in range(0, len(ids), 20_000):
        chunk = ids[start : start + 20_000]
        forecasts.update(
            (pk, rest)
            for pk, *rest in PriceChange.objects.filter(pk__in=chunk).values_list(
                "pk", "forecast_units_new", "forecast_units_old", "forecast_unit_cost"
            )
        )
    profit = revenue = 0.0
    with_forecast = with_profit = 0
    for c in targets:
        units_new, units_old, cost = forecasts.get(c.pk, (None, None, None))
        if units_new is None or units_old is None:
            continue
        with_forecast += 1
        old, new = float(c.old_price), float(c.new_price)
        revenue += old * units_old - new * units_new
        if cost is not None:
            with_profit += 1
            profit += (old - float(cost)) * units_old - (new - float(cost)) * units_new
    sample = targets[:ROLLBACK_SAMPLE]
    skus = dict(
        Product.objects.filter(pk__in=[c.product_id for c in sample]).values_list("pk", "sku")
    )
    up = sum(1 for c in targets if c.old_price > c.new_price)
    down = sum(1 for c in targets if c.old_price < c.new_price)
    changes = [float(c.old_price / c.new_price - 1) for c in targets]
    return {
        "count": len(targets),
        "up": up,
        "down": down,
        "same": len(targets) - up - down,
        "average_change": sum(changes) / len(changes) if changes else 0.0,
        "profit_per_day": profit,
        "revenue_per_day": revenue,
        "without_forecast": len(targets) - with_forecast,
        "without_profit": with_forecast - with_profit,
        "sample": [
            {
                "product_id": c.product_id,
                "sku": skus.get(c.product_id, ""),
                "now": c.new_price,
                "back_to": c.old_price,
            }
            for c in sample
        ],
        "publisher": publisher_words(approvals.policy().publisher),
        "token": approvals.confirm_token(
            action=publishing.rollback_action(job),
            rows=publishing.rollback_token_rows(targets),
        ),
    }


EXPORT_HEADER = [
    "sku", "title", "category", "status", "current_price", "new_price", "change_pct",
    "profit_change_per_day", "revenue_change_per_day", "competitor", "competitor_price",
    "reasons", "flag", "why", "job",
]  # fmt: skip


def export_rows(queryset):
    """The rows of a recommendations export (the page's filter and order), header first: one
    query read in chunks, values only (no model per row). Text cells go through safe_cell
    where they are written (web.spreadsheet)."""
    yield EXPORT_HEADER
    statuses = dict(Recommendation.Status.choices)
    rows = queryset.values(
        "product__sku", "product__title", "product__category", "status", "current_price",
        "approved_price", "recommended_price", "change", "profit_delta", "expected_revenue",
        "expected_revenue_now", "competitor_name", "competitor_price", "binding_rules", "flag",
        "explanation", "job_id",
    )  # fmt: skip
    for r in rows.iterator(chunk_size=2000):
        approved, profit = r["approved_price"], r["profit_delta"]
        rules = r["binding_rules"] or []
        yield [
            r["product__sku"], r["product__title"], r["product__category"],
            statuses.get(r["status"], r["status"]), r["current_price"],
            approved if approved is not None else r["recommended_price"],
            round(r["change"] * 100, 2), None if profit is None else round(profit, 2),
            round(r["expected_revenue"] - r["expected_revenue_now"], 2), r["competitor_name"],
            r["competitor_price"],
            "; ".join(REASONS.get(x, x) for x in rules) or REASONS[approvals.NO_REASON],
            r["flag"], r["explanation"], r["job_id"],
        ]  # fmt: skip


def categories(limit: int = 500):
    """The categories of the active catalog, for filters."""
    return (
        Product.objects.filter(active=True)
        .exclude(category="")
        .values_list("category", flat=True)
        .distinct()
        .order_by("category")[:limit]
    )


def latest_job() -> RepriceJob | None:
    return RepriceJob.objects.order_by("-created_at").first()


def recent_jobs(limit: int = 50):
    return RepriceJob.objects.order_by("-created_at")[:limit]


def schedules() -> list[RepriceSchedule]:
    return list(RepriceSchedule.objects.order_by("pk"))


def rule_sets():
    return RuleSet.objects.order_by("-priority", "name")


def published_from(job: RepriceJob) -> int:
    """How many of the job's recommendations are live in the shop (published, not undone)."""
    return PriceChange.objects.filter(
        job=job, status=PriceChange.Status.PUBLISHED, reverted=False, kind="recommendation"
    ).count()


def recent_publications(limit: int = 100):
    return Publication.objects.order_by("-created_at")[:limit]


def publication_changes(publication: Publication, status: str = ""):
    """A publication's changes (of one status, or all) in the order they were made, with
    their product: a queryset for a paginator, which reads one page of them (a publication
    may carry 100,000)."""
    queryset = PriceChange.objects.filter(publication=publication).select_related("product")
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("pk")


def publication_counts(publication: Publication) -> dict[str, int]:
    """How many of a publication's changes are in each status (every status, 0 if none)."""
    found = dict(
        PriceChange.objects.filter(publication=publication)
        .order_by()
        .values("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return {value: found.get(value, 0) for value in PriceChange.Status.values}


def approved_count() -> int:
    return Recommendation.objects.filter(status=Recommendation.Status.APPROVED).count()


def sku_history(product: Product) -> dict:
    """What the SKU page shows of one product: its latest recommendation, its last 50 price
    changes, a year of sales (oldest first), competitor observations and the lowest of them."""
    sales = list(
        SalesRecord.objects.filter(product=product)
        .order_by("-date")
        .values_list("date", "price", "units")[:365]
    )[::-1]
    offers = list(
        CompetitorOffer.objects.filter(product=product)
        .order_by("observed_at")
        .values_list("competitor", "observed_at", "price")[:2000]
    )
    return {
        "rec": Recommendation.objects.filter(product=product)
        .order_by("-created_at", "-pk")  # (two jobs of one transaction: the later)
        .first(),
        "changes": list(PriceChange.objects.filter(product=product).order_by("-created_at")[:50]),
        "sales": sales,
        "offers": offers,
        "lowest": CompetitorOffer.objects.filter(product=product).aggregate(p=Min("price"))["p"],
    }


def curve_chart(rec: Recommendation | None, product: Product) -> dict | None:
    """Expected profit (revenue without a cost) per day over the prices the SKU was seen at,
    from the one demand curve (ml.science.curve) of the job's demand model; its marks are
    today's price and the recommendation, which is the optimiser's best on the same curve."""
    from ml.selectors import demand_curve

    if rec is None or rec.elasticity is None or not rec.expected_units_now:
        return None
    job = RepriceJob.objects.filter(pk=rec.job_id).first()
    if job is None or job.demand_version is None:
        return None
    p0 = float(rec.current_price)
    competitor = float(rec.competitor_price) if rec.competitor_price is not None else np.nan
    # the job's curve as the job read it: the level carried as far as the job carried it to
    # its position against the competitor (ml.selectors.demand_curve), so the chart's figures
    # are the card's, whatever readings were imported since
    curve, known = demand_curve(
        job.demand_version, [product.pk], [p0], [product.category], [competitor],
        carried=[rec.level_carried],
    )  # fmt: skip
    if not known[0]:
        return None
    final = float(rec.final_price) if rec.final_price is not None else p0
    seen = [v for v in (curve.evidence_low[0], curve.evidence_high[0]) if np.isfinite(v)]
    low, high = min([p0, final, *seen]) * 0.95, max([p0, final, *seen]) * 1.05
    prices = np.linspace(low, high, 61)
    cost = float(product.cost) if product.cost else np.nan
    # the expected profit the card shows (a hinge the decision weighs as a mixture, as one)
    profit = curve.expected_profit(prices[None, :], [cost])[0]

    def at(price):
        return round(float(curve.expected_profit(np.array([[price]]), [cost])[0, 0]), 2)

    marks = {"today": p0, "recommended": final}
    return {
        "points": [
            {"x": round(float(p), 2), "y": round(float(v), 2)}
            for p, v in zip(prices, profit, strict=True)
        ],
        "marks": {name: {"x": round(price, 2), "y": at(price)} for name, price in marks.items()},
        "label": "profit per day" if product.cost else "revenue per day (no cost known)",
        "carried": _carried(rec, curve),
    }


def _carried(rec: Recommendation, curve) -> dict | None:
    """Where the job carried the product's level from the position against the competitor its
    model read it at to the job's (`Recommendation.level_carried`, as the job stored it): both
    positions (the price's % above or below the competitor's), the competitor's price the job's
    position is against, the factor, and whether today's position lies beyond those the
    product's own days have seen (then the level is carried only as far as they go), so the
    card can say why its units now are not what the model's days showed."""
    factor, then, now = rec.level_carried, rec.position_then, rec.position_now
    if factor is None or then is None or now is None:
        return None
    if abs(np.log(factor)) < 0.01:  # (within a per cent: nothing to explain)
        return None

    def side(gap: float) -> dict:
        return {"percent": round(abs(float(np.expm1(gap))) * 100, 1),
                "side": "above" if gap >= 0 else "below"}  # fmt: skip

    # what the two positions would carry it by, every move counted: the job counted only the
    # competitor's move beyond its readings' jitter (ml.selectors._counted)
    whole = float(np.exp(curve.from_position([then], [float(rec.current_price) / np.exp(now)])[0]))
    low, high = float(curve.gap_low[0]), float(curve.gap_high[0])
    seen = np.isfinite(low) and np.isfinite(high)
    furthest = min(max(now, low), high) if seen else now
    return {
        "factor": round(float(factor), 2),
        "then": side(then),
        "now": side(now),
        "competitor": round(float(rec.current_price) / float(np.exp(now)), 2),
        "furthest": side(furthest) if abs(furthest - now) > 1e-9 else None,
        "discounted": bool(abs(np.log(whole) - np.log(float(factor))) > 0.005),
    }
