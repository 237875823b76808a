"""Reads of the KPI facts for the Performance page and the API: a daily series for the tenant,
a category or the SKUs of a reprice job, its totals, and the published price changes on the
same timeline. Everything goes through the scoped managers (the current tenant's rows only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import (
    Avg,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    FloatField,
    Max,
    Q,
    Sum,
)
from django.db.models.functions import Cast, TruncDate

from pricing_saas.pricing import selectors as pricing_selectors
from pricing_saas.pricing.models import PriceChange, RepriceJob
from pricing_saas.web.errors import NotFoundError, ServiceError
from pricing_saas.web.inputs import require_integer
from tenants.context import require_current_tenant

from .models import DailyKpi

DEFAULT_DAYS = 90  # the window shown when none is asked for, ending at the latest fact
MAX_DAYS = 3 * 366  # the longest window one request may read


@dataclass(frozen=True)
class Filters:
    date_from: dt.date
    date_to: dt.date
    category: str | None = None
    job: RepriceJob | None = None

    def as_params(self) -> dict:
        return {
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "category": self.category,
            "job": self.job.pk if self.job else None,
        }


def filters_from(params: Mapping) -> Filters:
    """The filters of a request's query (`category`, `job`, `from`, `to`); a job that is not
    the current tenant's is NotFoundError (as a missing one), a malformed value ServiceError."""
    category = (params.get("category") or "").strip() or None
    if category is not None and len(category) > 200:
        raise ServiceError("at most 200 characters", attr="category")
    job = None
    if params.get("job"):
        job_id = require_integer(params["job"], attr="job")
        job = RepriceJob.objects.filter(pk=job_id).first()
        if job is None:
            raise NotFoundError(f"no reprice job {job_id}", attr="job")
    date_to = _day(params, "to") or latest_day() or dt.date.today()
    date_from = _day(params, "from") or date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
    if date_from > date_to:
        raise ServiceError("`from` is after `to`", attr="from")
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise ServiceError(f"at most {MAX_DAYS} days at once", attr="from")
    return Filters(date_from=date_from, date_to=date_to, category=category, job=job)


def _day(params: Mapping, name: str) -> dt.date | None:
    text = params.get(name)
    if not text:
        return None
    try:
        return dt.date.fromisoformat(str(text))
    except ValueError:
        raise ServiceError("not a date (use YYYY-MM-DD)", attr=name) from None


def latest_day() -> dt.date | None:
    return DailyKpi.objects.aggregate(last=Max("date"))["last"]


def job_product_ids(job: RepriceJob):
    """The SKUs of a reprice job: the products of its published price changes (a subquery)."""
    return PriceChange.objects.filter(job=job, status=PriceChange.Status.PUBLISHED).values(
        "product_id"
    )


def facts(filters: Filters):
    queryset = DailyKpi.objects.filter(date__range=(filters.date_from, filters.date_to))
    if filters.category is not None:
        queryset = queryset.filter(product__category=filters.category)
    if filters.job is not None:
        queryset = queryset.filter(product_id__in=job_product_ids(filters.job))
    return queryset


# --- the series --------------------------------------------------------------------------------

_PRICED = Q(competitor_price__isnull=False, units__gt=0)
_SUMS = {
    "units": Sum("units"),
    "revenue": Sum("revenue"),
    "profit": Sum("profit"),
    "revenue_with_cost": Sum("revenue", filter=Q(cost_known=True)),
    "profit_derived": Sum("profit", filter=Q(cost_derived=True)),
    "revenue_derived": Sum("revenue", filter=Q(cost_derived=True)),
    # Price index, units-weighted: sum(units * own average price / competitor price) / units,
    # over the facts with a competitor price; own average price = revenue / units.
    "index_sum": Sum(
        ExpressionWrapper(
            F("revenue") / F("competitor_price"),
            output_field=DecimalField(max_digits=30, decimal_places=10),
        ),
        filter=_PRICED,
    ),
    "index_units": Sum("units", filter=_PRICED),
}


@dataclass
class Performance:
    filters: Filters
    currency: str
    series: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    changes: list[dict] = field(default_factory=list)


