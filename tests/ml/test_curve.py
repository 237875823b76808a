"""The demand curve (`ml/science/curve.py`)."""

from __future__ import annotations

import numpy as np
import pytest


def test_the_local_elasticity_includes_the_hinge_only_above_the_competitor():
    from ml.science.curve import DemandCurve

    curve = DemandCurve.build(
        [10.0, 10.0, 10.0],
        [5.0, 5.0, 5.0],
        [-1.5, -1.5, -1.5],
        [0.2, 0.2, 0.2],
        competitor_price=[9.5, 10.5, 9.5],
        competitor_slope=[-3.0, -3.0, -0.1],
        competitor_slope_se=[0.5, 0.5, 0.5],
        hinge_spread=(-2.0, 1.5),  # the catalog's (three SKUs are too few to measure it on)
    )
    slope, se = curve.local_elasticity()
    # above a clear hinge: a small move runs on the steeper slope, with both doubts
    assert slope[0] == pytest.approx(-4.5) and se[0] == pytest.approx(np.hypot(0.2, 0.5))
    # below the competitor, or a hinge the data do not show: the elasticity as it is (the
    # latter with the doubt of the hinge it leaves out: see the test below)
    assert slope[1] == pytest.approx(-1.5) and se[1] == pytest.approx(0.2)
    assert slope[2] == pytest.approx(-1.5) and se[2] > 0.2
    # the number the curve itself gives for a small move up from today's price
    up = np.log(curve.units(np.full(3, 10.0 * np.exp(1e-4))) / curve.units_ref) / 1e-4
    assert up == pytest.approx(slope, abs=1e-3)


def test_the_competitors_price_is_judged_at_its_pessimistic_end_for_each_move():
    from ml.science.curve import DemandCurve

    curve = DemandCurve.build(
        [9.5, 9.5],
        [5.0, 5.0],
        [-1.5, -1.5],
        competitor_price=[10.0, 10.0],
        competitor_slope=[-4.0, -4.0],
        competitor_slope_se=[0.5, 0.5],
        competitor_sd=[0.03, 0.0],
    )
    # a raise: the collapse may start sooner; a cut: less of it may lie above the competitor
    assert curve.pessimistic_kink(1.0, True) == pytest.approx([10 * np.exp(-0.03), 10.0])
    assert curve.pessimistic_kink(1.0, False) == pytest.approx([10 * np.exp(0.03), 10.0])
    # per candidate price (the grid): the side of each candidate decides
    grid = curve.pessimistic_kink(1.0, np.array([[True, False], [True, False]]))
    assert grid[0] == pytest.approx([10 * np.exp(-0.03), 10 * np.exp(0.03)])
    # a raise to just under the competitor's reading already costs where the reading may be off
    up = np.full(2, 9.99)
    kink = curve.pessimistic_kink(1.0, True)
    assert curve.units(up, competitor=kink)[0] < curve.units(up, competitor=kink)[1]


def test_a_raise_past_the_competitor_takes_the_hinges_pessimistic_end_wherever_it_is_known():
    from ml.science.curve import DemandCurve

    curve = DemandCurve.build(
        [10.0, 10.0, 10.0],
        [5.0, 5.0, 5.0],
        [-1.5, -1.5, -1.5],
        competitor_price=[10.5, 10.5, 10.5],
        # a hinge the data cannot confirm nor lean toward, one that is positive, none read
        # (no catalog's spread on three SKUs: the fit's own prior, N(0, 3^2), whose 1-s.e.
        # end is -3)
        competitor_slope=[-0.5, 0.4, 0.0],
        competitor_slope_se=[1.5, 1.5, np.inf],
    )
    assert curve.pessimistic_hinge(1.0, True) == pytest.approx([-2.0, -1.1, -3.0])
    # a cut back below the competitor never counts on a hinge that is not in force
    assert curve.pessimistic_hinge(1.0, False) == pytest.approx([0.0, 0.0, 0.0])


def test_the_ramp_is_the_expected_distance_above_a_jittered_competitor():
    from ml.science.curve import ramp, ramp_slope

    gap = np.array([-0.1, -0.02, 0.0, 0.03, 0.2])
    eps = np.random.default_rng(0).normal(0, 0.05, 400_000)
    expected = [np.mean(np.maximum(g + eps, 0.0)) for g in gap]
    assert ramp(gap, 0.05) == pytest.approx(expected, abs=2e-4)
    assert ramp(gap, 0.0) == pytest.approx(np.maximum(gap, 0.0))  # no jitter: the sharp kink
    share = [np.mean(g + eps > 0) for g in gap]  # the slope: the share above the competitor
    assert ramp_slope(gap, 0.05) == pytest.approx(share, abs=3e-3)


def test_on_the_smoothed_ramp_the_hinge_is_in_force_by_the_chance_of_being_above():
    from scipy.stats import norm

    from ml.science.curve import DemandCurve

    curve = DemandCurve.build(
        [10.0, 10.0, 10.0],
        [5.0, 5.0, 5.0],
        [-1.5, -1.5, -1.5],
        [0.2, 0.2, 0.2],
        competitor_price=[9.9, 10.0, 12.0],
        competitor_slope=[-4.0, -4.0, -4.0],
        competitor_slope_se=[0.5, 0.5, 0.5],
        ramp_sd=0.04,
    )
    slope, se = curve.local_elasticity()
    share = norm.cdf(np.log(10.0 / np.array([9.9, 10.0, 12.0])) / 0.04)
    assert slope == pytest.approx(-1.5 - 4.0 * share)
    assert slope[1] == pytest.approx(-3.5) and slope[2] == pytest.approx(-1.5, abs=1e-3)
    # at the competitor's price either side may hold: the interval spans both slopes
    assert se[1] == pytest.approx(np.sqrt(0.2**2 + (0.5 * 0.5) ** 2 + 16 * 0.25))
    assert slope[1] - 1.96 * se[1] < -5.5 and slope[1] + 1.96 * se[1] > -1.5
    assert se[2] == pytest.approx(0.2, abs=1e-3)  # far below it: the elasticity's own
    # the curve gives the same slope for a small move from today's price
    up, down = (curve.units(np.full(3, 10.0 * np.exp(d))) for d in (1e-4, -1e-4))
    assert np.log(up / down) / 2e-4 == pytest.approx(slope, abs=1e-3)


