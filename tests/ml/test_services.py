"""The Django side of `ml` (`ml/services.py`): training runs and the model registry
(promote, roll back, cancel, base models, promotion only when a version wins), estimates
kept per version."""

from __future__ import annotations

import io

import numpy as np
import pytest

from ml import services
from ml.models import ModelVersion, ReferencePrice, TextModelConfig
from pricing_saas.catalog.importer import import_rows
from pricing_saas.catalog.models import Product
from tenants.context import tenant_context
from tests.factories import synthetic_catalog

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def refresh(world, version):
    with tenant_context(world.tenant):
        version.refresh_from_db()
    return version


def test_training_promotes_and_stores_reference_prices(stocked, train):
    version = train(stocked)
    assert version.status == "promoted" and version.trainer == "baseline"
    assert version.metrics["baseline"]["rmsle"] > 0 and version.data_size == 150
    assert version.artifact.name.endswith(".zip")
    with tenant_context(stocked.tenant):
        assert ReferencePrice.objects.count() == 150


def test_second_run_while_one_is_queued_returns_it(stocked):
    with tenant_context(stocked.tenant):
        first = services.start_training(trainer="baseline", enqueue=False)
        again = services.start_training(trainer="baseline", enqueue=False)
    assert first.pk == again.pk


def test_a_failed_run_leaves_the_promoted_model_in_force(stocked, train):
    good = train(stocked)
    with tenant_context(stocked.tenant):
        Product.objects.update(active=False)  # the next run has no data
    bad = train(stocked)
    refresh(stocked, good)
    assert bad.status == "failed" and "at least 10" in bad.message
    assert good.status == "promoted"


def test_promote_and_roll_back(stocked, train):
    v1 = train(stocked)
    with tenant_context(stocked.tenant):
        Product.objects.filter(sku="S1").update(price=999)
    v2 = train(stocked)
    with tenant_context(stocked.tenant):
        if v2.status != "promoted":  # auto-promoted only if it beat v1: promoted by hand here
            services.promote(version=v2)
    refresh(stocked, v1)
    assert v1.status == "ready"
    with tenant_context(stocked.tenant):
        back = services.rollback()
        assert back.pk == v1.pk and ModelVersion.objects.get(pk=v2.pk).status == "ready"
        assert ModelVersion.objects.filter(status="promoted").count() == 1


def test_cancel_a_queued_run(stocked):
    with tenant_context(stocked.tenant):
        version = services.start_training(trainer="baseline", enqueue=False)
        services.cancel(version=version)
        version.refresh_from_db()
        assert version.status == "cancelled"
        assert services.run_training(version_id=version.pk).status == "cancelled"  # idempotent


def test_unknown_base_model_name_is_refused(stocked):
    with (
        tenant_context(stocked.tenant),
        pytest.raises(services.ServiceError, match="unknown base model"),
    ):
        services.start_training(trainer="finetune", base_model="klingon")


def test_configured_base_model_must_be_a_bert_folder(stocked, settings, tmp_path):
    settings.ML_BASE_MODELS = {"broken": str(tmp_path)}
    with (
        tenant_context(stocked.tenant),
        pytest.raises(services.ServiceError, match=r"no config\.json"),
    ):
        services.start_training(trainer="finetune", base_model="broken")
    with tenant_context(stocked.tenant):
        assert ModelVersion.objects.count() == 0


def test_per_tenant_base_model_and_trainer(stocked, settings, tiny_bert):
    settings.ML_BASE_MODELS = {"tiny": str(tiny_bert)}
    with tenant_context(stocked.tenant):
        TextModelConfig.objects.create(
            tenant=stocked.tenant, base_model="tiny", trainer="embed_ridge"
        )
        version = services.start_training()
        version.refresh_from_db()
    assert version.requested_trainer == "embed_ridge" and "tiny" in version.base_model
    assert "embed_ridge" in version.metrics or "note" in version.metrics


# --- a later version is promoted automatically only if it wins --------------------------------


