"""Portal pages of the pricing workflow. Views parse and format; writes are service calls."""

from __future__ import annotations

import io
import tempfile
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pricing_saas.catalog.models import Product
from pricing_saas.web.errors import ServiceError
from pricing_saas.web.inputs import require_integer, require_number
from pricing_saas.web.spreadsheet import write_csv, write_xlsx
from pricing_saas.web.views import tenant_view
from tenants.roles import Perm, has_perm

from . import approvals, outcomes, publishing, rules, schedules, selectors, services
from .forms import PERCENT_FIELDS, PolicyForm, RuleSetForm, ScheduleForm
from .models import (
    PriceChange,
    Publication,
    Recommendation,
    RepriceJob,
    RepriceSchedule,
    RuleSet,
)

# The recommendations page's query parameters: its filters (each one a bulk decision over "all
# matching" takes), then how it is shown. Pagination, sort and export links keep them all.
FILTERS = (
    "status", "category", "min_change", "max_change", "min_profit_delta", "flagged", "job", "q",
    "reason",
)  # fmt: skip
SHOWN = ("sort", "page_size")
ALL_JOBS = "all"  # ?job=all: any status over every job's rows (else the latest job's)
PAGE_SIZES = (25, 50, 100, 250)
DEFAULT_PAGE_SIZE = 100
# The sortable columns, in the order of the table: (sort key, header, numeric)
COLUMNS = (
    ("sku", "SKU", False),
    ("title", "Product", False),
    ("price", "Today", True),
    ("new_price", "Recommended", True),
    ("change", "Change", True),
    ("gain", "Profit impact/day", True),
    ("status", "Status", False),
)


def _next(request, default: str) -> str:
    """Where to go after a form: `next` only when it is a path on this site (no open redirect)."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _window(request) -> int:
    """The outcome window of a page (?window=28), one of outcomes.WINDOWS."""
    value = request.GET.get("window", "")
    return int(value) if value.isdigit() and int(value) in outcomes.WINDOWS else outcomes.WINDOWS[0]


def _bulk_filter(params) -> approvals.BulkFilter:
    """The filters of the recommendations page (changes in %). A value that is not a number
    is a ServiceError naming it, never a filter dropped: a bulk decision over "the filtered
    ones" would otherwise take them all."""

    def number(name):
        value = (params.get(name) or "").strip()
        return require_number(value, attr=name) if value else None

    def pct(name):
        value = number(name)
        return None if value is None else value / 100

    job = (params.get("job") or "").strip()
    job = "" if job == ALL_JOBS else job
    return approvals.BulkFilter(
        category=params.get("category", ""),
        min_change=pct("min_change"),
        max_change=pct("max_change"),
        min_profit_delta=number("min_profit_delta"),
        job_id=require_integer(job, attr="job") if job else None,
        flagged=True if params.get("flagged") == "1" else None,
        search=params.get("q", ""),
        reason=params.get("reason", ""),
    )


def _listing(params) -> tuple[str, approvals.BulkFilter, int | None]:
    """The status, the filter and the job it is narrowed to by default: waiting for approval
    unless asked otherwise; any status means the latest job's rows unless a job (or every
    job, ?job=all) is named. Raises ServiceError for a filter that does not parse."""
    status = params.get("status", "pending")
    where = _bulk_filter(params)
    latest = None
    if not status and not params.get("job"):
        latest = where.job_id = selectors.latest_recommended_job()
    return status, where, latest


def _page_size(params) -> int:
    value = params.get("page_size", "")
    return int(value) if value.isdigit() and int(value) in PAGE_SIZES else DEFAULT_PAGE_SIZE


def _kept(params, names) -> dict:
    """The parameters among `names` that the request has (status even when empty: any)."""
    return {k: params[k] for k in names if params.get(k) or (k == "status" and k in params)}