def catalog(raw, raw_se, competitor: float, spread=None):
    """SKUs at 10.00 with elasticity -1.5 +- 0.2, a competitor at `competitor` and hinges."""
    from ml.science.curve import DemandCurve

    n = len(raw)
    return DemandCurve.build(
        np.full(n, 10.0),
        np.full(n, 5.0),
        np.full(n, -1.5),
        np.full(n, 0.2),
        competitor_price=np.full(n, competitor),
        competitor_slope=raw,
        competitor_slope_se=raw_se,
        hinge_spread=spread,
    )


def test_a_hinge_left_out_widens_the_interval_by_what_the_tenants_hinges_say_it_may_be():
    def curve(raw, raw_se):
        return catalog(raw, raw_se, 9.5)

    # half the SKUs collapse above the competitor (clear hinges), half show a hinge too noisy
    # to use: the slope leaves theirs out, and the interval reaches a hinge like the others'
    # as far as their readings leave it possible (-1 +- 1.5: a collapse of -4 is 2 s.e. off;
    # +1 +- 1.5: 3.3 s.e.)
    raw = np.r_[np.full(20, -4.0), np.full(10, -1.0), np.full(10, 1.0)]
    mixed = curve(raw, np.r_[np.full(20, 0.5), np.full(20, 1.5)])
    slope, se = mixed.local_elasticity()
    assert slope[20:] == pytest.approx(-1.5) and (slope[:20] == pytest.approx(-5.5))
    assert (slope[20:30] - 1.96 * se[20:30] < -1.5 - 3.0).all()
    assert (se[30:] < se[20:30]).all() and (se[30:] > 0.2).all()
    # where no SKU's hinge differs from zero beyond its noise, leaving it out costs only the
    # doubt of the catalog's mean (40 hinges of s.e. 1: 1 / 40), no spread of its own
    flat = curve(np.zeros(40), np.ones(40))
    assert flat.local_elasticity()[1] == pytest.approx(np.sqrt(0.2**2 + 1 / 40))


def test_an_unclear_hinge_is_judged_on_the_spread_of_the_catalogs_hinges():
    """A raise past the competitor: a hinge the SKU's data cannot make clear is taken at the
    pessimistic end of its posterior on the catalog's hinges. Where no SKU's hinge differs from
    the others beyond noise, that is the catalog's (about none), not the SKU's own noise; where
    many SKUs collapse above the competitor, about its own end. A clear hinge, or one the
    SKU's own data lean toward (1 s.e. below zero), keeps its own end."""
    from ml.science.curve import hinge_prior

    def curve(raw, raw_se, spread=None):
        return catalog(raw, raw_se, 10.5, spread)

    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1.5, 60)  # hinges that are all zero, each read with an s.e. of 1.5
    flat = curve(np.r_[-0.5, noise], np.full(61, 1.5))
    centre, tau2, spike, centre_var = flat.hinge_spread
    assert tau2 == pytest.approx(0.0) and centre == pytest.approx(np.mean(np.r_[-0.5, noise]))
    assert spike == 0.0  # a share without a hinge reads no better than one normal spread
    # the catalog's mean is an estimate: off by the mean of 61 readings of s.e. 1.5
    assert centre_var == pytest.approx(1.5**2 / 61)
    assert flat.pessimistic_hinge(1.0, True)[0] == pytest.approx(
        min(centre - np.sqrt(centre_var), 0.0)
    )
    # a SKU whose own data lean toward a hinge (-2.9 +- 1.5: not clear at 2 s.e.) keeps its own
    # end in that catalog: the one SKU in 61 that collapses above the competitor is not
    # judged on the others
    rare = curve(np.r_[-2.9, noise], np.full(61, 1.5))
    assert rare.hinge_spread[1] == pytest.approx(0.0)
    assert rare.pessimistic_hinge(1.0, True)[0] == pytest.approx(-4.4)
    # the same SKU in a catalog where some SKUs collapse above the competitor (-3 to -6): the
    # spread is a share without a hinge and the others' around their mean
    collapse = rng.random(60) < 0.4
    anchored = np.where(collapse, -rng.uniform(3, 6, 60), 0.0) + noise
    mixed = curve(np.r_[-0.5, anchored], np.full(61, 1.5))
    centre, tau2, spike, centre_var = mixed.hinge_spread
    assert spike == pytest.approx(1 - collapse.mean(), abs=0.1) and -5.5 < centre < -4.0
    # the slab's mean is read off the SKUs likely in it: about its share of 61 readings
    slab_readings = (1 - spike) * 61
    assert 0.5 < centre_var * slab_readings / (tau2 + 1.5**2) < 2.0
    # judged by the chance it is one of those (its reading is 2.9 s.e. from their mean) times
    # its end if it is: more than in the flat catalog, less than its own end (-2.0), more as
    # its reading leans more; once it leans (1 s.e.), its end if it is one of them
    r, m, v, mix = mixed.hinge_parts()
    assert mix[0] and 0 < r[0] < 0.05 and m[0] < -3.0
    steep = mixed.pessimistic_hinge(1.0, True)[0]
    assert steep == pytest.approx(r[0] * (m[0] - np.sqrt(v[0])))
    # (the flat catalog's mean taken as sure: its own doubt is about as large as this chance)
    sure = curve(np.r_[-0.5, noise], np.full(61, 1.5), spread=(*flat.hinge_spread[:3], 0.0))
    assert -2.0 < steep < sure.pessimistic_hinge(1.0, True)[0]
    steeper = curve(np.r_[-1.4, anchored], np.full(61, 1.5)).pessimistic_hinge(1.0, True)[0]
    assert -2.0 < steeper < steep - 0.1
    leaning = curve(np.r_[-1.6, anchored], np.full(61, 1.5))
    _, lm, lv, lmix = leaning.hinge_parts()
    assert leaning.leaning_hinge()[0] and lmix[0] and lm[0] < -4.0
    assert leaning.pessimistic_hinge(1.0, True)[0] == pytest.approx(
        min(-3.1, lm[0] - np.sqrt(lv[0]))
    )
    # one normal spread of the same hinges pulls it toward the collapsing SKUs' mean
    centre, tau2, *_ = hinge_prior(np.r_[-0.5, anchored], np.full(61, 1.5), mixture=False)
    normal = curve(np.r_[-0.5, anchored], np.full(61, 1.5), spread=(centre, tau2))
    w = tau2 / (tau2 + 1.5**2)
    end = normal.pessimistic_hinge(1.0, True)[0]
    assert end == pytest.approx(w * -0.5 + (1 - w) * centre - np.sqrt(w) * 1.5) and end < steep
    # a clear hinge keeps its own end; a cut never counts on an unclear one
    clear = curve(np.r_[-5.0, noise], np.full(61, 1.5), spread=(0.0, 0.0))
    assert clear.pessimistic_hinge(1.0, True)[0] == pytest.approx(-6.5)
    assert flat.pessimistic_hinge(1.0, False)[0] == 0.0
    # the spread is the catalog's, carried by every part of the curve (one SKU, the chart's)
    assert flat.subset([0]).pessimistic_hinge(1.0, True) == pytest.approx(
        flat.pessimistic_hinge(1.0, True)[:1]
    )
    # none measured on fewer than HINGE_SPREAD_MIN estimated hinges: the SKU's own end
    few = curve(np.r_[-0.5, noise[:18]], np.full(19, 1.5))
    assert (
        few.hinge_spread is False and hinge_prior(np.r_[-0.5, noise[:18]], np.full(19, 1.5)) is None
    )
    assert few.pessimistic_hinge(1.0, True)[0] == pytest.approx(-2.0)