def _held_out_skus(world) -> set[str]:
    """The SKUs every baseline run holds out (the split is by product id)."""
    from ml.science.text_price import TrainConfig, held_out_split

    with tenant_context(world.tenant):
        pks, skus = zip(*Product.objects.values_list("pk", "sku"), strict=True)
    held, _ = held_out_split(len(pks), TrainConfig().test_share, TrainConfig().seed, pks)
    return {skus[i] for i in held}


def _shuffle_prices(world, skus, seed=0) -> None:
    rng = np.random.default_rng(seed)
    with tenant_context(world.tenant):
        rows = list(Product.objects.filter(sku__in=skus).values_list("pk", "price"))
        prices = rng.permutation([price for _, price in rows])
        for (pk, _), price in zip(rows, prices, strict=True):
            Product.objects.filter(pk=pk).update(price=price)


def test_a_later_version_that_does_worse_on_the_same_products_stays_ready(stocked, train):
    """Observed: a newer version was promoted though its held-out RMSLE was worse than the
    version in force. Now it stays ready, with both figures on the same held-out products."""
    v1 = train(stocked)
    held = _held_out_skus(stocked)
    with tenant_context(stocked.tenant):
        training = set(Product.objects.exclude(sku__in=held).values_list("sku", flat=True))
    _shuffle_prices(stocked, training)  # the next run learns from scrambled prices
    v2 = train(stocked)
    refresh(stocked, v1)
    verdict = v2.metrics["against_in_force"]
    assert v1.status == "promoted" and v2.status == "ready"
    assert verdict["version"] == v1.version and verdict["products"] == len(held)
    assert verdict["products"] == v2.metrics["n_test"] and not verdict["promoted"]
    assert verdict["rmsle"] > verdict["in_force_rmsle"]
    assert verdict["in_force_scored_by"].startswith("its predictions")
    assert "Not promoted: held-out RMSLE" in v2.message
    assert f"{verdict['rmsle']:.4f} against {verdict['in_force_rmsle']:.4f} for v1" in v2.message
    with tenant_context(stocked.tenant):
        assert set(ReferencePrice.objects.values_list("model_version", flat=True)) == {v1.pk}
        services.promote(version=v2)  # a person may still promote it
        assert ModelVersion.objects.get(pk=v2.pk).status == "promoted"


def test_a_later_version_that_does_better_is_promoted(stocked, train):
    with tenant_context(stocked.tenant):
        real = dict(Product.objects.values_list("pk", "price"))
    _shuffle_prices(stocked, [f"S{i}" for i in range(150)])
    v1 = train(stocked)  # learnt from scrambled prices: in force, but poor
    with tenant_context(stocked.tenant):
        for pk, price in real.items():
            Product.objects.filter(pk=pk).update(price=price)
    v2 = train(stocked)
    refresh(stocked, v1)
    verdict = v2.metrics["against_in_force"]
    assert v2.status == "promoted" and v1.status == "ready" and verdict["promoted"]
    assert verdict["rmsle"] < verdict["in_force_rmsle"] and v2.message.count("Promoted:") == 1


def test_a_version_in_force_without_held_out_records_is_scored_on_the_new_held_out(stocked, train):
    import zipfile

    from django.core.files.base import ContentFile

    v1 = train(stocked)
    with tenant_context(stocked.tenant):  # as trained before held-out predictions were kept
        with v1.artifact.open("rb") as handle, zipfile.ZipFile(handle) as archive:
            files = {n: archive.read(n) for n in archive.namelist() if n != "held_out.json"}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        v1.artifact.save("legacy.zip", ContentFile(buffer.getvalue()))
    v2 = train(stocked)
    verdict = v2.metrics["against_in_force"]
    assert verdict["in_force_scored_by"].startswith("scored now")
    assert verdict["products"] == v2.metrics["n_test"]
    # v1 was refitted on every product, held-out ones included: same data, v2 cannot beat it
    assert v2.status == "ready" and not verdict["promoted"]


def test_without_auto_promote_a_version_stays_ready(stocked, train):
    with tenant_context(stocked.tenant):
        TextModelConfig.objects.create(tenant=stocked.tenant, auto_promote=False)
    version = train(stocked)
    assert version.status == "ready" and "against_in_force" not in version.metrics


