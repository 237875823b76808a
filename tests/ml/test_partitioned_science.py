"""The partitioned demand fit at the science level (ml.science.demand): the pooled stage,
blocks of SKUs fitted alone given it, one reduce. On a tenant small enough for both it gives
the one-process fit's estimates: every SKU's, within 1e-6."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from ml.science.demand import Panel, fit_demand, fit_in_blocks, sample_blocks, sample_ranges
from tests.ml.test_demand import above_the_competitor

PER_SKU = ("elasticity", "elasticity_se", "raw_elasticity", "raw_se", "curvature",
           "curvature_se", "raw_curvature", "typical_price", "intercept", "price_low",
           "price_high", "from_prior", "competitor_above", "competitor_above_se", "gap_low",
           "gap_high", "promo_lift", "ramp_today", "gap_today", "competitor_then",
           "competitor_then_k")  # fmt: skip
TENANT = ("pooled_elasticity", "pooled_se", "dispersion", "nb_k", "weight_k", "counts_k",
          "weights_ratio", "ramp_sd")  # fmt: skip


def rich_panel(n=60, days=400, seed=0, truncated=True, competitor=True, held=False) -> Panel:
    """Every feature the fit reads: promotions and discounts, a competitor on most SKUs (a
    weekly reading; demand collapsing above it on some), order exports (zero-truncated rows) on
    a third of the SKUs, overdispersed counts, categories, today's prices, a SKU never sold.
    `held`: half the SKUs hold each price for 45 days (the sandwich's held-price clusters)."""
    rng = np.random.default_rng(seed)
    true = -rng.uniform(0.5, 3.0, n)
    sku = np.repeat(np.arange(n), days)
    day = np.tile(np.arange(738000, 738000 + days), n)
    level = rng.uniform(5, 50, n)
    price = level[sku] * np.exp(rng.normal(0, 0.1, n * days))
    if held:
        stretch = np.repeat(rng.normal(0, 0.1, (n, -(-days // 45))), 45, axis=1)[:, :days]
        price = np.where(sku % 2 == 0, level[sku] * np.exp(stretch.ravel()), price)
    promo = (rng.random(n * days) < 0.05).astype(float)
    discount = np.where(promo > 0, -rng.uniform(0.05, 0.3, n * days), 0.0)
    real = level[sku] * np.exp(rng.normal(0, 0.04, n * days))
    reading = real.reshape(n, days)[:, ::7].repeat(7, axis=1)[:, :days].ravel()
    reading[sku % 5 == 0] = np.nan
    rate = rng.uniform(0.3, 8, n)[sku] * (price / level[sku]) ** true[sku] * np.exp(0.5 * promo)
    rate *= np.exp(-3.0 * np.maximum(np.nan_to_num(np.log(price / real)), 0.0) * (sku % 3 == 0))
    units = rng.negative_binomial(2, 2 / (2 + rate)).astype(float)
    keep, trunc = np.ones(n * days, bool), np.zeros(n * days, bool)
    if truncated:
        export = sku % 3 == 1
        keep, trunc = ~export | (units > 0), export & (units > 0)
    units[sku == n - 1] = 0
    return Panel(
        sku=sku[keep],
        day=day[keep],
        units=units[keep],
        price=price[keep],
        promo=promo[keep],
        discount=discount[keep],
        competitor_price=reading[keep] if competitor else None,
        category=rng.integers(0, 4, n),
        truncated=trunc[keep] if truncated else None,
        current_price=level * np.exp(rng.normal(0, 0.05, n)),
        competitor_sd=0.04,
    )


def assert_same_fit(one, parts, tol=1e-6):
    for name in PER_SKU:
        a, b = np.asarray(getattr(one, name), float), np.asarray(getattr(parts, name), float)
        assert a.shape == b.shape, name
        assert np.array_equal(np.isfinite(a), np.isfinite(b)), name
        both = np.isfinite(a)
        assert np.max(np.abs(a[both] - b[both]), initial=0.0) < tol, name
    for name in TENANT:
        a, b = getattr(one, name), getattr(parts, name)
        assert np.isnan(a) == np.isnan(b), name  # (the weights' ratio: NaN where not compared)
        assert np.isnan(a) or abs(a - b) < tol, name
    # the spread of the catalog's hinges: measured over every SKU either way
    assert (one.hinge_prior is None) == (parts.hinge_prior is None)
    if one.hinge_prior is not None:
        assert np.allclose(one.hinge_prior, parts.hinge_prior, atol=tol, rtol=0)
    assert (
        np.allclose(one.coef, parts.coef, atol=tol, rtol=0) and one.coef_names == parts.coef_names
    )
    assert one.category_elasticity.keys() == parts.category_elasticity.keys()
    for cat, value in one.category_elasticity.items():
        assert abs(value - parts.category_elasticity[cat]) < tol


@pytest.mark.parametrize(
    "panel, block",
    [
        (rich_panel(), 7),
        (rich_panel(80, 200, 1, truncated=False), 9),
        (rich_panel(50, 300, 2, competitor=False), 10),
        (rich_panel(60, 300, 3, held=True), 8),
        (above_the_competitor(6), 7),
    ],
    ids=["truncated-competitor", "competitor", "truncated", "held-prices", "clear-hinges"],
)
def test_blocks_give_the_one_process_estimates(panel, block):
    one = fit_demand(panel)
    parts = fit_in_blocks(panel, block_skus=block, sample_skus=10_000)
    assert_same_fit(one, parts)
    assert np.isfinite(one.raw_elasticity).sum() > len(one.elasticity) // 2  # a real fit
    assert (one.competitor_above < 0).any() or panel.competitor_price is None


def test_blocks_reach_the_one_process_choice_of_weights_on_a_sample_of_the_skus(monkeypatch):
    """The choice of weights (`_choose_weights`) reads a sample of the SKUs where there are more
    than WEIGHTS_SAMPLE_SKUS (here 40 of 150): in blocks it draws the same sample of the same
    SKUs (with their categories and today's prices), takes the same weights (Poisson's: prices
    held for weeks, a lasting shock, deep promotions) and gives the same fit."""
    from ml.science import demand
    from tests.ml.test_demand import _held_prices

    monkeypatch.setattr(demand, "WEIGHTS_SAMPLE_SKUS", 40)
    monkeypatch.setattr(demand, "WEIGHTS_MIN_SKUS", 20)
    panel, _true = _held_prices(n=150, days=240, seed=1)
    one = fit_demand(panel)
    assert one.counts_k > 0.4 and one.weights_ratio > 1.0 and one.weight_k == 0.0
    parts = fit_in_blocks(panel, block_skus=25, sample_skus=10_000)
    assert_same_fit(one, parts)
    # fewer SKUs read on their own data than the median needs: the counts' weights
    monkeypatch.setattr(demand, "WEIGHTS_MIN_SKUS", 41)
    few = fit_demand(panel)
    assert few.weight_k == few.counts_k > 0.4 and few.weights_ratio > 1.0


def test_a_concatenated_panel_keeps_its_blocks_categories_and_todays_prices():
    from ml.science.demand import block_of, concatenate

    panel = rich_panel(n=20, days=30)
    joined = concatenate([block_of(panel, 0, 8), block_of(panel, 12, 20)])
    assert np.array_equal(joined.category, np.r_[panel.category[:8], panel.category[12:]])
    assert np.array_equal(
        joined.current_price, np.r_[panel.current_price[:8], panel.current_price[12:]]
    )
    assert joined.sku.max() == 15  # the SKUs renumbered in order
    bare = concatenate([block_of(panel, 0, 8), replace(block_of(panel, 8, 20), category=None)])
    assert bare.category is None and bare.current_price is not None


def test_a_panel_with_a_dummy_per_period_gives_the_one_process_estimates_in_blocks():
    """Panels (states by years) have a dummy per period instead of weekday, season and trend;
    a block whose SKUs lack a period still carries the pooled fit's dummies, whose base period
    is the tenant's first."""
    rng = np.random.default_rng(4)
    n, years = 24, 30
    sku = np.repeat(np.arange(n), years)
    year = np.tile(np.arange(63, 63 + years), n)
    # the first block has no rows in the first three years; the second has rows in one year
    keep = ~((sku < 6) & (year < 66)) & ~((sku >= 6) & (sku < 12) & (year != 80))
    price = rng.uniform(0.8, 1.2, n)[sku] * np.exp(rng.normal(0, 0.15, n * years))
    shock = rng.normal(0, 0.2, years)[year - 63]
    rate = 50 * price ** rng.uniform(-2, -0.5, n)[sku] * np.exp(shock)
    panel = Panel(
        sku=sku[keep],
        day=year[keep],
        units=rng.poisson(rate)[keep].astype(float),
        price=price[keep],
        time_effects=True,
    )
    one = fit_demand(panel)
    assert sum(name.startswith("period_") for name in one.coef_names) == years - 1
    assert_same_fit(one, fit_in_blocks(panel, block_skus=6, sample_skus=10_000))


def test_a_pooled_stage_on_a_sample_of_blocks_stays_close_but_is_no_longer_identical():
    panel = rich_panel(90, 300, 3)
    one = fit_demand(panel)
    sampled = fit_in_blocks(panel, block_skus=10, sample_skus=30)  # 3 of 9 blocks
    assert abs(sampled.pooled_elasticity - one.pooled_elasticity) < 0.25
    assert sampled.pooled_elasticity != one.pooled_elasticity
    assert np.corrcoef(sampled.elasticity, one.elasticity)[0, 1] > 0.95


def test_the_sample_is_every_block_up_to_its_size_then_spread_evenly():
    assert sample_blocks(5, 100, 500).tolist() == [0, 1, 2, 3, 4]
    assert sample_blocks(100, 100, 500).tolist() == [0, 25, 50, 74, 99]


def test_the_pooled_sample_of_a_large_tenant_spans_it_whatever_the_block_size():
    """ml.partitioned reads the pooled stage's products in runs spread from the first product to
    the last: with the defaults (5,000 products sampled of 100,000) not one block's oldest."""
    ranges = sample_ranges(100_000, 5_000)
    assert len(ranges) == 20 and sum(b - a for a, b in ranges) == 5_000
    assert ranges[0][0] == 0 and ranges[-1][1] == 100_000
    assert all(b <= c for (_, b), (c, _) in itertools.pairwise(ranges))  # apart
    assert any(a > 50_000 for a, _ in ranges) and any(b < 50_000 for _, b in ranges)
    assert sample_ranges(4_000, 5_000) == [(0, 4_000)]  # all of a small tenant: exact


def _staged_by_two_versions(monkeypatch, panel, **before):
    """`panel` fitted in blocks of 20 three ways: block 1 staged by the newer version and the
    others by an older one (their fields `before`, as it stored them), every block by the
    older one, and every block by this one."""
    from ml.science import demand

    real = demand.reduce

    def staged_before(new_blocks):
        def reduce(fits, pooled, category=None, recent=None):
            fits = [f if i in new_blocks else replace(f, **before) for i, f in enumerate(fits)]
            return real(fits, pooled, category, recent)

        return reduce

    fits = []
    for reduce in (staged_before({1}), staged_before(set()), real):
        monkeypatch.setattr(demand, "reduce", reduce)
        fits.append(fit_in_blocks(panel, 20, 40))
    return fits


def test_blocks_staged_by_two_versions_read_one_level(monkeypatch):
    """Review: a fit in parts whose blocks were staged before and after the level became a
    shelf day's (a deploy during a long run) took the average day's intercept for all but added
    the new blocks' promotions to their recent level's forecast: their levels read low. Such a
    fit reads every block as the older version did; one of new blocks only, the shelf day's."""
    mixed, old, new = _staged_by_two_versions(
        monkeypatch, rich_panel(n=40, days=300), promo_sum=None, recent_promo=None
    )
    assert mixed.intercept == pytest.approx(old.intercept, abs=1e-9)
    # the shelf day's level is below the average day's where promotions lift demand
    assert np.median(new.intercept - old.intercept) < -0.005


def test_blocks_staged_before_positions_were_kept_read_none(monkeypatch):
    """Review: a fit in parts whose blocks were staged before and after the recent level was
    read at today's position against the competitor read some blocks' levels through their
    hinges and others' not. Such a fit reads no block's position; one of new blocks only, each
    block's."""
    mixed, old, new = _staged_by_two_versions(
        monkeypatch, above_the_competitor(6), recent_ramp=None, ramp_today=None, gap_today=None
    )
    assert mixed.intercept == pytest.approx(old.intercept, abs=1e-9)
    assert mixed.ramp_today is None and new.ramp_today is not None
    assert mixed.gap_today is None and new.gap_today is not None
    assert mixed.competitor_then is None and new.competitor_then is not None
    # the level read at today's position is below the one days under the competitor lifted
    assert np.median(new.intercept - old.intercept) < -0.05


def test_blocks_staged_before_the_joint_curvature_read_the_hinge_free_one(monkeypatch):
    """A fit in parts whose blocks were staged before and after a clear hinge's curvature was
    read beside it bends every block's curve as the older version did (the hinge-free fit's
    curvature); one of new blocks only, the joint fit's."""
    before = dict(joint_c=None, joint_c_se=None, joint_c_hinge=None, joint_c_slope=None)
    mixed, old, new = _staged_by_two_versions(monkeypatch, above_the_competitor(6), **before)
    assert mixed.curvature == pytest.approx(old.curvature, abs=1e-12)
    assert mixed.elasticity == pytest.approx(old.elasticity, abs=1e-12)
    # the hinge-free curvature took the collapse above the competitor for a bend
    assert np.median(old.curvature) < -9 < -6 < np.median(new.curvature)
