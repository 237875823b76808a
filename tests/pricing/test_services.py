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
    assert inelastic.explanation.startswith("Raise the price") and inelastic.elasticity > -1
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
            "expected_units", "expected_profit", "binding_rules", "explanation",
            "expected_units_now", "expected_revenue_now", "expected_profit_now"} <= set(rows[0])  # fmt: skip
    kept = [r for r in rows if r["status"] == "no_change"]
    assert kept and all("kept" in r["explanation"] for r in kept)  # the reason nothing changes
    for row in rows:  # no internal codes in the sentences
        assert not any(code in row["explanation"] for code in ("no_estimate", "max_step", "_"))


def test_export_without_a_job_is_a_clear_error(world_a):
    with pytest.raises(CommandError, match="no finished reprice job"):
        call_command("export_recommendations", world_a.tenant.slug)


def test_a_demand_rollback_brings_back_the_older_estimates(shop):
    """Estimates are kept per version: after a rollback the reprice uses the estimates of the
    version in force (before, rows were one per product and the older version's were gone)."""
    from ml import services as ml_services
    from ml.models import Elasticity

    with tenant_context(shop.tenant):
        first = ml_services.start_training(kind="demand", enqueue=False)
        ml_services.run_training(version_id=first.pk, sync=True)
        Elasticity.objects.filter(model_version=first).update(elasticity=-0.55, curvature=0.0)
        second = ml_services.start_training(kind="demand", enqueue=False)
        ml_services.run_training(version_id=second.pk, sync=True)
        fitted = set(
            Elasticity.objects.filter(model_version=first).values_list("product_id", flat=True)
        )
        assert len(fitted) == 20  # two of the 22 products never sold
        assert not Elasticity.objects.filter(model_version=second, elasticity=-0.55).exists()
        back = ml_services.rollback(kind="demand")
        job = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        used = set(Recommendation.objects.filter(job=job, product__in=fitted)
                   .values_list("elasticity", flat=True))  # fmt: skip
    assert back.pk == first.pk and job.demand_version_id == first.pk
    assert any("2 SKUs without an estimate from v1" in line for line in job.log)
    assert used == {-0.55}


def test_estimates_of_older_versions_are_pruned_and_restored_on_promotion(shop, monkeypatch):
    from ml import services as ml_services
    from ml.models import Elasticity, ModelVersion
    from tenants.services import ServiceError

    monkeypatch.setattr(ml_services, "ELASTICITY_VERSIONS_KEPT", 1)
    with tenant_context(shop.tenant):
        versions = []
        for _ in range(2):
            version = ml_services.start_training(kind="demand", enqueue=False)
            versions.append(ml_services.run_training(version_id=version.pk, sync=True))
        first, second = (ModelVersion.objects.get(pk=v.pk) for v in versions)
        assert first.status == "retired" and second.status == "promoted"
        assert set(Elasticity.objects.values_list("model_version", flat=True)) == {second.pk}
        expected = dict(Elasticity.objects.values_list("product_id", "elasticity"))
        ml_services.rollback(kind="demand")  # v1 again: its rows come back from its artifact
        restored = dict(Elasticity.objects.filter(model_version=first)
                        .values_list("product_id", "elasticity"))  # fmt: skip
        assert restored.keys() == expected.keys()  # same data: the same estimates
        assert all(abs(restored[k] - expected[k]) < 1e-9 for k in expected)
        job = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        assert job.demand_version_id == first.pk
        assert any("2 SKUs without an estimate from v1" in line for line in job.log)
        # An artifact from before estimates were archived in full cannot be restored.
        ml_services.promote(version=second)
        third = ml_services.start_training(kind="demand", enqueue=False)
        ml_services.run_training(version_id=third.pk, sync=True)
        import io

        import numpy as np
        from django.core.files.base import ContentFile

        old = io.BytesIO()
        np.savez_compressed(old, product_id=np.array([1]), elasticity=np.array([-1.0]))
        first.refresh_from_db()
        first.artifact.save("old.npz", ContentFile(old.getvalue()))
        Elasticity.objects.filter(model_version=first).delete()
        with pytest.raises(ServiceError, match="train a new demand model"):
            ml_services.promote(version=first)
        assert ModelVersion.objects.get(status="promoted").pk == third.pk


