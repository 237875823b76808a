"""The reprice job end to end: sales -> demand model -> optimiser -> stored recommendations ->
export, with the rules holding and explanations written."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from pricing_saas.pricing import services
from pricing_saas.pricing.models import Recommendation, RepriceJob
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_reprice_trains_demand_first_and_respects_the_rules(shop):
    out = io.StringIO()
    call_command("reprice", shop.tenant.slug, "--sync", stdout=out)
    assert "price changes recommended for 22 SKUs" in out.getvalue()
    with tenant_context(shop.tenant):
        recs = {r.product.sku: r for r in Recommendation.objects.select_related("product")}
        job = RepriceJob.objects.get()
    assert job.status == "succeeded" and job.demand_version_id is not None
    inelastic, elastic = recs["P0"], recs["P15"]
    assert inelastic.recommended_price > inelastic.current_price  # inelastic: raise
    assert float(inelastic.recommended_price) <= 20 * 1.2 + 1e-6  # within the step
    assert "step limit" in inelastic.explanation or "uncertain" in inelastic.explanation
    assert inelastic.explanation.startswith("+") and inelastic.elasticity > -1
    assert elastic.elasticity < -1.5
    for r in recs.values():
        if r.recommended_price is not None:
            assert float(r.recommended_price) >= float(r.product.cost) * 1.1 - 1e-4  # margin floor
    assert recs["NEW"].elasticity_high - recs["NEW"].elasticity_low > 3  # a wide category prior
    assert recs["BAD"].status == "conflict" and recs["BAD"].recommended_price is None
    assert job.expected_profit_new >= job.expected_profit_now


def test_a_new_job_supersedes_pending_recommendations_and_only_one_runs(shop):
    with tenant_context(shop.tenant):
        first = services.start_reprice(enqueue=False)
        assert services.start_reprice(enqueue=False).pk == first.pk  # never two at once
        services.run_reprice(job_id=first.pk)
        second = services.start_reprice(enqueue=False)
        services.run_reprice(job_id=second.pk)
        old = Recommendation.objects.filter(job=first, status="superseded").count()
        assert (
            old
            == Recommendation.objects.filter(job=first)
            .exclude(status__in=["no_change", "conflict", "approved"])
            .count()
        )


def test_export_recommendations(shop):
    call_command("reprice", shop.tenant.slug, "--sync", stdout=io.StringIO())
    out = io.StringIO()
    call_command("export_recommendations", shop.tenant.slug, stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 22
    assert {"sku", "current_price", "recommended_price", "elasticity", "elasticity_low", "elasticity_high",
            "expected_units", "expected_profit", "binding_rules", "explanation"} <= set(rows[0])  # fmt: skip


def test_export_without_a_job_is_a_clear_error(world_a):
    with pytest.raises(CommandError, match="no finished reprice job"):
        call_command("export_recommendations", world_a.tenant.slug)


def test_after_a_demand_rollback_only_the_version_in_force_is_used(shop):
    from ml import services as ml_services

    with tenant_context(shop.tenant):
        for _ in range(2):
            version = ml_services.start_training(kind="demand", enqueue=False)
            ml_services.run_training(version_id=version.pk, sync=True)
        back = ml_services.rollback(kind="demand")  # v1 in force; the stored rows are v2's
        job = services.start_reprice(enqueue=False)
        job = services.run_reprice(job_id=job.pk)
    assert job.demand_version_id == back.pk
    assert any("22 SKUs without an estimate from v1" in line for line in job.log)
