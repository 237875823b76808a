"""What a published price change did: its realised lift against the counterfactual, with an
honest interval (pure: numpy only).

How it is computed. The counterfactual of a changed SKU is what it would have sold at its old
price over the same days: its own level before the change (the pre window, at the old price)
moved by what the market did meanwhile, measured on comparable SKUs that did not change price
(the controls: the ratio of their units after to before, pooled; per category where the
category has enough controls, drawn toward the tenant's as far as the categories move alike:
`category_drifts`). That is a
difference-in-differences on units per day:

    counterfactual_i = pre_i * drift,   drift = sum(control post) / sum(control pre)
    unit lift_i      = actual_i - counterfactual_i
    profit lift_i    = (new_i - cost_i) actual_i - (old_i - cost_i) counterfactual_i

(revenue where no cost is known). It needs no demand model, so it can judge the model's own
forecast. Uncertainty: the noise of the SKU's own sales in both windows (the variance of its
weekly means before the change, scaled per day, so overdispersion and correlation over days
count; shrunk toward the negative-binomial curve of all changed SKUs because a few weeks give
a noisy variance; each window's mean has variance var / days) and the drift's sampling error
(the ratio estimator's linearised variance over the controls, clustered by SKU); by the delta
method. A sum over SKUs (a job, a category) adds the SKUs' own variances and counts the shared
drift's once, with the covariance it induces. A sum over parts measured against different
category drifts (`combined_se`) adds the categories' own drift errors as independent (their
controls differ) and the tenant drift's, which every part leans on by its weight, once. The
95 % interval is the estimate +- 1.96 s.e.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
PRIOR_WEEKS = 6.0  # the weight of the tenant's variance curve, in weeks of a SKU's own data


@dataclass
class Drift:
    """The market's movement between the windows, from the control SKUs."""

    ratio: float  # sum of post units per day / sum of pre units per day
    var: float  # the variance of `ratio` (SKU-clustered)
    controls: int


def drift(pre: np.ndarray, post: np.ndarray) -> Drift:
    """`pre` and `post`: the controls' mean units per day before and after. A ratio estimator
    of the pooled post/pre ratio with its linearised (SKU-clustered) variance; controls that
    sold nothing before carry no information and are dropped. No controls: ratio 1, with the
    variance of an unknown drift of +-10 % (a wide, stated assumption rather than a false
    certainty)."""
    pre, post = np.asarray(pre, float), np.asarray(post, float)
    keep = np.isfinite(pre) & np.isfinite(post) & (pre > 0)
    pre, post = pre[keep], post[keep]
    n = len(pre)
    if n < 2 or pre.sum() <= 0:
        return Drift(1.0, 0.1**2, n)
    ratio = float(post.sum() / pre.sum())
    residual = post - ratio * pre  # the ratio estimator's linearisation
    var = float(n / (n - 1) * np.sum(residual**2) / pre.sum() ** 2)
    return Drift(ratio, var, n)


def category_drifts(own: dict[str, Drift], tenant: Drift) -> dict[str, tuple[Drift, float]]:
    """Each category's drift, drawn toward the tenant's by how far the categories really move
    apart (empirical Bayes): the spread of the categories' ratios around the tenant's, less
    their sampling variance, estimates the variance tau^2 of true category drifts; a category
    gets the weight w = tau^2 / (tau^2 + its variance) on its own ratio. Categories that move
    alike keep the tenant's precise drift (w near 0); categories that drift apart (a season of
    one) each get their own (w near 1). The variance is bounded as if both estimates were
    perfectly correlated (a category's controls are part of the tenant's):
    (w sd_c + (1 - w) sd_tenant)^2. Returns {category: (drift, w)}."""
    if not own:
        return {}
    ratios = np.array([d.ratio for d in own.values()])
    variances = np.array([d.var for d in own.values()])
    tau2 = max(float(np.mean((ratios - tenant.ratio) ** 2) - np.mean(variances)), 0.0)
    out = {}
    for name, d in own.items():
        w = tau2 / (tau2 + d.var) if tau2 + d.var > 0 else 1.0
        ratio = w * d.ratio + (1 - w) * tenant.ratio
        sd = w * np.sqrt(d.var) + (1 - w) * np.sqrt(tenant.var)
        out[name] = (Drift(float(ratio), float(sd**2), d.controls), float(w))
    return out