def test_the_promoted_artifact_has_seen_every_product(stocked, train):
    version = train(stocked)
    refit = version.metrics["refit"]
    assert refit["products"] == version.data_size == 150 and refit["refitted"] == ["baseline"]
    assert "Refitted on all 150 products" in version.message
    assert version.metrics["n_train"] + version.metrics["n_validation"] < 150


def test_reference_prices_far_outside_their_category_are_flagged(world_a, train):
    """A product listed among stationery whose text says it is a television: its reference
    lies far above anything the category sells, so it is stored flagged, not to be used."""
    texts, prices = synthetic_catalog(150)
    rows = [
        {"sku": f"S{i}", "title": t, "price": p, "category": "general"}
        for i, (t, p) in enumerate(zip(texts, prices, strict=True))
    ]
    rows += [
        {
            "sku": f"P{i}",
            "title": f"acme pen model {i}",
            "price": 2.5 + 0.2 * i,
            "category": "stationery",
        }
        for i in range(5)
    ]
    rows.append(
        {"sku": "ODD", "title": "nova television model 7", "price": 3.0, "category": "stationery"}
    )
    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=rows)
    train(world_a)
    with tenant_context(world_a.tenant):
        odd = ReferencePrice.objects.get(product__sku="ODD")
        flagged = set(
            ReferencePrice.objects.filter(outside_category_range=True).values_list(
                "product__sku", flat=True
            )
        )
    assert odd.outside_category_range and float(odd.price) > 3 * 3.3
    assert flagged == {"ODD"}


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


def test_estimates_stored_without_the_slope_hinge_correlation_read_it_as_none_known(shop):
    # (nor the promotion lift: none stored, read as 1)
    """An artifact archived before the correlation was (its restore writes the rows it has):
    the rows hold NULL, and the curve judges the slope's and the hinge's errors as independent."""
    from ml.models import Elasticity
    from ml.selectors import demand_curve

    with tenant_context(shop.tenant):
        version = services.start_training(kind="demand", enqueue=False)
        version = services.run_training(version_id=version.pk, sync=True)
        rows = Elasticity.objects.filter(model_version=version).order_by("product_id")
        estimates = {
            name: np.array(list(rows.values_list(name, flat=True)), dtype=float)
            for name in services.ESTIMATE_FIELDS
            if name != "typical_price"
        }
        estimates["product_id"] = estimates["product_id"].astype(np.int64)
        estimates["typical_price"] = np.array(
            [float(v) for v in rows.values_list("typical_price", flat=True)]
        )
        ids = [int(pk) for pk in estimates["product_id"]]
        rows.delete()
        services._store_elasticities(version, estimates)
        stored = set(
            Elasticity.objects.filter(model_version=version).values_list(
                "slope_hinge_corr", flat=True
            )
        )
        curve, known = demand_curve(version, ids, np.full(len(ids), 20.0))
    assert stored == {None}
    assert known.all() and np.all(curve.slope_hinge_corr == 0.0)
    assert np.all(curve.all_days == 1.0)  # (no promotion lift stored either: every day 1)


