"""The ml management commands: `train`, `predict_prices`, `backtest`."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from ml.models import Elasticity, ModelVersion
from pricing_saas.catalog.importer import import_rows
from tenants.context import tenant_context


@pytest.mark.django_db
@pytest.mark.usefixtures("run_on_commit_at_once")
def test_train_and_predict_commands(stocked, tmp_path):
    out = io.StringIO()
    call_command(
        "train",
        stocked.tenant.slug,
        "--model",
        "text",
        "--sync",
        "--trainer",
        "baseline",
        stdout=out,
    )
    assert "promoted" in out.getvalue()
    source = tmp_path / "new.csv"
    source.write_text("sku,title\nN1,nova television model 5\nN2,acme sock model 2\n")
    out = io.StringIO()
    call_command("predict_prices", stocked.tenant.slug, str(source), stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert lines[0] == "sku,predicted_price,low,high" and len(lines) == 3
    tv, sock = (float(line.split(",")[1]) for line in lines[1:])
    assert tv > sock


@pytest.mark.django_db
@pytest.mark.usefixtures("run_on_commit_at_once")
def test_predict_without_a_model_is_a_clear_error(stocked, tmp_path):
    source = tmp_path / "new.csv"
    source.write_text("sku,title\nN1,x\n")
    with pytest.raises(CommandError, match="no reference-price model is promoted"):
        call_command("predict_prices", stocked.tenant.slug, str(source))


@pytest.mark.django_db
@pytest.mark.usefixtures("run_on_commit_at_once")
def test_demand_training_needs_sales(stocked):
    with pytest.raises(CommandError, match="training ended failed"):
        call_command("train", stocked.tenant.slug, "--model", "demand", "--sync")


@pytest.mark.django_db
@pytest.mark.usefixtures("run_on_commit_at_once")
def test_demand_training_stores_elasticities(stocked):
    """Sales simulated from a known curve: the command trains, stores and promotes."""
    import datetime as dt

    import numpy as np

    from ml.models import Elasticity

    rng = np.random.default_rng(1)
    rows = []
    for i in range(20):
        true = -1.0 - 0.1 * i
        for day in range(120):
            price = 20 * float(np.exp(rng.normal(0, 0.1)))
            units = int(rng.poisson(5 * (price / 20) ** true))
            if units:
                date = (dt.date(2024, 1, 1) + dt.timedelta(days=day)).isoformat()
                rows.append(
                    {"date": date, "sku": f"S{i}", "units": units, "price": round(price, 2)}
                )
    with tenant_context(stocked.tenant):
        for start in range(0, len(rows), 5000):
            import_rows(kind="sales", rows=rows[start : start + 5000])
    out = io.StringIO()
    call_command("train", stocked.tenant.slug, "--model", "demand", "--sync", stdout=out)
    assert "promoted" in out.getvalue()
    with tenant_context(stocked.tenant):
        fitted = dict(Elasticity.objects.values_list("product__sku", "elasticity"))
        version = ModelVersion.objects.get(kind="demand")
    assert len(fitted) == 20 and version.status == "promoted"
    assert abs(version.metrics["poisson_eb"]["pooled_elasticity"] - (-1.95)) < 0.3
    assert fitted["S19"] < fitted["S0"]


def _train_on_weekly_history(shop, seed: int, weeks: int, comp_sd: float, mean) -> None:
    """12 SKUs' daily sales at prices around 20 and a competitor's weekly readings around 20
    (log s.d. `comp_sd`), units Poisson with `mean(sku, price, competitor)`, imported into
    `shop`'s tenant and a demand model trained on them."""
    import datetime as dt

    rng = np.random.default_rng(seed)

    sales, offers = [], []
    for i in range(12):
        for week in range(weeks):
            comp = 20 * float(np.exp(rng.normal(0, comp_sd)))
            day0 = dt.date(2024, 1, 1) + dt.timedelta(days=7 * week)
            offers.append(
                {
                    "sku": f"S{i}",
                    "competitor": "Rival",
                    "price": round(comp, 2),
                    "observed_at": f"{day0.isoformat()}T06:00:00Z",
                }
            )
            for d in range(7):
                price = 20 * float(np.exp(rng.normal(0, 0.1)))
                units = int(rng.poisson(mean(i, price, comp)))
                if units:
                    date = (day0 + dt.timedelta(days=d)).isoformat()
                    sales.append(
                        {"date": date, "sku": f"S{i}", "units": units, "price": round(price, 2)}
                    )
    with tenant_context(shop.tenant):
        import_rows(kind="sales", rows=sales)
        import_rows(kind="competitor_prices", rows=offers)
    call_command("train", shop.tenant.slug, "--model", "demand", "--sync", stdout=io.StringIO())


