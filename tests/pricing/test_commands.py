"""The pricing management commands: `reprice` (the job end to end: sales -> demand model
-> optimiser -> stored recommendations) and `export_recommendations`."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

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
    assert inelastic.explanation.startswith("Raise the price") and inelastic.elasticity > -1
    assert elastic.elasticity < -1.5
    for r in recs.values():
        if r.recommended_price is not None:
            assert float(r.recommended_price) >= float(r.product.cost) * 1.1 - 1e-4  # margin floor
    assert recs["NEW"].elasticity_high - recs["NEW"].elasticity_low > 3  # a wide category prior
    assert recs["BAD"].status == "conflict" and recs["BAD"].recommended_price is None
    assert job.expected_profit_new >= job.expected_profit_now


def test_a_demand_fit_that_does_not_converge_stores_no_model_and_fails_the_job(shop, monkeypatch):
    # A pooled control's coefficient runs off to 1e11 (as the promotion's did before the
    # Newton steps were halved, on an order export of deep promotions): no model is stored or
    # promoted, no recommendation is written, and the job and the command say why.
    from ml.models import ModelVersion
    from ml.science import demand

    real = demand._pooled

    def runaway(*args, **kwargs):
        beta, *rest = real(*args, **kwargs)
        beta = beta.copy()
        beta[-1] = 1.03e11
        return (beta, *rest)

    monkeypatch.setattr(demand, "_pooled", runaway)
    with pytest.raises(CommandError, match="did not converge on this history"):
        call_command("reprice", shop.tenant.slug, "--sync", stdout=io.StringIO())
    with tenant_context(shop.tenant):
        job = RepriceJob.objects.get()
        version = ModelVersion.objects.get(kind=ModelVersion.Kind.DEMAND)
        assert not Recommendation.objects.exists()
    assert job.status == "failed" and "did not converge on this history" in job.message
    assert version.status == "failed" and not version.artifact
    assert "PooledFitError: the demand fit did not converge" in version.message


def test_export_recommendations(shop):
    call_command("reprice", shop.tenant.slug, "--sync", stdout=io.StringIO())
    out = io.StringIO()
    call_command("export_recommendations", shop.tenant.slug, stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 22
    assert {
        "sku",
        "current_price",
        "recommended_price",
        "elasticity",
        "elasticity_low",
        "elasticity_high",
        "expected_units",
        "expected_profit",
        "binding_rules",
        "explanation",
        "expected_units_now",
        "expected_revenue_now",
        "expected_profit_now",
    } <= set(rows[0])
    kept = [r for r in rows if r["status"] == "no_change"]
    assert kept and all("kept" in r["explanation"] for r in kept)  # the reason nothing changes
    # the chance each change loses money: 0 for a kept price, at most 1 in 10 for a change
    assert all(float(r["loss_chance"]) == 0 for r in kept if r["loss_chance"])
    moved = [float(r["loss_chance"]) for r in rows if r["status"] == "pending"]
    assert moved and all(0 <= c <= 0.1 for c in moved) and max(moved) > 0
    for row in rows:  # no internal codes in the sentences
        assert not any(code in row["explanation"] for code in ("no_estimate", "max_step", "_"))


def test_export_without_a_job_is_a_clear_error(world_a):
    with pytest.raises(CommandError, match="no finished reprice job"):
        call_command("export_recommendations", world_a.tenant.slug)
