"""The Django side of `ml` (`ml/services.py`): training runs and the model registry
(promote, roll back, cancel, base models, promotion only when a version wins), estimates
kept per version, and the demand panel read from the sales and competitor prices."""

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


def test_demand_panel_counts_zero_days_only_where_the_price_is_known(stocked):
    from ml.services import demand_panel

    rows = [  # day 2 lies between two sales at 10.00: zero units at 10.00; day 4 is unknown
        {"date": "2024-03-01", "sku": "S0", "units": 2, "price": "10.00"},
        {"date": "2024-03-03", "sku": "S0", "units": 1, "price": "10.00"},
        {"date": "2024-03-05", "sku": "S0", "units": 3, "price": "12.00"},
        {"date": "2024-03-06", "sku": "S0", "units": 1, "price": "12.00"},
    ]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, _ids, stats = demand_panel()
    order = np.argsort(panel.day)
    days = panel.day[order] - panel.day.min() + 1
    assert days.tolist() == [1, 2, 3, 5, 6]
    assert panel.units[order].tolist() == [2, 0, 1, 3, 1]
    assert panel.price[order].tolist() == [10, 10, 10, 12, 12]
    # Days 3 and 5 are in the data because they sold (a zero there would have been dropped).
    assert panel.truncated[order].tolist() == [False, False, True, True, False]
    assert stats["truncated_share"] == 0.4


def test_demand_panel_fills_every_day_of_longer_gaps(stocked):
    from ml.services import demand_panel

    rows = [
        {"date": "2024-03-01", "sku": "S1", "units": 2, "price": "10.00"},
        {"date": "2024-03-05", "sku": "S1", "units": 1, "price": "10.00"},
        {"date": "2024-03-08", "sku": "S1", "units": 1, "price": "10.00"},
    ]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, _ids, _stats = demand_panel()
    order = np.argsort(panel.day)
    assert (panel.day[order] - panel.day.min() + 1).tolist() == list(range(1, 9))
    assert panel.units[order].tolist() == [2, 0, 0, 0, 1, 0, 0, 1]
    assert not panel.truncated.any()


def test_demand_panel_reads_reported_zero_days_at_their_price(stocked):
    """A daily report lists days on sale without a sale as 0 units at the day's price: those
    zeros are observed (at a known price, even where the price moved), nothing is truncated,
    and a day missing from such a report was not on sale. A SKU reported by orders only keeps
    the old rules beside it."""
    from ml.services import demand_panel

    rows = [
        {"date": "2024-03-01", "sku": "S0", "units": 2, "price": "10.00"},
        {"date": "2024-03-02", "sku": "S0", "units": 0, "price": "11.00"},
        {"date": "2024-03-03", "sku": "S0", "units": 1, "price": "12.00"},
        {"date": "2024-03-05", "sku": "S0", "units": 0, "price": "12.00"},
        {"date": "2024-03-06", "sku": "S0", "units": 1, "price": "9.00"},
        {"date": "2024-03-01", "sku": "S1", "units": 2, "price": "10.00"},
        {"date": "2024-03-03", "sku": "S1", "units": 1, "price": "12.00"},
    ]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, ids, _stats = demand_panel()
        s0 = ids.index(Product.objects.get(sku="S0").pk)
    mine = panel.sku == s0
    order = np.argsort(panel.day[mine])
    days = panel.day[mine][order] - panel.day[mine].min() + 1
    assert days.tolist() == [1, 2, 3, 5, 6]  # day 4 is not in the report: not on sale
    assert panel.units[mine][order].tolist() == [2, 0, 1, 0, 1]
    assert panel.price[mine][order].tolist() == [10, 11, 12, 12, 9]
    assert not panel.truncated[mine].any()
    other = ~mine  # orders only, price moved between its sales: day 2 unknown, both truncated
    assert panel.units[other].tolist() == [2, 1] and panel.truncated[other].all()


def test_a_stray_zero_row_in_an_order_export_is_dropped_not_read_as_a_daily_report(stocked):
    """One 0-unit row (a refunded line) in an order export must not switch the SKU's history
    to 'every day is listed': its other days keep the order-export rules (found in review)."""
    from ml.services import demand_panel

    rows = [  # sales on 4 of 20 days, one refunded line: far from a daily report
        {"date": "2024-03-01", "sku": "S0", "units": 2, "price": "10.00"},
        {"date": "2024-03-05", "sku": "S0", "units": 0, "price": "10.00"},
        {"date": "2024-03-08", "sku": "S0", "units": 1, "price": "10.00"},
        {"date": "2024-03-14", "sku": "S0", "units": 1, "price": "12.00"},
        {"date": "2024-03-20", "sku": "S0", "units": 3, "price": "12.00"},
    ]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, ids, _stats = demand_panel()
    assert len(ids) == 1
    order = np.argsort(panel.day)
    days = (panel.day[order] - panel.day.min() + 1).tolist()
    # days 2-7 between the two sales at 10.00 are zeros; 9-13 (price moved) are unknown
    assert days == [1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16, 17, 18, 19, 20]
    assert panel.units[order].sum() == 7 and panel.truncated[order].tolist()[7:9] == [True, True]


def test_products_that_never_sold_stay_out_of_the_panel_and_keep_the_cold_start(stocked):
    """A daily report lists a product that never sold (0 units every day): it has no volume to
    learn from, so it gets no estimate and keeps the cold-start path (found in review); so does
    one whose only sales were free, wherever it falls in the product order."""
    from ml.services import demand_panel

    rows = [{"date": f"2024-03-{d:02d}", "sku": "S0", "units": 0, "price": "10.00"}
            for d in range(1, 11)]  # fmt: skip
    rows += [{"date": f"2024-03-{d:02d}", "sku": "S1", "units": 1 + d % 2, "price": "9.00"}
             for d in range(1, 11)]  # fmt: skip
    rows += [{"date": "2024-03-01", "sku": "S2", "units": 1, "price": "5.00", "revenue": "0"}]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, ids, _stats = demand_panel()
        skus = dict(Product.objects.values_list("pk", "sku"))
    assert [skus[pk] for pk in ids] == ["S1"] and panel.n_skus == 1