def _headers(params, sort: str) -> list[dict]:
    """The sortable headers: the link toggling each column's order, the current order for
    aria-sort."""
    keep = _kept(params, (*FILTERS, "page_size"))
    out = []
    for key, label, numeric in COLUMNS:
        current = "ascending" if sort == key else "descending" if sort == f"-{key}" else "none"
        toggle = f"-{key}" if current == "ascending" else key
        if current == "none" and numeric:
            toggle = f"-{key}"  # figures: the largest first
        out.append(
            {
                "key": key,
                "label": label,
                "numeric": numeric,
                "aria_sort": current,
                "href": "?" + urlencode({**keep, "sort": toggle}),
            }
        )
    return out


@tenant_view(post=Perm.APPROVE)
@require_http_methods(["GET", "POST"])
def recommendations(request):
    if request.method == "POST":
        return _bulk(request)
    params = request.GET
    try:
        status, where, latest_job_only = _listing(params)
    except ServiceError as exc:
        messages.error(request, f"Filters not applied: {exc.detail}")
        status, where, latest_job_only = _listing({"status": params.get("status", "pending")})
    sort = selectors.sort_key(params.get("sort", ""))
    queryset = selectors.recommendations(status, where, sort)
    page = Paginator(queryset, _page_size(params)).get_page(params.get("page"))
    for rec in page:  # what shaped each price, in plain words
        rec.reason_words = [selectors.REASONS.get(r, r) for r in rec.binding_rules or []]
    categories = selectors.categories()
    return render(
        request,
        "pricing/recommendations.html",
        {
            "page": page,
            "status": status,
            "params": params,
            "categories": categories,
            "statuses": Recommendation.Status.choices,
            "reasons": selectors.REASONS.items(),
            "headers": _headers(params, sort),
            "page_sizes": PAGE_SIZES,
            "page_size": _page_size(params),
            "latest_job_only": latest_job_only,
            "all_jobs_query": urlencode(
                {**_kept(params, (*FILTERS, *SHOWN)), "status": "", "job": ALL_JOBS}
            ),
            "summary": approvals.pending_summary(),
            "query": urlencode(_kept(params, FILTERS + SHOWN)),
            "can_approve": has_perm(request.membership.role, Perm.APPROVE),
            "last_job": selectors.latest_job(),
        },
    )


def _bulk(request):
    post = request.POST
    approve = post.get("action") == "approve"
    comment = post.get("comment", "")
    back = reverse("pricing:recommendations") + "?" + post.get("query", "")
    where = ids = None
    try:
        if post.get("scope") == "filtered":
            where = _bulk_filter(post)
        else:
            ids = [int(x) for x in post.getlist("ids") if x.isdigit()]
            if not ids:
                raise ServiceError("tick at least one recommendation", attr="ids")
        if not post.get("confirm"):  # a summary first, then a second POST acts
            return _confirm(request, approve=approve, where=where, ids=ids)
        count = approvals.bulk_decide(
            approve=approve, where=where, ids=ids, comment=comment, expect=post["confirm"]
        )
    except ServiceError as exc:
        if exc.code == "changed":
            messages.warning(request, f"Not done: {exc.detail}. This is what they are now.")
            return _confirm(request, approve=approve, where=where, ids=ids, status=409)
        messages.error(request, exc.detail)
    else:
        messages.success(
            request, f"{count} recommendations {'approved' if approve else 'rejected'}."
        )
    return redirect(back)


def _confirm(request, *, approve: bool, where=None, ids=None, status: int = 200):
    """The impact summary of a bulk decision over the ticked rows or "all matching", with the
    form that acts on exactly the rows summarised (their token)."""
    post = request.POST
    back = reverse("pricing:recommendations") + "?" + post.get("query", "")
    try:
        preview = selectors.bulk_preview(approve=approve, where=where, ids=ids)
    except ServiceError as exc:  # a ticked row decided or replaced meanwhile
        messages.error(request, f"Not done: {exc.detail}.")
        return redirect(back)
    if not preview["count"]:
        messages.error(request, "No recommendation waiting for approval matches the filters.")
        return redirect(back)
    return render(
        request,
        "pricing/recommendations_confirm.html",
        {
            "preview": preview,
            "action": "approve" if approve else "reject",
            "filters": {k: post[k] for k in FILTERS if post.get(k) and k != "status"},
            "comment": post.get("comment", ""),
            "query": post.get("query", ""),
            "back": back,
            "described": _described(post) if ids is None else [],
            "ids": ids,
            "average_change": f"{preview['average_change'] * 100:+.1f} %",
        },
        status=status,
    )


