"""Portal pages of the models: registry with metrics, history and training progress; the
mispricing view of products priced far outside their reference-price interval."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import F, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from pricing_saas.web.errors import ServiceError
from pricing_saas.web.views import tenant_view
from tenants.roles import Perm

from . import selectors, services
from .models import ModelVersion, ReferencePrice


@tenant_view()
@require_GET
def models_page(request):
    versions = ModelVersion.objects.filter(kind="text").order_by("-version")[:50]
    demand = list(ModelVersion.objects.filter(kind="demand").order_by("-version")[:50])
    for version in demand:  # the few figures the table shows, read once
        fit = version.metrics.get(version.trainer or "", {})
        version.pooled = fit.get("pooled_elasticity")
        version.pooled_se = fit.get("pooled_se")
    promoted = ModelVersion.Status.PROMOTED
    return render(
        request,
        "ml/models.html",
        {
            "versions": versions,
            "promoted": next((v for v in versions if v.status == promoted), None),
            "running": next((v for v in versions if v.is_active), None),
            "config": services.text_config(),
            "trainers": services.TRAINERS,
            "demand_versions": demand,
            "demand_promoted": next((v for v in demand if v.status == promoted), None),
            "demand_running": next((v for v in demand if v.is_active), None),
        },
    )


def _kind(request) -> str:
    """The model kind a form names (the reference-price model when it names none)."""
    kind = request.POST.get("kind") or ModelVersion.Kind.TEXT
    if kind not in ModelVersion.Kind.values:
        raise ServiceError(f"unknown model kind {kind!r}", code="invalid_choice")
    return kind


@tenant_view()
@require_GET
def training_progress(request, pk: int):
    version = get_object_or_404(ModelVersion.objects.all(), pk=pk)
    response = render(request, "ml/_progress.html", {"version": version})
    if not version.is_active and request.htmx:
        response["HX-Refresh"] = "true"
    return response


def _act(request, action, success: str):
    try:
        action()
    except ServiceError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, success)
    return redirect("ml:models")


@tenant_view(Perm.TRAIN_MODELS)
@require_POST
def train(request):
    trainer = request.POST.get("trainer") or None

    def start():
        kind = _kind(request)  # the trainer choice belongs to the reference-price model
        text = kind == ModelVersion.Kind.TEXT
        return services.start_training(
            kind=kind, user=request.user, trainer=trainer if text else None
        )

    return _act(request, start, "Training queued: the progress bar below follows it.")


@tenant_view(Perm.TRAIN_MODELS)
@require_POST
def promote(request, pk: int):
    version = get_object_or_404(ModelVersion.objects.all(), pk=pk)
    return _act(
        request,
        lambda: services.promote(version=version),
        f"Version {version.version} is in force.",
    )


@tenant_view(Perm.TRAIN_MODELS)
@require_POST
def cancel(request, pk: int):
    version = get_object_or_404(ModelVersion.objects.all(), pk=pk)
    return _act(request, lambda: services.cancel(version=version), "Cancelling the training run.")


@tenant_view(Perm.TRAIN_MODELS)
@require_POST
def rollback(request):
    return _act(
        request,
        lambda: services.rollback(kind=_kind(request)),
        "Rolled back to the previous version.",
    )


@tenant_view()
@require_GET
def mispricing(request):
    """Products whose own price lies outside their reference-price interval, worst first (a
    reference far outside its category's prices is no evidence of mispricing: left out)."""
    rows = (
        ReferencePrice.objects.select_related("product")
        .filter(outside_category_range=False)
        .filter(Q(product__price__lt=F("low")) | Q(product__price__gt=F("high")))
        .annotate(ratio=F("product__price") / F("price"))
        .order_by("-ratio")
    )
    direction = request.GET.get("direction", "")
    if direction == "above":
        rows = rows.filter(product__price__gt=F("high"))
    elif direction == "below":
        rows = rows.filter(product__price__lt=F("low")).order_by("ratio")
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "ml/mispricing.html",
        {"page": page, "direction": direction, "promoted": selectors.promoted_version()},
    )
