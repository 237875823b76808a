"""Every read of the pricing pages: querysets and figures, scoped to the current tenant by the
managers. Views format what these return; services write."""

from __future__ import annotations

import numpy as np
from django.db.models import Min

from pricing_saas.catalog.models import CompetitorOffer, Product, SalesRecord

from . import approvals
from .models import PriceChange, Publication, Recommendation, RepriceJob, RepriceSchedule, RuleSet


def recommendations(status: str, bulk_filter: approvals.BulkFilter):
    """The recommendations list, best gain first, in the status (all when empty) and filter."""
    queryset = Recommendation.objects.select_related("product").order_by("-profit_delta", "pk")
    if status:
        queryset = queryset.filter(status=status)
    return approvals.filtered(queryset, bulk_filter)


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
        "rec": Recommendation.objects.filter(product=product).order_by("-created_at").first(),
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
    curve, known = demand_curve(
        job.demand_version, [product.pk], [p0], [product.category], [competitor]
    )
    if not known[0]:
        return None
    final = float(rec.final_price) if rec.final_price is not None else p0
    seen = [v for v in (curve.evidence_low[0], curve.evidence_high[0]) if np.isfinite(v)]
    low, high = min([p0, final, *seen]) * 0.95, max([p0, final, *seen]) * 1.05
    prices = np.linspace(low, high, 61)
    cost = float(product.cost) if product.cost else np.nan
    profit = curve.profit(prices[None, :], [cost])[0]

    def at(price):
        return round(float(curve.profit(np.array([[price]]), [cost])[0, 0]), 2)

    marks = {"today": p0, "recommended": final}
    return {
        "points": [
            {"x": round(float(p), 2), "y": round(float(v), 2)}
            for p, v in zip(prices, profit, strict=True)
        ],
        "marks": {name: {"x": round(price, 2), "y": at(price)} for name, price in marks.items()},
        "label": "profit per day" if product.cost else "revenue per day (no cost known)",
    }