def test_a_products_promotion_lift_is_stored_read_and_restored(world_a):
    """Imported sales flagged as promotions (a third of the last eight weeks' days of half the
    products, selling twice a shelf day's): the fit's every-day lift is stored with the
    version's estimates, read into the curve (`all_days`) and restored from the artifact; the
    products without promotions read 1. An older artifact without it restores NULL, read as 1."""
    import datetime as dt

    from ml.models import Elasticity
    from ml.selectors import demand_curve

    rng = np.random.default_rng(8)
    start = dt.date(2024, 1, 1)
    products = [{"sku": f"P{i}", "title": f"Product {i}", "price": 20, "cost": 9}
                for i in range(12)]  # fmt: skip
    sales = []
    for i in range(12):
        for day in range(200):
            price = 20 * float(np.exp(rng.normal(0, 0.1)))
            promo = i < 6 and day >= 144 and day % 3 == 0
            units = int(rng.poisson(5 * (price / 20) ** -1.5 * (2.0 if promo else 1.0)))
            sales.append({"date": (start + dt.timedelta(days=day)).isoformat(), "sku": f"P{i}",
                          "units": units, "price": round(price, 2), "promo": promo})  # fmt: skip
    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=products)
        import_rows(kind="sales", rows=sales)
        version = services.start_training(kind="demand", enqueue=False)
        version = services.run_training(version_id=version.pk, sync=True)
        rows = dict(
            Elasticity.objects.filter(model_version=version).values_list(
                "product__sku", "promo_lift"
            )
        )
        ids = [Product.objects.get(sku=f"P{i}").pk for i in range(12)]
        curve, known = demand_curve(version, ids, np.full(12, 20.0))
        Elasticity.objects.filter(model_version=version).delete()
        services._restore_elasticities(version)
        again = dict(
            Elasticity.objects.filter(model_version=version).values_list(
                "product__sku", "promo_lift"
            )
        )
    # a third of the days at twice a shelf day's: 4 / 3 of it
    assert all(rows[f"P{i}"] == pytest.approx(4 / 3, rel=0.1) for i in range(6))
    assert all(rows[f"P{i}"] == pytest.approx(1.0, abs=1e-9) for i in range(6, 12))
    assert known.all() and np.allclose(curve.all_days, [rows[f"P{i}"] for i in range(12)])
    assert again == rows


def _trained_on(products, sales, readings):
    """The products, their sales and competitor readings imported and a demand model trained on
    them (in the current tenant): the version and the products' ids, in the rows' order."""
    import_rows(kind="products", rows=products)
    import_rows(kind="sales", rows=sales)
    import_rows(kind="competitor_prices", rows=readings)
    version = services.start_training(kind="demand", enqueue=False)
    version = services.run_training(version_id=version.pk, sync=True)
    ids = dict(Product.objects.values_list("sku", "pk"))
    return version, [ids[p["sku"]] for p in products]


def _kettles(rng, n: int, days: int, end, price: float = 11.0, sellers: int = 1, item="Kettle"):
    """n products (`item`, skus its first letter and a number) priced about `price` (5 %
    jitter) over `days` days up to `end` against `sellers` competitors read daily at about 10
    (3 % jitter each; one is "R", several "Seller k"), whose demand collapses above the lowest
    (an extra slope of 8 on log(price / competitor)): the products, sales and readings rows."""
    import datetime as dt

    code = item[0]
    products = [{"sku": f"{code}{i}", "title": f"{item} {i}", "price": price, "cost": 4}
                for i in range(n)]  # fmt: skip
    names = ["R"] if sellers == 1 else [f"Seller {k}" for k in range(sellers)]
    sales, readings = [], []
    for i in range(n):
        for day in range(days):
            date = end - dt.timedelta(days=days - 1 - day)
            comps = 10 * np.exp(rng.normal(0, 0.03, sellers))
            paid = round(price * float(np.exp(rng.normal(0, 0.05))), 2)
            above = max(np.log(paid / comps.min()), 0.0)
            units = int(rng.poisson(4 * (paid / 10) ** -1.5 * np.exp(-8.0 * above)))
            sales.append({"date": date.isoformat(), "sku": f"{code}{i}", "units": units,
                          "price": paid})  # fmt: skip
            readings += [{"sku": f"{code}{i}", "competitor": name, "price": round(float(v), 2),
                          "observed_at": f"{date.isoformat()}T12:00:00Z"}
                         for name, v in zip(names, comps, strict=True)]  # fmt: skip
    return products, sales, readings