def test_the_models_page_trains_shows_and_rolls_back_the_demand_model(shop, client):
    from ml.models import ModelVersion
    from tenants.roles import Role

    shop.portal(client, Role.VIEWER)
    page = client.get("/models/").content.decode()
    assert "No demand model trained yet" in page and "Train the demand model now" not in page
    assert client.post("/models/train/", {"kind": "demand"}).status_code == 403
    shop.portal(client, Role.ANALYST)
    for _ in range(2):
        assert client.post("/models/train/", {"kind": "demand"}).status_code == 302
    with tenant_context(shop.tenant):
        assert list(ModelVersion.objects.filter(kind="demand").order_by("version")
                    .values_list("status", flat=True)) == ["ready", "promoted"]  # fmt: skip
        assert not ModelVersion.objects.filter(kind="text").exists()
    page = client.get("/models/").content.decode()
    assert "Roll back the demand model" in page and "products with sales" in page
    assert page.count("± ") >= 3  # the version in force and both rows carry their elasticity
    client.post("/models/rollback/", {"kind": "demand"})
    with tenant_context(shop.tenant):
        promoted = ModelVersion.objects.get(kind="demand", status="promoted")
    assert promoted.version == 1
    response = client.post("/models/rollback/", {"kind": "nonsense"}, follow=True)
    assert "unknown model kind" in response.content.decode()


def test_a_competitor_named_like_a_copy_null_marker_is_kept_as_text(shop):
    r"""Recommendations are written with COPY, whose usual NULL marker is \N: a competitor of
    that name (any text an integrator sends) must be stored as it is, not as NULL."""
    from django.utils import timezone

    from pricing_saas.catalog.importer import import_rows

    now = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    with tenant_context(shop.tenant):
        import_rows(kind="competitor_prices",
                    rows=[{"sku": "P0", "competitor": "\\N", "price": "19.00", "observed_at": now}])  # fmt: skip
        job = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        rec = Recommendation.objects.get(job=job, product__sku="P0")
    assert job.status == "succeeded"
    assert rec.competitor_name == "\\N" and float(rec.competitor_price) == 19.0


def test_a_version_left_with_part_of_its_estimates_gets_all_of_them_back(shop):
    """Found in review: before estimates were kept per version, a product's row belonged to the
    last run that estimated it, so an older version could keep only some rows; a rollback then
    found rows and restored nothing. Rows short of the version's SKU count are restored in full
    from its artifact."""
    from ml import services as ml_services
    from ml.models import Elasticity

    with tenant_context(shop.tenant):
        first = ml_services.start_training(kind="demand", enqueue=False)
        first = ml_services.run_training(version_id=first.pk, sync=True)
        full = Elasticity.objects.filter(model_version=first).count()
        keep = list(Elasticity.objects.filter(model_version=first).values_list("pk", flat=True))
        Elasticity.objects.filter(pk__in=keep[: full // 2]).delete()
        second = ml_services.start_training(kind="demand", enqueue=False)
        ml_services.run_training(version_id=second.pk, sync=True)
        ml_services.rollback(kind="demand")
        assert Elasticity.objects.filter(model_version=first).count() == full == 20


def test_todays_competitor_price_is_each_competitors_latest_in_stock_observation(shop):
    """A low price a competitor has since left, or one it is now out of stock at, is not
    today's market; an observation older than two weeks neither."""
    from datetime import timedelta

    from django.utils import timezone

    from pricing_saas.catalog.importer import import_rows

    def at(days):
        return (timezone.now() - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    offers = [
        {"sku": "P0", "competitor": "A", "price": "15.00", "observed_at": at(10)},  # left since
        {"sku": "P0", "competitor": "A", "price": "19.50", "observed_at": at(2)},
        {"sku": "P0", "competitor": "B", "price": "18.00", "observed_at": at(5)},
        {"sku": "P0", "competitor": "B", "price": "18.00", "observed_at": at(1),
         "in_stock": "false"},  # sold out now
        {"sku": "P0", "competitor": "C", "price": "12.00", "observed_at": at(20)},  # too old
    ]  # fmt: skip
    with tenant_context(shop.tenant):
        import_rows(kind="competitor_prices", rows=offers)
        job = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        rec = Recommendation.objects.get(job=job, product__sku="P0")
    assert float(rec.competitor_price) == 19.5 and rec.competitor_name == "A"