@dataclass
class Lift:
    units_actual: np.ndarray  # per SKU, units per day after the change
    units_counterfactual: np.ndarray
    unit_lift: np.ndarray
    unit_se: np.ndarray  # of unit_lift
    profit_lift: np.ndarray  # per day (revenue where no cost is known)
    profit_se: np.ndarray
    low: np.ndarray  # the 95 % interval of profit_lift
    high: np.ndarray
    total: float  # the sum over the SKUs, per day
    total_se: float
    total_low: float
    total_high: float
    own_var: float = 0.0  # the part of total_se^2 from the SKUs' own sales
    loading: float = 0.0  # how far the total moves per unit of error in the drift


def realised_lift(
    pre_mean: np.ndarray,
    pre_var: np.ndarray,
    pre_days: np.ndarray,
    post_mean: np.ndarray,
    post_days: np.ndarray,
    old_price: np.ndarray,
    new_price: np.ndarray,
    cost: np.ndarray,
    market: Drift,
) -> Lift:
    """Per changed SKU: mean units per day before (`pre_mean` over `pre_days`; `pre_var`, the
    variance of its weekly means times 7, or its daily variance under two weeks of data) and
    after (`post_mean` over `post_days`), the old and new price and the unit cost (NaN:
    unknown, revenue is used). See the module docstring for the method."""
    pre_mean, post_mean = np.asarray(pre_mean, float), np.asarray(post_mean, float)
    pre_var = np.asarray(pre_var, float)
    pre_days = np.maximum(np.asarray(pre_days, float), 1.0)
    post_days = np.maximum(np.asarray(post_days, float), 1.0)
    cost = np.nan_to_num(np.asarray(cost, float), nan=0.0)
    m_new = np.asarray(new_price, float) - cost
    m_old = np.asarray(old_price, float) - cost
    # The day-to-day variance of the SKU's sales per day of a window mean: its own (from few
    # weeks, so noisy) shrunk toward the tenant's negative-binomial curve mu + k mu^2 (k by
    # moments over the changed SKUs), with PRIOR_WEEKS of weight; at least Poisson's.
    own_var = np.nan_to_num(pre_var, nan=0.0)
    mu = np.maximum(pre_mean, post_mean)
    k = max(float(np.sum(own_var - pre_mean) / max(np.sum(pre_mean**2), 1e-12)), 0.0)
    weeks = np.maximum(pre_days / 7 - 1, 0.0)
    daily = (weeks * own_var + PRIOR_WEEKS * (mu + k * mu**2)) / (weeks + PRIOR_WEEKS)
    daily = np.maximum(daily, mu)
    var_post, var_pre = daily / post_days, daily / pre_days
    counterfactual = pre_mean * market.ratio
    unit_lift = post_mean - counterfactual
    profit_lift = m_new * post_mean - m_old * counterfactual
    own = m_new**2 * var_post + (m_old * market.ratio) ** 2 * var_pre
    shared = (m_old * pre_mean) ** 2 * market.var
    se = np.sqrt(own + shared)
    unit_se = np.sqrt(var_post + market.ratio**2 * var_pre + pre_mean**2 * market.var)
    total = float(np.sum(profit_lift))
    # the drift is common to every SKU: its part of the sum's variance is (sum of weights)^2
    loading = float(np.sum(m_old * pre_mean))
    total_se = float(np.sqrt(np.sum(own) + loading**2 * market.var))
    return Lift(
        units_actual=post_mean,
        units_counterfactual=counterfactual,
        unit_lift=unit_lift,
        unit_se=unit_se,
        profit_lift=profit_lift,
        profit_se=se,
        low=profit_lift - Z95 * se,
        high=profit_lift + Z95 * se,
        total=total,
        total_se=total_se,
        total_low=total - Z95 * total_se,
        total_high=total + Z95 * total_se,
        own_var=float(np.sum(own)),
        loading=loading,
    )


