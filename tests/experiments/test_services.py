"""A/B price tests (`pricing_saas/experiments/services.py`): randomisation, locks, the report
with its stopping rule, recorded tests from imported sales, and refusals that create nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest

from pricing_saas.catalog.importer import import_rows
from pricing_saas.catalog.models import Product, SalesRecord
from pricing_saas.experiments import services
from pricing_saas.experiments.models import Experiment, ExperimentUnit
from pricing_saas.pricing import approvals, publishing
from pricing_saas.pricing import services as pricing
from pricing_saas.pricing.models import PriceChange, PriceLock, Recommendation
from pricing_saas.web.errors import ConflictError, ServiceError
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]

N = 60


def _catalog(world, days=120, lift=0.0, start=None, seed=1):
    """N SKUs in two categories with `days` of sales ending yesterday; from `start` on, the
    treatment SKUs of an experiment sell `lift` more (set afterwards by `_sell_after`)."""
    rng = np.random.default_rng(seed)
    today = dt.date.today()
    with tenant_context(world.tenant):
        import_rows(kind="products", rows=[
            {"sku": f"E{i}", "title": f"Item {i}", "price": 20.0, "cost": 10.0,
             "category": "x" if i % 2 else "y"} for i in range(N)
        ])  # fmt: skip
        level = rng.gamma(4.0, 2.0, N)
        sales = [
            {"date": (today - dt.timedelta(days - d)).isoformat(), "sku": f"E{i}",
             "units": int(rng.poisson(level[i] * np.exp(rng.normal(0, 0.1)))),
             "price": round(20 * float(np.exp(rng.normal(0, 0.1))), 2)}
            for d in range(days) for i in range(N)
        ]  # fmt: skip
        import_rows(kind="sales", rows=sales)
    return level


def test_a_recorded_test_reports_the_lift_of_its_treatment_arm(world_a):
    level = _catalog(world_a, days=90)
    today = dt.date.today()
    start = today - dt.timedelta(28)
    with tenant_context(world_a.tenant):
        experiment = services.start_experiment(
            name="Summer test", days=28, categories=["x", "y"], start=start, seed=3
        )
        assert experiment.recorded and not PriceLock.objects.exists()  # it ran outside
        units = list(experiment.units.values_list("product__sku", "arm"))
        treated = {sku for sku, arm in units if arm == "treatment"}
        assert len(units) == N and abs(len(treated) - N / 2) <= 2
        # both arms hold both categories (stratified)
        cats = dict(Product.objects.values_list("sku", "category"))
        assert {cats[s] for s in treated} == {"x", "y"}
        # the test's weeks: treatment SKUs sold 30 % more units at the same price
        rng = np.random.default_rng(9)
        rows = [
            {"date": (start + dt.timedelta(d)).isoformat(), "sku": f"E{i}",
             "units": int(rng.poisson(level[i] * (1.3 if f"E{i}" in treated else 1.0))),
             "price": 20.0}
            for d in range(28) for i in range(N)
        ]  # fmt: skip
        import_rows(kind="sales", rows=rows)  # the same days again: upserted, never doubled
        result = services.report(experiment=experiment)
        experiment.refresh_from_db()
    assert result.days_observed == 28 and experiment.status == Experiment.Status.FINISHED
    assert result.metric == "profit" and result.verdict == "treatment better"
    truth = 0.3 * 10.0 * np.mean(level[[int(s[1:]) for s in treated]])
    assert result.ci_low <= truth <= result.ci_high
    assert experiment.looks == [28] and experiment.result["verdict"] == "treatment better"


def test_a_live_test_locks_its_skus_rejects_controls_and_keeps_treatment_approvals(world_a):
    _catalog(world_a, days=120)
    with tenant_context(world_a.tenant):
        approvals.update_policy(auto_approve=False)
        pricing.run_reprice(job_id=pricing.start_reprice(enqueue=False).pk)
        changing = Recommendation.objects.exclude(recommended_price=20).count()
        assert changing >= 4
        experiment = services.start_experiment(name="Live", days=14, categories=["x", "y"])
        units = list(experiment.units.select_related("recommendation"))
        assert len(units) == changing  # SKUs without a change to test are left out, with why
        assert len(experiment.excluded) == N - changing
        assert all(e["reason"].startswith("no recommended") for e in experiment.excluded)
        for unit in units:
            if unit.arm == ExperimentUnit.Arm.TREATMENT:
                assert unit.price_test == unit.recommendation.recommended_price
                assert unit.recommendation.status == "pending"  # goes through approvals
            else:
                assert unit.price_test == unit.price_before
                assert not Recommendation.objects.filter(
                    product=unit.product_id, status="pending"
                ).exists()
        locked = set(PriceLock.objects.values_list("product_id", flat=True))
        assert locked == {u.product_id for u in units}
        # the next reprice leaves them alone, and the treatment prices still wait for approval
        job = pricing.run_reprice(job_id=pricing.start_reprice(enqueue=False).pk)
        assert not Recommendation.objects.filter(job=job, product_id__in=locked).exists()
        treated = [u.recommendation_id for u in units if u.arm == ExperimentUnit.Arm.TREATMENT]
        assert set(
            Recommendation.objects.filter(pk__in=treated).values_list("status", flat=True)
        ) == {"pending"}
        # the treatment prices go out; any other change of a locked SKU is held back
        approvals.bulk_decide(approve=True, ids=treated)
        publication = publishing.publish(recommendation_ids=treated, enqueue=False)
        publishing.run_publication(publication_id=publication.pk)
        assert set(
            PriceChange.objects.filter(publication=publication).values_list("status", flat=True)
        ) == {"published"}
        back = publishing.rollback(change_ids=list(
            PriceChange.objects.filter(publication=publication).values_list("pk", flat=True)[:2]
        ), enqueue=False)  # fmt: skip
        publishing.run_publication(publication_id=back.pk)
        held = PriceChange.objects.filter(publication=back)
        assert set(held.values_list("status", flat=True)) == {"failed"}
        assert all(f"price test {experiment.pk}" in e for e in held.values_list("error", flat=True))
        # a second test on the same SKUs is refused
        with pytest.raises(ConflictError) as busy:
            services.start_experiment(name="Again", days=14, categories=["x"])
        assert busy.value.attr == "skus"
        services.stop(experiment=experiment)
        assert not PriceLock.objects.exists()
        with pytest.raises(ConflictError):  # a stopped test keeps its last report
            services.report(experiment=experiment)
        # the control won: the treatment's test prices go back to the prices before
        back = services.roll_back(experiment=experiment, enqueue=False)
        publishing.run_publication(publication_id=back.pk)
        before = {u.product_id: u.price_before for u in units}
        for pk, price in Product.objects.filter(
            pk__in=[u.product_id for u in units if u.arm == ExperimentUnit.Arm.TREATMENT]
        ).values_list("pk", "price"):
            assert price == before[pk]
        with pytest.raises(ConflictError):  # nothing left to roll back
            services.roll_back(experiment=experiment, enqueue=False)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"share": 0.0}, "share"),
        ({"share": 1.5}, "share"),
        ({"days": 6}, "days"),
        ({"categories": ["nowhere"]}, "skus"),
        ({"skus": ["E1", "NOPE"]}, "skus"),
        ({"name": ""}, "name"),
        ({"metric": "clicks"}, "metric"),
        ({"start": dt.date.today() + dt.timedelta(days=400)}, "start"),
        ({"start": dt.date.today() - dt.timedelta(days=400)}, "start"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**40}, "seed"),
        ({"skus": ["E1", "E2", "E3", "E4", "E5"], "categories": None}, "skus"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(world_a, change, field):
    _catalog(world_a, days=40)
    arguments = {"name": "Bad", "days": 14, "categories": ["x", "y"],
                 "start": dt.date.today() - dt.timedelta(14), **change}  # fmt: skip
    with tenant_context(world_a.tenant), pytest.raises(ServiceError) as refused:
        services.start_experiment(**arguments)
    assert refused.value.attr == field
    with tenant_context(world_a.tenant):
        assert not Experiment.objects.exists() and not ExperimentUnit.objects.exists()


def test_another_tenants_skus_are_unknown_here(world_a, world_b):
    _catalog(world_a, days=40)
    with tenant_context(world_b.tenant), pytest.raises(ServiceError) as refused:
        services.start_experiment(name="Theirs", days=14, skus=["E1", "E2", "E3", "E4"])
    assert refused.value.attr == "skus" and "E1" in refused.value.detail
    with tenant_context(world_b.tenant):
        assert not Experiment.objects.exists()


def test_a_live_test_waits_for_price_changes_already_on_their_way(world_a):
    _catalog(world_a, days=120)
    with tenant_context(world_a.tenant):
        approvals.update_policy(auto_approve=False)
        job = pricing.run_reprice(job_id=pricing.start_reprice(enqueue=False).pk)
        ids = list(Recommendation.objects.filter(job=job).values_list("pk", flat=True)[:3])
        approvals.bulk_decide(approve=True, ids=ids)
        publishing.publish(recommendation_ids=ids, enqueue=False)  # queued, not pushed yet
        with pytest.raises(ConflictError) as refused:
            services.start_experiment(name="Too soon", days=14, categories=["x", "y"])
        assert refused.value.attr == "skus" and "on its way" in refused.value.detail
        assert not Experiment.objects.exists()


def test_a_report_says_when_the_treatment_prices_never_went_live(world_a):
    _catalog(world_a, days=90)
    start = dt.date.today() - dt.timedelta(21)
    with tenant_context(world_a.tenant):
        arms = [
            {"sku": f"E{i}", "arm": "treatment" if i % 2 else "control", "price_test": "24.00"}
            for i in range(N)
        ]
        experiment = services.start_experiment(name="Late", days=21, start=start, arms=arms)
        services.report(experiment=experiment)
        experiment.refresh_from_db()
        prices = experiment.result["prices"]
        # the sales show about 20.00 for every SKU: the treatment's 24.00 never went live
        assert prices["treatment_checked"] == N // 2 and prices["treatment_at_price"] == 0
        assert "sold at their test price" in experiment.result["warning"]
        # sold at the test price, the control at its price before: no warning
        before = dict(experiment.units.values_list("product__sku", "price_before"))
        rows = [
            {"date": (start + dt.timedelta(d)).isoformat(), "sku": f"E{i}", "units": 3,
             "price": "24.00" if i % 2 else str(before[f"E{i}"])}
            for d in range(21) for i in range(N)
        ]  # fmt: skip
        import_rows(kind="sales", rows=rows)
        services.report(experiment=experiment)
        experiment.refresh_from_db()
        assert experiment.result["prices"]["treatment_at_price"] == N // 2
        assert experiment.result["warning"] == ""


# --- recorded tests: the price before from the pre-period, given SKUs never dropped -------------


def test_a_recorded_tests_price_before_is_the_pre_period_median_not_todays_price(world_a):
    """The catalog's price today is 20.00; in the 28 days before the start the SKUs sold at
    about 18 (channels averaged per day, then the median of the days): that is their price
    before, and a given treatment SKU without price_test takes its median over the test."""
    _catalog(world_a, days=90)
    start = dt.date.today() - dt.timedelta(21)
    with tenant_context(world_a.tenant):
        rows = [
            {"date": (start - dt.timedelta(d)).isoformat(), "sku": f"E{i}", "units": 2,
             "price": ("17.00" if d % 3 else "19.50")}
            for d in range(1, 29) for i in range(N)
        ] + [
            {"date": (start - dt.timedelta(d)).isoformat(), "sku": f"E{i}", "units": 1,
             "price": "19.00", "channel": "web"}
            for d in range(1, 29) for i in range(N)
        ] + [
            {"date": (start + dt.timedelta(d)).isoformat(), "sku": f"E{i}", "units": 2,
             "price": "21.00"}
            for d in range(21) for i in range(N)
        ]  # fmt: skip
        import_rows(kind="sales", rows=rows)
        arms = [{"sku": f"E{i}", "arm": "treatment" if i % 2 else "control"} for i in range(N)]
        experiment = services.start_experiment(name="Past", days=21, start=start, arms=arms)
        units = {u.product.sku: u for u in experiment.units.select_related("product")}
        # per day: (17 + 19) / 2 = 18 on two days of three, (19.5 + 19) / 2 = 19.25 on the third
        assert units["E0"].price_before == Decimal("18.0000")
        assert units["E0"].price_test == units["E0"].price_before  # control
        assert units["E1"].price_test == Decimal("21.0000")  # its median during the test
        assert Product.objects.get(sku="E0").price == Decimal("20")  # today's: not used
        services.report(experiment=experiment)
        experiment.refresh_from_db()
    assert not experiment.randomised and experiment.result["randomised"] is False
    assert experiment.result["assignment"].startswith("not randomised")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no_cost", "arms row 4 (E3): no cost: profit unknown"),
        ("no_sales", "arms row 4 (E3): no sale in the 28 days before the start"),
        ("inactive", "arms row 4 (E3): the product is inactive"),
    ],
)
def test_a_given_sku_that_would_be_left_out_is_refused_naming_its_row(world_a, change, message):
    _catalog(world_a, days=90)
    start = dt.date.today() - dt.timedelta(14)
    with tenant_context(world_a.tenant):
        product = Product.objects.get(sku="E3")
        if change == "no_cost":
            Product.objects.filter(pk=product.pk).update(cost=None)
        elif change == "inactive":
            Product.objects.filter(pk=product.pk).update(active=False)
        else:
            SalesRecord.objects.filter(product=product, date__lt=start).delete()
        arms = [{"sku": f"E{i}", "arm": "treatment" if i % 2 else "control"} for i in range(N)]
        with pytest.raises(ServiceError) as refused:
            services.start_experiment(name="Past", days=14, start=start, arms=arms)
        assert refused.value.attr == "arms" and message in refused.value.detail
        assert not Experiment.objects.exists()
        # randomised here, such a SKU is left out with the reason instead
        if change != "inactive":
            made = services.start_experiment(
                name="Past", days=14, start=start, categories=["x", "y"]
            )
            assert made.randomised and made.units.count() == N - 1
            assert [e["sku"] for e in made.excluded] == ["E3"]


# --- did the treatment prices go live? ---------------------------------------------------------


def test_a_small_price_step_is_checked_within_half_the_step(world_a):
    """A 1 % step: a treatment SKU that stayed at its price before is 1 % from its test price,
    inside a flat 2 % tolerance but not inside half the step (0.5 %): it did not comply."""
    _catalog(world_a, days=60)
    start = dt.date.today() - dt.timedelta(14)
    with tenant_context(world_a.tenant):
        import_rows(kind="sales", rows=[
            {"date": (start - dt.timedelta(d)).isoformat(), "sku": f"E{i}", "units": 2,
             "price": "20.00"} for d in range(1, 29) for i in range(N)
        ])  # fmt: skip
        arms = [
            {"sku": f"E{i}", "arm": "treatment" if i % 2 else "control", "price_test": "20.20"}
            for i in range(N)
        ]
        experiment = services.start_experiment(name="Step", days=14, start=start, arms=arms)
        # odd SKUs below 20 took the 20.20; the others stayed at 20.00
        import_rows(kind="sales", rows=[
            {"date": (start + dt.timedelta(d)).isoformat(), "sku": f"E{i}", "units": 2,
             "price": "20.20" if i % 2 and i < 20 else "20.00"}
            for d in range(14) for i in range(N)
        ])  # fmt: skip
        result = services.compliance(experiment, dt.date.today())
    took = len([i for i in range(1, 20, 2)])
    assert result["prices"]["treatment_at_price"] == took
    assert result["compliance"] == round(took / (N // 2), 4)
    assert result["prices"]["control_at_price"] == N // 2
    assert result["analysis"] == "intention-to-treat"
    first = next(r for r in result["non_compliant"] if r["sku"] == "E21")
    assert first["arm"] == "treatment" and "sold at 20.00" in first["reason"]
    assert "sold at their test price" in result["warning"]
    with tenant_context(world_a.tenant):  # the report keeps it, the result page lists them
        services.report(experiment=experiment)
    from django.test import Client

    page = world_a.portal(Client(), "viewer").get(f"/experiments/{experiment.pk}/")
    assert (
        'id="non-compliant"' in page.content.decode() and "E21 (treatment)" in page.content.decode()
    )


def test_a_live_test_is_checked_from_each_publication_day(world_a):
    """Treatment prices published a week into the test: the days before still show the old
    price and do not count against the SKU; a treatment SKU never published is labelled so."""
    _catalog(world_a, days=120)
    today = dt.date.today()
    with tenant_context(world_a.tenant):
        approvals.update_policy(auto_approve=False)
        pricing.run_reprice(job_id=pricing.start_reprice(enqueue=False).pk)
        experiment = services.start_experiment(name="Live", days=14, categories=["x", "y"])
        start = today - dt.timedelta(10)
        Experiment.objects.filter(pk=experiment.pk).update(start=start)
        experiment.refresh_from_db()
        units = list(experiment.units.select_related("product"))
        treated = [u for u in units if u.arm == ExperimentUnit.Arm.TREATMENT]
        assert len(treated) >= 4
        published, waiting = treated[:-1], treated[-1]
        ids = [u.recommendation_id for u in published]
        approvals.bulk_decide(approve=True, ids=ids)
        publication = publishing.publish(recommendation_ids=ids, enqueue=False)
        publishing.run_publication(publication_id=publication.pk)
        live = start + dt.timedelta(4)
        PriceChange.objects.filter(publication=publication).update(
            published_at=dt.datetime.combine(live, dt.time(9), tzinfo=dt.UTC)
        )
        rows = [
            {"date": (start + dt.timedelta(d)).isoformat(), "sku": u.product.sku, "units": 2,
             "price": str(u.price_test if u in published and start + dt.timedelta(d) >= live
                          else u.price_before)}
            for d in range(10) for u in units
        ]  # fmt: skip
        import_rows(kind="sales", rows=rows)
        result = services.compliance(experiment, today)
    assert result["prices"]["treatment_checked"] == len(treated)
    assert result["prices"]["treatment_at_price"] == len(published)
    assert result["non_compliant"] == [
        {"sku": waiting.product.sku, "arm": "treatment", "reason": "never published"}
    ]
