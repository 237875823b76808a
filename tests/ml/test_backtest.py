"""Backtest on a tenant's own history: the price response must earn its place on held-out days."""

from __future__ import annotations

import numpy as np
import pytest

from ml.science.backtest import MIN_SCORED_SKUS, backtest, champion_challenger, holdout_for
from ml.science.curve import DemandCurve
from ml.science.demand import Panel


def _history(days: int = 150, skus: int = 40, true: float = -2.5, seed: int = 3) -> Panel:
    rng = np.random.default_rng(seed)
    sku = np.repeat(np.arange(skus), days)
    day = np.tile(738000 + np.arange(days), skus)
    price = 10 * np.exp(rng.normal(0, 0.15, skus * days))
    units = rng.poisson(4 * (price / 10) ** true)
    return Panel(sku=sku, day=day, units=units, price=price)


def test_the_price_response_beats_the_references_on_held_out_days():
    result = backtest(_history(), holdout_days=28)
    assert result.test_days == 28 and result.skus == 40 and result.test_rows == 40 * 28
    assert result.deviance_model < result.deviance_no_price
    assert result.deviance_model < result.deviance_average
    assert result.gain_from_price > 0.1
    assert result.units_forecast == pytest.approx(result.units_actual, rel=0.1)
    # the days whose price moved 0.05 to 0.25 off the typical (log-normal, s.d. 0.15: about
    # 64 %) are where the price response earns most; further off (about 10 %), apart
    assert 0.55 * result.test_rows < result.moved_rows < 0.75 * result.test_rows
    assert 0.05 * result.test_rows < result.far_rows < 0.15 * result.test_rows
    assert result.deviance_model_far < result.deviance_no_price_far
    assert result.deviance_model_moved < result.deviance_no_price_moved
    # (on a true curve the further off, the more the slope earns: a day within 5 % of the
    # typical price earns least, the days beyond the band most)
    assert 0.2 < result.gain_from_price_moved < result.gain_from_price_far
    assert 0 < result.moved_gain_low < result.gain_from_price_moved < result.moved_gain_high < 1
    assert result.moved_skus == 40
    assert "bootstrap over 40 products" in result.moved_interval()