def _described(params) -> list[str]:
    """The filters of a bulk decision in plain words, for its confirmation."""
    words = {
        "q": lambda v: f"the SKU or title contains “{v}”",
        "reason": lambda v: f"the reason is “{selectors.REASONS.get(v, v)}”",
        "category": lambda v: f"the category is {v}",
        "min_change": lambda v: f"the change is at least {v} %",
        "max_change": lambda v: f"the change is at most {v} %",
        "min_profit_delta": lambda v: f"the profit impact is at least {v} a day",
        "flagged": lambda v: "flagged for a person",
        "job": lambda v: f"from job #{v}",
    }
    return [words[k](params[k]) for k in words if params.get(k) not in (None, "", ALL_JOBS)]


@tenant_view()
@require_GET
def recommendations_export(request, fmt: str):
    """Exactly the rows the page shows for the same query (every page of them), as CSV or
    XLSX: one query, written to a temporary file inside the request's tenant context."""
    if fmt not in ("csv", "xlsx"):
        raise Http404("unknown export format")
    params = request.GET
    try:
        status, where, _latest = _listing(params)
    except ServiceError as exc:  # never "everything" for a filter that did not parse
        messages.error(request, f"Not exported: {exc.detail}")
        return redirect(
            reverse("pricing:recommendations") + "?" + urlencode(_kept(params, FILTERS + SHOWN))
        )
    queryset = selectors.recommendations(status, where, params.get("sort", ""))
    rows = selectors.export_rows(queryset)
    name = f"{request.tenant.slug}-recommendations.{fmt}"
    if fmt == "csv":
        handle = tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+b")  # noqa: SIM115 (FileResponse closes it)
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        write_csv(rows, text)
        text.flush()
        text.detach()
        handle.seek(0)
        return FileResponse(handle, as_attachment=True, filename=name, content_type="text/csv")
    handle = tempfile.NamedTemporaryFile(suffix=".xlsx")  # noqa: SIM115 (FileResponse closes it)
    write_xlsx(rows, handle.name, title="recommendations")
    handle.seek(0)
    return FileResponse(handle, as_attachment=True, filename=name)


@tenant_view(Perm.APPROVE)
@require_POST
def decide(request, pk: int):
    rec = get_object_or_404(Recommendation.objects.all(), pk=pk)
    approve = request.POST.get("action") != "reject"
    try:
        approvals.decide(
            recommendation=rec,
            approve=approve,
            price=request.POST.get("price") or None,
            comment=request.POST.get("comment", ""),
        )
    except ServiceError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Recommendation {'approved' if approve else 'rejected'}.")
    return redirect(_next(request, reverse("pricing:sku", args=[rec.product_id])))


def _every_day(rec) -> tuple[float, float] | None:
    """Expected units a day today and at the new price counted over every day, the product's
    recent promotions going on as they went (the card's are a shelf day's); None where that
    is within 2 % of the shelf day's or unknown."""
    lift = None if rec is None else rec.promo_lift
    if lift is None or abs(lift - 1) <= 0.02:
        return None
    return rec.expected_units_now * lift, rec.expected_units * lift


