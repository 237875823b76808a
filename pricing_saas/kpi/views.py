"""The Performance page: revenue, gross profit, units, margin and price index over time, with
the published price changes marked, for the tenant, a category or a reprice job's SKUs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from pricing_saas.catalog.models import Product
from pricing_saas.catalog.spellings import MAX_ASKED, competitor_is, spelling
from pricing_saas.web.errors import NotFoundError, ServiceError
from pricing_saas.web.views import tenant_view
from tenants.roles import Perm, has_perm

from . import alerts, competitors, selectors, services, undercuts
from .models import Alert, UndercutAlert


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


# --- competitors -------------------------------------------------------------------------------

CHART_COMPETITORS = 8  # lines on the price-index chart (the competitors with most SKUs)
MOVES_PER_PAGE = 50
UNDERCUTS_PER_PAGE = 50
FOLLOWED_CHOICES = {"": None, "yes": True, "no": False}


def _page(request, rows, per_page: int):
    from django.core.paginator import Paginator

    return Paginator(rows, per_page).get_page(request.GET.get("page"))


def _query_without_page(request) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


@tenant_view(post=Perm.MANAGE_SETTINGS)
def competitor_view(request):
    """Per competitor: SKUs matched, price index today and over time, recent moves with the
    price changes of ours that followed them; the undercut threshold for those who manage
    settings."""
    if request.method == "POST":
        try:
            raw = request.POST.get("undercut_threshold", "").strip().rstrip("% ")
            share = ""
            if raw:
                try:
                    share = str(Decimal(raw) / 100)
                except (InvalidOperation, ValueError, ArithmeticError):
                    raise ServiceError(
                        f"{raw[:40]!r} is not a percentage", attr="undercut_threshold"
                    ) from None
            alerts.save_policy(undercut_threshold=share)
            messages.success(
                request,
                f"Undercut alerts above {raw} % saved; the offers in force are checked again."
                if raw
                else "Undercut alerts switched off.",
            )
        except ServiceError as exc:
            messages.error(request, f"{exc.attr}: {exc.detail}" if exc.attr else exc.detail)
        return redirect(reverse("kpi:competitors"))
    rows = competitors.summary()
    names = competitors.competitor_names()
    chosen = _name(request.GET.get("competitor", ""))
    followed_key = request.GET.get("followed", "")
    filters = competitors.MoveFilters(
        days=competitors.DEFAULT_MOVE_DAYS,
        competitor=chosen or None,
        followed=FOLLOWED_CHOICES.get(followed_key),
    )
    moves = _page(request, competitors.Moves(filters), MOVES_PER_PAGE)
    charted = [r["competitor"] for r in rows[:CHART_COMPETITORS]]
    if chosen and chosen not in charted:
        charted.append(chosen)
    series = competitors.index_series(competitors.DEFAULT_INDEX_DAYS) if charted else {}
    days = competitors.day_range(competitors.DEFAULT_INDEX_DAYS)
    chart = {
        "labels": [d.isoformat() for d in days],
        "lines": [
            {
                "label": name,
                "data": [
                    round(100 * p["index"], 1) if p else None
                    for p in ({q["date"]: q for q in series.get(name, [])}.get(d) for d in days)
                ],
            }
            for name in charted
        ],
    }
    policy = alerts.policy()
    threshold = policy.undercut_threshold
    return render(
        request,
        "kpi/competitors.html",
        {
            "rows": rows,
            "names": names,
            "chosen": chosen,
            "followed": followed_key,
            "moves": moves,
            "query": _query_without_page(request),
            "chart": chart,
            "threshold_pct": None if threshold is None else 100 * float(threshold),
            "can_manage": has_perm(request.membership.role, Perm.MANAGE_SETTINGS),
            "in_force_days": competitors.IN_FORCE_DAYS,
            "weight_days": competitors.WEIGHT_DAYS,
            "follow_days": competitors.FOLLOW_DAYS,
            "move_days": competitors.DEFAULT_MOVE_DAYS,
            "index_days": competitors.DEFAULT_INDEX_DAYS,
        },
    )


def _name(raw: str) -> str:
    """A competitor named in a page's query, as the tenant spells it ("": none)."""
    raw = raw.replace("\x00", "").strip()[:MAX_ASKED]  # (no name holds a NUL)
    return spelling(raw) if raw else ""


@tenant_view(post=Perm.MANAGE_SETTINGS)
def undercut_list(request):
    """The undercut alerts, open first, filtered by status, competitor and SKU or title; those
    who manage settings may check the offers in force now."""
    if request.method == "POST":
        result = undercuts.evaluate()
        messages.success(
            request,
            f"Checked: {len(result.opened)} new, {result.still_open} still open, "
            f"{len(result.cleared)} cleared.",
        )
        return redirect(reverse("kpi:undercuts"))
    status = request.GET.get("status", UndercutAlert.Status.OPEN)
    competitor = _name(request.GET.get("competitor", ""))
    search = request.GET.get("q", "").replace("\x00", "").strip()
    rows = UndercutAlert.objects.select_related("product")
    if status in UndercutAlert.Status.values:
        rows = rows.filter(status=status)
    else:
        status = ""
    if competitor:
        rows = competitor_is(rows, competitor)
    if search:
        rows = rows.filter(Q(product__sku__icontains=search) | Q(product__title__icontains=search))
    page = _page(request, rows.order_by("-opened_at", "-pk"), UNDERCUTS_PER_PAGE)
    for alert in page:
        alert.gap_words = competitors.gap_words(alert.our_price, alert.their_price)
    policy = alerts.policy()
    return render(
        request,
        "kpi/undercuts.html",
        {
            "page": page,
            "status": status,
            "statuses": UndercutAlert.Status.choices,
            "competitor": competitor,
            "names": competitors.competitor_names(),
            "q": search,
            "query": _query_without_page(request),
            "threshold_pct": None
            if policy.undercut_threshold is None
            else 100 * float(policy.undercut_threshold),
            "can_manage": has_perm(request.membership.role, Perm.MANAGE_SETTINGS),
        },
    )


@tenant_view()
@require_GET
def sku_competitors(request, pk: int):
    """The SKU page's competitor section (loaded into it): the offers in force with the gap to
    our price in words, and the SKU's undercut alerts."""
    product = get_object_or_404(Product, pk=pk)
    offers = list(competitors.offers_in_force().filter(product=product))
    open_alerts = {
        a.competitor: a
        for a in UndercutAlert.objects.filter(product=product, status=UndercutAlert.Status.OPEN)
    }
    for offer in offers:
        offer.gap_words = competitors.gap_words(product.price, offer.price)
        offer.undercut = open_alerts.get(offer.competitor)
    recent = UndercutAlert.objects.filter(product=product).order_by("-opened_at", "-pk")[:10]
    # loaded into the SKU page (htmx), or a page of its own without JavaScript
    fragment = request.headers.get("HX-Request") == "true"
    return render(
        request,
        "kpi/_sku_competitors.html" if fragment else "kpi/sku_competitors_page.html",
        {
            "product": product,
            "offers": offers,
            "alerts": recent,
            "in_force_days": competitors.IN_FORCE_DAYS,
        },
    )