def test_a_hinge_its_days_cannot_read_is_judged_on_the_catalogs_spread_of_hinges():
    """A slow mover's few days above the competitor read no hinge (s.e. inf): a raise past the
    competitor was judged as if demand could not collapse there, and on a catalog where 40 %
    of SKUs collapse above it those raises lost money (RESULTS). Its hinge's posterior is the
    catalog's spread itself: the share with a hinge, the slab's mean and tau^2 and the mean's
    own variance; a raise takes that posterior's end, wherever today's price is (a slope read
    above the competitor may hold only part of a collapse). Without a spread there is nothing
    to judge it on but the fit's own prior."""
    from math import erf

    from ml.science.curve import HINGE_PRIOR_SD

    spread = (-2.0, 0.5, 0.6, 0.04)
    end = 0.4 * (-2.0 - np.sqrt(0.54))
    below = catalog([0.0, -1.0], [np.inf, 0.8], 10.5, spread)
    r, m, v, mixed = below.hinge_parts()
    assert below.unread_hinge().tolist() == [True, False]
    assert mixed[0] and r[0] == pytest.approx(0.4)
    assert m[0] == pytest.approx(-2.0) and v[0] == pytest.approx(0.5 + 0.04)
    assert below.pessimistic_hinge(1.0, True)[0] == pytest.approx(end)
    # a cut never counts on it; the curve's own slope is not changed by it
    assert below.pessimistic_hinge(1.0, False)[0] == 0.0
    assert below.competitor_slope[0] == 0.0
    for competitor in (10.0, 9.5):  # at the competitor's price today, and above it
        other = catalog([0.0], [np.inf], competitor, spread)
        assert other.unread_hinge()[0] and other.pessimistic_hinge(1.0, True)[0] == pytest.approx(
            end
        )
    # no spread measured (too few hinges read): the fit's own prior, N(0, HINGE_PRIOR_SD^2),
    # as the curve uses a hinge, min(h, 0): none half the time, else its negative half
    alone = catalog([0.0], [np.inf], 10.5, False)
    r, m, v, mixed = alone.hinge_parts()
    draws = np.minimum(np.random.default_rng(0).normal(0, HINGE_PRIOR_SD, 400_000), 0.0)
    assert alone.unread_hinge()[0] and mixed[0] and r[0] == 0.5
    assert m[0] == pytest.approx(draws[draws < 0].mean(), abs=0.01)
    assert v[0] == pytest.approx(draws[draws < 0].var(), abs=0.02)
    # its end in a raise's search and in a forecast's interval: the prior's own quantile
    # (-3 z; P(min(h, 0) < -3 z) = P(h < -3 z)); at z 0 its mean, -1.2
    for z in (1.0, 1.96):
        quantile = alone.pessimistic_hinge(z, True)[0]
        assert quantile == pytest.approx(-HINGE_PRIOR_SD * z)
        assert np.mean(draws < quantile) == pytest.approx(0.5 * (1 - erf(z / 2**0.5)), abs=0.003)
    assert alone.pessimistic_hinge(0.0, True)[0] == pytest.approx(draws.mean(), abs=0.01)
    # a SKU without a competitor's price has no hinge to judge
    assert not catalog([0.0], [np.inf], np.nan, spread).unread_hinge()[0]
    # (one SKU of the catalog, the chart's, carries the same)
    assert below.subset([0]).pessimistic_hinge(1.0, True)[0] == pytest.approx(end)