def test_the_moved_days_gain_states_an_interval_only_over_enough_products():
    """Fewer than MIN_SCORED_SKUS products whose price moved: the gain, but no interval (a
    handful of products resampled is no sample of a catalog); a share removed never above 1
    however few; and no reference deviance: no gain."""
    from ml.science.backtest import MIN_SCORED_SKUS, BacktestResult

    few = backtest(_history(skus=MIN_SCORED_SKUS - 1), holdout_days=28)
    assert few.moved_skus == MIN_SCORED_SKUS - 1 and few.gain_from_price_moved > 0.1
    assert np.isnan(few.moved_gain_low) and np.isnan(few.moved_gain_high)
    assert few.moved_interval() == f"no interval: {MIN_SCORED_SKUS - 1} products moved, 20 needed"
    enough = backtest(_history(skus=MIN_SCORED_SKUS), holdout_days=28)
    assert enough.moved_gain_low < enough.gain_from_price_moved < enough.moved_gain_high <= 1
    nothing = BacktestResult(28, 28, 1, 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert np.isnan(nothing.gain_from_price) and np.isnan(nothing.gain_over_average)


def test_a_slope_that_forecasts_moved_prices_worse_than_none_shows_on_them(monkeypatch):
    """A fit whose slope points the wrong way: on the held-out days whose price moved, the
    price response loses to the reference without it."""
    from dataclasses import replace

    import ml.science.backtest as bt

    real = bt.fit_demand

    def wrong_way(panel):
        fit = real(panel)
        return replace(fit, elasticity=-fit.elasticity)

    monkeypatch.setattr(bt, "fit_demand", wrong_way)
    result = backtest(_history(), holdout_days=28)
    assert result.moved_rows > 0 and result.gain_from_price_moved < -0.1
    assert result.moved_gain_low < result.moved_gain_high < 0  # beyond the products' noise


def test_days_priced_far_off_are_scored_apart_from_the_moved_days():
    """Held-out days priced over FAR_PRICE off the typical price, at which demand did not
    follow the curve (another unit read as a price, as a grocer's goods sold by weight give):
    they sink the price response on them, and are not part of the moved days' figure, which
    judges the slope near the prices the SKU sold at."""
    panel = _history()
    clean = backtest(panel, holdout_days=28)
    rng = np.random.default_rng(11)
    odd = (panel.day > panel.day.max() - 28) & (rng.random(len(panel.day)) < 0.05)
    price = np.where(odd, panel.price * 0.4, panel.price)  # units as they were
    messy = backtest(Panel(sku=panel.sku, day=panel.day, units=panel.units, price=price), 28)
    assert messy.far_rows >= clean.far_rows + odd.sum() * 0.9
    assert messy.gain_from_price_far < -1  # the curve at 40 % of the price: far too many units
    # the moved days are the others within the band: the same figure as without the odd days
    assert messy.moved_rows <= clean.moved_rows
    assert messy.gain_from_price_moved == pytest.approx(clean.gain_from_price_moved, abs=0.03)
    # its interval resamples the band's products alone: the same as without the odd days
    assert messy.moved_skus == clean.moved_skus
    assert messy.moved_gain_low == pytest.approx(clean.moved_gain_low, abs=0.03)
    assert messy.moved_gain_high == pytest.approx(clean.moved_gain_high, abs=0.03)
    assert messy.moved_gain_low > 0


def test_the_band_is_over_moved_price_and_at_most_far_price():
    """A day just over MOVED_PRICE off is a moved day, one just under FAR_PRICE too, one just
    over it a far day, one just under MOVED_PRICE neither."""
    from ml.science.backtest import FAR_PRICE, MOVED_PRICE

    days, skus = 60, 25
    sku = np.repeat(np.arange(skus), days)
    day = np.tile(738000 + np.arange(days), skus)
    # the training days at 10 (typical price 10 exactly); the held-out days at four distances
    offs = np.array([MOVED_PRICE - 1e-6, MOVED_PRICE + 1e-6, FAR_PRICE - 1e-6, FAR_PRICE + 1e-6])
    held = day > day.max() - 28
    which = np.tile(np.arange(days) % 4, skus)
    price = np.where(held, 10 * np.exp(offs[which]), 10.0)
    units = np.random.default_rng(2).poisson(5.0, skus * days)
    result = backtest(Panel(sku=sku, day=day, units=units, price=price), holdout_days=28)
    per_offset = held.sum() // 4
    assert result.moved_rows == 2 * per_offset and result.far_rows == per_offset


def test_promotions_are_forecast_once_and_are_no_part_of_the_price_response():
    """The level is a day's at the shelf price and the backtest adds a held-out day's promotion
    back, from none (review: centred on the training days' average it was counted twice once
    the level was a shelf day's); the reference without a price response gets the same days'
    promotions, so at a price that never moves the price's part of the gain is about none."""
    rng = np.random.default_rng(5)
    skus, days = 40, 150
    sku = np.repeat(np.arange(skus), days)
    day = np.tile(738000 + np.arange(days), skus)
    promo = rng.random(skus * days) < 0.3  # a display, no price cut
    units = rng.poisson(3.0 * np.where(promo, 2.5, 1.0))
    panel = Panel(sku=sku, day=day, units=units, price=np.full(skus * days, 10.0),
                  promo=promo.astype(float))  # fmt: skip
    result = backtest(panel, holdout_days=28)
    assert result.units_forecast == pytest.approx(result.units_actual, rel=0.05)
    assert abs(result.gain_from_price) < 0.02
    # (a price that never moved: no day to judge the price response on)
    assert result.moved_rows == 0 and np.isnan(result.gain_from_price_moved)
    assert np.isnan(result.moved_gain_low) and np.isnan(result.moved_gain_high)
    assert result.far_rows == 0 and np.isnan(result.gain_from_price_far)


def test_a_held_out_day_is_forecast_at_its_own_position_against_the_competitor(monkeypatch):
    """The level is today's position's (above a competitor the SKUs collapse above): a held-out
    promotion that crosses below it is forecast through the hinge, as the level's days were
    (review: without it the held-out deviance rose, 1.20 against 1.07 here)."""
    from ml.science.demand import DemandFit
    from tests.ml.test_demand import above_the_competitor

    panel = above_the_competitor(6)
    with_position = backtest(panel, 28).deviance_model
    monkeypatch.setattr(DemandFit, "position", lambda self, sku, price, comp: np.zeros(len(sku)))
    without = backtest(panel, 28).deviance_model
    assert with_position < 0.93 * without


def test_rows_without_a_count_or_a_price_are_no_days_of_the_backtest():
    # A row with no units or no price (NaN, a negative count) is no row of the fit; it is no
    # held-out day either, nor part of the references' averages: the totals stay numbers.
    panel = _history()
    units = panel.units.astype(float)
    price = panel.price.copy()
    rng = np.random.default_rng(5)
    units[rng.choice(len(units), 30, replace=False)] = np.nan
    price[rng.choice(len(price), 30, replace=False)] = np.nan
    units[np.flatnonzero(panel.day == panel.day.max())[:3]] = -1
    result = backtest(Panel(sku=panel.sku, day=panel.day, units=units, price=price))
    assert np.isfinite(result.units_actual) and np.isfinite(result.deviance_average)
    assert np.isfinite(result.deviance_recent) and np.isfinite(result.deviance_model)
    assert result.units_forecast == pytest.approx(result.units_actual, rel=0.1)
    assert result.test_rows < 40 * 28 and result.units_actual >= 0


def test_a_history_shorter_than_the_holdout_is_refused():
    with pytest.raises(ValueError, match="longer than"):
        backtest(_history(days=20), holdout_days=28)


# --- champion and challenger ------------------------------------------------------------------


def _champion(panel: Panel, elasticity: float) -> DemandCurve:
    n = panel.n_skus
    return DemandCurve.build(np.full(n, 10.0), np.full(n, 4.0), np.full(n, elasticity))


def test_a_retrained_model_beats_a_champion_that_misreads_the_price_response():
    panel = _history(days=150, true=-2.5)
    result = champion_challenger(panel, _champion(panel, -0.3), holdout_days=28)
    assert result.rows == 40 * 28 and result.skus == 40
    assert result.wins and result.improvement > 0.05


def test_a_champion_that_knows_the_truth_is_not_replaced_by_a_noisier_refit():
    # The truth as the champion: a refit on the same process can at best tie with it.
    panel = _history(days=150, true=-2.5)
    result = champion_challenger(panel, _champion(panel, -2.5), holdout_days=28)
    assert not result.wins


def test_a_product_that_sold_only_on_the_held_out_days_is_left_out_of_the_judgement():
    # The newest product (the highest index) started selling inside the held-out days: the
    # refit never saw it, so it is scored by neither model, and the others are judged as usual.
    panel = _history(days=150, skus=41, true=-2.5)
    late = (panel.sku == 40) & (panel.day < panel.day.max() - 9)
    panel = Panel(sku=panel.sku[~late], day=panel.day[~late], units=panel.units[~late],
                  price=panel.price[~late])  # fmt: skip
    result = champion_challenger(panel, _champion(panel, -0.3), holdout_days=28)
    assert result.skus == 40 and result.rows == 40 * 28
    assert result.wins


def test_the_holdout_is_only_days_the_champion_never_saw():
    assert holdout_for(last_day=1000, champion_last_day=990) == 0  # 10 new days: no judgement
    assert holdout_for(last_day=1000, champion_last_day=986) == 7  # half of the 14 new days
    assert holdout_for(last_day=1000, champion_last_day=800) == 28  # capped
    assert holdout_for(last_day=1000, champion_last_day=1000) == 0


def test_skus_the_champion_knows_only_by_its_prior_are_scored_with_it():
    """A SKU the version in force has no estimate for (no volume of its own, the prior slope) is
    scored with that prior, not dropped; a SKU with no slope at all is left out."""
    panel = _history(days=150)
    champion = _champion(panel, -2.5)
    champion.units_ref[:10] = 0.0  # no estimate in force for ten SKUs: the prior slope
    champion.elasticity[10:15] = np.nan  # no slope at all for five
    result = champion_challenger(panel, champion, holdout_days=28)
    assert result.skus == 35 and result.rows == 35 * 28 and result.skus_prior == 10


def test_skus_whose_price_never_moved_are_not_counted():
    panel = _history(days=150)
    steady = panel.sku < 8
    panel.price[steady] = 10.0  # eight SKUs at one price throughout
    result = champion_challenger(panel, _champion(panel, -2.5), holdout_days=28)
    assert result.skus == 32 and result.skus_price_still == 8


def _noisy_champion(panel: Panel, seed: int) -> DemandCurve:
    """A champion as good as a refit: the truth's slope plus estimation noise of the size a
    refit on this history has."""
    rng = np.random.default_rng(seed)
    n = panel.n_skus
    return DemandCurve.build(np.full(n, 10.0), np.full(n, 4.0), -2.5 + rng.normal(0, 0.15, n))


def test_a_challenger_no_better_than_the_champion_but_for_noise_is_not_promoted():
    """Refit and champion both estimate the same truth with noise: a strict comparison of
    means would hand the title to whichever is luckier on the held-out days; the bootstrap's
    lower bound never clears 0."""
    results = [
        champion_challenger(
            _history(days=120, seed=seed), _noisy_champion(_history(seed=seed), seed),
            holdout_days=28,
        )
        for seed in range(6)
    ]  # fmt: skip
    assert any(r.deviance_challenger < r.deviance_champion for r in results)  # luck alone
    assert not any(r.wins for r in results)
    assert all(r.difference_low < 0 < r.difference_high or r.difference_high <= 0 for r in results)


def test_a_clearly_better_challenger_is_promoted_with_an_interval_above_zero():
    panel = _history(days=150, true=-2.5)
    result = champion_challenger(panel, _champion(panel, -1.0), holdout_days=28)
    assert result.wins and 0 < result.difference_low <= result.difference <= result.difference_high


def test_a_clearly_better_challenger_on_too_few_skus_is_not_promoted():
    """A SKU bootstrap over a handful of SKUs is one on luck: below MIN_SCORED_SKUS the version
    in force stays, however large the difference looks."""
    panel = _history(days=150, skus=MIN_SCORED_SKUS - 1, true=-2.5)
    result = champion_challenger(panel, _champion(panel, -0.3), holdout_days=28)
    assert result.skus == MIN_SCORED_SKUS - 1 and result.difference_low > 0
    assert not result.wins
