"""The reprice job (`pricing_saas/pricing/services.py`): one job at a time, cancelled or
lost jobs, the demand version and the competitor prices it reads, SKUs without history or
cost, and what a newer job does to approvals still waiting to be sent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from pricing_saas.catalog.models import Product
from pricing_saas.pricing import approvals, publishing, rules, services
from pricing_saas.pricing.models import PriceChange, Recommendation
from pricing_saas.web.errors import ConflictError
from tenants.context import actor_context, tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


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
        used = set(
            Recommendation.objects.filter(job=job, product__in=fitted).values_list(
                "elasticity", flat=True
            )
        )
    assert back.pk == first.pk and job.demand_version_id == first.pk
    assert any("2 SKUs without an estimate from v1" in line for line in job.log)
    assert used == {-0.55}


def test_estimates_of_older_versions_are_pruned_and_restored_on_promotion(shop, monkeypatch):
    from ml import services as ml_services
    from ml.models import Elasticity, ModelVersion
    from pricing_saas.web.errors import ServiceError

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
        restored = dict(
            Elasticity.objects.filter(model_version=first).values_list("product_id", "elasticity")
        )
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


def test_a_competitor_named_like_a_copy_null_marker_is_kept_as_text(shop):
    r"""Recommendations are written with COPY, whose usual NULL marker is \N: a competitor of
    that name (any text an integrator sends) must be stored as it is, not as NULL."""
    from django.utils import timezone

    from pricing_saas.catalog.importer import import_rows

    now = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    with tenant_context(shop.tenant):
        import_rows(
            kind="competitor_prices",
            rows=[{"sku": "P0", "competitor": "\\N", "price": "19.00", "observed_at": now}],
        )
        job = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        rec = Recommendation.objects.get(job=job, product__sku="P0")
    assert job.status == "succeeded"
    assert rec.competitor_name == "\\N" and float(rec.competitor_price) == 19.0


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


def test_the_competitors_price_is_judged_off_its_latest_reading_by_a_carried_readings_jitter(
    shop, monkeypatch
):
    """Today's competitor price is its latest reading carried to today: the optimiser's doubt
    of where it is must be the one the demand fit smoothed its ramp over (sqrt 2 x the
    readings' jitter), not a single reading's."""
    from pricing_saas.catalog.importer import import_rows

    def at(days):
        return (timezone.now() - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    offers = [
        {"sku": "P0", "competitor": "A", "price": price, "observed_at": at(days)}
        for price, days in (("19.00", 9), ("20.00", 7), ("19.00", 5), ("20.00", 3), ("19.00", 1))
    ]
    seen = []
    plain = services.optimise
    monkeypatch.setattr(services, "optimise", lambda *a, **kw: seen.append(a[5]) or plain(*a, **kw))
    with tenant_context(shop.tenant):
        import_rows(kind="competitor_prices", rows=offers)
        jitter = services.tenant_competitor_noise().sd
        services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
    assert jitter == pytest.approx(np.log(20 / 19) * 1.4826 / np.sqrt(2))
    assert seen and all(r.competitor_sd == pytest.approx(np.sqrt(2) * jitter) for r in seen)


def test_a_jittery_feeds_price_today_is_the_level_of_its_readings_since_its_last_re_price(
    shop, monkeypatch
):
    """A competitor read every day whose readings jitter 3 % around its price: today's price is
    the level of its readings since it last re-priced (not its latest reading, and not blended
    with the price it left), and the optimiser's doubt of it shrinks with the readings behind
    it (a level read off several readings is nearer the price than one reading)."""
    from pricing_saas.catalog.importer import import_rows

    def at(days):
        return (timezone.now() - timedelta(days=days, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    rng = np.random.default_rng(5)
    offers = []
    moves = {"P0": (19.0, 19.0, 0), "P1": (22.0, 18.0, 5), "P2": (19.0, 17.9, 1)}
    for sku, (old, new, moved) in moves.items():
        for days in range(40, -1, -1):
            level = new if days < moved or not moved else old
            jittered = level * float(np.exp(rng.normal(0, 0.03)))
            if days == 0:  # today's reading: P0's high by 5 %, P2's a fresh 6 % cut
                jittered = level * 1.05 if sku == "P0" else new
            price = f"{jittered:.2f}"
            offers.append({"sku": sku, "competitor": "A", "price": price, "observed_at": at(days)})
    # a second seller of P0, read around 19.60 for a week and at 18.60 today: its level is
    # above A's, but its latest reading is the lowest price P0's feed shows
    for days, price in enumerate(
        ("18.60", "19.62", "19.55", "19.71", "19.48", "19.66", "19.58", "19.53")
    ):
        offers.append({"sku": "P0", "competitor": "B", "price": price, "observed_at": at(days)})
    seen = []
    plain = services.optimise
    monkeypatch.setattr(services, "optimise", lambda *a, **kw: seen.append(a[5]) or plain(*a, **kw))
    with tenant_context(shop.tenant):
        import_rows(kind="competitor_prices", rows=offers)
        noise = services.tenant_competitor_noise()
        job = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        recs = {
            r.product.sku: r
            for r in Recommendation.objects.filter(job=job, product__sku__in=["P0", "P1", "P2"])
        }
    assert noise.sd == pytest.approx(0.03, rel=0.35) and noise.changes == 127
    # today's reading is 5 % high; the level of the last week's readings is near the price
    assert float(recs["P0"].competitor_price) == pytest.approx(19.0, rel=0.025)
    assert float(recs["P0"].competitor_price) < 19.0 * 1.05 - 0.3
    assert recs["P0"].competitor_name == "A"
    # P1's competitor re-priced 22 -> 18 five days ago: its older readings are not averaged in
    assert float(recs["P1"].competitor_price) == pytest.approx(18.0, rel=0.035)
    # P2's competitor cut 6 % today, read once: the level may not follow it all the way, but
    # the competitor position rule holds against the reading the feed shows
    level_p2 = float(recs["P2"].competitor_price)
    assert 17.9 <= level_p2 <= 19.0
    sds = np.concatenate([np.atleast_1d(r.competitor_sd) for r in seen])
    prices = np.concatenate([np.atleast_1d(r.competitor_price) for r in seen])
    caps = np.concatenate([np.atleast_1d(r.competitor_cap) for r in seen])
    level_p0 = float(recs["P0"].competitor_price)
    assert np.any(np.isclose(caps, 17.9))  # P2: A's cut read once
    assert np.any(np.isclose(prices, level_p0) & np.isclose(caps, 18.6))  # P0: B's reading
    priced = np.isfinite(prices)
    assert priced.sum() == 3
    # more than one reading behind P0's and P1's levels: a doubt under one reading's sqrt 2 x
    # jitter, never under the day's jitter itself; P2's open question (a cut or jitter?) wider
    steady = priced & (np.abs(prices - level_p2) > 1e-6)
    assert np.all(sds[steady] < np.sqrt(2) * noise.sd * 0.95)
    assert np.all(sds[priced] >= noise.sd * 0.9)
    assert np.all(sds[priced & ~steady] > sds[steady].max())


def test_cancel_a_queued_job(shop):
    with tenant_context(shop.tenant):
        job = services.start_reprice(enqueue=False)
        services.cancel_reprice(job=job)
        job.refresh_from_db()
        assert job.status == "cancelled"
        assert services.run_reprice(job_id=job.pk).status == "cancelled"  # never runs
        with pytest.raises(ConflictError):
            services.cancel_reprice(job=job)


def test_a_product_without_sales_moves_into_its_reference_interval(shop, reprice):
    from tests.factories import ModelVersionFactory, ReferencePriceFactory

    with tenant_context(shop.tenant):
        new = Product.objects.get(sku="NEW")  # 30.00, no sales
        version = ModelVersionFactory(tenant=shop.tenant)
        ReferencePriceFactory(
            tenant=shop.tenant,
            product=new,
            model_version=version,
            price="20.00",
            low="18.00",
            high="22.00",
        )
        job = reprice()
        rec = Recommendation.objects.get(job=job, product=new)
        other = Recommendation.objects.get(job=job, product__sku="BAD")  # conflict, untouched
    # toward 22.00, held by the 20 % step (and the cumulative change of 20 % per 28 days)
    assert rec.recommended_price == Decimal("24.00")
    assert "reference" in rec.binding_rules and "max_step" in rec.binding_rules
    assert "no sales yet" in rec.explanation
    assert other.status == "conflict"


def test_a_product_without_sales_or_reference_keeps_its_price(shop, reprice):
    with tenant_context(shop.tenant):
        job = reprice()
        rec = Recommendation.objects.get(job=job, product__sku="NEW")
    assert rec.recommended_price == rec.current_price and "no_estimate" in rec.binding_rules


# --- found in review: double sends, stale approvals, stuck jobs ------------------------------


def test_a_newer_job_keeps_approved_prices_not_yet_sent_and_flags_a_difference(
    shop, reprice, approve_some
):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        reprice()
        old = approve_some()
        # the merchant changes a rule: the next job recommends other prices for some SKUs
        rules.save_rule_set(values={"name": "Tighter", "max_step": "0.03"})
        job = reprice()
        kept = Recommendation.objects.filter(pk__in=old)
        assert {r.status for r in kept} == {"approved"}  # the decision is not lost
        assert all(r.flag.startswith(f"job {job.pk} now recommends") for r in kept)
        newer = Recommendation.objects.filter(job=job, product_id__in=[r.product_id for r in kept])
        assert all("waits to be published" in r.flag for r in newer)
        assert not any(r.auto_approved for r in newer)
        # approving the newer recommendation replaces the older approval, never both sent
        approvals.decide(recommendation=newer[0], approve=True)
        older = kept.get(product_id=newer[0].product_id)
        assert older.status == "superseded"
        publication = publishing.publish()
        sent = PriceChange.objects.filter(publication=publication)
        assert sent.count() == 3 and sent.filter(recommendation=newer[0]).exists()


def test_a_job_whose_worker_died_does_not_block_the_tenant(shop):
    with tenant_context(shop.tenant):
        stuck = services.start_reprice(enqueue=False)
        services.RepriceJob.objects.filter(pk=stuck.pk).update(
            status="running", started_at=timezone.now() - timedelta(hours=2)
        )
        fresh = services.start_reprice(enqueue=False)
        stuck.refresh_from_db()
    assert fresh.pk != stuck.pk and fresh.status == "queued"
    assert stuck.status == "failed" and "stopped" in stuck.message


def test_nightly_runs_without_new_data_never_ratchet_a_price(shop, reprice):
    """Every change approved and published, then the job again with no new sales: a SKU moved
    up waits for sales at its new price before it moves up again (and likewise down)."""
    with tenant_context(shop.tenant), actor_context(None, "ops@shop.test"):
        approvals.update_policy(auto_approve=False)
        start = dict(Product.objects.values_list("pk", "price"))
        for _night in range(3):
            job = reprice()
            if not Recommendation.objects.filter(job=job, status="pending").exists():
                break
            approvals.bulk_decide(approve=True, where=approvals.BulkFilter(job_id=job.pk))
            publication = publishing.publish(enqueue=False)
            publishing.run_publication(publication_id=publication.pk)
        end = dict(Product.objects.values_list("pk", "price"))
        later = Recommendation.objects.filter(job=job)
        moved = [pk for pk in start if end[pk] != start[pk]]
        assert moved  # the first night did move prices
        for rec in later.filter(product_id__in=moved):
            first_way = end[rec.product_id] - start[rec.product_id]
            again = (rec.recommended_price or rec.current_price) - rec.current_price
            assert again * first_way <= 0, (rec.product_id, first_way, again)  # not the same way
        assert all(abs(end[pk] / start[pk] - 1) <= Decimal("0.2001") for pk in start)


def test_a_tenant_with_one_day_of_sales_keeps_every_price_and_says_why(world_a, reprice):
    from pricing_saas.catalog.importer import import_rows

    with tenant_context(world_a.tenant):
        import_rows(
            kind="products",
            rows=[
                {"sku": f"S{i}", "title": f"Item {i}", "price": 10 + i, "cost": 5}
                for i in range(40)
            ],
        )
        import_rows(
            kind="sales",
            rows=[
                {"date": "2026-11-30", "sku": f"S{i}", "units": 3, "price": 10 + i}
                for i in range(40)
            ],
        )
        job = reprice()
        recs = list(Recommendation.objects.filter(job=job))
    assert job.status == "succeeded" and len(recs) == 40
    assert all(r.recommended_price == r.current_price for r in recs)
    assert all("not enough sales history" in r.explanation for r in recs)


def test_a_kept_approval_whose_price_moved_since_is_superseded_not_sent(
    shop, reprice, approve_some
):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        reprice()
        old = approve_some(1)
        rec = Recommendation.objects.get(pk=old[0])
        Product.objects.filter(pk=rec.product_id).update(price=Decimal("26.00"))  # shop moved
        reprice()
        rec.refresh_from_db()
        assert rec.status == "superseded" and "changed since" in rec.flag


def test_without_a_demand_model_no_price_moves_toward_a_reference(world_a, reprice):
    from pricing_saas.catalog.importer import import_rows
    from tests.factories import ModelVersionFactory, ReferencePriceFactory

    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=[{"sku": "A", "title": "A", "price": 20, "cost": 5}])
        import_rows(
            kind="sales",
            rows=[
                {"date": f"2026-11-{d:02d}", "sku": "A", "units": 3, "price": 20} for d in (1, 2, 3)
            ],
        )
        product = Product.objects.get(sku="A")
        version = ModelVersionFactory(tenant=world_a.tenant)
        ReferencePriceFactory(
            tenant=world_a.tenant,
            product=product,
            model_version=version,
            price="30.00",
            low="28.00",
            high="32.00",
        )
        job = reprice()
        rec = Recommendation.objects.get(job=job)
    assert rec.recommended_price == rec.current_price and "not enough sales" in rec.explanation


def test_after_a_rollback_the_undone_direction_waits_for_the_window(shop, reprice):
    with tenant_context(shop.tenant), actor_context(None, "ops@shop.test"):
        product = Product.objects.get(sku="P0")
        up = PriceChange.objects.create(
            tenant=shop.tenant,
            product=product,
            old_price=Decimal("20"),
            new_price=Decimal("24"),
            status="published",
            published_at=timezone.now() - timedelta(days=20),
        )
        PriceChange.objects.create(
            tenant=shop.tenant,
            product=product,
            kind="rollback",
            old_price=Decimal("24"),
            new_price=Decimal("20"),
            status="published",
            reverts=up,
            published_at=timezone.now() - timedelta(days=10),
        )
        job = reprice()
        rec = Recommendation.objects.get(job=job, product=product)
    assert rec.recommended_price <= rec.current_price  # the undone raise is not proposed again


def test_a_locked_product_is_left_out_of_a_reprice_until_its_lock_ends(shop, reprice):
    import datetime as dt

    from pricing_saas.pricing.models import PriceLock

    with tenant_context(shop.tenant):
        product = Product.objects.get(sku="P12")
        PriceLock.objects.create(product=product, until=dt.date.today(), reason="price test 1")
        job = reprice()
        assert not Recommendation.objects.filter(job=job, product=product).exists()
        assert Recommendation.objects.filter(job=job).exists()
        PriceLock.objects.update(until=dt.date.today() - dt.timedelta(days=1))  # ended
        job = reprice()
        assert Recommendation.objects.filter(job=job, product=product).exists()


def test_the_risk_of_a_recommended_change_not_yet_verified_is_carried_to_the_next_run(shop):
    """History.unverified_from: the price before the last change where it was the product's
    own recommendation and no week of sales at the new price exists yet (NaN otherwise)."""
    import datetime as dt

    from pricing_saas.catalog.importer import import_rows
    from pricing_saas.pricing.models import RepriceJob

    def change(sku, old, new, days_ago, kind="recommendation", recommended=None, chance=None):
        product = Product.objects.get(sku=sku)
        rec = None
        if recommended is not None:  # the recommendation it came from, with its chance
            rec = Recommendation.objects.create(
                job=RepriceJob.objects.create(status="succeeded"),
                product=product,
                current_price=Decimal(old),
                recommended_price=Decimal(recommended),
                loss_chance=chance,
            )
        return PriceChange.objects.create(
            product=product,
            kind=kind,
            old_price=Decimal(old),
            new_price=Decimal(new),
            status="published",
            published_at=timezone.now() - timedelta(days=days_ago),
            recommendation=rec,
        )

    with tenant_context(shop.tenant):
        # waiting for sales at 22: its risk carries, the chance it was charged with it
        change("P0", "20", "22", 3, recommended="22", chance=0.04)
        change("P1", "20", "21", 3, kind="external")  # changed in the shop: not our bet
        raised = change("P2", "20", "22", 5)
        PriceChange.objects.filter(pk=raised.pk).update(kind="recommendation")
        change("P2", "22", "20", 2, kind="rollback")  # undone
        change("P3", "20", "19", 12)  # then a week of sales at 19: verified
        change("P4", "20", "21", 9)  # two recommended changes: the last one counts
        change("P4", "21", "22", 4, recommended="23", chance=0.07)  # the approver's price
        start = dt.date.today() - dt.timedelta(days=10)
        import_rows(
            kind="sales",
            rows=[
                {"date": (start + dt.timedelta(days=d)).isoformat(), "sku": "P3", "units": 2,
                 "price": 19}
                for d in range(9)
            ],
        )  # fmt: skip
        catalog = services.Catalog.load()
        n = len(catalog)
        history = services.History.load(catalog, np.full(n, 0.2), np.full(n, 28.0))
        got = dict(zip(catalog.sku, history.unverified_from, strict=True))
        charged = dict(zip(catalog.sku, history.unverified_chance, strict=True))
    assert got["P0"] == 20.0 and got["P4"] == 21.0
    # the chance charged, where the price published is the one recommended (else judged again)
    assert charged["P0"] == 0.04 and np.isnan(charged["P4"]) and np.isnan(charged["P1"])
    assert np.isnan(got["P1"]) and np.isnan(got["P2"]) and np.isnan(got["P3"])
    assert np.isnan(got["P5"])  # never changed


def test_a_competitor_listing_far_from_the_products_price_is_another_item_and_left_out(
    shop, monkeypatch
):
    """A feed's match that lists an accessory at 3.50 (or a multipack at 70) against a product
    at 20 is not the competitor's price: the real seller's is read, the competitor position
    rule holds against it (not against 3.50, which would cut by the step limit every night),
    and the explanation names the listing left out so the merchant can fix the match."""
    from pricing_saas.catalog.importer import import_rows

    def at(days):
        return (timezone.now() - timedelta(days=days, hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")

    stamp = at(0)
    offers = [
        {"sku": "P3", "competitor": "Junk", "price": "3.50", "observed_at": stamp},
        {"sku": "P3", "competitor": "Real", "price": "19.00", "observed_at": stamp},
        {"sku": "P4", "competitor": "Pack", "price": "70.00", "observed_at": stamp},
    ]
    # feeds whose readings jitter 3 % (so earlier readings are averaged into a level), and one
    # whose scraper landed on an accessory yesterday: that reading is not part of its run
    rng = np.random.default_rng(2)
    for sku in ("P6", "P7", "P8", "P9", "P5"):
        for days in range(9, -1, -1):
            price = 18.5 * float(np.exp(rng.normal(0, 0.03)))
            if sku == "P5" and days == 1:
                price = 3.5
            offers.append(
                {"sku": sku, "competitor": "Flip", "price": f"{price:.2f}", "observed_at": at(days)}
            )
    seen = []
    plain = services.optimise
    monkeypatch.setattr(services, "optimise", lambda *a, **kw: seen.append(a[5]) or plain(*a, **kw))
    with tenant_context(shop.tenant):
        import_rows(kind="competitor_prices", rows=offers)
        rules.save_rule_set(values={"name": "Near them", "max_above_competitor": "0.05"})
        job = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        recs = {
            r.product.sku: r
            for r in Recommendation.objects.filter(job=job, product__sku__in=["P3", "P4", "P5"])
        }
        noise = services.tenant_competitor_noise()
    p3, p4 = recs["P3"], recs["P4"]
    assert p3.competitor_name == "Real" and float(p3.competitor_price) == pytest.approx(19.0)
    assert float(p3.recommended_price) <= 19.0 * 1.05 + 0.005  # the rule, against 19.00
    caps = np.concatenate([np.atleast_1d(r.competitor_cap) for r in seen])
    prices = np.concatenate([np.atleast_1d(r.competitor_price) for r in seen])
    assert caps[np.isclose(prices, 19.0)] == pytest.approx([19.0])  # P3's: not 3.50
    assert np.nanmin(caps) > 10  # no accessory's price anywhere
    assert "Junk at 3.50" in p3.explanation and "left out" in p3.explanation
    # the rule's sentence names the reading it held against
    assert "competitor" in p3.binding_rules
    assert "(at most 5% above the lowest competitor) caps the price: Real at 19.00." in (
        p3.explanation
    )
    assert p4.competitor_price is None and p4.competitor_name == ""
    assert "Pack at 70.00" in p4.explanation
    assert noise.changes >= 30 and noise.jitter > 0.01  # the levels read several readings
    assert float(recs["P5"].competitor_price) == pytest.approx(18.5, rel=0.04)
    assert "left out" not in recs["P5"].explanation  # its latest reading is the item's


def test_a_price_every_competitor_puts_far_away_is_in_doubt_kept_and_flagged(shop):
    """Two sellers that agree (65 and 70) both price a product at 20 over three times it: the
    product's own price is most likely wrong (a typo, a unit price), not both their matches.
    Its price is kept (no move is built on it), the recommendation is flagged and says why;
    only a hard rule moves it. One seller that far, two on opposite sides, or two that do not
    agree with each other leave the product's price trusted (a wrong match each)."""
    from pricing_saas.catalog.importer import import_rows

    stamp = (timezone.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    quotes = {
        "P10": [("Alpha", "65.00"), ("Beta", "70.00")],  # agree, both far above: in doubt
        "P14": [("Alpha", "5.00"), ("Beta", "5.50")],  # both far below, and a floor broken
        "NEW": [("Alpha", "95.00"), ("Beta", "99.00")],  # no sales yet: not moved either
        "P11": [("Alpha", "65.00")],  # one seller: its match, most likely
        "P12": [("Alpha", "65.00"), ("Beta", "3.50")],  # opposite sides
        "P13": [("Alpha", "65.00"), ("Beta", "150.00")],  # two other items, not one price
    }
    offers = [
        {"sku": sku, "competitor": name, "price": price, "observed_at": stamp}
        for sku, pairs in quotes.items()
        for name, price in pairs
    ]
    with tenant_context(shop.tenant):
        import_rows(kind="competitor_prices", rows=offers)
        Product.objects.filter(sku="P14").update(min_price=Decimal("22"))
        approvals.update_policy(auto_approve=False)
        job = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        recs = {
            r.product.sku: r
            for r in Recommendation.objects.filter(job=job).select_related("product")
        }
    p10, p14, new = recs["P10"], recs["P14"], recs["NEW"]
    assert p10.status == Recommendation.Status.NO_CHANGE
    assert float(p10.recommended_price) == pytest.approx(20.0)
    assert "price_doubt" in p10.binding_rules
    assert p10.flag == (
        "check this product's price: every competitor prices this product over 3 times its "
        "price (Alpha at 65.00, Beta at 70.00)"
    )
    assert p10.explanation.startswith(
        "Today's price is kept: every competitor prices this product over 3 times its price "
        "(Alpha at 65.00, Beta at 70.00), so its own price is most likely wrong"
    )
    # only the product's floor moves it (a restore), and the doubt is still said
    assert float(p14.recommended_price) == pytest.approx(22.0)
    assert {"price_doubt", "restores_rule"} <= set(p14.binding_rules)
    assert "under 33% of its price" in p14.explanation and "nothing but the rule" in p14.explanation
    # found in review: a product without sales was moved toward its reference price
    assert new.recommended_price == new.current_price and "price_doubt" in new.binding_rules
    assert new.flag.startswith("check this product's price") and "95.00" in new.explanation
    for sku in ("P11", "P12", "P13"):
        assert "price_doubt" not in recs[sku].binding_rules, sku
        assert not recs[sku].flag.startswith("check this product's price"), sku
        assert "left out" in recs[sku].explanation, sku
    # the same elastic SKUs without any doubt move (P10's cost 8 is the lowest: it would too)
    assert recs["P15"].status == Recommendation.Status.PENDING


def test_the_doubt_of_a_price_comes_first_beside_an_approval_waiting_to_be_published(shop, reprice):
    """Found in review: a waiting approval's flag replaced the doubt, when the doubt matters
    most (the approval was made against the doubted price). Both are said, the doubt first."""
    from pricing_saas.catalog.importer import import_rows

    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        first = reprice()
        moved = Recommendation.objects.filter(job=first, status="pending").select_related(
            "product"
        )[0]
        approvals.decide(recommendation=moved, approve=True)
        stamp = (timezone.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        import_rows(kind="competitor_prices", rows=[
            {"sku": moved.product.sku, "competitor": name, "price": "70.00", "observed_at": stamp}
            for name in ("Alpha", "Beta")
        ])  # fmt: skip
        second = reprice()
        rec = Recommendation.objects.get(job=second, product=moved.product)
    assert rec.flag.startswith("check this product's price: every competitor prices")
    assert f"an approved price {float(moved.recommended_price):.2f}" in rec.flag
    assert len(rec.flag) <= 200


def test_the_competitor_position_sentence_names_the_reading_it_held_against():
    """The cap is the lower of the level and the lowest latest reading of any seller: the
    sentence names that seller and price, and the rule as the merchant set it."""
    market = services.Market(
        competitor_price=np.array([19.0, 19.0, np.nan]),
        competitor_name=["A", "A", ""],
        reference={},
        reference_low=np.full(3, np.nan),
        reference_high=np.full(3, np.nan),
        competitor_reading=np.array([18.6, 19.4, np.nan]),
        competitor_reading_name=["B", "A", ""],
    )
    assert market.cap_named(0) == (18.6, "B")  # B's latest reading is under A's level
    assert market.cap_named(1) == (19.0, "A")
    said = services._capped((*market.cap_named(0), 0.0))
    assert said == (
        "The competitor position (no higher than the lowest competitor) caps the price: B at 18.60."
    )
    assert "(at least 2% below the lowest competitor)" in services._capped((18.6, "B", -0.02))
    assert "(at most 5% above" in services._capped((18.6, "B", 0.05))
    assert services._capped((np.nan, "", 0.05)) == services.RULE_WORDS["competitor"]


def test_a_raise_held_at_the_competitor_by_a_possible_collapse_names_its_price():
    """The reason `competitor_hinge` in words, naming whose price and the price, whether the
    price moved up to it or was kept next to it; one sentence, no internal code."""
    from ml.science.optimizer import Rules, optimise

    rules_ = Rules(competitor_price=10.5, max_step=0.2, loss_budget=0.5)
    hinge = {"competitor_slope": [0.0], "competitor_slope_se": [np.inf], "hinge_spread": False}
    raised = (
        "Demand may fall away faster above Acme at 10.50 than below it, so the price is not "
        "raised past it."
    )
    kept = (
        "Today's price is kept: demand may fall away faster above Acme at 10.50 than below it, "
        "and no price up to that is expected to earn clearly more."
    )
    for today, opening, sentence in ((9.0, "Raise the price by", raised), (10.4, kept, kept)):
        rec = optimise([today], [5.0], [20.0], [-1.5], [0.1], rules_, **hinge)
        said = services.explain(0, rec, -1.5, 0.1, 10.5, today, competitor_name="Acme")
        assert said.startswith(opening) and sentence in said
        assert "competitor_hinge" not in said and said.count("10.50") == 1 + (today == 9.0)
        assert "minimum gain" not in said  # one reason, not two
        anonymous = services.explain(0, rec, -1.5, 0.1, 10.5, today)
        assert "above the lowest competitor at 10.50 than" in anonymous
    assert services._hinge_words(np.nan, "") == services.RULE_WORDS["competitor_hinge"]


def test_each_seller_is_read_with_its_own_jitter(shop):
    """One seller read by a calm feed (0.5 % jitter), another by a wild scraper (6 %), each on
    every product daily for 60 days. Fitted together, the wild seller's jitter reads as
    frequent re-prices and every level is its latest reading; each seller's own noise (from
    its 1,180 changes, and clearly unlike the tenant's) reads its own jitter: the wild
    seller's level averages its readings, and the optimiser's doubt of each product's
    competitor is its seller's."""
    from pricing_saas.catalog.importer import import_rows

    rng = np.random.default_rng(9)
    offers = []
    for i in range(20):
        for name, sd, price in (("Calm", 0.005, 19.0 if i < 10 else 21.0),
                                ("Wild", 0.06, 21.0 if i < 10 else 19.0)):  # fmt: skip
            for days in range(60):
                stamp = (timezone.now() - timedelta(days=days, hours=3)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
                read = price * float(np.exp(rng.normal(0, sd)))
                offers.append(
                    {"sku": f"P{i}", "competitor": name, "price": f"{read:.2f}",
                     "observed_at": stamp}
                )  # fmt: skip
    # a third seller read three times on a few products, the cheapest there: too few changes
    # of its own, so read with the tenant's noise (review: the one case a first pass with the
    # tenant's noise is not overwritten)
    for i in range(5):
        for days in range(3):
            stamp = (timezone.now() - timedelta(days=days, hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
            read = 17.0 * float(np.exp(rng.normal(0, 0.03)))
            offers.append({"sku": f"P{i}", "competitor": "Small", "price": f"{read:.2f}",
                           "observed_at": stamp})  # fmt: skip
    with tenant_context(shop.tenant):
        import_rows(kind="competitor_prices", rows=offers)
        noise = services.tenant_competitor_noise()
        ids, prices = zip(*Product.objects.filter(sku__in=[f"P{i}" for i in range(20)])
                          .order_by("sku").values_list("pk", "price"), strict=True)  # fmt: skip
        market = services.Market.load(np.array(ids), price=np.array(prices, dtype=float))
    assert [name for name, _noise in noise.sellers] == ["Calm", "Wild"]
    assert noise.for_seller("Calm").jitter == pytest.approx(0.005, rel=0.4)
    assert noise.for_seller("Wild").jitter == pytest.approx(0.06, rel=0.4)
    small = np.array([name == "Small" for name in market.competitor_name])
    assert small.sum() == 5 and "Small" not in dict(noise.sellers)
    assert market.competitor_jitter[small] == pytest.approx(noise.jitter)  # the tenant's
    wild = np.array([name == "Wild" for name in market.competitor_name])
    calm = ~wild & ~small
    assert wild.sum() >= 5 and calm.sum() >= 5
    assert market.competitor_jitter[wild] == pytest.approx(noise.for_seller("Wild").jitter)
    # several readings averaged (a run whose readings happen to repeat to the cent is read
    # as an exact feed's: its latest)
    assert np.mean(market.competitor_readings[wild] > 3) >= 0.8
    doubt = market.competitor_doubt(np.arange(len(ids)))
    assert doubt[wild].min() > doubt[calm].max()
