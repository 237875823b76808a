"""The Performance page: revenue, gross profit, units, margin and price index over time, with
the published price changes marked, for the tenant, a category or a reprice job's SKUs."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from pricing_saas.web.errors import NotFoundError, ServiceError
from pricing_saas.web.views import tenant_view
from tenants.roles import Perm, has_perm

from . import selectors, services


def _num(value):
    return None if value is None else float(value)


def _pct(share: float | None) -> float | None:
    return None if share is None else 100 * share


def _marker_text(marker: dict) -> str:
    what = "rollback" if marker["kind"] == "rollback" else "price change"
    plural = "s" if marker["count"] != 1 else ""
    job = f" (job #{marker['job']})" if marker["job"] else ""
    return f"{marker['count']} {what}{plural}{job}: {marker['rises']} up, {marker['cuts']} down"


@tenant_view()
@require_GET
def performance(request):
    try:
        filters = selectors.filters_from(request.GET)
    except NotFoundError as exc:
        raise Http404(exc.detail) from None
    except ServiceError as exc:
        messages.error(request, f"{exc.attr}: {exc.detail}" if exc.attr else exc.detail)
        filters = selectors.filters_from({})
    data = selectors.performance(filters)
    by_day = {p["date"]: p for p in data.series}
    days = [
        filters.date_from + dt.timedelta(days=i)
        for i in range((filters.date_to - filters.date_from).days + 1)
    ]
    point = [by_day.get(d) for d in days]
    charts = {
        "labels": [d.isoformat() for d in days],  # every day: gaps where nothing was sold
        "revenue": [_num(p["revenue"]) if p else None for p in point],
        "profit": [_num(p["profit"]) if p else None for p in point],
        "units": [p["units"] if p else None for p in point],
        "margin": [
            round(100 * p["margin"], 2) if p and p["margin"] is not None else None for p in point
        ],
        "price_index": [
            round(p["price_index"], 4) if p and p["price_index"] is not None else None
            for p in point
        ],
        "markers": [{"date": m["date"].isoformat(), "text": _marker_text(m)} for m in data.changes],
    }
    for marker in data.changes:
        change = marker["mean_change"]
        marker["mean_pct"] = None if change is None else round(100 * change, 1)
    totals = data.totals
    summary = {
        "margin": _pct(totals["margin"]),
        "coverage": _pct(totals["cost_coverage"]),
        "derived": _pct(totals["derived_share"]),
    }
    job_skus = selectors.job_product_ids(filters.job).distinct().count() if filters.job else None
    return render(
        request,
        "kpi/performance.html",
        {
            "data": data,
            "summary": summary,
            "job_skus": job_skus,
            "filters": filters,
            "charts": charts,
            "categories": selectors.categories(),
            "jobs": selectors.jobs_with_published_changes(),
            "can_refresh": has_perm(request.membership.role, Perm.IMPORT_DATA),
        },
    )


@tenant_view(post=Perm.IMPORT_DATA)
@require_POST
def refresh(request):
    """Recompute every fact (in the background): after data arrived by a path that does not
    queue a refresh itself (the import_csv command, the API's JSON bulk upserts)."""
    services.request_refresh()
    messages.success(request, "The KPI facts are being recomputed; reload in a minute.")
    return redirect(reverse("kpi:performance"))