def test_the_units_a_recommendation_shows_are_the_mixtures_where_the_decision_weighs_one():
    """Review: a raise past the competitor on a hinge the SKU's days cannot read showed the
    gain of its curve without a hinge, about twice what the mixture the budget weighs expects.
    Shown units are the mixture's mean (a Monte Carlo draw of the hinge agrees) for a raise;
    never more than the curve's own (a cut, a price below the competitor); a clear hinge, one
    without a competitor, or a curve without hinges shows its own."""
    from ml.science.curve import HINGE_PRIOR_SD, DemandCurve

    spread = (-2.0, 0.5, 0.6, 0.04)
    cat = catalog([0.0, 0.0, -4.0, 0.0], [np.inf, np.inf, 0.5, 0.0], 10.5, spread)
    price = np.array([11.5, 9.0, 11.5, 11.5])  # a raise past it, a cut, a clear hinge, a fact
    own, shown = cat.units(price), cat.expected_units(price)
    rng = np.random.default_rng(1)
    k = 200_000
    h = np.where(rng.random(k) < 0.4, rng.normal(-2.0, np.sqrt(0.54), k), 0.0)
    drawn = catalog(np.minimum(h, 0.0), np.zeros(k), 10.5, False)
    mean = drawn.units(np.full(k, 11.5)).mean()
    assert shown[0] == pytest.approx(mean, rel=0.01) and shown[0] < own[0] * 0.99
    assert shown[1:].tolist() == pytest.approx(own[1:].tolist())
    assert cat.expected_units(np.array([10.0] * 4)).tolist() == pytest.approx([5.0] * 4)
    # candidates per SKU (the chart's grid) read the same
    grid = np.array([[9.0, 11.5]] * 4)
    assert cat.expected_units(grid)[:, 1].tolist() == pytest.approx(
        [shown[0], shown[0], own[2], own[3]]
    )
    assert cat.expected_units(grid)[:2, 0].tolist() == pytest.approx([own[1], own[1]])
    # no spread measured: the fit's own prior as the curve uses a hinge, min(h, 0)
    alone = catalog([0.0], [np.inf], 10.5, False)
    h = np.minimum(rng.normal(0.0, HINGE_PRIOR_SD, k), 0.0)
    drawn = catalog(h, np.zeros(k), 10.5, False)
    got = alone.expected_units(np.array([11.5]))[0]
    assert got == pytest.approx(drawn.units(np.full(k, 11.5)).mean(), rel=0.01)
    # the profit too, and the forecast's point is the same units inside its interval
    assert alone.expected_profit(np.array([11.5]), [5.0])[0] == pytest.approx(6.5 * got)
    units, low, high = alone.units_interval(np.array([11.5]), 1.96)
    assert units[0] == pytest.approx(got) and low[0] < got < high[0]
    # a curve made field by field (no hinge s.e.), or without a competitor: its own
    bare = DemandCurve.build([10.0], [5.0], [-1.5], [0.2])
    assert bare.expected_units(np.array([11.5]))[0] == pytest.approx(bare.units([11.5])[0])
    none = catalog([0.0], [np.inf], np.nan, spread)
    assert none.expected_units(np.array([11.5]))[0] == pytest.approx(none.units([11.5])[0])


def test_near_a_steep_kink_the_units_shown_are_averaged_over_where_the_competitor_really_is():
    """The risk budget averages a move's gain over where the competitor's price really is
    (`_over_the_kink`); the units a recommendation shows read the same (a Monte Carlo draw of
    the competitor's price agrees), never more than at the price as read: a raise to just
    below a steep kink showed up to a fifth more gain than the budget weighed. Today's units
    do not move; far from the kink, without a doubt of the competitor's price or without a
    hinge the curve uses, the units are the curve's own."""
    from ml.science.curve import DemandCurve

    def curve(hinge, sd, competitor=10.5):
        return DemandCurve.build(
            [10.0] * 3, [5.0] * 3, [-1.5] * 3, [0.2] * 3, competitor_price=[competitor] * 3,
            competitor_slope=[hinge] * 3, competitor_slope_se=[0.5] * 3, competitor_sd=[sd] * 3,
            hinge_spread=False,
        )  # fmt: skip

    steep = curve(-10.0, 0.03)
    price = np.array([10.4, 10.0, 8.0])  # just below the kink, today's, far below it
    own, shown = steep.units(price), steep.expected_units(price)
    rng = np.random.default_rng(3)
    k = 200_000
    drawn = DemandCurve.build(
        np.full(k, 10.0), np.full(k, 5.0), np.full(k, -1.5), np.full(k, 0.2),
        competitor_price=10.5 * np.exp(rng.normal(0, 0.03, k)), competitor_slope=np.full(k, -10.0),
        competitor_slope_se=np.full(k, 0.5), hinge_spread=False,
    )  # fmt: skip
    mean = drawn.units(np.full(k, 10.4)).mean()
    assert shown[0] == pytest.approx(mean, rel=0.01) and shown[0] < own[0] * 0.97
    assert shown[1] == pytest.approx(5.0) and shown[2] == pytest.approx(own[2])
    # the grid of candidates reads the same; the profit and the forecast's point follow
    grid = np.array([[10.0, 10.4]] * 3)
    assert steep.expected_units(grid)[0].tolist() == pytest.approx([5.0, shown[0]])
    assert steep.expected_profit(price, [6.0] * 3)[0] == pytest.approx(4.4 * shown[0])
    assert steep.units_interval(price, 1.96)[0][0] == pytest.approx(shown[0])
    # below cost the smaller gain is the more units (review: the averaged units showed a
    # loss smaller than at the price as read, more gain than the budget weighed)
    value = steep.expected_value(price, [12.0] * 3, np.zeros(3, bool))
    assert value[0] == pytest.approx(steep.value(price, [12.0] * 3, np.zeros(3, bool))[0])
    assert steep.expected_value(price, [6.0] * 3, np.zeros(3, bool))[0] == pytest.approx(
        4.4 * shown[0]
    )
    # no doubt of the competitor's price, or no hinge the curve uses: the curve's own
    for other in (curve(-10.0, 0.0), curve(0.0, 0.03)):
        assert other.expected_units(price).tolist() == pytest.approx(other.units(price).tolist())


def test_more_evidence_of_a_hinge_never_makes_a_raise_past_the_competitor_look_safer():
    """Found in review: judging a leaning hinge on its own end only where that end is steeper
    than the catalog's, and deciding what leans at a fixed 1 s.e., keeps the pessimistic hinge
    monotone in the estimate (a -0.55 read no flatter than a -0.45), at the search's z = 0 too;
    the exported interval of a leaning hinge left out of the slope holds its own size."""
    from ml.science.curve import DemandCurve

    def one(raw, spread=(-1.5, 0.01)):
        return DemandCurve.build(
            [10.0], [5.0], [-1.5], [0.2], competitor_price=[9.5],
            competitor_slope=[raw], competitor_slope_se=[0.5], hinge_spread=spread,
        )  # fmt: skip

    for z in (0.0, 1.0):
        ends = [one(raw).pessimistic_hinge(z, True)[0] for raw in np.linspace(-1.2, 0.4, 33)]
        assert np.all(np.diff(ends) >= -1e-12), (z, ends)
        # with a share of SKUs without a hinge too (review: the mixture's mean less its s.d.
        # overshot past the collapsing SKUs' own end), over the whole range of readings
        for spread, se in (((-4.5, 0.5, 0.6), 0.5), ((-4.5, 0.0, 0.6), 0.5), ((-5, 0, 0.9), 2.0)):
            ends = [
                DemandCurve.build(
                    [10.0], [5.0], [-1.5], [0.2], competitor_price=[9.5],
                    competitor_slope=[raw], competitor_slope_se=[se], hinge_spread=spread,
                ).pessimistic_hinge(z, True)[0]
                for raw in np.linspace(-8.0, 3.0, 221)
            ]  # fmt: skip
            assert np.all(np.diff(ends) >= -1e-12), (z, spread, ends)
    # a flat catalog, a SKU whose data lean toward a collapse (-1.6 +- 1.5 would not be clear)
    lean = DemandCurve.build(
        [10.0], [5.0], [-1.5], [0.2], competitor_price=[9.5], competitor_slope=[-1.6],
        competitor_slope_se=[1.5], hinge_spread=(0.0, 0.0),
    )  # fmt: skip
    assert lean.pessimistic_hinge(1.0, True)[0] == pytest.approx(-3.1)
    assert lean.local_elasticity()[1][0] > 1.0  # not the elasticity's 0.2 alone