@dataclass
class Part:
    """One part of a sum measured against its own drift: a category's drift
    w * own + (1 - w) * tenant (`category_drifts`), or the tenant's (w = 0)."""

    lift: Lift
    weight: float  # w on the category's own ratio
    own_drift_var: float  # the variance of the category's own ratio (unused where w = 0)


def combined_se(parts: list[Part], tenant: Drift) -> float:
    """The standard error of the sum of the parts' totals. Each part's error is its SKUs' own
    noise plus loading x its drift's error, w e_category + (1 - w) e_tenant. The SKUs' noise and
    the categories' own errors are independent between parts (disjoint SKUs, disjoint
    controls): they add in quadrature; the tenant's error is one error every part leans on: its
    loadings add before squaring. The two drift components are added as if perfectly correlated
    (a category's controls are among the tenant's), an upper bound, as `category_drifts` does
    for one category. One part alone gives its own total_se."""
    own = sum(p.lift.own_var for p in parts)
    independent = np.sqrt(sum((p.lift.loading * p.weight) ** 2 * p.own_drift_var for p in parts))
    shared = abs(sum(p.lift.loading * (1 - p.weight) for p in parts)) * np.sqrt(tenant.var)
    return float(np.sqrt(own + (independent + shared) ** 2))


@dataclass
class Accuracy:
    """How well forecasts of a price effect held: the model's predicted units after a change
    are the counterfactual times its forecast ratio (units at the new price over units at the
    old one), so a season both share does not count as the model's error."""

    changes: int
    wape: float  # sum |actual - predicted| / sum actual (units per day)
    bias: float  # sum predicted / sum actual - 1
    # share of the changes with a known interval whose actual lies in the 95 % predictive one
    coverage: float
    # the changes whose forecast states its interval (one of a slope of unknown s.e. is 0 to
    # infinity: no statement to hold, so no part of the coverage; its forecast is in the error)
    intervals: int = 0


def forecast_accuracy(
    actual: np.ndarray,
    actual_se: np.ndarray,
    counterfactual: np.ndarray,
    forecast_new: np.ndarray,
    forecast_old: np.ndarray,
    forecast_low: np.ndarray,
    forecast_high: np.ndarray,
) -> Accuracy:
    """Per measured change: units per day after it (`actual`, with the s.e. of its lift, which
    holds the noise of the window and of the counterfactual), the counterfactual, and the
    forecast at the new price (its 95 % interval) and at the old one. The error and the bias
    hold every change; the coverage those whose interval is finite (`Accuracy.intervals`)."""
    actual, counterfactual = np.asarray(actual, float), np.asarray(counterfactual, float)
    old = np.maximum(np.asarray(forecast_old, float), 1e-12)
    ratio = np.asarray(forecast_new, float) / old
    predicted = counterfactual * ratio
    half = (np.asarray(forecast_high, float) - np.asarray(forecast_low, float)) / 2
    spread = counterfactual * half / old / Z95  # the forecast's own s.e., on this level
    actual_se = np.asarray(actual_se, float)
    se = np.sqrt(actual_se**2 + spread**2)
    ok = np.isfinite(predicted) & np.isfinite(actual) & np.isfinite(actual_se)
    if not ok.any():
        return Accuracy(0, float("nan"), float("nan"), float("nan"))
    total = max(float(actual[ok].sum()), 1e-12)
    stated = ok & np.isfinite(se)  # (an interval of 0 to infinity states nothing)
    return Accuracy(
        changes=int(ok.sum()),
        wape=float(np.abs(actual - predicted)[ok].sum() / total),
        bias=float(predicted[ok].sum() / total - 1),
        coverage=float(np.mean(np.abs(actual - predicted)[stated] <= Z95 * se[stated]))
        if stated.any()
        else float("nan"),
        intervals=int(stated.sum()),
    )
