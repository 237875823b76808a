"""The demo's lab: a second, simulated merchant whose outcomes are generated from known demand
curves (ml.science.simulator), so the portal can show the whole feedback loop on the first
run: history, a reprice, an A/B price test whose treatment prices were published four weeks
ago, the weeks of sales since, the test's verdict and what the published changes did. Its name
and the test's say that the outcome data are simulated."""

from __future__ import annotations

import datetime as dt

import numpy as np
from django.utils import timezone

LAB_SLUG = "demo-lab"
LAB_NAME = "Demo Lab (simulated outcomes)"
HISTORY_DAYS = 180
TEST_DAYS = 28


def build_lab(tenant, skus: int = 120, seed: int = 0) -> dict:
    """Fill `tenant` (empty) with the lab's merchant; returns what it made."""
    from ml.science.simulator import make_market, simulate
    from pricing_saas.catalog.importer import import_rows
    from pricing_saas.experiments import services as experiments
    from pricing_saas.experiments.models import ExperimentUnit
    from pricing_saas.pricing import approvals, publishing
    from pricing_saas.pricing import services as pricing
    from pricing_saas.pricing.models import PriceChange, Recommendation
    from tenants.context import tenant_context

    market = make_market(skus, ("constant", "linear"), seed)
    today = timezone.localdate()
    test_start = today - dt.timedelta(TEST_DAYS)
    shift = dt.timedelta(TEST_DAYS)  # the simulated history ends where the test began
    with tenant_context(tenant):
        import_rows(
            kind="products",
            rows=[
                {
                    "sku": market.sku[i],
                    "title": f"Lab item {i} (simulated)",
                    "category": market.category[i],
                    "cost": round(float(market.cost[i]), 2),
                    "price": round(float(market.price_today[i]), 2),
                }
                for i in range(skus)
            ],
        )
        rows = []
        for day in simulate(market, HISTORY_DAYS, seed, competitor_moves=False):
            for i in np.flatnonzero(day.units):
                rows.append(
                    {
                        "date": (day.day - shift).isoformat(),
                        "sku": market.sku[i],
                        "units": int(day.units[i]),
                        "price": round(float(day.price[i]), 2),
                        "promo": bool(day.promo[i]),
                    }
                )
        import_rows(kind="sales", rows=rows)
        approvals.update_policy(auto_approve=False)
        job = pricing.run_reprice(job_id=pricing.start_reprice(enqueue=False).pk)
        changing = list(
            Recommendation.objects.filter(job=job, status=Recommendation.Status.PENDING)
            .exclude(recommended_price=None)
            .values_list("product__sku", flat=True)
        )
        experiment = experiments.start_experiment(
            name="Simulated price test: recommended vs today's prices",
            days=TEST_DAYS,
            skus=changing,
            start=test_start,
            seed=seed,
        )
        treated = set(
            experiment.units.filter(arm=ExperimentUnit.Arm.TREATMENT).values_list(
                "product_id", flat=True
            )
        )
        ids = list(
            Recommendation.objects.filter(job=job, product_id__in=treated).values_list(
                "pk", flat=True
            )
        )
        approvals.bulk_decide(approve=True, ids=ids)
        publication = publishing.publish(recommendation_ids=ids, enqueue=False)
        publishing.run_publication(publication_id=publication.pk)
        went_out = timezone.now() - shift
        PriceChange.objects.filter(publication=publication).update(published_at=went_out)
        new = dict(PriceChange.objects.values_list("product_id", "new_price"))
        for unit in experiment.units.filter(product_id__in=new):
            unit.price_test = new[unit.product_id]
            unit.save(update_fields=["price_test"])
        # the test's weeks: treatment SKUs at their new price, the rest at today's
        by_sku = dict(experiment.units.values_list("product__sku", "price_test"))
        rng = np.random.default_rng([seed, 42])
        idx = np.arange(skus)
        price = np.array(
            [float(by_sku.get(market.sku[i], round(float(market.price_today[i]), 2))) for i in idx]
        )
        rows = []
        for d in range(TEST_DAYS):
            day = test_start + dt.timedelta(d)
            units = rng.poisson(market.demand(idx, price, day=day.toordinal()))
            for i in np.flatnonzero(units):
                rows.append(
                    {
                        "date": day.isoformat(),
                        "sku": market.sku[i],
                        "units": int(units[i]),
                        "price": float(price[i]),
                    }
                )
        import_rows(kind="sales", rows=rows)
        result = experiments.report(experiment=experiment)
    return {
        "job": job.pk,
        "experiment": experiment.pk,
        "published": len(ids),
        "verdict": result.verdict,
    }
