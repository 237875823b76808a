"""The partitioned demand fit through its tasks (ml.partitioned): on a tenant small enough for
both, the estimates it stores are the one-process fit's; at most PARTITION_IN_FLIGHT
parts of a run are queued at a time; a cancel or a failing part ends the run without promoting
anything and deletes what the parts staged; a part runs in its tenant only."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.db.models import Sum

from ml import partitioned, services, tasks
from ml.models import Elasticity, ModelVersion
from pricing_saas.catalog.importer import import_rows
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]

FIELDS = ("product_id", "elasticity", "elasticity_se", "raw_elasticity", "curvature",
          "curvature_se", "typical_price", "units_per_day", "days_observed", "price_low",
          "price_high", "from_prior", "competitor_slope", "competitor_slope_se", "gap_low",
          "gap_high", "promo_lift", "gap_today", "competitor_then",
          "competitor_then_readings")  # fmt: skip
PRODUCTS = 30


@pytest.fixture
def market(world_a):
    """30 products in 3 categories, 200 days: daily reports (days without a sale listed) for a
    third, order exports (sale days only, prices moving: zero-truncated rows) for the rest, a
    weekly competitor reading on two thirds, demand that collapses above it on some."""
    rng = np.random.default_rng(11)
    start = dt.date(2024, 1, 1)
    products, sales, offers = [], [], []
    for i in range(PRODUCTS):
        level = float(rng.uniform(5, 40))
        products.append({"sku": f"P{i}", "title": f"Product {i}", "price": round(level, 2),
                         "cost": round(level * 0.6, 2), "category": f"c{i % 3}"})  # fmt: skip
        slope = -float(rng.uniform(0.5, 3.0))
        for day in range(200):
            date = start + dt.timedelta(days=day)
            price = level * float(np.exp(rng.normal(0, 0.1)))
            rival = level * float(np.exp(rng.normal(0, 0.04)))
            above = max(np.log(price / rival), 0.0) if i % 4 == 0 else 0.0
            promo = i % 2 == 0 and day % 9 == 4  # (the promotion lift's blocks too)
            units = int(rng.poisson(4 * (price / level) ** slope * np.exp(-3 * above)
                                    * (1.8 if promo else 1.0)))  # fmt: skip
            if units or i % 3 == 0:
                sales.append({"date": date.isoformat(), "sku": f"P{i}", "units": units,
                              "price": round(price, 2), "promo": promo})  # fmt: skip
            if i % 3 != 2 and day % 7 == 0:
                offers.append({"sku": f"P{i}", "competitor": "Rival", "price": round(rival, 2),
                               "observed_at": f"{date.isoformat()}T10:00:00Z"})  # fmt: skip
    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=products)
        import_rows(kind="sales", rows=sales)
        import_rows(kind="competitor_prices", rows=offers)
    return world_a


@pytest.fixture
def parts(settings, monkeypatch):
    """The partitioned path forced (blocks of 4 products, 2 in flight), with the parts and the
    reduce held in a FIFO queue the test runs one at a time (`run(n)`), instead of eagerly."""
    settings.DEMAND_PARTITION_MIN_SKUS = 0
    settings.DEMAND_PARTITION_BLOCK_SKUS = 4
    settings.DEMAND_PARTITION_SAMPLE_SKUS = 10_000
    settings.PARTITION_IN_FLIGHT = 2

    class Queue(list):
        most = 0  # the most parts queued at once
        ran = 0

        def run(self, n=None):
            done = 0
            while self and (n is None or done < n):
                task, args = self.pop(0)
                task.apply(args=args)
                done += 1
                self.ran += 1

    queue = Queue()

    def holder(task):
        def delay(*args):
            queue.append((task, args))
            queue.most = max(queue.most, sum(1 for t, _ in queue if t is tasks.train_part))

        return delay

    monkeypatch.setattr(tasks.train_part, "delay", holder(tasks.train_part))
    monkeypatch.setattr(tasks.train_reduce, "delay", holder(tasks.train_reduce))
    return queue


def train_demand(world):
    with tenant_context(world.tenant):
        version = services.start_training(kind="demand", enqueue=False)
        return services.run_training(version_id=version.pk)


def stored(world, version) -> dict[int, tuple]:
    with tenant_context(world.tenant):
        rows = Elasticity.objects.filter(model_version=version).values_list(*FIELDS)
        return {row[0]: row[1:] for row in rows}


def refreshed(world, version):
    with tenant_context(world.tenant):
        return ModelVersion.objects.get(pk=version.pk)


def staged(version) -> list[str]:
    folder = f"partitions/{version.tenant_id}/demand-{version.pk}"
    if not default_storage.exists(folder):
        return []
    return default_storage.listdir(folder)[1]


def test_the_partitioned_fit_stores_the_one_process_estimates(market, parts, settings):
    settings.DEMAND_PARTITION_MIN_SKUS = 10**9
    one = train_demand(market)
    assert one.status == "promoted" and "partitioned" not in one.metrics
    settings.DEMAND_PARTITION_MIN_SKUS = 0
    version = train_demand(market)
    assert version.status == "training" and parts  # the pooled stage ran and queued parts
    assert version.progress["parts"] == 8 and version.progress["share"] == 0.0
    # every block reads today's competitor price up to the plan's one day (the day after the
    # last day of sales of a history that ends before today, as one process reads it)
    plan = version.progress["partitioned"]
    assert plan["reading_day"] == plan["day_range"][1] + 1
    assert {partitioned._block(plan, k)["reading_day"] for k in range(8)} == {plan["reading_day"]}
    parts.run()
    version = refreshed(market, version)
    assert version.status == "promoted", version.message
    assert version.metrics["partitioned"] == {
        "parts": 8, "block_skus": 4, "pooled_products": 30, "unread_controls": []
    }  # fmt: skip
    # the version says the day its fit read the competitor's week up to, as one process's does
    # (a reprice reads it again there: ml.selectors._counted)
    assert version.metrics["reading_day"] == one.metrics["reading_day"]
    assert version.metrics["reading_day"] == dt.date.fromordinal(plan["reading_day"]).isoformat()
    assert parts.most == 2  # never more than PARTITION_IN_FLIGHT parts queued
    assert staged(version) == []  # the parts' staged results are gone
    a, b = stored(market, one), stored(market, version)
    assert len(a) == PRODUCTS and a.keys() == b.keys()
    for pk in a:
        for name, x, y in zip(FIELDS[1:], a[pk], b[pk], strict=True):
            if x is None or isinstance(x, bool):
                assert x == y, (pk, name)
            else:
                assert abs(float(x) - float(y)) < 1e-6, (pk, name, x, y)
    assert any(row[FIELDS.index("competitor_slope") - 1] < 0 for row in a.values())
    # today's position read on the tenant's last day in every part, as in one process
    assert sum(row[FIELDS.index("gap_today") - 1] is not None for row in a.values()) >= 15
    # ... against the competitor's week as each part read it, with its days read
    at = FIELDS.index("gap_today") - 1
    then = [row[at + 1 :] for row in a.values() if row[at] is not None]
    assert all(c is not None and k is not None for c, k in then)
    assert any(k > 0 for _, k in then)
    assert any(row[FIELDS.index("raw_elasticity") - 1] is not None for row in a.values())
    assert (
        one.metrics["poisson_eb"]["pooled_elasticity"]
        == (version.metrics["poisson_eb"]["pooled_elasticity"])
    )
    assert one.metrics["coefficients"].keys() == version.metrics["coefficients"].keys()
    for name, value in one.metrics["coefficients"].items():
        assert abs(value - version.metrics["coefficients"][name]) <= 1e-4  # stored rounded
    for name in ("zero_share", "truncated_share", "competitor_share", "n_skus", "product_days"):
        assert one.metrics[name] == pytest.approx(version.metrics[name], abs=1e-12), name
    with tenant_context(market.tenant):
        assert ModelVersion.objects.get(pk=one.pk).status == "ready"  # replaced, whole


def test_a_gated_retraining_in_parts_is_judged_on_its_sample_as_a_one_process_run_is(
    market, parts, settings
):
    """The nightly retraining of a tenant fitted in parts is promoted only if it wins the
    backtest against the version in force: run by the pooled stage on its sample of products,
    which here is every product, so the verdict is the one-process run's to the digit."""
    from ml.panel import demand_panel

    settings.DEMAND_PARTITION_MIN_SKUS = 10**9
    in_force = train_demand(market)
    with tenant_context(market.tenant):
        # the version in force saw the first 150 of the 200 days: 50 newer days to judge on
        in_force.metrics = {**in_force.metrics, "last_day": "2024-05-30"}
        in_force.save(update_fields=["metrics"])
        panel, product_ids, _stats = demand_panel()
        expected = services._challenge(panel, product_ids)
    assert expected["skus"] > 0 and expected["holdout_days"] > 0
    settings.DEMAND_PARTITION_MIN_SKUS = 0
    with tenant_context(market.tenant):
        version = services.start_training(kind="demand", gate=True, reason="drift", enqueue=False)
        version = services.run_training(version_id=version.pk)
    assert version.status == "training"
    parts.run()
    version = refreshed(market, version)
    verdict = version.metrics["against_in_force"]
    for name in ("promoted", "holdout_days", "skus", "rows", "deviance", "in_force_deviance"):
        assert verdict[name] == expected[name], name
    assert verdict["sample_products"] == PRODUCTS
    assert f"judged on {PRODUCTS} products sampled over the tenant" in version.message
    assert version.status == ("promoted" if expected["promoted"] else "ready")
    assert refreshed(market, in_force).status == ("ready" if expected["promoted"] else "promoted")


