"""The simulated market: canonical files that import, and an oracle that knows best."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from ml.science.simulator import (
    FORMS,
    NO_TRAPS,
    TRAPS,
    make_market,
    make_trap_market,
    oracle,
    score,
    simulate,
    write_csv,
)


def test_market_files_are_in_the_canonical_formats(tmp_path):
    market = make_market(12, FORMS, seed=0)
    stats = write_csv(market, tmp_path, days=20)
    with open(tmp_path / "sales.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert stats["sales_rows"] == len(rows) > 0
    assert set(rows[0]) == {"date", "sku", "units", "price", "promo"}
    with open(tmp_path / "products.csv") as handle:
        assert next(csv.reader(handle)) == ["sku", "title", "category", "cost", "price", "currency"]


def test_oracle_is_the_best_and_scores_are_consistent():
    market = make_market(30, ("constant", "linear", "logit"), seed=1)
    p0 = market.price_today
    floor = np.maximum(market.cost * 1.1, p0 * 0.8)
    ceiling = np.maximum(p0 * 1.2, floor)
    best = oracle(market, floor, ceiling)
    idx = np.arange(30)
    assert np.all(
        market.profit(idx, best) >= market.profit(idx, np.clip(p0, floor, ceiling)) - 1e-9
    )
    assert score(market, best, floor, ceiling)["captured"] == 1.0
    assert score(market, np.clip(p0, floor, ceiling), floor, ceiling)["captured"] < 1.0
    assert score(market, ceiling * 2, floor, ceiling)["violations"] == 30


def test_daily_reports_list_every_day_and_competitor_moves_are_followed(tmp_path):
    market = make_market(10, FORMS, seed=2)
    write_csv(market, tmp_path / "orders", days=70, seed=2)
    write_csv(market, tmp_path / "daily", days=70, seed=2, zero_days=True)
    read = lambda folder, name: list(csv.DictReader(open(tmp_path / folder / name)))  # noqa: E731,SIM115
    orders, daily = read("orders", "sales.csv"), read("daily", "sales.csv")
    assert len(daily) == 70 * 10 and all(int(r["units"]) > 0 for r in orders)
    sold = {(r["date"], r["sku"]): r for r in daily if int(r["units"]) > 0}
    assert sold == {(r["date"], r["sku"]): r for r in orders}  # same market, same days
    offers = read("daily", "competitor_prices.csv")
    index = [int(r["sku"][3:]) for r in offers]  # SIM00042 -> 42
    ratio = np.array([float(r["price"]) for r in offers]) / market.competitor_today[index]
    assert ratio.max() / ratio.min() > 1.25  # the competitor re-prices, not only jitters
    last = [
        r for r in offers if r["observed_at"][:10] == max(o["observed_at"][:10] for o in offers)
    ]
    assert all(0.9 < float(r["price"]) / market.competitor_today[int(r["sku"][3:])] < 1.1
               for r in last)  # fmt: skip  # back at today's price at the end
    still = tmp_path / "still"
    write_csv(market, still, days=70, seed=2, competitor_moves=False)
    calm = [
        float(r["price"]) / market.competitor_today[int(r["sku"][3:])]
        for r in read("still", "competitor_prices.csv")
    ]
    assert max(calm) / min(calm) < 1.25


def test_the_merchant_is_back_at_todays_price_on_every_one_of_the_last_two_weeks(tmp_path):
    """Found in review: the competitor (and the merchant's half-follow) went back to today's
    price only at the next weekly re-price inside the last two weeks, up to six days late.
    Days 64-69 of 78 lie before that weekly step: their prices scatter only by the daily
    price tests (sd 0.1 in logs), with no competitor regime on top."""
    market = make_market(500, FORMS, seed=3)
    write_csv(market, tmp_path, days=78, seed=3, zero_days=True)
    rows = list(csv.DictReader(open(tmp_path / "sales.csv")))  # noqa: SIM115
    first = min(r["date"] for r in rows)
    late = [
        r
        for r in rows
        if r["promo"] == "false"
        and 64 <= (date.fromisoformat(r["date"]) - date.fromisoformat(first)).days < 70
    ]
    index = [int(r["sku"][3:]) for r in late]
    spread = np.std(np.log(np.array([float(r["price"]) for r in late]) / market.price_today[index]))
    assert 0.09 < spread < 0.106


# --- the traps of real retail data ----------------------------------------------------------


def _history(market, days=100, seed=0):
    """Units sold and expected units (days x SKUs) of a simulated history."""
    units, expected = [], []
    for today in simulate(market, days, seed):
        units.append(today.units)
        expected.append(today.expected)
    return np.array(units, float), np.array(expected)


def test_without_traps_the_market_and_its_files_are_as_before(tmp_path):
    """Pinned from the simulator before the traps: the same seed gives the same sales (the
    traps draw from streams of their own), and counts are Poisson (variance = mean)."""
    market = make_market(12, FORMS, seed=4)
    assert not market.anchored.any() and market.display_lift == market.overdispersion == 0
    # the seasons follow the calendar: a pinned history names its last day
    write_csv(market, tmp_path, days=30, seed=4, zero_days=True, end=date(2026, 12, 2))
    rows = list(csv.DictReader(open(tmp_path / "sales.csv")))  # noqa: SIM115
    assert sum(int(r["units"]) for r in rows) == 1645
    assert sum(r["promo"] == "true" for r in rows) == 27
    assert abs(sum(float(r["price"]) for r in rows) - 30792.46) < 1e-6
    assert [r["price"] for r in rows[:3]] == ["100.41", "24.8", "98.38"]
    y, mu = _history(make_market(200, FORMS, seed=0))
    assert abs(((y - mu) ** 2 - y).sum() / (mu**2).sum()) < 0.05  # no extra-Poisson variance
    assert 0.95 < ((y - mu) ** 2).sum() / mu.sum() < 1.05


def test_thin_margins_and_other_elasticities_move_only_their_draws():
    """`cost_share` and `elasticity` move the ranges the costs and slopes are drawn from; the
    same draws otherwise (the defaults are the ranges a market always had)."""
    plain = make_market(300, FORMS, seed=6, traps=True)
    thin = make_market(300, FORMS, seed=6, traps=True, cost_share=(0.85, 0.95), elasticity=(2, 5))
    share = thin.cost / thin.ref_price
    assert share.min() >= 0.85 and share.max() <= 0.95 and share.max() - share.min() > 0.09
    assert np.all((thin.elasticity >= -5) & (thin.elasticity <= -2))
    # the same uniform draws, rescaled from the ranges a market always had
    (c_low, c_high), (e_low, e_high) = NO_TRAPS["cost_share"], NO_TRAPS["elasticity"]
    assert TRAPS["cost_share"] == NO_TRAPS["cost_share"]
    assert TRAPS["elasticity"] == NO_TRAPS["elasticity"]
    unit = (plain.cost / plain.ref_price - c_low) / (c_high - c_low)
    assert np.allclose(unit, (share - 0.85) / 0.1)
    assert np.allclose((-plain.elasticity - e_low) / (e_high - e_low), (-thin.elasticity - 2) / 3)
    assert np.array_equal(plain.ref_price, thin.ref_price)
    assert np.array_equal(plain.anchor_slope, thin.anchor_slope)


def test_overdispersion_is_negative_binomial_as_configured():
    """Var = mu + k mu^2: the moment estimate of k recovers the setting."""
    for k in (0.4, 0.8):
        y, mu = _history(make_market(200, FORMS, seed=1, overdispersion=k), seed=1)
        estimate = ((y - mu) ** 2 - y).sum() / (mu**2).sum()
        assert abs(estimate - k) < 0.15 * k + 0.03
        assert ((y - mu) ** 2).sum() / mu.sum() > 1 + 0.5 * k * (mu**2).sum() / mu.sum()


def test_demand_shocks_are_serially_correlated():
    def lag_one(market):
        y, mu = _history(market, seed=2)
        keep = mu.min(axis=0) > 2  # SKUs that always sell a few (the ratio is not noise only)
        ratio = y[:, keep] / mu[:, keep] - 1
        return np.corrcoef(ratio[1:].ravel(), ratio[:-1].ravel())[0, 1]

    assert abs(lag_one(make_market(200, FORMS, seed=2))) < 0.05
    assert lag_one(make_market(200, FORMS, seed=2, shock_rho=0.8, shock_sd=0.4)) > 0.3


def test_promotions_lift_demand_by_display_at_equal_price_and_vary_in_depth():
    plain, trap = make_market(20, FORMS, seed=3), make_trap_market(20, FORMS, seed=3)
    idx, price, comp = np.arange(20), plain.price_today, plain.competitor_today

    def lift(m):  # promo day over the same day without, at the same price
        return m.demand(idx, price, comp, 739000, 1) / m.demand(idx, price, comp, 739000, 0)

    assert np.allclose(lift(plain), np.exp(plain.promo_lift))
    assert np.allclose(lift(trap), np.exp(trap.promo_lift + TRAPS["display_lift"]))
    days = list(simulate(trap, 60, seed=3))
    depth = np.concatenate([d.depth[d.promo] for d in days])
    assert len(depth) > 30 and depth.min() >= 0.10 and depth.max() <= 0.35 and depth.std() > 0.05
    assert all(np.allclose(d.price, d.shelf * (1 - d.depth)) for d in days)
    assert {float(d) for day in simulate(plain, 60, seed=3) for d in day.depth[day.promo]} == {0.15}


def test_anchored_skus_lose_demand_faster_above_the_competitor_than_below():
    market = make_trap_market(400, FORMS, seed=4)
    anchored = market.anchored
    assert 0.3 < anchored.mean() < 0.5
    assert np.all((market.anchor_slope[anchored] >= 3) & (market.anchor_slope[anchored] <= 6))
    idx, comp = np.arange(400), market.competitor_today
    free = replace(market, anchor_slope=None)  # the same curves without the anchoring

    def bend(m):  # log units lost over the 10 % above the competitor less the 10 % below
        with np.errstate(divide="ignore", invalid="ignore"):
            at = np.log(m.demand(idx, comp))
            return (at - np.log(m.demand(idx, comp * 1.1))) - (
                np.log(m.demand(idx, comp * 0.9)) - at
            )

    sells = np.isfinite(bend(market))
    assert sells.mean() > 0.9
    assert np.all(bend(market)[anchored & sells] > 0.15)  # steeper above than below
    # ... by at least the smallest extra slope (3) over log(1.1) less the bend's half width
    extra = (bend(market) - bend(free))[sells]
    assert np.all(extra[anchored[sells]] > 3 * (np.log(1.1) - market.anchor_bend / 2) - 1e-9)
    assert np.all(extra[~anchored[sells]] == 0)
    assert np.allclose(market.demand(idx, comp * 0.95), free.demand(idx, comp * 0.95))
    # A smooth kink, not a cliff: the slope just above the competitor is close to just below.
    near = market.local_elasticity(idx, comp * 1.001) - market.local_elasticity(idx, comp * 0.999)
    assert np.nanmax(np.abs(near)) < 0.5
    # Well above it, the extra slope is the SKU's own anchor slope.
    steep = market.local_elasticity(idx, comp * 1.2) - free.local_elasticity(idx, comp * 1.2)
    ok = np.isfinite(steep)  # (a linear curve may have run out of buyers)
    assert ok.mean() > 0.8 and np.allclose(steep[ok], -market.anchor_slope[ok], atol=1e-4)


def test_a_day_to_comes_profit_is_averaged_over_the_competitors_daily_jitter():
    # The simulated days meet the competitor's price give or take its jitter; the oracle and
    # the score judge a price on that average, not on one day's competitor price exactly.
    market = make_market(200, FORMS, seed=22, traps=True, anchored_share=0.6)
    idx, comp = np.arange(200), market.competitor_today
    exact = replace(market, competitor_jitter=0.0)
    draws = np.random.default_rng(0).normal(0, market.competitor_jitter, (100_000, 1))
    for ratio in (0.95, 1.0, 1.03, 1.1):
        price = comp * ratio
        sampled = market.demand(idx, price, comp * np.exp(draws)).mean(axis=0)
        assert np.allclose(market.expected_demand(idx, price), sampled, rtol=2e-3)
    # At the competitor's price an anchored SKU sells less on average than on a day exactly at
    # it (some days the competitor is cheaper), an SKU that is not anchored the same but for
    # the competitor effect's constant factor, whatever its own price
    at = market.profit(idx, comp) / exact.profit(idx, comp)
    assert np.all(at[market.anchored] < 0.995)
    free = ~market.anchored
    assert np.allclose(at[free], at[free][0], rtol=1e-6)
    below = market.profit(idx, comp * 0.9) / exact.profit(idx, comp * 0.9)
    assert np.allclose(below[free], at[free], rtol=1e-6)
    # The true slope is that average's: a difference of its log units
    h, price = 1e-4, comp * 1.01
    up, down = (
        market.expected_demand(idx, price * np.exp(h)),
        market.expected_demand(idx, price * np.exp(-h)),
    )
    slope = market.local_elasticity(idx, price)
    sells = (up > 0) & (down > 0)
    assert np.allclose(slope[sells], (np.log(up) - np.log(down))[sells] / (2 * h))
    assert not np.allclose(slope, exact.local_elasticity(idx, price), atol=0.05)
    # and the best price of a market without anchoring is the same either way
    clean = make_market(60, FORMS, seed=3)
    p0 = clean.price_today
    floor, ceiling = np.maximum(clean.cost * 1.1, p0 * 0.8), p0 * 1.2
    assert np.array_equal(
        oracle(clean, floor, ceiling), oracle(replace(clean, competitor_jitter=0.0), floor, ceiling)
    )


def test_local_elasticity_matches_the_analytic_slope():
    market = make_market(50, ("constant",), seed=5)
    idx = np.arange(50)
    e = market.local_elasticity(idx, market.price_today)
    assert np.allclose(e, market.elasticity - market.competitor_effect, atol=1e-6)
    linear = make_market(50, ("linear",), seed=5)
    ratio = linear.price_today * 0.95 / linear.ref_price
    slope = linear.elasticity * ratio / (1 + linear.elasticity * (ratio - 1))
    got = linear.local_elasticity(idx, linear.price_today * 0.95)
    sells = 1 + linear.elasticity * (ratio - 1) > 0.01
    assert np.allclose(got[sells], slope[sells] - linear.competitor_effect, atol=1e-5)


def test_score_counts_recommendations_that_lose_money_and_changes():
    market = make_market(40, FORMS, seed=6)
    p0 = market.price_today
    floor, ceiling = np.minimum(market.cost, p0 * 0.8), p0 * 1.2
    today = np.round(p0, 2)
    kept = score(market, today, floor, ceiling)
    assert kept["losing_share"] == 0.0 and kept["changed"] == 0
    bad = np.where(np.arange(40) % 2 == 0, market.cost, today)  # at cost: no profit at all
    result = score(market, bad, floor, ceiling)
    assert result["losing_share"] == 0.5 and result["changed"] == 20


def test_a_daily_competitor_feed_reads_the_days_jittered_price_and_leaves_the_sales_alone(
    tmp_path,
):
    market = make_market(5, FORMS, seed=4)
    weekly, daily = tmp_path / "weekly", tmp_path / "daily"
    write_csv(market, weekly, days=28, seed=4, end=date(2026, 3, 1))
    write_csv(market, daily, days=28, seed=4, end=date(2026, 3, 1), reading_every=1)

    def rows(folder, name):
        with open(folder / name) as handle:
            return list(csv.DictReader(handle))

    assert rows(weekly, "sales.csv") == rows(daily, "sales.csv")
    every_day, every_week = (
        rows(daily, "competitor_prices.csv"),
        rows(weekly, "competitor_prices.csv"),
    )
    assert len(every_day) == 28 * 5 and len(every_week) == 4 * 5
    # the weekly readings are the daily feed's readings of those days
    assert all(row in every_day for row in every_week)
    # each day's reading jitters around the competitor's price (3 %)
    last_week = [r for r in every_day if r["observed_at"] >= "2026-02-22"]
    level = {sku: market.competitor_today[int(sku[3:])] for sku in market.sku}
    off = [np.log(float(r["price"]) / level[r["sku"]]) for r in last_week]
    assert 0.015 < np.std(off) < 0.05


def test_sticky_prices_hold_for_stretches_and_end_at_todays_price():
    """`price_every`: the merchant's shelf price changes on about one day in `price_every` and
    is today's price from its last change on; 1 (the default) leaves every day as it was."""
    market = make_market(300, FORMS, seed=2, price_every=30.0)
    days = list(simulate(market, 240, seed=2))  # the competitor's moves followed only then too
    shelf = np.array([d.shelf for d in days])  # days x SKUs
    changes = (np.abs(np.diff(np.log(shelf), axis=0)) > 1e-12).sum(axis=0)
    assert 240 / 30 * 0.7 < changes.mean() < 240 / 30 * 1.3  # about one change in 30 days
    assert np.allclose(shelf[-1], market.price_today)  # today's price is the last one held
    # held since its last change: the days at today's price at the end run about 30 on average
    at_today = np.isclose(shelf, market.price_today)
    runs = at_today[::-1].cumprod(axis=0).sum(axis=0)
    assert 20 < runs.mean() < 40
    daily = make_market(300, FORMS, seed=2)
    flat = np.array([d.shelf for d in simulate(daily, 240, seed=2, competitor_moves=False)])
    assert (np.abs(np.diff(np.log(flat), axis=0)) > 1e-12).mean() > 0.99
    assert daily.price_every == 1.0
    with pytest.raises(ValueError, match="price_every"):
        make_market(10, FORMS, seed=0, price_every=0.5)


def test_the_season_ahead_is_the_days_to_comes_mean_of_the_yearly_factor():
    """What a price set at a history's end earns over the next days is the year's average
    day's times their season: the mean over 28 days of the demand each day expects (its
    weekday factor averaging out over four weeks), and 1 over a whole year."""
    import datetime as dt

    from ml.science.simulator import Market, make_market

    market = make_market(4, seed=0)
    end = dt.date(2026, 12, 6)
    days = np.arange(end.toordinal() + 1, end.toordinal() + 29)
    idx, price = np.arange(4), market.price_today
    ratio = np.mean([market.demand(idx, price, day=d) / market.demand(idx, price) for d in days],
                    axis=0)  # fmt: skip
    assert np.allclose(ratio, Market.season_ahead(28, end), rtol=1e-3)
    assert Market.season_ahead(28, end) < 0.97  # (December: below the year's average)
    assert Market.season_ahead(365, end) == pytest.approx(1.0, abs=2e-3)