@pytest.mark.parametrize("share", [0.0, 0.02, 0.1, 0.4, 1.0])
def test_the_spread_of_hinges_finds_the_share_without_one_and_the_others_mean(share):
    """A catalog where a share of SKUs collapses above the competitor (hinges -3 to -6) and the
    rest have none, each hinge read with an s.e. of 0.5 to 2.5: the fit finds the share without
    a hinge and the collapsing SKUs' mean, and never reads the hinges worse than one normal
    spread does (its likelihood)."""
    from scipy.stats import norm

    from ml.science.curve import hinge_prior

    rng = np.random.default_rng(int(share * 100))
    n = 400
    collapse = rng.random(n) < share
    true = np.where(collapse, -rng.uniform(3, 6, n), 0.0)
    se = rng.uniform(0.5, 2.5, n)
    raw = true + rng.normal(0, se)
    centre, tau2, spike, _ = hinge_prior(raw, se)
    if collapse.any():
        assert spike == pytest.approx(1 - collapse.mean(), abs=0.05)
        # within 3 s.e. of their mean (their spread, 0.75, and their readings' noise)
        tol = 3 * np.sqrt((0.75 + np.mean(se[collapse] ** 2)) / collapse.sum())
        assert centre == pytest.approx(true[collapse].mean(), abs=tol)
    else:
        assert abs(centre) < 0.3 or spike > 0.9  # none, or all but a sliver without one

    def loglik(centre, tau2, spike):
        slab = norm.pdf(raw, centre, np.sqrt(tau2 + se**2))
        return np.log(spike * norm.pdf(raw, 0, se) + (1 - spike) * slab).sum()

    normal = hinge_prior(raw, se, mixture=False)
    assert normal[2] == 0.0 and loglik(centre, tau2, spike) >= loglik(*normal[:3]) - 1e-6


@pytest.mark.parametrize(
    "share, extreme, count",
    [(0.05, -40.0, 1), (0.1, -15.0, 1), (0.1, -40.0, 1), (0.4, -40.0, 1), (0.1, -40.0, 5),
     (0.1, -40.0, 20)],
)  # fmt: skip
def test_extreme_hinges_do_not_widen_the_spread_until_no_collapse_is_seen(share, extreme, count):
    """Found in review: one extreme hinge (read -40 +- 1), then five or twenty, widened the
    collapsing SKUs' spread (or became it) until every moderate reading looked like none. The
    spread's fit reads a hinge past -10 at -10 and gives each reading a bounded weight: it is
    one normal spread (as before the mixture: an extreme hinge widens it and each unclear hinge
    falls back toward its own end) or a mixture whose collapsing SKUs' mean is near theirs, and
    a moderate reading of a collapse (-2.4 +- 2.5) keeps its chance of being one. Readings that
    say nothing or everything (s.e. 1e200, 1e-200) leave it finite."""
    from ml.science.curve import DemandCurve, hinge_prior

    rng = np.random.default_rng(1)
    n = 400
    collapse = rng.random(n) < share
    true = np.where(collapse, -rng.uniform(3, 6, n), 0.0)
    se = rng.uniform(0.5, 2.5, n)
    clean = true + rng.normal(0, se)
    raw = np.r_[clean, np.full(count, extreme)]
    se_all = np.r_[se, np.ones(count)]
    centre, tau2, spike, _ = hinge_prior(raw, se_all)
    if spike > 0:
        assert centre == pytest.approx(true[collapse].mean(), abs=2.5) and tau2 < 16
    else:
        assert (centre, tau2) == pytest.approx(hinge_prior(raw, se_all, mixture=False)[:2])

    def chance(spread):
        return DemandCurve.build(
            [10.0], [5.0], [-1.5], [0.2], competitor_price=[9.5], competitor_slope=[-2.4],
            competitor_slope_se=[2.5], hinge_spread=spread,
        ).hinge_parts()[0][0]  # fmt: skip

    if spike > 0:
        assert chance((centre, tau2, spike)) > 0.5 * chance(hinge_prior(clean, se))
    se = se_all
    odd = hinge_prior(np.r_[raw, -3.0, 1.0], np.r_[se, 1e200, 1e-200])
    assert odd is not None and np.isfinite(odd).all()