@pytest.mark.django_db
@pytest.mark.usefixtures("run_on_commit_at_once")
def test_demand_model_controls_for_the_competitor_gap(stocked):
    """Units respond to the own price (-2) and to the gap to a competitor whose price moves
    on its own (-1): the gap's coefficient is recovered through the real path, and the
    own-price elasticity (competitor held fixed) is their sum."""

    _train_on_weekly_history(
        stocked, 11, 20, 0.25, lambda i, p, c: 8 * (p / 20) ** -2.0 * (p / c) ** -1.0
    )
    with tenant_context(stocked.tenant):
        version = ModelVersion.objects.get(kind="demand")
        fitted = list(Elasticity.objects.values_list("elasticity", flat=True))
    assert version.metrics["competitor_share"] > 0.9
    assert abs(version.metrics["coefficients"]["competitor_gap"] - (-1.0)) < 0.25
    assert abs(float(np.median(fitted)) - (-3.0)) < 0.4
    # the spread of the catalog's hinges is measured over every SKU and stored with the
    # version: a curve of one product (the SKU chart) judges its hinge on the same spread as
    # the reprice job's curve of the whole catalog
    from ml.selectors import demand_curve
    from pricing_saas.catalog.models import Product

    # (12 SKUs: fewer hinges than the spread is measured on, so none is stored, and neither
    # curve measures one of its own on the products it was asked for)
    trained = version.metrics["poisson_eb"]
    assert trained["hinge_prior"] is None and trained["hinge_mixture"] is None
    with tenant_context(stocked.tenant):
        ids = list(Product.objects.order_by("pk").values_list("pk", flat=True))
        comp = np.full(len(ids), 20.0)
        whole, _ = demand_curve(version, ids, np.full(len(ids), 20.0), None, comp)
        one, _ = demand_curve(version, ids[:1], np.full(1, 20.0), None, comp[:1])
        assert whole.hinge_spread is False and one.hinge_spread is False
        # a version that stored one: every curve of it holds the same (the mixture where one
        # is stored beside the normal spread)
        version.metrics["poisson_eb"]["hinge_prior"] = [-0.4, 1.5]
        version.metrics["poisson_eb"]["hinge_mixture"] = [-3.5, 1.5, 0.6, 0.02]
        whole, _ = demand_curve(version, ids, np.full(len(ids), 20.0), None, comp)
        one, _ = demand_curve(version, ids[:1], np.full(1, 20.0), None, comp[:1])
        assert whole.hinge_spread == one.hinge_spread == (-3.5, 1.5, 0.6, 0.02)
        # one stored before the mean's own variance was: none of it
        version.metrics["poisson_eb"]["hinge_mixture"] = [-3.5, 1.5, 0.6]
        one, _ = demand_curve(version, ids[:1], np.full(1, 20.0), None, comp[:1])
        assert one.hinge_spread == (-3.5, 1.5, 0.6, 0.0)
        # one stored before the share without a hinge was measured: one normal spread
        del version.metrics["poisson_eb"]["hinge_mixture"]
        older, _ = demand_curve(version, ids[:1], np.full(1, 20.0), None, comp[:1])
        # a product without an estimate has no hinge read: where the version stored that it
        # read too few to measure a spread (null), it is judged on the fit's prior; a version
        # trained before the spread was stored at all judged it as none, and still does
        ghost, above = [max(ids) + 10_000], np.full(1, 21.0)
        version.metrics["poisson_eb"]["hinge_prior"] = None
        unread, _ = demand_curve(version, ghost, np.full(1, 20.0), None, above)
        del version.metrics["poisson_eb"]["hinge_prior"]
        legacy, _ = demand_curve(version, ghost, np.full(1, 20.0), None, above)
    assert older.hinge_spread == (-0.4, 1.5, 0.0, 0.0)
    assert unread.unread_hinge()[0] and unread.pessimistic_hinge(1.0, True)[0] < -1.0
    assert not legacy.unread_hinge()[0] and legacy.pessimistic_hinge(1.0, True)[0] == 0.0