@pytest.fixture
def frozen_now(monkeypatch):
    """The clock held at one instant: the tests that read the last week's competitor prices on
    today's date stay on one day (across midnight too)."""
    import datetime as dt

    from django.utils import timezone

    # (a fixed instant: the histories built back from it fall on the same weekdays every run)
    now = dt.datetime(2026, 6, 17, 12, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    return now


def test_the_level_is_re_anchored_where_the_competitor_moved_since_the_fit(world_a, frozen_now):
    """Products priced 11 against a competitor read daily at 10 (3 % apart), whose demand
    collapses above it (an extra slope of 8): the fit reads the level at that position and
    stores it (`gap_today`, restored from the artifact), against the competitor's price as
    `ml.panel.competitor_today` reads it. A reprice after the competitor raised to 12 (its
    readings of the last week) reads the level carried through the hinge to the new position,
    where the truth's units are 2.1 x; without the stored position it kept the old level. A
    reprice before the raise carries it by little: the week's readings moved within their
    jitter."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from ml.models import Elasticity
    from ml.panel import competitor_today
    from ml.selectors import demand_curve

    rng = np.random.default_rng(3)
    n, days = 16, 300
    today = timezone.localdate(timezone=ZoneInfo(world_a.tenant.timezone))
    end = today - dt.timedelta(days=8)  # the last day the fit saw
    products, sales, readings = _kettles(rng, n, days, end)
    raised = [{"sku": f"K{i}", "competitor": "R", "price": 12,
               "observed_at": f"{(today - dt.timedelta(days=k)).isoformat()}T12:00:00Z"}
              for i in range(n) for k in range(8)]  # fmt: skip
    with tenant_context(world_a.tenant):
        version, ids = _trained_on(products, sales, readings)
        rows = Elasticity.objects.filter(model_version=version).order_by("product_id")
        stored = dict(rows.values_list("product_id", "gap_today"))
        # the fit's position, read as a later curve reads it again (on the day after the last
        # day of sales, matched against today's price)
        as_read = np.log(11 / competitor_today(sorted(ids), np.full(n, 11.0), end.toordinal() + 1))
        clear = [pk for pk, h, se in rows.values_list("product_id", "competitor_slope",
                 "competitor_slope_se") if h < 0 and se is not None and h + 2 * se < 0]  # fmt: skip
        now = np.full(n, 11.0)
        before, _ = demand_curve(version, ids, now, competitor_price=np.full(n, 10.0))
        # the product's own price raised 5 % since (the competitor's week as it was, within its
        # jitter): the own move is exact and counts whole
        raised_own, _ = demand_curve(version, ids, now * 1.05, competitor_price=np.full(n, 10.0))
        import_rows(kind="competitor_prices", rows=raised)
        after, _ = demand_curve(version, ids, now, competitor_price=np.full(n, 12.0))
        # a page that redraws a job's curve of the fit's day reads that day's readings
        as_then, _ = demand_curve(
            version, ids, now, competitor_price=np.full(n, 12.0), as_of=end + dt.timedelta(days=1)
        )
        rows.update(gap_today=None)  # as a version stored before the position was kept
        kept, _ = demand_curve(version, ids, now, competitor_price=np.full(n, 12.0))
        # review: the readings are matched against today's price, as the fit matched them, not
        # against the stored typical price (against 40 every reading here is another item's)
        rows.update(typical_price=40)
        uncarried, _ = demand_curve(version, ids, now, competitor_price=np.full(n, 12.0))
        for pk, gap in stored.items():
            rows.filter(product_id=pk).update(gap_today=gap)
        matched, _ = demand_curve(version, ids, now, competitor_price=np.full(n, 12.0))
        rows.delete()
        services._restore_elasticities(version)
        again = dict(
            Elasticity.objects.filter(model_version=version).values_list("product_id", "gap_today")
        )
    assert len(clear) >= n // 2
    assert [stored[pk] for pk in sorted(ids)] == pytest.approx(as_read, abs=1e-9)
    assert again == pytest.approx(stored)
    truth_then, truth_raised = 4 * 1.1**-1.5 * np.exp(-8.0 * np.log(1.1)), 4 * 1.1**-1.5
    mine = np.isin(ids, clear)
    ratio = lambda curve, truth: np.exp(np.median(np.log(curve.units_ref[mine] / truth)))  # noqa: E731
    assert ratio(kept, truth_then) == pytest.approx(1, abs=0.15)  # the level as the fit read it
    # a week on, one reading of the week before in force: moved by that reading's jitter only,
    # which is mostly not counted (up to x0.81 and x1.20 when every move was)
    assert ratio(before, truth_then) == pytest.approx(1, abs=0.2)
    assert np.all(np.abs(np.log(before.units_ref[mine] / kept.units_ref[mine])) < 0.1)
    # (the version says the day its fit read the competitor's week up to: read there again)
    assert version.metrics["reading_day"] == (end + dt.timedelta(days=1)).isoformat()
    then = raised_own.position_then  # (the price 11 then: against the competitor's then)
    whole = np.exp(raised_own.from_position(then, 11 / np.exp(then)))  # the own move alone
    own = np.log(raised_own.level_carried[mine]) / np.log(whole[mine])
    assert np.all(whole[mine] < 0.99) and np.median(own) == pytest.approx(1, abs=0.15)
    assert ratio(after, truth_raised) == pytest.approx(1, abs=0.25)
    carried = after.units_ref / kept.units_ref
    # the curve keeps what it carried, from where to where (the SKU page says it)
    assert after.level_carried == pytest.approx(carried, rel=1e-9)
    assert after.position_then[mine] == pytest.approx(np.array([stored[pk] for pk in ids])[mine])
    assert np.exp(after.position_now[mine]) == pytest.approx(11 / 12, rel=0.01)
    # (a SKU without a hinge the curve uses is not carried: no positions, a factor of 1)
    assert np.isnan(after.position_then[~mine]).all() and np.all(after.level_carried[~mine] == 1)
    assert matched.units_ref / uncarried.units_ref == pytest.approx(carried, rel=1e-6)
    assert ratio(as_then, truth_then) == pytest.approx(ratio(kept, truth_then), abs=0.05)
    assert ratio(kept, truth_raised) < 0.6  # the old level at the new position


def test_a_carry_reads_the_competitor_as_the_fit_read_it(world_a, frozen_now):
    """The fit stores the competitor's price its level's position is against (its week's
    median) and how many of that week's days were read (`competitor_then`,
    `competitor_then_readings`, restored from the artifact). Readings imported after the fit
    into the fit's week (another seller, cheaper, then out of stock) change the week as read
    now, not as the fit read it: the carry stays the one before them, the week's jitter mostly
    not counted. A version that stored no week (older) reads it again on the fit's reading
    day: the backfill's 9 taken for the competitor then, its 11 % "raise" all but cancels the
    product's own "move" of as much, and the week's jitter is counted again."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from ml.models import Elasticity
    from ml.selectors import demand_curve

    rng = np.random.default_rng(5)
    n, days = 12, 300
    today = timezone.localdate(timezone=ZoneInfo(world_a.tenant.timezone))
    end = today - dt.timedelta(days=8)  # the last day the fit saw
    products, sales, readings = _kettles(rng, n, days, end)
    # another seller, 9.00 on each day of the fit's week, out of stock from the day after
    late = [{"sku": f"K{i}", "competitor": "S", "price": 9,
             "observed_at": f"{(end - dt.timedelta(days=k)).isoformat()}T12:00:00Z"}
            for i in range(n) for k in range(7)]  # fmt: skip
    late += [{"sku": f"K{i}", "competitor": "S", "price": 9, "in_stock": False,
              "observed_at": f"{(end + dt.timedelta(days=1)).isoformat()}T08:00:00Z"}
             for i in range(n)]  # fmt: skip
    now, competitor = np.full(n, 11.0), np.full(n, 10.0)
    with tenant_context(world_a.tenant):
        version, ids = _trained_on(products, sales, readings)
        rows = Elasticity.objects.filter(model_version=version).order_by("product_id")
        stored = list(rows.values_list("competitor_then", "competitor_then_readings", "gap_today"))
        before, _ = demand_curve(version, ids, now, competitor_price=competitor)
        import_rows(kind="competitor_prices", rows=late)
        after, _ = demand_curve(version, ids, now, competitor_price=competitor)
        rows.update(competitor_then=None, competitor_then_readings=None)  # an older version
        reread, _ = demand_curve(version, ids, now, competitor_price=competitor)
        # (half of the rows with their week, half without: each read its own way)
        half = sorted(ids)[: n // 2]
        for pk, (then, k, _) in zip(sorted(ids), stored, strict=True):
            if pk in half:
                rows.filter(product_id=pk).update(competitor_then=then, competitor_then_readings=k)
        mixed, _ = demand_curve(version, ids, now, competitor_price=competitor)
        rows.delete()
        services._restore_elasticities(version)
        again = list(
            Elasticity.objects.filter(model_version=version)
            .order_by("product_id")
            .values_list("competitor_then", "competitor_then_readings", "gap_today")
        )
    # the week's median of daily readings near 10, read up to the day after the last day of
    # sales (whose reading is the day before's, in force): 6 of its 7 days read that day
    assert all(then == pytest.approx(10, rel=0.05) and k == 6 for then, k, _ in stored)
    assert again == stored
    mine = before.competitor_slope < 0
    assert mine.sum() >= n // 2
    assert np.all(np.abs(np.log(before.level_carried[mine])) < 0.1)
    # the backfill moved nothing the fit read
    assert after.units_ref == pytest.approx(before.units_ref, rel=1e-9)
    assert after.level_carried == pytest.approx(before.level_carried, rel=1e-9)
    # read again, the fit's week is the other seller's 9: the week's jitter counted as a move
    # again (and about a tenth of the backfill's 11 %, its discount for the readings' noise)
    off = np.abs(np.log(reread.level_carried[mine] / before.level_carried[mine]))
    assert np.median(off) > 0.03
    stored_rows = np.isin(ids, half)
    # (carried SKUs in both halves, each of which reads differently either way)
    differ = np.abs(np.log(after.units_ref / reread.units_ref)) > 0.01
    assert (mine & stored_rows & differ).any() and (mine & ~stored_rows & differ).any()
    assert mixed.units_ref[stored_rows] == pytest.approx(after.units_ref[stored_rows], rel=1e-9)
    assert mixed.units_ref[~stored_rows] == pytest.approx(reread.units_ref[~stored_rows], rel=1e-9)


def test_a_reprice_right_after_the_fit_keeps_the_level_where_several_sellers_are_read(
    world_a, frozen_now
):
    """Review: three sellers read daily (each 3 % apart around 10): the day's lowest reading
    sits below the lowest seller's level that a reprice's kink stands at. A reprice on the day
    the fit saw last, at the fit's prices, carries the level nowhere: its position is read as
    the fit read it (ml.panel.competitor_today), not against that level (against it the level
    moved by the hinge times the gap between the two: x1.1 and more here)."""
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from ml.models import Elasticity
    from ml.selectors import demand_curve

    rng = np.random.default_rng(5)
    n, days = 12, 240
    today = timezone.localdate(timezone=ZoneInfo(world_a.tenant.timezone))
    products, sales, readings = _kettles(rng, n, days, today, 10.3, sellers=3, item="Stove")
    with tenant_context(world_a.tenant):
        version, ids = _trained_on(products, sales, readings)
        rows = Elasticity.objects.filter(model_version=version)
        gaps = dict(rows.values_list("product_id", "gap_today"))
        now, level = np.full(n, 10.3), np.full(n, 10.0)  # the lowest seller's level
        carried, _ = demand_curve(version, ids, now, competitor_price=level)
        rows.update(gap_today=None)
        stored, _ = demand_curve(version, ids, now, competitor_price=level)
    # (hinges the curve uses, with a position stored: the carry ran on them)
    used = (stored.competitor_slope < 0) & np.array([gaps[pk] is not None for pk in ids])
    assert used.sum() >= n // 2
    assert carried.units_ref == pytest.approx(stored.units_ref, rel=1e-9)
    # what a carry against the level would do: from the fit's position (the lowest of three
    # readings, 0.85 s.d. below their level) to the level's
    fit_gap = np.full(n, np.log(10.3 / 10.0) + 0.03 * 0.85)
    assert np.max(np.exp(stored.from_position(fit_gap))) > 1.1