def test_a_slab_without_spread_still_carries_the_doubt_of_its_mean():
    """Found in review: where the catalog's collapsing SKUs' hinges agree within their noise
    (tau^2 0), an unclear hinge's posterior on them was their mean with variance 0: as sure of
    the collapse's size as of a fact, however few SKUs it was read off. Its variance is the
    mean's own now, and a plain normal spread stored before (two numbers) reads as before."""
    rng = np.random.default_rng(4)
    n = 60
    collapse = np.arange(n) < 12  # 12 SKUs collapse at -4, read with s.e. 1
    raw = np.where(collapse, -4.0, 0.0) + rng.normal(0, 1.0, n)
    from ml.science.curve import hinge_prior

    centre, _tau2, spike, centre_var = hinge_prior(raw, np.ones(n))
    assert spike > 0 and centre < -3.0
    curve = catalog(np.r_[-1.0, raw[1:]], np.r_[3.0, np.ones(n - 1)], 10.5,
                    spread=(centre, 0.0, spike, centre_var))  # fmt: skip
    _r, m, v, mixed = curve.hinge_parts()
    assert mixed[0] and m[0] == pytest.approx(centre)  # tau^2 0: all weight on the mean
    assert v[0] == pytest.approx(centre_var) and v[0] > 0.05
    old = catalog(np.r_[-1.0, raw[1:]], np.r_[3.0, np.ones(n - 1)], 10.5,
                  spread=(centre, 0.0))  # fmt: skip
    assert old.hinge_parts()[2][0] == 0.0 and old.hinge_spread[3] == 0.0
    # one reading whose s.e. overflows, or is huge, says nothing of the mean (review: the
    # plain mean's variance read inf, which no model version can store, or 40x too wide)
    flat = rng.normal(0, np.sqrt(1.5), 60)  # a spread of 0.5 beyond each reading's noise
    alone = hinge_prior(flat, np.ones(60), mixture=False)
    assert alone[1] > 0.1
    for huge in (1e200, 1e6, 50.0):
        spread = hinge_prior(np.r_[flat, 0.3], np.r_[np.ones(60), huge], mixture=False)
        # the centre and its doubt as without it; tau^2 within what one more degree of
        # freedom moves it (a reading at the s.e.'s bound, 1e6, not even that)
        assert spread[0] == pytest.approx(alone[0], abs=0.01) and spread[2] == 0.0, huge
        assert spread[3] == pytest.approx(alone[3], rel=0.02), huge
        assert spread[1] == pytest.approx(alone[1], abs=0.05 if huge < 1e6 else 1e-9), huge
    assert alone[3] == pytest.approx(1 / np.sum(1 / (alone[1] + np.ones(60))))


@pytest.mark.parametrize("shape", ["candidates", "one"])
def test_the_values_as_the_competitor_moves_are_the_curves_at_each_position(shape):
    # The chance of a loss near a kink reads the curve at 40 positions of the competitor's
    # price; the method that computes the shared parts once gives what `value` gives at each,
    # with and without the ramp's smoothing, with a bend, a cost or the revenue, a SKU without
    # a hinge and one without a competitor.
    from ml.science.curve import DemandCurve

    rng = np.random.default_rng(3)
    n = 50
    price_ref = rng.uniform(2, 40, n)
    curve = DemandCurve.build(
        price_ref,
        rng.uniform(0.1, 20, n),
        -rng.uniform(0.3, 3, n),
        curvature=-rng.uniform(0, 2, n),
        competitor_price=np.where(np.arange(n) == 7, np.nan, price_ref * rng.uniform(0.9, 1.1, n)),
        competitor_slope=np.where(np.arange(n) % 5 == 0, 0.0, -rng.uniform(1, 12, n)),
        ramp_sd=np.where(np.arange(n) % 2 == 0, 0.0, 0.04),
    )
    cost = np.where(np.arange(n) % 3 == 0, np.nan, price_ref * 0.6)
    revenue = np.arange(n) % 4 == 0
    k = 21 if shape == "candidates" else 1
    price = price_ref[:, None] * np.linspace(0.8, 1.2, k)[None, :]
    shifts = [rng.normal(0, 0.05, n) for _ in range(6)]
    got = list(curve.values_as_competitor_moves(price, cost, revenue, shifts))
    assert len(got) == len(shifts)
    for s, value in zip(shifts, got, strict=True):
        at = (curve.competitor_price * np.exp(s))[:, None]
        want = curve.value(price, cost, revenue, competitor=at)
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-12)
        assert value.shape == price.shape


def test_hinges_read_with_a_wide_error_move_the_catalogs_spread_as_little_as_they_say():
    # One normal spread of the catalog's hinges: its centre was their plain mean, while its
    # variance weighed each by its precision. Ten hinges read at -40 give or take 30 (a few
    # days above the competitor) dragged the centre of forty read at -2 give or take 0.5 to
    # about -10. Weighted by 1 / (tau^2 + s.e.^2) (DerSimonian and Laird), they weigh what they say.
    from ml.science.curve import hinge_prior

    rng = np.random.default_rng(11)
    sure = -2.0 + rng.normal(0, 0.3, 40) + rng.normal(0, 0.5, 40)
    loose = -40.0 + rng.normal(0, 30.0, 10)
    raw, se = np.r_[sure, loose], np.r_[np.full(40, 0.5), np.full(10, 30.0)]
    centre, tau2, spike, centre_var = hinge_prior(raw, se, mixture=False)
    assert spike == 0.0
    assert abs(centre - np.mean(sure)) < 0.1, centre
    assert 0.0 <= tau2 < 0.5
    assert centre_var == pytest.approx(1 / np.sum(1 / (tau2 + se**2)))
    # readings alike in their s.e.: the plain mean, and tau^2 their spread beyond that s.e.
    same = hinge_prior(sure, np.full(40, 0.5), mixture=False)
    assert same[0] == pytest.approx(np.mean(sure))
    assert same[1] == pytest.approx(max(np.var(sure, ddof=1) - 0.25, 0.0))


def test_a_collapse_read_less_surely_than_the_skus_without_one_is_still_found():
    # Found in review: with the mixture's EM started from the weighted centre, a catalog whose
    # SKUs without a hinge are read far more surely (s.e. 0.3) than its collapsing ones (s.e.
    # 2) started the slab on the spike, and the fit read no collapse (centre 0, spike 0.5):
    # every raise past the competitor looked safe where a fifth of the SKUs collapse.
    from ml.science.curve import hinge_prior

    found = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        collapse = rng.random(100) < 0.3
        se = np.where(collapse, 2.0, 0.3)
        raw = np.where(collapse, -4.0, 0.0) + rng.normal(0, se)
        centre, _tau2, spike, _var = hinge_prior(raw, se)
        found += bool(centre < -2.0 and 0.4 < spike < 0.99)
    assert found >= 18  # the weighted start: 0 or 1 of 20