def test_a_gated_retraining_in_parts_is_not_promoted_over_a_version_put_in_force_meanwhile(
    market, parts, settings
):
    """The parts of a large tenant take hours: a version a person puts in force after the
    backtest is not replaced on the strength of a verdict about another."""
    settings.DEMAND_PARTITION_MIN_SKUS = 10**9
    earlier = train_demand(market)
    judged_against = train_demand(market)
    assert judged_against.status == "promoted"
    settings.DEMAND_PARTITION_MIN_SKUS = 0
    with tenant_context(market.tenant):
        version = services.start_training(kind="demand", gate=True, reason="drift", enqueue=False)
        services.run_training(version_id=version.pk)  # the pooled stage judges it
        services.promote(version=refreshed(market, earlier))  # a person rolls back meanwhile
    parts.run()
    version = refreshed(market, version)
    assert version.status == "ready"
    assert "the version in force changed since this run was backtested" in version.message
    assert refreshed(market, earlier).status == "promoted"


def test_a_gated_retraining_in_parts_that_loses_its_backtest_leaves_the_version_in_force(
    market, parts, settings, monkeypatch
):
    settings.DEMAND_PARTITION_MIN_SKUS = 10**9
    in_force = train_demand(market)
    settings.DEMAND_PARTITION_MIN_SKUS = 0
    judged = []

    def losing(panel, product_ids):
        judged.append(len(product_ids))
        return {"promoted": False, "skus": 9, "message": "Not promoted: worse on the new days"}

    monkeypatch.setattr(services, "_challenge", losing)
    with tenant_context(market.tenant):
        version = services.start_training(kind="demand", gate=True, reason="drift", enqueue=False)
        services.run_training(version_id=version.pk)
    parts.run()
    version = refreshed(market, version)
    assert judged == [PRODUCTS]  # judged once, in the pooled stage, on the sampled products
    assert version.status == "ready" and "worse on the new days" in version.message
    assert refreshed(market, in_force).status == "promoted"
    assert staged(version) == []


