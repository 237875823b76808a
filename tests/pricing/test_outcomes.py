"""What published changes did (`pricing_saas/pricing/outcomes.py`): end to end, from history
through reprice and publication to the following weeks' sales from a known demand curve, the
realised-lift interval covers the truth; through the service and the API."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from pricing_saas.catalog.importer import import_rows
from pricing_saas.catalog.models import Product
from pricing_saas.pricing import approvals, outcomes, publishing, services
from pricing_saas.pricing.models import PriceChange, Recommendation
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]

N, HISTORY, POST, DRIFT = 80, 240, 28, 1.15


def _truth_market(seed: int):
    rng = np.random.default_rng(seed)
    elasticity = -rng.uniform(1.2, 3.0, N)
    level = rng.gamma(3.0, 3.0, N)  # units per day at the reference price
    ref = np.round(rng.uniform(8, 40, N), 2)
    cost = np.round(ref * rng.uniform(0.3, 0.6, N), 2)
    return rng, elasticity, level, ref, cost


def _units(rng, level, price, ref, elasticity, factor=1.0, k=0.3):
    mu = level * (price / ref) ** elasticity * factor
    return int(rng.poisson(mu * rng.gamma(1 / k, k)))


def _published_with_sales_after(world, seed=7, drifts=None):
    """`drifts`: the market's factor after publication per category (x: odd SKUs, y: even);
    default DRIFT for both."""
    drifts = drifts or {"x": DRIFT, "y": DRIFT}
    rng, elasticity, level, ref, cost = _truth_market(seed)
    today = timezone.now().date()
    published_on = today - dt.timedelta(POST)
    with tenant_context(world.tenant):
        import_rows(kind="products", rows=[
            {"sku": f"K{i}", "title": f"Item {i}", "price": float(ref[i]), "cost": float(cost[i]),
             "category": "x" if i % 2 else "y"} for i in range(N)
        ])  # fmt: skip
        sales = []
        for d in range(HISTORY):
            day = published_on - dt.timedelta(HISTORY - d)
            for i in range(N):
                # price tests early in the history, the reference price in the last 8 weeks
                price = ref[i] * (np.exp(rng.normal(0, 0.12)) if HISTORY - d > 56 else 1.0)
                price = round(float(price), 2)
                units = _units(rng, level[i], price, ref[i], elasticity[i])
                sales.append({"date": day.isoformat(), "sku": f"K{i}", "units": units,
                              "price": price})  # fmt: skip
        import_rows(kind="sales", rows=sales)
        approvals.update_policy(auto_approve=False)
        job = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        approvals.bulk_decide(approve=True, ids=list(
            Recommendation.objects.filter(job=job, status="pending").values_list("pk", flat=True)
        ))  # fmt: skip
        publication = publishing.publish(enqueue=False)
        publishing.run_publication(publication_id=publication.pk)
        went_out = timezone.now() - dt.timedelta(POST)
        PriceChange.objects.filter(publication=publication).update(published_at=went_out)
        prices = {sku: float(p) for sku, p in Product.objects.values_list("sku", "price")}
        after, truth = [], 0.0
        changed = dict(PriceChange.objects.values_list("product__sku", "old_price"))
        for d in range(POST):
            day = published_on + dt.timedelta(d)
            for i in range(N):
                price = prices[f"K{i}"]
                factor = drifts["x" if i % 2 else "y"]
                units = _units(rng, level[i], price, ref[i], elasticity[i], factor)
                after.append({"date": day.isoformat(), "sku": f"K{i}", "units": units,
                              "price": price})  # fmt: skip
        for sku, old in changed.items():
            i = int(sku[1:])
            new, old = prices[sku], float(old)
            truth += sum(
                sign
                * (p - cost[i])
                * level[i]
                * (p / ref[i]) ** elasticity[i]
                * drifts["x" if i % 2 else "y"]
                for sign, p in ((1, new), (-1, old))
            )
        import_rows(kind="sales", rows=after)
    return job, truth, len(changed)


def test_the_realised_lift_of_a_jobs_changes_covers_the_truth(world_a):
    # One draw of a 95 % interval: with the optimiser of 2026-12-02 (the gain's joint lower end)
    # it covered the truth on 9 of seeds 1-10 (all but 7, whose set of changes it changed).
    job, truth, changed = _published_with_sales_after(world_a, seed=8)
    assert changed >= 10
    with tenant_context(world_a.tenant):
        result = outcomes.outcome(PriceChange.objects.filter(job=job), window=POST)
    assert len(result.changes) == changed and result.waiting == 0
    assert all(c.days_observed == POST for c in result.changes)
    assert result.total_low <= truth <= result.total_high
    # the interval is informative: narrower than the lift the changes were expected to make
    assert result.total_high - result.total_low < 2 * abs(result.forecast_total) + 1e-9
    # the market's 15 % rise is the controls' drift, not credited to the changes
    assert result.controls == N - changed
    # a fresh window waits for a week of sales
    with tenant_context(world_a.tenant):
        PriceChange.objects.filter(job=job).update(published_at=timezone.now())
        fresh = outcomes.outcome(PriceChange.objects.filter(job=job), window=POST)
    assert fresh.waiting == changed and not fresh.changes


def test_categories_drifting_apart_are_each_measured_against_their_own_market(world_a, monkeypatch):
    """Category x's market rises 40 % after publication while y's falls 30 %: a tenant-wide
    drift (about +5 %) would credit x's season to its price changes and blame y's slump on
    theirs. Each category's own unchanged SKUs give its counterfactual, and the interval covers
    the truth; forced tenant-wide, the same changes are misread."""
    drifts = {"x": 1.4, "y": 0.7}
    job, truth, _changed = _published_with_sales_after(world_a, seed=7, drifts=drifts)
    with tenant_context(world_a.tenant):
        result = outcomes.outcome(PriceChange.objects.filter(job=job), window=POST)
        assert {c.drift_scope for c in result.changes} == {"category"}
        for category in ("x", "y"):
            seen = {c.market_drift for c in result.changes if c.category == category}
            assert len(seen) == 1 and seen.pop() == pytest.approx(drifts[category], rel=0.1)
        assert result.total_low <= truth <= result.total_high
        # the same changes against the tenant-wide drift: x's changes look better, y's worse
        monkeypatch.setattr(outcomes, "MIN_CATEGORY_CONTROLS", 10**6)
        pooled = outcomes.outcome(PriceChange.objects.filter(job=job), window=POST)
    assert {c.drift_scope for c in pooled.changes} == {"tenant"}
    assert "fewer than" in pooled.changes[0].drift_note
    by_change = {c.change_id: c for c in pooled.changes}
    x_gain = [by_change[c.change_id].profit_lift - c.profit_lift
              for c in result.changes if c.category == "x"]  # fmt: skip
    y_gain = [by_change[c.change_id].profit_lift - c.profit_lift
              for c in result.changes if c.category == "y"]  # fmt: skip
    assert np.mean(x_gain) > 0 > np.mean(y_gain)


def test_the_api_reports_a_jobs_outcome_and_refuses_a_bad_window(world_a, world_b):
    job, truth, changed = _published_with_sales_after(world_a, seed=11)
    client = world_a.api("viewer")
    got = client.get(f"/api/v1/reprice-jobs/{job.pk}/outcome/?window=28")
    assert got.status_code == 200, got.content
    body = got.json()
    assert body["measured"] == changed and body["window"] == 28
    assert body["profit_low"] <= truth <= body["profit_high"]
    assert {"sku", "profit_lift", "profit_low", "profit_high", "units_counterfactual"} <= set(
        body["changes"][0]
    )
    one = body["changes"][0]["change_id"]
    single = client.get(f"/api/v1/price-changes/{one}/outcome/?window=28").json()
    assert single["measured"] == 1
    accuracy = client.get("/api/v1/price-changes/accuracy/?window=28")
    assert accuracy.status_code == 200, accuracy.content
    (version,) = accuracy.json()
    assert version["changes"] == changed and 0 <= version["coverage"] <= 1
    # the model's price effect on the counterfactual: the simulated curves are the model's
    # own family, so its predictions hold within noise
    assert version["wape"] < 0.5 and version["coverage"] >= 0.7
    bad = client.get(f"/api/v1/reprice-jobs/{job.pk}/outcome/?window=3")
    assert bad.status_code == 400 and bad.json()["attr"] == "window"
    # another tenant's job is not there
    assert world_b.api("viewer").get(f"/api/v1/reprice-jobs/{job.pk}/outcome/").status_code == 404


def test_the_job_and_sku_pages_show_what_the_changes_did(world_a):
    from django.test import Client

    job, _truth, _changed = _published_with_sales_after(world_a, seed=13)
    client = world_a.portal(Client(), "viewer")
    page = client.get(f"/pricing/jobs/{job.pk}/?window=28").content.decode()
    assert "What the published prices did" in page and "(28 days)" in page
    assert "95 % interval" in page
    with tenant_context(world_a.tenant):
        change = PriceChange.objects.filter(job=job).first()
    sku_page = client.get(f"/pricing/sku/{change.product_id}/").content.decode()
    assert "What the published prices did" in sku_page and "(14 days)" in sku_page


def test_rollbacks_end_a_changes_window_and_are_not_measured_as_changes(world_a):
    job, _truth, changed = _published_with_sales_after(world_a, seed=17)
    with tenant_context(world_a.tenant):
        first = list(PriceChange.objects.filter(job=job).order_by("pk")[:3])
        back = publishing.rollback(change_ids=[c.pk for c in first], enqueue=False)
        publishing.run_publication(publication_id=back.pk)
        ten_days_later = first[0].published_at + dt.timedelta(days=10)
        PriceChange.objects.filter(publication=back).update(published_at=ten_days_later)
        # products no longer sold are no controls: their fall is no market drift
        quiet = list(
            Product.objects.exclude(pk__in=PriceChange.objects.values("product_id")).values_list(
                "pk", flat=True
            )[:5]
        )
        Product.objects.filter(pk__in=quiet).update(active=False)
        result = outcomes.outcome(PriceChange.objects.filter(job=job), window=POST)
    assert len(result.changes) == changed  # the rollbacks themselves are not measured
    by_id = {c.change_id: c for c in result.changes}
    assert all(by_id[c.pk].days_observed == 10 for c in first)  # cut at the rollback
    assert result.controls == N - changed - 5