def test_readings_past_any_real_size_give_a_finite_spread():
    # Found in review: a reading of -1e40 among a catalog where a quarter of the SKUs collapse
    # at -4 made the mixture's start absurd and the fit kept a "mixture" centred at -1e38.
    # Every part of the fit now reads a hinge steeper than -10 at -10.
    from ml.science.curve import hinge_prior

    raw = np.r_[np.zeros(30), np.full(5, -1e160)]
    spread = hinge_prior(raw, np.ones(35), mixture=False)
    assert np.isfinite(spread).all() and -10.0 <= spread[0] <= 0.0
    rng = np.random.default_rng(7)
    collapse = rng.random(100) < 0.25
    base = np.where(collapse, -4.0, 0.0) + rng.normal(0, 1.0, 100)
    at_the_end = hinge_prior(np.r_[base, -10.0], np.ones(101))
    for absurd in (-30.0, -1e40, -1e160):
        with np.errstate(all="raise", under="ignore"):
            spread = hinge_prior(np.r_[base, absurd], np.ones(101))
        assert spread == pytest.approx(at_the_end), absurd
    centre, tau2, spike, centre_var = at_the_end
    assert -6.0 < centre < -3.0 and 0.6 < spike < 0.9, (centre, spike)
    assert np.isfinite([tau2, centre_var]).all() and tau2 <= 6.25
    # a rise past +10 the same way (a hinge is a fall: the spread's centre is at most 0)
    rise = hinge_prior(np.r_[base, 1e40], np.ones(101))
    assert rise == pytest.approx(hinge_prior(np.r_[base, 10.0], np.ones(101)))


def test_the_slope_at_todays_price_above_a_clear_hinge_holds_its_correlation_with_it():
    # above a sharp kink the slope is the elasticity plus the hinge: its variance holds their
    # covariance too (2 rho s.e. s.e.), and an unknown slope stays unknown (inf, never NaN)
    from ml.science.curve import DemandCurve

    def curve(rho, slope_se=0.4):
        return DemandCurve.build(
            [11.0], [100.0], [-1.8], [slope_se], competitor_price=[10.0],
            competitor_slope=[-3.0], competitor_slope_se=[0.8], slope_hinge_corr=rho,
        )  # fmt: skip

    for rho in (None, 0.0, -0.5, 0.5):
        slope, se = curve(rho).local_elasticity()
        r = 0.0 if rho is None else rho
        assert slope[0] == pytest.approx(-4.8)
        assert se[0] == pytest.approx(np.sqrt(0.4**2 + 0.8**2 + 2 * r * 0.4 * 0.8), rel=1e-12)
    _slope, unknown = curve(-0.5, slope_se=np.inf).local_elasticity()
    assert unknown[0] == np.inf


def test_the_units_interval_of_a_move_holds_every_uncertain_part_of_the_curve():
    # the forecast's interval at a new price: the slope alone gives its own two ends; a raise
    # past a clear hinge adds the hinge's doubt as an independent error, or with the
    # correlation the fit states (their errors move log units the same way)
    from ml.science.curve import DemandCurve

    z = 1.96

    def curve(rho=None, competitor=None, hinge_se=0.5):
        return DemandCurve.build(
            [9.5, 9.5], [20.0, 20.0], [-1.5, -1.5], [0.3, 0.3],
            competitor_price=competitor, competitor_slope=None if competitor is None else
            [-4.0, -4.0], competitor_slope_se=None if competitor is None else [hinge_se] * 2,
            slope_hinge_corr=rho,
        )  # fmt: skip

    new = np.array([11.0, 8.5])  # a raise and a cut
    d = np.log(new / 9.5)
    plain = curve()
    units, low, high = plain.units_interval(new, z)
    assert units == pytest.approx(plain.units(new))
    ends = [plain.units(new, elasticity=np.full(2, -1.5 + s * z * 0.3)) for s in (-1, 1)]
    assert low == pytest.approx(np.fmin(*ends)) and high == pytest.approx(np.fmax(*ends))
    # past the competitor (10.0; a sharp kink: no jitter), the raise's band holds the hinge's
    slope_dev, hinge_dev = z * 0.3 * d[0], z * 0.5 * np.log(11.0 / 10.0)
    for rho in (None, 0.0, 0.5, -0.5):
        kinked = curve(rho, competitor=[10.0, 10.0])
        units, low, high = kinked.units_interval(new, z)
        r = rho or 0.0
        width = np.sqrt(slope_dev**2 + hinge_dev**2 + 2 * r * slope_dev * hinge_dev)
        assert np.log(units[0] / low[0]) == pytest.approx(width, rel=1e-9)
        assert np.log(high[0] / units[0]) == pytest.approx(width, rel=1e-9)
        # the cut stays below the competitor: no hinge, the slope's band as before
        assert low[1] == pytest.approx(min(ends[0][1], ends[1][1]))
        assert high[1] == pytest.approx(max(ends[0][1], ends[1][1]))
    # where the competitor's price really is (a curve that holds its doubt): a raise past it
    # is less sure of its units
    jittered = DemandCurve.build(
        [9.5, 9.5], [20.0, 20.0], [-1.5, -1.5], [0.3, 0.3], competitor_price=[10.0, 10.0],
        competitor_slope=[-4.0, -4.0], competitor_slope_se=[0.5, 0.5], competitor_sd=[0.05, 0.05],
    )  # fmt: skip
    _u, low_j, high_j = jittered.units_interval(new, z)
    _u, low_k, high_k = curve(None, competitor=[10.0, 10.0]).units_interval(new, z)
    assert low_j[0] < low_k[0] and high_j[0] > high_k[0]
    # at today's price there is no change to doubt, even with an unknown slope
    today = DemandCurve.build([9.5], [20.0], [-1.5], [np.nan]).units_interval(np.array([9.5]), z)
    assert today[1][0] == pytest.approx(20.0) and today[2][0] == pytest.approx(20.0)
    # a fact (no doubt anywhere) is its own interval
    sure = DemandCurve.build([9.5], [20.0], [-1.5], [0.0])
    units, low, high = sure.units_interval(np.array([11.0]), z)
    assert low == pytest.approx(units) and high == pytest.approx(units)
    # a slope of unknown doubt: any number of units, never a NaN interval nor a narrow one
    units, low, high = DemandCurve.build([9.5], [20.0], [-1.5], [np.inf]).units_interval(
        np.array([11.0]), z
    )
    assert np.isfinite(units).all() and low[0] == 0.0 and high[0] == np.inf