def test_progress_counts_parts_and_each_finished_part_queues_the_next(market, parts):
    version = train_demand(market)
    assert [t for t, _ in parts] == [tasks.train_part, tasks.train_part]
    parts.run(3)
    version = refreshed(market, version)
    assert version.status == "training"
    assert version.progress["parts_done"] == 3 and version.progress["share"] == 3 / 8
    assert len(parts) == 2 and len(staged(version)) == 1 + 3  # the pooled stage and 3 blocks


def test_a_pooled_stage_delivered_twice_at_once_keeps_the_first_ones_results(market, parts):
    # The second delivery ran beside the first (before the first queued its parts): it neither
    # queues parts again nor overwrites what the first recorded.
    version = train_demand(market)
    before = refreshed(market, version).progress["partitioned"]
    with tenant_context(market.tenant):
        partitioned._advance(version.pk, None, "fitting blocks", unread=["promo"], sampled=999)
    after = refreshed(market, version).progress["partitioned"]
    assert after == before and "unread" not in after
    assert len(parts) == 2


def test_a_cancel_in_the_middle_promotes_nothing_and_deletes_the_parts(market, parts, settings):
    settings.DEMAND_PARTITION_MIN_SKUS = 10**9
    before = train_demand(market)
    settings.DEMAND_PARTITION_MIN_SKUS = 0
    version = train_demand(market)
    parts.run(3)
    with tenant_context(market.tenant):
        services.cancel(version=ModelVersion.objects.get(pk=version.pk))
    waiting = len(parts)
    parts.run()  # what was queued finds the run cancelled
    version = refreshed(market, version)
    assert version.status == "cancelled" and version.message == "cancelled by a user"
    assert staged(version) == [] and not version.artifact
    assert stored(market, version) == {}
    assert refreshed(market, before).status == "promoted"  # the version in force stays
    assert waiting == 2 and parts.ran == 3 + 2  # and no part was queued after the cancel