def test_demand_panel_carries_competitor_prices_forward_two_weeks(stocked):
    from ml.services import demand_panel

    sales = [{"date": f"2024-03-{d:02d}", "sku": s, "units": 1, "price": "10.00"}
             for s in ("S0", "S1") for d in range(1, 31)]  # fmt: skip
    offers = [
        {"sku": "S0", "competitor": "A", "price": "9.00", "observed_at": "2024-03-03T09:00:00Z"},
        {"sku": "S0", "competitor": "B", "price": "8.50", "observed_at": "2024-03-03T18:00:00Z"},
        {"sku": "S0", "competitor": "A", "price": "7.00", "observed_at": "2024-03-10T09:00:00Z",
         "in_stock": "false"},  # out of stock: not a price anyone can buy at
        {"sku": "S0", "competitor": "A", "price": "9.50", "observed_at": "2024-03-20T09:00:00Z"},
    ]  # fmt: skip
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=sales)
        import_rows(kind="competitor_prices", rows=offers)
        panel, ids, stats = demand_panel()
        s0 = ids.index(Product.objects.get(sku="S0").pk)
    day = panel.day - panel.day.min() + 1
    comp = {int(d): c for d, c, s in zip(day, panel.competitor_price, panel.sku, strict=True)
            if s == s0}  # fmt: skip
    assert np.isnan(comp[1]) and np.isnan(comp[2])  # nothing observed yet
    assert comp[3] == 8.5 and comp[17] == 8.5  # the day's lowest, held for 14 days
    assert np.isnan(comp[18]) and np.isnan(comp[19])  # 15 and 16 days after: unknown
    assert comp[20] == 9.5 and comp[30] == 9.5
    assert np.isnan(panel.competitor_price[panel.sku != s0]).all()  # S1: never observed
    assert 0 < stats["competitor_share"] < 0.5


def test_each_competitor_holds_its_own_price_on_the_tenants_local_days(stocked):
    """Found in review: the panel carried forward only the latest day's lowest price, so a
    dearer competitor seen later hid a cheaper one still in force, and days were cut in UTC
    whatever the tenant's time zone."""
    from ml.services import demand_panel

    stocked.tenant.timezone = "America/Los_Angeles"
    stocked.tenant.save(update_fields=["timezone"])
    sales = [{"date": f"2024-03-{d:02d}", "sku": "S0", "units": 1, "price": "10.00"}
             for d in range(1, 31)]  # fmt: skip
    offers = [
        {"sku": "S0", "competitor": "A", "price": "8.00", "observed_at": "2024-03-02T20:00:00Z"},
        {"sku": "S0", "competitor": "B", "price": "9.00", "observed_at": "2024-03-04T20:00:00Z"},
        # 03:00 UTC on the 11th is the evening of the 10th in Los Angeles
        {"sku": "S0", "competitor": "B", "price": "7.00", "observed_at": "2024-03-11T03:00:00Z"},
        {"sku": "S0", "competitor": "A", "price": "8.00", "observed_at": "2024-03-12T20:00:00Z",
         "in_stock": "false"},  # A sold out: its price no longer holds
        {"sku": "S0", "competitor": "C", "price": "1.00", "observed_at": "2023-01-01T20:00:00Z"},
        # D in stock at 6.00 in the morning of the 15th, sold out that evening (local time)
        {"sku": "S0", "competitor": "D", "price": "6.00", "observed_at": "2024-03-15T16:00:00Z"},
        {"sku": "S0", "competitor": "D", "price": "6.00", "observed_at": "2024-03-16T01:00:00Z",
         "in_stock": "false"},
    ]  # fmt: skip
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=sales)
        import_rows(kind="competitor_prices", rows=offers)
        panel, _ids, _stats = demand_panel()
    comp = dict(zip((panel.day - panel.day.min() + 1).tolist(), panel.competitor_price,
                    strict=True))  # fmt: skip
    assert np.isnan(comp[1])
    assert comp[2] == 8.0 and comp[4] == 8.0 and comp[9] == 8.0  # B's 9.00 does not hide A
    assert comp[10] == 7.0 and comp[11] == 7.0  # B's cut lands on the local 10th
    assert comp[15] == 6.0 and comp[16] == 7.0  # D's price held only on the day it sold out
    assert comp[24] == 7.0 and np.isnan(comp[25])  # 14 days, then unknown (A sold out)


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
    rows += [{"sku": f"P{i}", "title": f"acme pen model {i}", "price": 2.5 + 0.2 * i,
              "category": "stationery"} for i in range(5)]  # fmt: skip
    rows.append({"sku": "ODD", "title": "nova television model 7", "price": 3.0,
                 "category": "stationery"})  # fmt: skip
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


def test_a_tenant_whose_files_record_no_revenue_prices_sales_at_the_listed_price(stocked):
    """Revenue 0 on every row means revenue is not recorded, not that every sale was free."""
    from ml.services import demand_panel

    rows = [{"date": f"2024-03-{d:02d}", "sku": "S1", "units": 1 + d % 3, "price": "9.00",
             "revenue": "0"} for d in range(1, 21)]  # fmt: skip
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, ids, _stats = demand_panel()
        skus = dict(Product.objects.values_list("pk", "sku"))
    assert [skus[pk] for pk in ids] == ["S1"] and np.allclose(panel.price, 9.0)


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
