"""A/B price tests: balanced assignment, an honest interval, and a stopping rule that keeps its
error rate when someone looks before the end. Pure numpy: no database."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtri

from ml.science.experiments import (
    VERDICTS,
    analyse,
    assign,
    boundaries,
    simulate_experiment,
    spent,
)

LOOK_DAYS = (7, 14, 21, 28, 35)  # five looks, the last at the planned end


def _strata_and_pre(n=203, seed=0):
    rng = np.random.default_rng(seed)
    strata = rng.choice(np.array(["bakery", "dairy", "drinks", "frozen"]), n)
    pre = rng.lognormal(3, 1.2, n)  # heavy-tailed, as sales are
    return strata, pre


# --- assignment ---------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.5, 0.3, 1 / 3, 0.37])
def test_every_stratum_treats_its_share_up_to_rounding(share):
    strata, pre = _strata_and_pre()
    treated = assign(strata, pre, share=share, seed=4)
    assert treated.dtype == bool and treated.shape == pre.shape
    for label in np.unique(strata):
        members = strata == label
        assert np.floor(share * members.sum()) <= treated[members].sum()
        assert treated[members].sum() <= np.ceil(share * members.sum())
    assert np.floor(share * len(pre)) <= treated.sum() <= np.ceil(share * len(pre))


def test_assignment_is_deterministic_per_seed_and_random_across_seeds():
    strata, pre = _strata_and_pre()
    assert np.array_equal(assign(strata, pre, seed=7), assign(strata, pre, seed=7))
    assert not np.array_equal(assign(strata, pre, seed=7), assign(strata, pre, seed=8))
    # Every SKU is treated with probability `share`, whatever its stratum or pre-period sales.
    small_strata, small_pre = _strata_and_pre(n=23, seed=1)
    chance = np.mean([assign(small_strata, small_pre, 0.3, seed=s) for s in range(3000)], axis=0)
    assert np.all(np.abs(chance - 0.3) < 0.04)


def test_arms_are_balanced_on_pre_period_sales_far_better_than_by_luck():
    strata, pre = _strata_and_pre(n=400)
    blocked, luck = [], []
    rng = np.random.default_rng(0)
    for seed in range(200):
        treated = assign(strata, pre, seed=seed)
        blocked.append(pre[treated].mean() - pre[~treated].mean())
        coin = rng.permutation(treated)  # the same arm sizes, completely at random
        luck.append(pre[coin].mean() - pre[~coin].mean())
    # Pairs of neighbours in sorted pre-period sales within a category: the imbalance is a
    # small fraction of what complete randomisation leaves.
    assert np.std(blocked) < 0.25 * np.std(luck)
    # Every stratum gets half its SKUs in each arm, and so about half its pre-period sales.
    treated = assign(strata, pre, seed=3)
    for label in np.unique(strata):
        members = strata == label
        share_of_sales = pre[members & treated].sum() / pre[members].sum()
        assert abs(share_of_sales - 0.5) < 0.12


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"share": 0.0}, "share"),
        ({"share": 1.0}, "share"),
        ({"share": 1.5}, "share"),
        ({"share": 0.001}, "share"),  # 203 SKUs: the treatment arm would be empty
        ({"pre_metric": [1.0, np.nan, 2.0]}, "pre_metric"),
        ({"pre_metric": np.ones((3, 2))}, "pre_metric"),
        ({"strata": ["a", "b"]}, "strata"),
    ],
)
def test_bad_assignment_inputs_name_the_argument(kwargs, name):
    strata, pre = _strata_and_pre()
    args = {"strata": strata, "pre_metric": pre, **kwargs}
    if "pre_metric" in kwargs:
        args["strata"] = None
    with pytest.raises(ValueError, match=name):
        assign(**args)


def test_one_sku_cannot_fill_two_arms():
    with pytest.raises(ValueError, match="share"):
        assign(None, [3.0])


# --- the stopping rule ---------------------------------------------------------------------------


def test_the_boundaries_spend_alpha_as_promised_under_brownian_motion():
    fractions = np.array(LOOK_DAYS) / LOOK_DAYS[-1]
    c = boundaries(fractions)
    # The first look has nothing before it: its boundary spends alpha(t_1) alone.
    assert c[0] == pytest.approx(ndtri(1 - spent(fractions[0]) / 2))
    assert c[0] > 4 and 1.96 < c[-1] < 2.1  # O'Brien-Fleming shape: early looks cost little
    assert boundaries([1.0])[0] == pytest.approx(1.959964, abs=1e-5)  # one look: the usual 1.96
    # The z-statistics of successive looks: a Brownian motion read at the fractions.
    rng = np.random.default_rng(0)
    steps = rng.normal(0, np.sqrt(np.diff(np.r_[0, fractions])), (400_000, len(fractions)))
    z = steps.cumsum(axis=1) / np.sqrt(fractions)
    crossed = np.abs(z) >= c
    assert crossed.any(axis=1).mean() == pytest.approx(0.05, abs=0.0015)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    by_look = np.array([(first == k).mean() for k in range(len(fractions))])
    assert by_look == pytest.approx(np.diff(np.r_[0, spent(fractions)]), abs=0.0015)
    # Peeking at 1.96 every time would have more than doubled the error rate.
    assert (np.abs(z) >= 1.96).any(axis=1).mean() > 0.12


def test_false_positives_stay_at_alpha_with_five_looks_at_no_effect():
    stopped = naive = 0
    runs = 600
    for seed in range(runs):
        test = simulate_experiment(100, 28, LOOK_DAYS[-1], 0.0, 0.7, seed)
        verdicts, peeks = [], []
        for k, days in enumerate(LOOK_DAYS):
            result = analyse(
                test.post(days),
                test.pre,
                test.treatment,
                days,
                LOOK_DAYS[-1],
                strata=test.strata,
                looks=LOOK_DAYS[:k],
            )
            assert (result.p_value < result.nominal_alpha) == (
                result.verdict in ("treatment better", "control better")
            )
            verdicts.append(result.verdict)
            peeks.append(result.p_value < 0.05)
        stopped += any(v in ("treatment better", "control better") for v in verdicts)
        naive += any(peeks)
    assert stopped / runs <= 0.07
    assert naive / runs > 0.08  # the same tests, read at 1.96 each time


# --- the estimate and its interval ---------------------------------------------------------------


def test_ninety_five_percent_intervals_cover_the_true_lift():
    covered, errors, ses, ratios = [], [], [], []
    for seed in range(200):
        test = simulate_experiment(60, 14, 14, 5.0, 0.7, seed)
        result = analyse(test.post(), test.pre, test.treatment, 14, 14, strata=test.strata)
        assert result.boundary == pytest.approx(1.959964, abs=1e-5)  # one look at the end
        covered.append(result.ci_low <= test.true_effect <= result.ci_high)
        errors.append(result.lift_per_sku_day - test.true_effect)
        ses.append(result.se)
        ratios.append(result.variance_ratio)
    assert 0.90 <= np.mean(covered) <= 0.99
    assert abs(np.mean(errors)) < 3 * np.std(errors) / np.sqrt(len(errors))  # unbiased
    assert np.std(errors) == pytest.approx(np.mean(ses), rel=0.15)  # the s.e. is honest
    assert np.mean(ratios) < 0.6  # the pre-period is worth more than the SKUs it costs


@pytest.mark.parametrize("lift", [10.0, -10.0])
def test_a_known_effect_is_recovered(lift):
    test = simulate_experiment(3000, 28, 28, lift, 0.7, seed=5)
    result = analyse(test.post(), test.pre, test.treatment, 28, 28, strata=test.strata)
    assert result.ci_low <= test.true_effect <= result.ci_high
    assert result.lift_per_sku_day == pytest.approx(test.true_effect, abs=3 * result.se)
    pct_se = 100 * result.se / result.control_mean
    assert result.lift_pct == pytest.approx(test.true_lift_pct, abs=3 * pct_se)
    assert result.control_mean == pytest.approx(test.true_control_mean, rel=0.05)
    assert result.verdict == ("treatment better" if lift > 0 else "control better")
    assert result.n_treatment == result.n_control == 1500
    assert result.information_fraction == 1.0 and result.alpha_spent == pytest.approx(0.05)
    assert result.variance_ratio < 0.5


def test_verdicts_follow_the_look():
    test = simulate_experiment(100, 28, 35, 0.0, 0.7, seed=2)
    interim = analyse(test.post(14), test.pre, test.treatment, 14, 35, strata=test.strata)
    assert interim.verdict == "keep running" and interim.information_fraction == pytest.approx(0.4)
    assert interim.ci_high - interim.ci_low > 2 * 1.96 * interim.se  # the repeated interval
    final = analyse(test.post(), test.pre, test.treatment, 35, 35, strata=test.strata, looks=[14])
    assert final.verdict in VERDICTS
    assert final.ci_low <= 0 <= final.ci_high and final.verdict == "no difference"
    assert final.boundary > 1.96  # the look at day 14 spent a little
    alone = analyse(test.post(), test.pre, test.treatment, 35, 35, strata=test.strata)
    assert alone.ci_high - alone.lift_per_sku_day == pytest.approx(1.959964 * alone.se)
    units = simulate_experiment(100, 28, 35, 0.0, 0.7, seed=2, metric="units")
    counted = analyse(units.post(), units.pre, units.treatment, 35, 35, metric="units")
    assert counted.metric == "units" and counted.control_mean > 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"post": [1.0, 2.0]}, "post"),
        ({"pre": np.full(40, np.nan)}, "pre"),
        ({"treatment": np.ones(40)}, "treatment"),  # not a mask
        ({"treatment": np.r_[True, np.zeros(39, bool)]}, "treatment"),  # one SKU treated
        ({"days_observed": 0}, "days_observed"),
        ({"planned_days": 0}, "planned_days"),
        ({"planned_days": 2.5}, "planned_days"),
        ({"strata": ["a"] * 39}, "strata"),
        ({"alpha": 0.7}, "alpha"),
        ({"metric": "margin"}, "metric"),
        ({"looks": [14, 7]}, "looks"),
        ({"looks": [21]}, "looks"),  # not before this look (day 21)
        ({"looks": [28], "days_observed": 30}, "looks"),  # day 28 was already the final look
    ],
)
def test_bad_analysis_inputs_name_the_argument(kwargs, name):
    rng = np.random.default_rng(0)
    args = {
        "post": rng.gamma(2, 10, 40),
        "pre": rng.gamma(2, 10, 40),
        "treatment": np.arange(40) % 2 == 0,
        "days_observed": 21,
        "planned_days": 28,
        **kwargs,
    }
    with pytest.raises(ValueError, match=name):
        analyse(**args)
