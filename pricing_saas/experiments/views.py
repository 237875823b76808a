"""Portal pages of A/B price tests: the list, one test's result with its verdict, stop."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from pricing_saas.web.errors import ServiceError
from pricing_saas.web.views import tenant_view
from tenants.roles import Perm, has_perm

from . import services
from .models import Experiment


@tenant_view()
@require_GET
def experiment_list(request):
    tests = Experiment.objects.order_by("-created_at")[:200]
    return render(request, "experiments/list.html", {"experiments": tests})


@tenant_view()
@require_GET
def experiment_detail(request, pk: int):
    experiment = get_object_or_404(Experiment.objects.all(), pk=pk)
    units = experiment.units.select_related("product").order_by("arm", "product__sku")[:500]
    return render(
        request,
        "experiments/detail.html",
        {
            "experiment": experiment,
            "result": experiment.result,
            "units": units,
            "can_run": has_perm(request.membership.role, Perm.RUN_JOBS),
            "can_approve": has_perm(request.membership.role, Perm.APPROVE),
            "can_publish": has_perm(request.membership.role, Perm.PUBLISH),
        },
    )


@tenant_view(Perm.RUN_JOBS)
@require_POST
def experiment_report(request, pk: int):
    experiment = get_object_or_404(Experiment.objects.all(), pk=pk)
    try:
        services.report(experiment=experiment)
    except ServiceError as exc:
        messages.error(request, exc.detail)
    return redirect("experiments:detail", pk=pk)


@tenant_view(Perm.RUN_JOBS)
@require_POST
def experiment_stop(request, pk: int):
    experiment = get_object_or_404(Experiment.objects.all(), pk=pk)
    try:
        services.stop(experiment=experiment)
        messages.success(request, f"Price test {pk} stopped; its prices stay where they are.")
    except ServiceError as exc:
        messages.error(request, exc.detail)
    return redirect("experiments:detail", pk=pk)


@tenant_view(Perm.APPROVE)
@require_POST
def experiment_roll_out(request, pk: int):
    experiment = get_object_or_404(Experiment.objects.all(), pk=pk)
    try:
        job = services.roll_out(experiment=experiment)
        messages.success(request, f"Control SKUs released; reprice job {job.pk} queued.")
    except ServiceError as exc:
        messages.error(request, exc.detail)
    return redirect("experiments:detail", pk=pk)


@tenant_view(Perm.PUBLISH)
@require_POST
def experiment_roll_back(request, pk: int):
    experiment = get_object_or_404(Experiment.objects.all(), pk=pk)
    try:
        publication = services.roll_back(experiment=experiment)
        messages.success(request, f"Publication {publication.pk}: test prices rolled back.")
    except ServiceError as exc:
        messages.error(request, exc.detail)
    return redirect("experiments:detail", pk=pk)
