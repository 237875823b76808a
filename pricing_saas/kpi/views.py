"""The Performance page: revenue, gross profit, units, margin and price index over time, with
the published price changes marked, for the tenant, a category or a reprice job's SKUs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from pricing_saas.web.errors import NotFoundError, ServiceError
from pricing_saas.web.views import tenant_view
from tenants.roles import Perm, has_perm

from . import alerts, selectors, services
from .models import Alert


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


# --- alerts ------------------------------------------------------------------------------------

POLICY_FORM_FIELDS = ("window_days", "min_changes", "max_wape", "min_coverage",
                      "max_profit_shortfall", "resolve_margin", "cooldown_hours",
                      "webhook_url")  # fmt: skip
# typed as percentages
PERCENT_FIELDS = ("max_wape", "min_coverage", "max_profit_shortfall", "resolve_margin")


def _policy_values(post) -> dict:
    """The form's values for alerts.save_policy: shares are typed as percentages (20 = 20 %)."""
    values: dict = {name: name in post for name in ("enabled", "retrain", "email_admins")}
    for name in POLICY_FORM_FIELDS:
        if name not in post:
            continue
        raw = post[name].strip()
        if name in PERCENT_FIELDS:
            try:
                raw = str(Decimal(raw.rstrip("% ")) / 100)
            except (InvalidOperation, ValueError, ArithmeticError):
                raise ServiceError(f"{name}: {raw[:40]!r} is not a percentage", attr=name) from None
        values[name] = raw
    return values


@tenant_view(post=Perm.MANAGE_SETTINGS)
def alert_list(request):
    """The alerts (open first) and, for those who manage settings, the policy that raises them:
    save it, check now, acknowledge an alert, replace the webhook's key."""
    if request.method == "POST":
        what = request.POST.get("action", "")
        try:
            if what == "save":
                saved = alerts.save_policy(**_policy_values(request.POST))
                messages.success(request, "Alert policy saved.")
                _show_key_once(request, saved)
            elif what == "check":
                opened = alerts.evaluate(wait=False)
                messages.success(
                    request,
                    f"Checked: {len(opened)} new alert{'s' if len(opened) != 1 else ''}.",
                )
            elif what == "acknowledge":
                alerts.acknowledge(alert_id=_int(request.POST.get("alert")), user=request.user)
                messages.success(request, "Alert marked as seen.")
            elif what == "rotate":
                _show_key_once(request, alerts.rotate_webhook_secret())
            else:
                messages.error(request, "Unknown action.")
        except ServiceError as exc:
            messages.error(request, f"{exc.attr}: {exc.detail}" if exc.attr else exc.detail)
        return redirect(reverse("kpi:alerts"))
    policy = alerts.policy()
    rows = list(Alert.objects.select_related("retraining", "acknowledged_by")[:200])
    return render(
        request,
        "kpi/alerts.html",
        {
            "open": [a for a in rows if a.status == Alert.Status.OPEN],
            "closed": [a for a in rows if a.status != Alert.Status.OPEN][:50],
            "policy": policy,
            "percent": {name: 100 * float(getattr(policy, name)) for name in PERCENT_FIELDS},
            "can_manage": has_perm(request.membership.role, Perm.MANAGE_SETTINGS),
            "lookback": alerts.LOOKBACK_DAYS,
        },
    )


def _show_key_once(request, policy) -> None:
    """A signing key just made: shown in this one message, never again (stored encrypted)."""
    key = getattr(policy, "new_webhook_secret", None)
    if key:
        messages.success(
            request,
            f"New webhook signing key: {key} — give it to the receiver now; it is stored "
            "encrypted and not shown again (replace it if lost).",
        )


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFoundError("no such alert", code="not_found") from None
