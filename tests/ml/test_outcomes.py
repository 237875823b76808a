"""The realised lift of published changes (`ml/science/outcomes.py`): a difference-in-
differences against unchanged SKUs, whose intervals cover the truth on overdispersed sales."""

from __future__ import annotations

import numpy as np
import pytest

from ml.science.outcomes import Part, category_drifts, combined_se, drift, realised_lift


def _week_var(daily: np.ndarray) -> np.ndarray:
    """The long-run variance per day from weekly means (autocorrelation included)."""
    weeks = daily[:, : daily.shape[1] // 7 * 7].reshape(len(daily), -1, 7).mean(axis=2)
    return weeks.var(axis=1, ddof=1) * 7


def _market(rng, n, days, level, factor, k=0.5):
    """Negative-binomial daily units (Var = mu + k mu^2) at `level` * `factor` per day."""
    mu = np.repeat((level * factor)[:, None], days, axis=1)
    return rng.poisson(mu * rng.gamma(1 / k, k, mu.shape))


def _experiment(rng, changed=30, controls=150, pre_days=28, post_days=28):
    level = rng.gamma(2.0, 3.0, changed + controls)
    market = rng.uniform(0.8, 1.2)  # season, demand shift: the same for every SKU
    old = rng.uniform(5, 50, changed)
    new = old * rng.uniform(0.9, 1.1, changed)
    cost = old * 0.6
    effect = (new / old) ** -2.0  # the true price response of the changed SKUs
    pre = _market(rng, changed + controls, pre_days, level, np.ones(changed + controls))
    post_factor = np.r_[effect, np.ones(controls)] * market
    post = _market(rng, changed + controls, post_days, level, post_factor)
    truth_units = level[:changed] * market * effect  # expected units after, at the new price
    truth = (new - cost) * truth_units - (old - cost) * level[:changed] * market
    result = realised_lift(
        pre[:changed].mean(axis=1), _week_var(pre[:changed]), np.full(changed, pre_days),
        post[:changed].mean(axis=1), np.full(changed, post_days), old, new, cost,
        drift(pre[changed:].mean(axis=1), post[changed:].mean(axis=1)),
    )  # fmt: skip
    return result, truth


def test_the_intervals_cover_the_true_lift_of_each_change_and_of_their_sum():
    rng = np.random.default_rng(3)
    inside = inside_total = runs = 0
    errors = []
    for _ in range(200):
        result, truth = _experiment(rng)
        inside += int(np.sum((result.low <= truth) & (truth <= result.high)))
        inside_total += int(result.total_low <= truth.sum() <= result.total_high)
        errors.append(result.total - truth.sum())
        runs += 1
    assert 0.91 <= inside / (runs * 30) <= 0.995
    assert 0.90 <= inside_total / runs <= 1.0
    # unbiased: the mean error is small against the spread of the estimate
    assert abs(np.mean(errors)) < 0.25 * np.std(errors)


def test_a_market_that_moved_is_not_read_as_the_changes_doing():
    rng = np.random.default_rng(5)
    level = np.full(200, 10.0)
    pre = _market(rng, 200, 28, level, np.ones(200), k=0.01)
    post = _market(rng, 200, 28, level, np.full(200, 1.3), k=0.01)  # every SKU +30 %, no change
    market = drift(pre[20:].mean(axis=1), post[20:].mean(axis=1))
    assert market.ratio == pytest.approx(1.3, rel=0.03)
    same = np.full(20, 10.0)
    result = realised_lift(
        pre[:20].mean(axis=1), pre[:20].var(axis=1), np.full(20, 28), post[:20].mean(axis=1),
        np.full(20, 28), same, same, same * 0.5, market,
    )  # fmt: skip
    assert result.total_low <= 0 <= result.total_high  # no price change, no lift
    naive = float(np.sum(5.0 * (post[:20].mean(axis=1) - pre[:20].mean(axis=1))))
    assert naive > result.total_high  # actual minus before would credit the market's 30 %


def test_without_controls_the_drift_is_an_open_assumption_not_a_certainty():
    market = drift(np.array([]), np.array([]))
    assert market.ratio == 1.0 and market.var == pytest.approx(0.01) and market.controls == 0


def test_forecast_accuracy_judges_the_price_effect_not_the_season():
    from ml.science.outcomes import forecast_accuracy

    rng = np.random.default_rng(8)
    n = 400
    counterfactual = rng.gamma(3.0, 2.0, n)
    true_ratio = rng.uniform(0.8, 1.2, n)
    se = np.sqrt(counterfactual / 28)
    actual = counterfactual * true_ratio + rng.normal(0, 1, n) * se
    # a right model (its interval on the ratio +-5 %) covers about 95 %
    right = forecast_accuracy(actual, se, counterfactual, true_ratio * 10, np.full(n, 10.0),
                              true_ratio * 9.5, true_ratio * 10.5)  # fmt: skip
    assert 0.9 <= right.coverage <= 0.995 and abs(right.bias) < 0.02
    # a model that expected twice the effect of each change is caught
    wrong_ratio = 1 + 2 * (true_ratio - 1)
    wrong = forecast_accuracy(actual, se, counterfactual, wrong_ratio * 10, np.full(n, 10.0),
                              wrong_ratio * 9.9, wrong_ratio * 10.1)  # fmt: skip
    assert wrong.coverage < right.coverage - 0.1 and wrong.wape > right.wape


def test_a_forecast_without_an_interval_counts_in_the_error_not_in_the_coverage():
    from ml.science.outcomes import forecast_accuracy

    counterfactual = np.full(4, 10.0)
    actual = np.array([10.0, 10.0, 10.0, 20.0])  # the last change doubled its units
    se = np.full(4, 0.1)
    low = np.array([9.9, 9.9, 9.9, 0.0])
    high = np.array([10.1, 10.1, 10.1, np.inf])  # a slope of unknown s.e.: 0 to infinity
    got = forecast_accuracy(actual, se, counterfactual, np.full(4, 10.0), np.full(4, 10.0),
                            low, high)  # fmt: skip
    assert got.changes == 4 and got.intervals == 3
    assert got.coverage == 1.0  # the three stated intervals held; the unknown one is no claim
    assert got.wape == pytest.approx(10 / 50)  # its error counts
    none = forecast_accuracy(actual[3:], se[3:], counterfactual[3:], np.full(1, 10.0),
                             np.full(1, 10.0), low[3:], high[3:])  # fmt: skip
    assert none.changes == 1 and none.intervals == 0 and np.isnan(none.coverage)


def test_category_drifts_follow_the_categories_only_as_far_as_they_move_apart():
    from ml.science.outcomes import Drift, category_drifts

    tenant = Drift(1.10, 0.0004, 100)
    alike = category_drifts({"a": Drift(1.12, 0.002, 50), "b": Drift(1.08, 0.002, 50)}, tenant)
    assert all(w == 0 for _d, w in alike.values())  # within their noise: the tenant's drift
    assert alike["a"][0].ratio == pytest.approx(1.10) and alike["a"][0].var == pytest.approx(0.0004)
    apart = category_drifts({"a": Drift(1.40, 0.002, 50), "b": Drift(0.75, 0.002, 50)}, tenant)
    assert all(w > 0.95 for _d, w in apart.values())
    assert apart["a"][0].ratio == pytest.approx(1.40, abs=0.02)
    assert apart["b"][0].ratio == pytest.approx(0.75, abs=0.02)
    # the variance is at least the category's own share of it
    assert apart["a"][0].var >= 0.95**2 * 0.002


def _categories_apart(rng, categories=3, changed=20, controls=40, spread=0.06):
    """One publication day over `categories` categories whose markets move around the tenant's
    (log-normal spread): each measured against its drawn drift (category_drifts)."""
    tenant_move = rng.uniform(0.8, 1.2)
    moves = tenant_move * np.exp(rng.normal(0, spread, categories))
    own, data = {}, {}
    all_pre, all_post = [], []
    for c in range(categories):
        n = changed + controls
        level = rng.gamma(2.0, 3.0, n)
        old = rng.uniform(5, 50, changed)
        new = old * rng.uniform(0.9, 1.1, changed)
        effect = (new / old) ** -2.0
        pre = _market(rng, n, 28, level, np.ones(n))
        post = _market(rng, n, 28, level, np.r_[effect, np.ones(controls)] * moves[c])
        own[c] = drift(pre[changed:].mean(axis=1), post[changed:].mean(axis=1))
        all_pre.append(pre[changed:].mean(axis=1))
        all_post.append(post[changed:].mean(axis=1))
        truth = (new - old * 0.6) * level[:changed] * moves[c] * effect - (old - old * 0.6) * level[
            :changed
        ] * moves[c]
        data[c] = (pre[:changed], post[:changed], old, new, truth)
    tenant = drift(np.concatenate(all_pre), np.concatenate(all_post))
    parts, truth = [], 0.0
    for c, (market, weight) in category_drifts(own, tenant).items():
        pre, post, old, new, true = data[c]
        lift = realised_lift(
            pre.mean(axis=1), _week_var(pre), np.full(changed, 28), post.mean(axis=1),
            np.full(changed, 28), old, new, old * 0.6, market,
        )  # fmt: skip
        parts.append(Part(lift, weight, own[c].var))
        truth += true.sum()
    return parts, tenant, truth


def test_a_sum_over_categories_counts_the_tenant_drift_they_share_once():
    """Three categories measured against drifts drawn toward the tenant's: the sum's interval
    covers the true total lift; adding the parts' errors as independent (each part carrying
    the tenant's drift error on its own) would make it narrower than that."""
    rng = np.random.default_rng(11)
    inside = inside_quadrature = runs = 0
    for _ in range(300):
        parts, tenant, truth = _categories_apart(rng)
        total = sum(p.lift.total for p in parts)
        se = combined_se(parts, tenant)
        quadrature = float(np.sqrt(sum(p.lift.total_se**2 for p in parts)))
        assert se >= quadrature - 1e-9
        inside += int(abs(total - truth) <= 1.959964 * se)
        inside_quadrature += int(abs(total - truth) <= 1.959964 * quadrature)
        runs += 1
    assert 0.93 <= inside / runs <= 0.995, inside / runs
    assert inside_quadrature < inside
    # one part alone: its own interval
    one = parts[:1]
    assert combined_se(one, tenant) == pytest.approx(one[0].lift.total_se, rel=1e-9)
