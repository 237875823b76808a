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


def _act(request, pk: int, action, said=None):
    """Run a service `action` on the tenant's experiment `pk`; a refusal becomes a message."""
    experiment = get_object_or_404(Experiment.objects.all(), pk=pk)
    try:
        result = action(experiment=experiment)
    except ServiceError as exc:
        messages.error(request, exc.detail)
    else:
        if said:
            messages.success(request, said(result))
    return redirect("experiments:detail", pk=pk)


@tenant_view(Perm.RUN_JOBS)
@require_POST
def experiment_report(request, pk: int):
    return _act(request, pk, services.report)


@tenant_view(Perm.RUN_JOBS)
@require_POST
def experiment_stop(request, pk: int):
    return _act(
        request,
        pk,
        services.stop,
        lambda _: f"Price test {pk} stopped; its prices stay where they are.",
    )


@tenant_view(Perm.APPROVE)
@require_POST
def experiment_roll_out(request, pk: int):
    return _act(
        request,
        pk,
        services.roll_out,
        lambda job: f"Control SKUs released; reprice job {job.pk} queued.",
    )


@tenant_view(Perm.PUBLISH)
@require_POST
def experiment_roll_back(request, pk: int):
    return _act(
        request,
        pk,
        services.roll_back,
        lambda pub: f"Publication {pub.pk}: test prices rolled back.",
    )