def performance(filters: Filters) -> Performance:
    """The daily series (days with facts only, oldest first), its totals and the change
    markers for the filters."""
    aliased = {f"sum_{key}": aggregate for key, aggregate in _SUMS.items()}
    rows = [
        {"date": row["date"], **{key: row[f"sum_{key}"] for key in _SUMS}}
        for row in facts(filters).values("date").annotate(**aliased).order_by("date")
    ]
    series = [_point(row) for row in rows]
    sums = {key: _sum_or_none(row[key] for row in rows) for key in _SUMS}
    totals = _point({"date": None, **sums})
    totals.pop("date")
    revenue, with_cost = sums["revenue"], sums["revenue_with_cost"]
    totals["cost_coverage"] = _ratio(with_cost, revenue)
    totals["derived_share"] = _ratio(sums["revenue_derived"], with_cost)
    totals["days"] = len(rows)
    return Performance(
        filters=filters,
        currency=require_current_tenant().default_currency,
        series=series,
        totals=totals,
        changes=change_markers(filters),
    )


def _sum_or_none(values):
    """The sum of the values that are not None; None when all are."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _ratio(part, whole) -> float | None:
    """part / whole; None where the whole is nothing (a part that is None counts as 0)."""
    if not whole:
        return None
    return float(Decimal(part or 0) / Decimal(whole))


def _money(value) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(Decimal("0.01"))


def _point(row: dict) -> dict:
    return {
        "date": row["date"],
        "units": int(row["units"] or 0),
        "revenue": _money(row["revenue"] or 0),
        "profit": _money(row["profit"]),
        "revenue_with_cost": _money(row["revenue_with_cost"]),
        "margin": _ratio(row["profit"], row["revenue_with_cost"]),
        "profit_derived": _money(row["profit_derived"]),
        "price_index": _ratio(row["index_sum"], row["index_units"]),
    }


def change_markers(filters: Filters) -> list[dict]:
    """The published price changes of the filtered products in the window, per local day, job
    and kind (a rollback is its own marker): how many, how many up and down, the mean change."""
    zone = ZoneInfo(require_current_tenant().timezone)
    start = dt.datetime.combine(filters.date_from, dt.time(), zone)
    end = dt.datetime.combine(filters.date_to + dt.timedelta(days=1), dt.time(), zone)
    queryset = PriceChange.objects.filter(
        status=PriceChange.Status.PUBLISHED, published_at__gte=start, published_at__lt=end
    )
    if filters.category is not None:
        queryset = queryset.filter(product__category=filters.category)
    if filters.job is not None:
        queryset = queryset.filter(product_id__in=job_product_ids(filters.job))
    relative = ExpressionWrapper(
        Cast(F("new_price") - F("old_price"), FloatField()) / Cast(F("old_price"), FloatField()),
        output_field=FloatField(),
    )
    rows = (
        queryset.annotate(day=TruncDate("published_at", tzinfo=zone))
        .values("day", "job_id", "kind")
        .annotate(
            count=Count("pk"),
            rises=Count("pk", filter=Q(new_price__gt=F("old_price"))),
            cuts=Count("pk", filter=Q(new_price__lt=F("old_price"))),
            mean_change=Avg(relative),
        )
        .order_by("day", "job_id", "kind")
    )
    return [
        {
            "date": row["day"],
            "job": row["job_id"],
            "kind": row["kind"],
            "count": row["count"],
            "rises": row["rises"],
            "cuts": row["cuts"],
            "mean_change": row["mean_change"],
        }
        for row in rows
    ]


# --- the filters' choices ------------------------------------------------------------------------


def categories():
    return pricing_selectors.categories()


def jobs_with_published_changes(limit: int = 50):
    """Reprice jobs whose changes went live, newest first (the job filter's choices)."""
    published = PriceChange.objects.filter(
        status=PriceChange.Status.PUBLISHED, job__isnull=False
    ).values("job_id")
    return RepriceJob.objects.filter(pk__in=published).order_by("-created_at")[:limit]