@tenant_view()
@require_GET
def sku(request, pk: int):
    product = get_object_or_404(Product.objects.all(), pk=pk)
    seen = selectors.sku_history(product)
    latest = (
        PriceChange.objects.filter(
            product=product,
            kind=PriceChange.Kind.RECOMMENDATION,
            status=PriceChange.Status.PUBLISHED,
        )
        .order_by("-published_at")
        .first()
    )  # the latest change only: a SKU's page stays as fast however long its history
    outcome = None
    if latest is not None:
        outcome = outcomes.outcome(PriceChange.objects.filter(pk=latest.pk), _window(request))
    rec, changes, sales, offers = seen["rec"], seen["changes"], seen["sales"], seen["offers"]
    by_competitor: dict[str, list] = {}
    for name, at, price in offers:
        by_competitor.setdefault(name, []).append({"x": at.date().isoformat(), "y": float(price)})
    published = [c for c in reversed(changes) if c.status == PriceChange.Status.PUBLISHED]
    charts = {
        "history": {
            "sales": [{"x": d.isoformat(), "y": float(p)} for d, p, _u in sales],
            "units": [{"x": d.isoformat(), "y": u} for d, _p, u in sales],
            "changes": [
                {"x": c.published_at.date().isoformat(), "y": float(c.new_price)} for c in published
            ],
        },
        "competitors": by_competitor,
        "curve": selectors.curve_chart(rec, product),
    }
    return render(
        request,
        "pricing/sku.html",
        {
            "product": product,
            "outcome": outcome,
            "rec": rec,
            # its published change was rolled back since: the card says so, not "Published"
            "rec_rolled_back": bool(
                rec and any(c.recommendation_id == rec.pk and c.reverted for c in changes)
            ),
            "changes": changes,
            "charts": charts,
            "every_day": _every_day(rec),
            "cost_derived": str(product.attributes.get("cost_source", "")).startswith("derived"),
            "cost_source": product.attributes.get("cost_source", ""),
            "lowest": seen["lowest"],
            "can_approve": has_perm(request.membership.role, Perm.APPROVE),
            "can_publish": has_perm(request.membership.role, Perm.PUBLISH),
        },
    )


# --- rules -------------------------------------------------------------------------------------


@tenant_view()
@require_GET
def rule_list(request):
    return render(
        request,
        "pricing/rules.html",
        {
            "rule_sets": selectors.rule_sets(),
            "defaults": rules.DEFAULTS,
            "can_edit": has_perm(request.membership.role, Perm.EDIT_RULES),
        },
    )


@tenant_view(Perm.EDIT_RULES)
@require_http_methods(["GET", "POST"])
def rule_edit(request, pk: int | None = None):
    rule_set = get_object_or_404(RuleSet.objects.all(), pk=pk) if pk else None
    categories = rules.categories()
    initial = {f: getattr(rule_set, f) for f in rules.EDITABLE} if rule_set else None
    if initial:
        typed = initial["scope_values"]
        if rule_set.scope == RuleSet.Scope.CATEGORY:  # the catalog's categories are ticked
            known = {name.casefold(): name for name, _n in categories}
            initial["categories"] = [known[v.casefold()] for v in typed if v.casefold() in known]
            typed = [v for v in typed if v.casefold() not in known]
        initial["scope_values"] = ", ".join(typed)
        for name in PERCENT_FIELDS:  # shares shown as percentages
            if initial.get(name) is not None:
                initial[name] = f"{(initial[name] * 100).normalize():f}"
    form = RuleSetForm(request.POST or None, initial=initial, categories=categories)
    if request.method == "POST" and form.is_valid():
        values = dict(form.cleaned_data)
        for name in PERCENT_FIELDS:
            if values.get(name) is not None:
                values[name] = values[name] / 100
        try:
            saved = rules.save_rule_set(rule_set=rule_set, values=values)
        except ServiceError as exc:
            detail = exc.detail
            if exc.attr in PERCENT_FIELDS:
                low, high, _meaning = rules.LIMITS[exc.attr]
                detail = (
                    f"{form.fields[exc.attr].label} must be between {float(low) * 100:g} and "
                    f"{float(high) * 100:g} %"
                )
            form.add_error(exc.attr if exc.attr in form.fields else None, detail)
        else:
            matched = rules.scope_matches(saved)
            text = f"Rule set {saved.name} saved (version {saved.version}): applies to "
            text += f"{matched['skus']:,} SKU{'s' if matched['skus'] != 1 else ''}."
            if matched["unmatched"]:
                messages.warning(
                    request,
                    text + " Nothing matches "
                    + ", ".join(f"“{v}”" for v in matched["unmatched"][:10])
                    + (f" (did you mean {', '.join(matched['suggestions'][:5])}?)"
                       if matched["suggestions"] else ""),
                )  # fmt: skip
            else:
                messages.success(request, text)
            return redirect("pricing:rules")
    versions = rule_set.versions.order_by("-version")[:20] if rule_set else []
    scope = form.data.get("scope") if form.is_bound else (initial or {}).get("scope", "all")
    values = rule_set.scope_values if rule_set and not form.is_bound else _typed_scope(form.data)
    return render(
        request,
        "pricing/rule_edit.html",
        {
            "form": form,
            "rule_set": rule_set,
            "versions": versions,
            "preview": _scope_preview(scope, values),
        },
        status=400 if form.errors else 200,
    )