@pytest.mark.django_db
@pytest.mark.usefixtures("run_on_commit_at_once")
def test_a_clear_hinges_correlation_with_its_slope_is_stored_read_and_restored(stocked):
    """Half of the SKUs collapse above a competitor whose price moves week by week: their
    slope below it and their hinge are read together, and the correlation of the two's errors
    is stored with the version, read into the curve the optimiser judges a move on, and
    restored from the artifact with the rest of the estimates."""

    from ml import services as ml_services
    from ml.selectors import demand_curve
    from pricing_saas.catalog.models import Product

    def collapse(i, price, comp):  # half of them collapse above the competitor
        hinge = -6.0 if i < 6 else 0.0
        return 8 * (price / 20) ** -2.0 * np.exp(hinge * max(np.log(price / comp), 0))

    _train_on_weekly_history(stocked, 3, 40, 0.08, collapse)
    with tenant_context(stocked.tenant):
        version = ModelVersion.objects.get(kind="demand")
        fields = ("competitor_slope", "competitor_slope_se", "slope_hinge_corr", "from_prior")
        rows = {
            sku: values
            for sku, *values in Elasticity.objects.filter(model_version=version).values_list(
                "product__sku", *fields
            )
        }
        # a clear hinge whose slope is the SKU's own (not its category's, borrowed)
        clear = {sku for sku, (h, se, _c, prior) in rows.items() if h + 2 * se < 0 and not prior}
        assert len(clear & {f"S{i}" for i in range(6)}) >= 4
        assert len(clear & {f"S{i}" for i in range(6, 12)}) <= 1  # one by chance at most
        assert all(rows[sku][2] < 0 for sku in clear)
        assert all(rows[sku][2] == 0 for sku in rows.keys() - clear)
        products = list(Product.objects.filter(sku__in=sorted(rows)).order_by("sku"))
        ids = [p.pk for p in products]
        curve, _ = demand_curve(
            version, ids, np.full(len(ids), 20.0), None, np.full(len(ids), 20.0)
        )
        stored = np.array([rows[p.sku][2] for p in products])
        assert np.allclose(curve.slope_hinge_corr, stored)
        # restored from the artifact with every other estimate (a version whose rows are gone)
        Elasticity.objects.filter(model_version=version).delete()
        ml_services._restore_elasticities(version)
        again = dict(
            Elasticity.objects.filter(model_version=version).values_list(
                "product__sku", "slope_hinge_corr"
            )
        )
    assert again == {sku: values[2] for sku, values in rows.items()}


@pytest.mark.django_db
def test_the_command_reports_and_refuses_an_empty_history(world_a):
    with pytest.raises(CommandError, match="no sales history"):
        call_command("backtest", world_a.tenant.slug, stdout=io.StringIO())


@pytest.mark.django_db
def test_the_command_backtests_a_tenants_own_history(shop):
    out = io.StringIO()
    call_command("backtest", shop.tenant.slug, "--holdout-days", "21", stdout=out)
    text = out.getvalue()
    assert "held out the last 21" in text and "by the price response" in text
    # the shop's prices move: the days off the typical price are reported on their own
    assert "held-out SKU-days whose price was over 0.05 and at most 0.25 off" in text
    assert "about 5% to 22% below or 5% to 28% above it" in text
    assert "deviance explained by the price response" in text and "nan" not in text


@pytest.mark.django_db
def test_the_command_reports_the_days_priced_far_off_apart(shop, monkeypatch):
    """Held-out days only far off the typical price: the band is said to have none, the far
    days' figure follows, in words that do not diagnose them."""
    import ml.science.backtest as bt

    result = bt.BacktestResult(
        120, 28, 20, 560, 1.0, 1.2, 1.5, 1.6, 1.0, 1.2, 100.0, 98.0,
        far_rows=7, deviance_model_far=2.0, deviance_no_price_far=1.0,
    )  # fmt: skip
    monkeypatch.setattr(bt, "backtest", lambda panel, holdout_days: result)
    out = io.StringIO()
    call_command("backtest", shop.tenant.slug, stdout=out)
    text = out.getvalue()
    assert "no held-out day's price was over 0.05 and at most 0.25" in text
    assert "judged only on the days further off" in text
    assert "on the 7 held-out SKU-days whose price was over 0.25 off its typical price" in text
    assert "check such days for a unit or pack change" in text and "-100.0%" in text
    monkeypatch.setattr(
        bt, "backtest", lambda panel, holdout_days: bt.BacktestResult(
            120, 28, 20, 560, 1.0, 1.2, 1.5, 1.6, 1.0, 1.2, 100.0, 98.0
        ),
    )  # fmt: skip
    out = io.StringIO()
    call_command("backtest", shop.tenant.slug, stdout=out)
    assert "not judged on moved prices" in out.getvalue()
    assert "further off" not in out.getvalue() and "nan" not in out.getvalue()