def test_the_units_interval_covers_the_units_as_often_as_it_says():
    # Monte Carlo: a slope and a clear hinge whose errors correlate, a bend and a jittered
    # competitor; the curve's truth drawn around the estimate as their errors say, the 95 %
    # interval of units at a raise past the competitor holds the true units about 95 % of draws
    from ml.science.curve import DemandCurve

    rng = np.random.default_rng(3)
    n, rho = 4000, -0.4
    est = DemandCurve.build(
        np.full(n, 9.8), np.full(n, 20.0), np.full(n, -1.6), np.full(n, 0.3),
        curvature=np.full(n, -1.0), curvature_se=np.full(n, 0.8),
        competitor_price=np.full(n, 10.0), competitor_slope=np.full(n, -3.0),
        competitor_slope_se=np.full(n, 0.7), slope_hinge_corr=np.full(n, rho),
    )  # fmt: skip
    new = np.full(n, 10.8)
    _units, low, high = est.units_interval(new, 1.96)
    a, b = rng.normal(size=(2, n))
    slope = -1.6 + 0.3 * a
    hinge = -3.0 + 0.7 * (rho * a + np.sqrt(1 - rho**2) * b)
    bend = np.minimum(-1.0 + 0.8 * rng.normal(size=n), 0.0)
    truth = est.units(new, elasticity=slope, hinge=hinge, curvature=bend)
    inside = np.mean((truth >= low) & (truth <= high))
    assert 0.93 <= inside <= 0.975
    # without the hinge's and the bend's doubt (the slope's alone) it covers far less
    ends = [est.units(new, elasticity=-1.6 + s * 1.96 * 0.3) for s in (-1, 1)]
    assert np.mean((truth >= np.fmin(*ends)) & (truth <= np.fmax(*ends))) < 0.85


def test_a_level_read_at_another_position_is_carried_through_the_hinge_to_todays():
    """The fit read each SKU's level at its position then; today's price or the competitor's
    has moved since: the level moves by the hinge used times the ramp's change, only where a
    clear hinge is used and both positions are known, and no further than the positions the
    SKU was seen at (gap_low to gap_high)."""
    from ml.science.curve import DemandCurve, ramp

    then = np.log([1.1, 1.1, 1.1, 1.1, np.nan, 0.9, 1.1, 1.1, 1.1])
    curve = DemandCurve.from_estimates(
        np.full(9, 11.0), np.full(9, 2.0), np.full(9, -1.5), np.full(9, 11.0),
        competitor_price=[12.0, 10.0, 12.0, np.nan, 12.0, 10.0, 12.0, 12.0, 4.0],
        competitor_slope=[-8.0, -8.0, 0.0, -8.0, -8.0, -8.0, -8.0, -8.0, -8.0],
        competitor_slope_se=[0, 0, 0, 0, 0, 0, 0, 8.0, 0], ramp_sd=0.02,
        gap_low=[-0.2] * 6 + [0.0, -0.2, -0.2], gap_high=[0.3] * 6 + [0.3, 0.3, np.nan],
    )  # fmt: skip
    step = curve.from_position(then)
    moved = -8.0 * (ramp(np.log(11 / 12), 0.02) - ramp(np.log(1.1), 0.02))
    moved_up = -8.0 * (ramp(np.log(1.1), 0.02) - ramp(np.log(0.9), 0.02))
    to_edge = -8.0 * (ramp(0.0, 0.02) - ramp(np.log(1.1), 0.02))
    assert moved > np.log(2.0) and moved_up < np.log(0.5)
    # the competitor raised to 12 (now 8 % below it); at the same position; no hinge; no
    # competitor today; no position then; a published raise past the competitor; below the
    # lowest position seen (taken there); an unclear hinge (not used); no positions known
    assert step == pytest.approx([moved, 0, 0, 0, 0, moved_up, to_edge, 0, 0])
    # another reading of today's competitor price (as the fit read it then) than the curve's
    assert curve.from_position(then, np.full(9, 10.0))[0] == pytest.approx(0.0)


def test_a_carry_counts_the_own_price_move_whole_and_the_competitors_beyond_its_jitter():
    """ml.selectors._counted: a position's move since the fit (log(price / competitor's week))
    is the product's own price's move, exact, less the competitor's, which is a week's median of
    jittered readings then and now: counted only beyond that noise (times 1 - its variance over
    its square, never below 0). Readings 3 % apart on the ramp's s.d. (x RAMP_SCALE), a week of
    7 readings then and one now."""
    from ml.science.demand import RAMP_SCALE
    from ml.selectors import _counted

    sd = 0.03 * RAMP_SCALE
    k_now, k_then = np.array([1]), np.array([7])

    def counted(own, competitor, then_read=True, ramp_sd=sd):
        move = np.array([own - competitor])
        read = np.array([10 * np.exp(competitor)])
        read_then = np.array([10.0 if then_read else np.nan])
        return float(_counted(move, read, read_then, k_now, k_then, ramp_sd)[0])

    # a published 3 % raise, the competitor where it was: counted whole
    assert counted(0.03, 0.0) == pytest.approx(0.03)
    # the competitor's week moved within its jitter (about 1 s.d. of the two weeks' noise)
    noise = 0.03**2 * (1 + np.pi / 2 / 7)
    assert counted(0.0, 0.03) == pytest.approx(0.0, abs=1e-12)
    assert counted(0.0, np.sqrt(noise)) == pytest.approx(0.0, abs=1e-12)
    # a real raise of the competitor (10 to 12) is counted nearly whole, the own move with it
    big = np.log(1.2)
    assert counted(0.0, big) == pytest.approx(-big * (1 - noise / big**2))
    assert counted(0.03, big) == pytest.approx(0.03 - big * (1 - noise / big**2))
    # the fit's week not read again: nothing tells the two apart, and every move counts
    assert counted(0.03, 0.0, then_read=False) == pytest.approx(0.03)
    assert counted(0.0, 0.01, then_read=False) == pytest.approx(-0.01)
    # readings without jitter (an exact feed): every move counts
    assert counted(0.0, 0.03, ramp_sd=0.0) == pytest.approx(-0.03)
    assert (
        _counted(np.array([np.nan]), *(np.array([v]) for v in (10.0, 10.0)), k_now, k_then, sd)[0]
        == 0.0
    )