def _typed_scope(data) -> list[str]:
    return [*rules.scope_values_of(data.get("scope_values", "")), *data.getlist("categories")]


def _scope_preview(scope, values) -> dict:
    if scope not in RuleSet.Scope.values:
        scope = RuleSet.Scope.ALL
    preview = rules.scope_preview(scope, values)
    return {**preview, "scope": scope, "empty": scope != RuleSet.Scope.ALL and not values}


@tenant_view(Perm.EDIT_RULES)
@require_GET
def rule_preview(request):
    """The rule form's live count: how many SKUs the scope being typed takes in (and a
    warning naming the values that match none), before anything is saved."""
    preview = _scope_preview(request.GET.get("scope"), _typed_scope(request.GET))
    return render(request, "pricing/_scope_preview.html", {"preview": preview})


@tenant_view(Perm.EDIT_RULES)
@require_POST
def rule_delete(request, pk: int):
    rule_set = get_object_or_404(RuleSet.objects.all(), pk=pk)
    rules.delete_rule_set(rule_set=rule_set)
    messages.success(request, f"Rule set {rule_set.name} deleted.")
    return redirect("pricing:rules")


# --- jobs and schedules -----------------------------------------------------------------------


@tenant_view(post=Perm.RUN_JOBS)
@require_http_methods(["GET", "POST"])
def jobs(request):
    if request.method == "POST":
        job = services.start_reprice(trigger="manual")
        messages.success(request, f"Reprice job {job.pk} is {job.status}.")
        return redirect("pricing:job_detail", pk=job.pk)
    initial = {"timezone": request.tenant.timezone}
    if RepriceSchedule.objects.exists():  # a second schedule: no copy of the first's defaults
        initial.update(name="", cron="")
    form = ScheduleForm(initial=initial)
    return render(request, "pricing/jobs.html", _jobs_context(request, form))


def _jobs_context(request, form):
    items = selectors.schedules()
    for item in items:
        item.next = schedules.next_run(item)
    return {
        "jobs": selectors.recent_jobs(),
        "schedules": items,
        "form": form,
        "can_run": has_perm(request.membership.role, Perm.RUN_JOBS),
        "can_edit": has_perm(request.membership.role, Perm.EDIT_RULES),
    }


@tenant_view()
@require_GET
def job_detail(request, pk: int):
    job = get_object_or_404(RepriceJob.objects.all(), pk=pk)
    template = "pricing/_job_progress.html" if request.htmx else "pricing/job_detail.html"
    published = selectors.published_from(job)
    outcome = None
    if published and not request.htmx:
        outcome = outcomes.outcome(PriceChange.objects.filter(job=job), _window(request))
    return render(
        request,
        template,
        {
            "job": job,
            "published": published,
            "outcome": outcome,
            "can_run": has_perm(request.membership.role, Perm.RUN_JOBS),
            "can_publish": has_perm(request.membership.role, Perm.PUBLISH),
        },
    )


@tenant_view(Perm.RUN_JOBS)
@require_POST
def job_cancel(request, pk: int):
    job = get_object_or_404(RepriceJob.objects.all(), pk=pk)
    try:
        services.cancel_reprice(job=job)
        messages.success(request, f"Job {job.pk}: cancellation requested.")
    except ServiceError as exc:
        messages.error(request, exc.detail)
    return redirect("pricing:job_detail", pk=pk)