def test_a_failing_part_fails_the_version_with_its_reason(market, parts, settings, monkeypatch):
    settings.DEMAND_PARTITION_MIN_SKUS = 10**9
    before = train_demand(market)
    settings.DEMAND_PARTITION_MIN_SKUS = 0
    from ml.science import demand

    calls = {"n": 0}
    real = demand.fit_block

    def fit_block(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("block too large")
        return real(*args, **kwargs)

    monkeypatch.setattr(demand, "fit_block", fit_block)
    version = train_demand(market)
    parts.run()
    version = refreshed(market, version)
    assert version.status == "failed"
    assert "part 3 of 8" in version.message and "MemoryError: block too large" in version.message
    assert staged(version) == [] and stored(market, version) == {}
    assert refreshed(market, before).status == "promoted"
    # the part queued beside it found the run failed and fitted nothing; none was queued after
    assert calls["n"] == 3 and parts == []


def test_a_part_runs_in_its_tenant_only(market, parts, world_b):
    with tenant_context(world_b.tenant):
        import_rows(kind="products", rows=[{"sku": "P0", "title": "B's", "price": 9}])
        import_rows(kind="sales", rows=[{"date": "2024-01-02", "sku": "P0", "units": 99,
                                         "price": 9}])  # fmt: skip
    version = train_demand(market)
    # the run's id under another tenant: that tenant has no such run, nothing happens
    tasks.train_part.apply(args=(world_b.tenant.pk, version.pk, 0))
    tasks.train_reduce.apply(args=(world_b.tenant.pk, version.pk))
    assert refreshed(market, version).progress["parts_done"] == 0
    parts.run()
    version = refreshed(market, version)
    assert version.status == "promoted"
    with tenant_context(market.tenant):
        from pricing_saas.catalog.models import Product

        mine = set(Product.objects.values_list("pk", flat=True))
    assert set(stored(market, version)) <= mine and len(stored(market, version)) == PRODUCTS
    with tenant_context(world_b.tenant):
        assert not ModelVersion.objects.filter(pk=version.pk).exists()
        assert not Elasticity.objects.exists()


def test_a_stale_check_reads_the_parts_heartbeat(market, parts):
    version = train_demand(market)
    version = refreshed(market, version)
    old = version.started_at - dt.timedelta(days=1)
    with tenant_context(market.tenant):
        ModelVersion.objects.filter(pk=version.pk).update(started_at=old)
        version.refresh_from_db()
    assert partitioned.is_partitioned(version) and not version.is_stale()
    beat = dt.datetime.fromisoformat(version.progress["partitioned"]["beat"])
    later = beat + version.time_limit.stale_after
    assert version.is_stale(later + dt.timedelta(seconds=1))


def test_a_part_staged_by_an_older_release_fails_the_run_instead_of_being_merged(
    market, parts, settings
):
    """A run whose parts span a deploy: a block staged before its variance parts carried their
    held-price clusters (format 1, no format stamp) is not merged beside newer ones."""
    settings.DEMAND_PARTITION_MIN_SKUS = 10**9
    before = train_demand(market)
    settings.DEMAND_PARTITION_MIN_SKUS = 0
    version = train_demand(market)
    parts.run(8)  # every part; the reduce is queued, not run
    assert [t for t, _ in parts] == [tasks.train_reduce]
    plan = refreshed(market, version).progress["partitioned"]
    with np.load(default_storage.open(f"{plan['folder']}/block-2.npz", "rb")) as arrays:
        older = {k: arrays[k] for k in arrays.files if k != "staged_format"}
    older = {k: v for k, v in older.items() if not k.endswith(".clusters")}
    partitioned.job_parts.save(plan, "block-2.npz", _npz(older))
    parts.run()
    version = refreshed(market, version)
    assert version.status == "failed"
    assert "part 3 was staged by another release of the demand fit (format 1" in version.message
    assert staged(version) == [] and stored(market, version) == {}
    assert refreshed(market, before).status == "promoted"


def test_a_part_refuses_a_pooled_stage_staged_by_another_release(market, parts, monkeypatch):
    version = train_demand(market)  # the pooled stage ran; two parts are queued
    monkeypatch.setattr(partitioned, "STAGED_FORMAT", partitioned.STAGED_FORMAT + 1)
    parts.run()
    version = refreshed(market, version)
    assert version.status == "failed"
    assert "part 1 of 8" in version.message
    assert "the pooled stage was staged by another release" in version.message
    assert staged(version) == [] and stored(market, version) == {}


def _npz(arrays: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _closed_on_saturdays(world, selling: set[int], promos: str = ""):
    """20 products, 120 days of daily reports (0-unit days listed), every product's Saturdays
    (day ordinal % 7 == 6) without a sale but those of `selling`. `promos`: product 1 on
    promotion on 20 days, selling; "rare": products 0 and 2 too, one day each, selling nothing
    then (too few rows to say anything); "outside": no other product."""
    rng = np.random.default_rng(5)
    start = dt.date(2024, 1, 1)
    products, sales = [], []
    for i in range(20):
        level = float(rng.uniform(5, 40))
        products.append({"sku": f"S{i}", "title": f"Product {i}", "price": round(level, 2),
                         "cost": round(level * 0.6, 2), "category": f"c{i % 2}"})  # fmt: skip
        for day in range(120):
            date = start + dt.timedelta(days=day)
            price = level * float(np.exp(rng.normal(0, 0.1)))
            units = int(rng.poisson(4 * (price / level) ** -1.5))
            if date.toordinal() % 7 == 6 and i not in selling:
                units = 0
            promo = bool(promos) and (
                (promos == "rare" and i in (0, 2) and day == 5) or (i == 1 and day % 6 == 0)
            )
            if promo and i != 1:
                units = 0
            sales.append({"date": date.isoformat(), "sku": f"S{i}", "units": units,
                          "price": round(price, 2), "promo": promo})  # fmt: skip
    with tenant_context(world.tenant):
        import_rows(kind="products", rows=products)
        import_rows(kind="sales", rows=sales)
    return world


@pytest.mark.parametrize("selling", [set(), {1}])
def test_a_closed_weekday_the_sample_saw_is_checked_on_the_whole_tenant_at_once(
    world_a, parts, settings, selling
):
    # The pooled stage reads 10 of the 20 products (positions 0, 2, 4, ...: not product 1),
    # closed on Saturdays. Where product 1 sold on Saturdays, the part holding it could not be
    # priced on a weekday the sample read as closed: the pooled stage adds product 1 to its
    # sample and reads Saturdays from it. Where every product is closed then, the run goes on
    # as sampled, Saturdays closed.
    settings.DEMAND_PARTITION_SAMPLE_SKUS = 10
    _closed_on_saturdays(world_a, selling)
    version = refreshed(world_a, train_demand(world_a))
    assert version.status == "training" and parts
    # the parts look each product's start up in the pooled stage's products: in order
    pooled = partitioned._load(version.progress["partitioned"], "pooled")
    assert len(pooled["alpha_products"]) == 10 + len(selling)
    assert np.all(np.diff(pooled["alpha_products"]) > 0)
    parts.run()
    version = refreshed(world_a, version)
    assert version.status == "promoted", version.message
    assert version.metrics["partitioned"]["pooled_products"] == 10 + len(selling)
    assert version.metrics["partitioned"]["unread_controls"] == []
    assert version.metrics[services.DEMAND_TRAINER]["open_share"] == pytest.approx(
        1.0 if selling else 6 / 7, abs=1e-3
    )
    if not selling:
        # the stored units a day are a calendar day's (an open day's x 6/7), as sold
        from pricing_saas.catalog.models import SalesRecord

        with tenant_context(world_a.tenant):
            rate = dict(
                Elasticity.objects.filter(model_version=version).values_list(
                    "product__sku", "units_per_day"
                )
            )
            recent = SalesRecord.objects.filter(date__gt=dt.date(2024, 1, 1) + dt.timedelta(62))
            sold = dict(
                recent.values("product__sku")
                .annotate(u=Sum("units"))
                .values_list("product__sku", "u")
            )
        ratio = [rate[sku] / (sold[sku] / 57) for sku in rate]
        assert 0.93 < float(np.median(ratio)) < 1.07  # 1.15 before


def test_a_closed_weekday_the_added_products_cannot_read_is_left_out_not_failed(
    world_a, parts, settings
):
    # No product may join the sample (DEMAND_PARTITION_CONTROL_SKUS = 0): the sample still saw
    # nothing sold on Saturdays, on which product 1 sold. Every part holding product 1 would
    # fail, and every later run with them, until the sample grew: Saturdays get no coefficient
    # (as a rare control) and the version names them.
    settings.DEMAND_PARTITION_SAMPLE_SKUS = 10
    settings.DEMAND_PARTITION_CONTROL_SKUS = 0
    _closed_on_saturdays(world_a, {1})
    version = refreshed(world_a, train_demand(world_a))
    assert version.status == "training" and parts
    parts.run()
    version = refreshed(world_a, version)
    assert version.status == "promoted", version.message
    assert version.metrics["partitioned"]["pooled_products"] == 10
    assert version.metrics["partitioned"]["unread_controls"] == ["dow_6"]
    assert version.metrics[services.DEMAND_TRAINER]["open_share"] == pytest.approx(1.0)
    # the other weekdays as the fit with Saturdays pinned read them (none differs): refitted
    # without Saturdays, Sunday (the base) took their zeros and every weekday read +0.65
    weekdays = {k: v for k, v in version.metrics["coefficients"].items() if k.startswith("dow_")}
    assert "dow_6" not in weekdays and len(weekdays) == 5
    assert max(abs(v) for v in weekdays.values()) < 0.25, weekdays


def test_the_products_added_to_the_sample_are_the_tenants_own(world_a, world_b, settings):
    # Both tenants sell on Saturdays; each one's added products are its own, and the sample's
    # ranges stay out.
    _closed_on_saturdays(world_a, {1, 3, 5})
    _closed_on_saturdays(world_b, {2, 4})
    settings.DEMAND_PARTITION_CONTROL_SKUS = 10
    for world, selling in ((world_a, {1, 3, 5}), (world_b, {2, 4})):
        with tenant_context(world.tenant):
            from pricing_saas.catalog.models import Product

            ids = dict(Product.objects.values_list("sku", "pk"))
            first = ids["S1"] if world is world_a else ids["S2"]
            plan = {"tracks": False, "sample": [[first, first + 1]]}  # the sample holds one
            found = partitioned._sellers_on(plan, ["dow_6"])
        want = [ids[f"S{i}"] for i in sorted(selling) if ids[f"S{i}"] != first]
        got = [pid for low, high in found for pid in range(low, high)]
        assert got == sorted(want)


def test_the_products_added_for_a_promotion_are_those_with_the_most_days_on_it(world_a, settings):
    # Ranked by units, the products a promotion lifted most join the sample and the shared
    # promotion coefficient read from them is theirs (review: +0.13 to +0.20). Ranked by days
    # on it among those that sold then: B (ten promotion days, a unit each) before A (one day,
    # 500 units) and before C (promotions on which it never sold).
    start = dt.date(2024, 1, 1)
    products = [{"sku": s, "title": s, "price": 10} for s in "ABC"]
    sales = [{"date": start.isoformat(), "sku": "A", "units": 500, "price": 9, "promo": True}]
    for day in range(10):
        date = (start + dt.timedelta(days=day)).isoformat()
        sales.append({"date": date, "sku": "B", "units": 1, "price": 9, "promo": True})
    for day in range(20):
        date = (start + dt.timedelta(days=day)).isoformat()
        sales.append({"date": date, "sku": "C", "units": 0, "price": 9, "promo": True})
    settings.DEMAND_PARTITION_CONTROL_SKUS = 1
    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=products)
        import_rows(kind="sales", rows=sales)
        from pricing_saas.catalog.models import Product

        ids = dict(Product.objects.values_list("sku", "pk"))
        plan = {"tracks": False, "sample": []}
        assert partitioned._sellers_on(plan, ["promo"]) == [[ids["B"], ids["B"] + 1]]
        settings.DEMAND_PARTITION_CONTROL_SKUS = 5  # A and B (ids in a row: one range)
        assert partitioned._sellers_on(plan, ["promo"]) == [[ids["A"], ids["B"] + 1]]


@pytest.mark.parametrize("added", [50, 0])
@pytest.mark.parametrize("promos", ["rare", "outside"])
def test_a_rare_control_the_sample_left_out_is_checked_on_the_whole_tenant(
    world_a, parts, settings, promos, added
):
    # "rare": the sample's two promotion days sold nothing, where its rates expected about 8
    # units: too few to read, the promotion has no coefficient; "outside": the sample has no
    # promotion at all. Product 1, outside the sample, sold on its 20 promotions: it joins the
    # sample, which reads the promotion from it. Where no product may join, its block reads
    # their lift as its price's: the run goes on, and the version names the control.
    settings.DEMAND_PARTITION_SAMPLE_SKUS = 10
    settings.DEMAND_PARTITION_CONTROL_SKUS = added
    _closed_on_saturdays(world_a, set(range(20)), promos=promos)
    version = refreshed(world_a, train_demand(world_a))
    assert version.status == "training" and parts
    parts.run()
    version = refreshed(world_a, version)
    assert version.status == "promoted", version.message
    unread = version.metrics["partitioned"]["unread_controls"]
    assert unread == ([] if added else ["promo"])
    assert version.metrics["partitioned"]["pooled_products"] == (11 if added else 10)


def test_a_pooled_stage_stored_by_the_release_before_reads_its_k_as_read_and_used():
    """A pooled-stage file written before the choice of weights holds the k the weights took
    and no `counts_k` or `weights_ratio`: read back, the k read is that k, and nothing was
    compared; one from before the weights reads Poisson's."""
    from ml.science.demand import Panel, fit_pooled

    rng = np.random.default_rng(2)
    sku = np.repeat(np.arange(40), 60)
    price = 10 * np.exp(rng.normal(0, 0.1, len(sku)))
    panel = Panel(sku=sku, day=np.tile(np.arange(738000, 738060), 40),
                  units=rng.poisson(3 * (price / 10) ** -1.5), price=price)  # fmt: skip
    arrays = {
        key: value
        for key, value in partitioned._pooled_arrays(fit_pooled(panel)).items()
        if key not in ("counts_k", "weights_ratio")
    }
    arrays["weight_k"] = np.asarray(0.7)

    class Stored(dict):
        files = property(lambda self: list(self))

    before = partitioned._pooled_of(Stored(arrays))
    assert before.weight_k == before.counts_k == 0.7 and np.isnan(before.weights_ratio)
    del arrays["weight_k"]
    older = partitioned._pooled_of(Stored(arrays))
    assert older.weight_k == older.counts_k == 0.0