@tenant_view(Perm.PUBLISH)
@require_POST
def job_rollback(request, pk: int):
    """Rolling back a whole job, in two steps: the summary of what returns (a first POST), then
    the rollback of exactly those changes (a second POST with the summary's token)."""
    job = get_object_or_404(RepriceJob.objects.all(), pk=pk)
    comment = request.POST.get("comment", "")
    token = request.POST.get("confirm", "")
    try:
        if not token:
            return _rollback_confirm(request, job)
        publication = publishing.rollback(job=job, comment=comment, expect=token)
    except ServiceError as exc:
        if exc.code == "changed":
            messages.warning(request, f"Not done: {exc.detail}. This is what it would do now.")
            try:
                return _rollback_confirm(request, job, status=409)
            except ServiceError as now:  # nothing left to roll back, or refused now
                exc = now
        messages.error(request, exc.detail)
        return redirect("pricing:job_detail", pk=pk)
    messages.success(
        request,
        f"Rolling back job {job.pk}: {publication.changes} prices back to the previous "
        f"(publication {publication.pk}).",
    )
    return redirect("pricing:publication_detail", pk=publication.pk)


def _rollback_confirm(request, job: RepriceJob, status: int = 200):
    """The summary of rolling back `job`, with the form that acts on exactly those changes.
    A rollback that would be refused raises its ServiceError here, before any summary."""
    preview = selectors.rollback_preview(job)
    return render(
        request,
        "pricing/rollback_confirm.html",
        {
            "job": job,
            "preview": preview,
            "comment": request.POST.get("comment", ""),
            "average_change": f"{preview['average_change'] * 100:+.1f} %",
        },
        status=status,
    )


@tenant_view(Perm.EDIT_RULES)
@require_POST
def schedule_save(request, pk: int | None = None):
    schedule = get_object_or_404(RepriceSchedule.objects.all(), pk=pk) if pk else None
    form = ScheduleForm(request.POST)
    if form.is_valid():
        try:
            saved = schedules.save_schedule(schedule=schedule, values=form.cleaned_data)
        except ServiceError as exc:
            form.add_error(exc.attr if exc.attr in form.fields else None, exc.detail)
        else:
            messages.success(request, f"Schedule saved: {saved}.")
            return redirect("pricing:jobs")
    return render(request, "pricing/jobs.html", _jobs_context(request, form), status=400)


@tenant_view(Perm.EDIT_RULES)
@require_POST
def schedule_delete(request, pk: int):
    schedules.delete_schedule(schedule=get_object_or_404(RepriceSchedule.objects.all(), pk=pk))
    messages.success(request, "Schedule deleted.")
    return redirect("pricing:jobs")


# --- publishing, policy, kill switch ----------------------------------------------------------


@tenant_view(post=Perm.PUBLISH)
@require_http_methods(["GET", "POST"])
def publications(request):
    if request.method == "POST":
        return _publish(request)
    return render(
        request,
        "pricing/publications.html",
        {
            "publications": selectors.recent_publications(),
            "approved": selectors.approved_count(),
            "can_publish": has_perm(request.membership.role, Perm.PUBLISH),
        },
    )


def _publish(request):
    """Publishing in two steps: the summary of what goes out (a first POST), then the
    publication of exactly those prices (a second POST with the summary's token)."""
    token = request.POST.get("confirm", "")
    try:
        if not token:
            approvals.require_switch_off("publishing")  # no summary of what cannot go
            return _publish_confirm(request)
        publication = publishing.publish(expect=token)
    except ServiceError as exc:
        if exc.code == "changed":
            messages.warning(request, f"Not done: {exc.detail}. This is what it would send now.")
            return _publish_confirm(request, status=409)
        messages.error(request, exc.detail)
        return redirect("pricing:publications")
    messages.success(request, f"Publication {publication.pk}: {publication.changes} prices.")
    return redirect("pricing:publication_detail", pk=publication.pk)


def _publish_confirm(request, status: int = 200):
    preview = selectors.publish_preview()
    if not preview["count"] and status == 200:
        messages.error(request, "Nothing approved is waiting to be published.")
        return redirect("pricing:publications")
    return render(
        request,
        "pricing/publish_confirm.html",
        {"preview": preview, "average_change": f"{preview['average_change'] * 100:+.1f} %"},
        status=status,
    )


PUBLICATION_PAGE_SIZE = 100


@tenant_view()
@require_GET
def publication_detail(request, pk: int):
    """A publication's changes, one page at a time (it may carry 100,000), of one status or
    all, with their SKU, kind, prices, status in words, failure reason and times."""
    publication = get_object_or_404(Publication.objects.all(), pk=pk)
    status = request.GET.get("status", "")
    if status and status not in PriceChange.Status.values:
        messages.error(request, f"Unknown status “{status[:50]}”: every change is shown.")
        status = ""
    changes = selectors.publication_changes(publication, status)
    page = Paginator(changes, PUBLICATION_PAGE_SIZE).get_page(request.GET.get("page"))
    counts = selectors.publication_counts(publication)
    return render(
        request,
        "pricing/publication_detail.html",
        {
            "publication": publication,
            "page": page,
            "status": status,
            "query": urlencode({"status": status} if status else {}),
            "filters": [
                {"value": value, "label": label, "count": counts[value]}
                for value, label in PriceChange.Status.choices
            ],
            "total": sum(counts.values()),
            "failed": counts[PriceChange.Status.FAILED],
            "publisher": selectors.publisher_words(publication.publisher),
            "can_publish": has_perm(request.membership.role, Perm.PUBLISH),
            "retries": list(publication.retries.order_by("pk")),
        },
    )


@tenant_view()
@require_GET
def publication_download(request, pk: int):
    publication = get_object_or_404(Publication.objects.all(), pk=pk)
    if not publication.file:
        raise Http404("no file")
    return FileResponse(
        publication.file.open("rb"),
        as_attachment=True,
        filename=publication.file.name.rsplit("/", 1)[-1],
    )


@tenant_view(Perm.PUBLISH)
@require_POST
def publication_retry(request, pk: int):
    publication = get_object_or_404(Publication.objects.all(), pk=pk)
    try:
        retry = publishing.retry_publication(publication=publication)
    except ServiceError as exc:
        messages.error(request, exc.detail)
        return redirect(_next(request, reverse("pricing:publications")))
    messages.success(request, f"Retrying as publication {retry.pk}.")
    return redirect("pricing:publication_detail", pk=retry.pk)


@tenant_view(Perm.PUBLISH)
@require_POST
def change_rollback(request, pk: int):
    change = get_object_or_404(PriceChange.objects.all(), pk=pk)
    try:
        publishing.rollback(change_ids=[change.pk], comment=request.POST.get("comment", ""))
        messages.success(request, "Rolled back to the previous price.")
    except ServiceError as exc:
        messages.error(request, exc.detail)
    return redirect("pricing:sku", pk=change.product_id)


@tenant_view(post=Perm.MANAGE_SETTINGS)
@require_http_methods(["GET", "POST"])
def policy_settings(request):
    current = approvals.policy()
    form = PolicyForm(
        request.POST or None, initial={f: getattr(current, f) for f in approvals.POLICY_FIELDS}
    )
    can_manage = has_perm(request.membership.role, Perm.MANAGE_SETTINGS)
    if request.method == "POST" and form.is_valid():
        try:
            approvals.update_policy(**form.cleaned_data)
        except ServiceError as exc:
            form.add_error(exc.attr if exc.attr in form.fields else None, exc.detail)
        else:
            messages.success(request, "Policy saved.")
            return redirect("pricing:settings")
    return render(
        request,
        "pricing/settings.html",
        {
            "form": form,
            "policy": current,
            "can_manage": can_manage,
            "can_switch": has_perm(request.membership.role, Perm.PUBLISH),
        },
        status=400 if form.errors else 200,
    )


@tenant_view(Perm.PUBLISH)
@require_POST
def kill_switch(request):
    on = request.POST.get("on") == "1"
    approvals.set_kill_switch(on=on, reason=request.POST.get("reason", "")[:500])
    messages.success(request, "Kill switch ON." if on else "Kill switch off: automation resumed.")
    return redirect(_next(request, reverse("pricing:settings")))
