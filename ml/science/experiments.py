"""A/B price tests: SKUs randomised to the new prices or today's, and an honest read-out
(pure: numpy / scipy only).

The unit of randomisation and of analysis is the SKU. A SKU's daily sales are overdispersed and
autocorrelated, so its days are not independent observations: each SKU enters the analysis as
one number per period, the mean of the metric per day (profit by default; revenue or units).

Assignment (`assign`). Within each stratum (a category), SKUs are sorted by their pre-period
metric and cut into consecutive blocks (pairs when half are treated); each block treats its share
of SKUs at random. Block counts come from one randomised systematic rounding over all blocks, so
every SKU is treated with probability `share` exactly, every block and every stratum treats
floor or ceil of its share, and so does the whole test. The arms are balanced on category and on
pre-period sales by construction, not by luck.

Estimator (`analyse`): regression adjustment with stratum effects, not pooled-θ CUPED. The lift
is the treatment coefficient of an OLS of the test-period mean on the treatment indicator, the
pre-period mean and one dummy per stratum, with an HC2 (leverage-corrected sandwich) standard
error. Why:
- Pooled-θ CUPED is this regression without the stratum dummies. The assignment is stratified,
  so the analysis conditions on the strata: the dummies take out the between-category
  differences the pre-period does not explain, at one degree of freedom per category.
- No interaction of treatment with the pre-period (Lin 2013). With arms of equal size, balanced
  on the pre-period by design, the interacted estimator has the same large-sample variance; in
  the simulations (heavy-tailed profit, 60-200 SKUs) its variance was 2-5 % larger (the heavy
  tail's leverage on the extra slope) with no better coverage, also at a 30 % share with
  heterogeneous lifts.
- HC2 is the regression's version of the conservative Neyman variance (equal to it without
  covariates: s1^2/n1 + s0^2/n0) and stays valid when
  the variance grows with the SKU's size, as a profit's does, and when the effect differs by SKU.
  Blocking on the pre-period within a stratum makes the design's true variance a little smaller
  still, so the interval errs, slightly, on the safe side; the pre-period covariate already
  captures most of what the blocks balance.
`variance_ratio` is the adjusted estimator's variance over the plain difference in means' (the
Neyman variance s1^2/n1 + s0^2/n0, both from the same data): what the pre-period is worth against
a test that ignores it in both the design and the analysis (a ratio of 0.2 is a test with five
times as many SKUs). Given the blocked design, the plain difference is itself much better than
that estimate says (the blocks already balance the pre-period); the adjustment then adds less.

Stopping rule: group-sequential, with a Lan-DeMets O'Brien-Fleming-type alpha-spending function
    alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))
over the information fraction t = days_observed / planned_days. By the time t a total of at most
alpha(t) of the type-I error may have been used; alpha(1) = alpha. At the k-th look the critical
value c_k is set so that the probability, under no effect, of crossing first at this look is
alpha(t_k) - alpha(t_{k-1}), given the boundaries used at the earlier looks (the z-statistics of
successive looks are jointly normal with corr(Z_j, Z_k) = sqrt(t_j / t_k), the canonical joint
distribution; the crossing probability is integrated numerically over the continuation region,
Armitage-McPherson-Rowe). Why the error rate stays <= alpha: the events "first crosses at look
k" are disjoint and have probabilities alpha(t_k) - alpha(t_{k-1}), which telescope to at most
alpha(1) = alpha however many looks there are and whenever they fall, as long as each look's
boundary is computed knowing the earlier looks (pass their days as `looks`) and the time of a
look is not chosen by peeking at the data. The spending function keeps early boundaries very
high (about z = 4.4 at t = 0.2), so an early look costs almost nothing and the final boundary is
close to the fixed-sample 1.96 (2.06 after five equally spaced looks).
The interval at a look is the repeated confidence interval lift ± c_k se: all the intervals of a
test cover the true lift together with probability >= 1 - alpha. Without earlier looks, the
interval at t >= 1 is the ordinary 1 - alpha interval.
The z-statistics are normal by the central limit over SKUs, not over days. Days are a
conservative clock for information: later days add less than earlier ones (the daily shocks are
positively autocorrelated, SKUs drift, and the pre-period's own noise does not shrink), so
successive looks are more correlated than sqrt(t_j / t_k) says and the real chance of crossing
early is below what was spent: in the simulations five looks gave false positives at 0.03-0.04
against 0.05 spent (0.10 when each look is read at 1.96).

`simulate_experiment` builds a test in a market with known demand (`simulator.make_market`):
negative-binomial units times the SKU's margin, SKU heterogeneity, AR(1) daily demand shocks and
a SKU-level drift between the periods; the true lift applied to the treatment SKUs in the test
period, and the true effect per SKU-day known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from numbers import Real

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from .simulator import make_market

METRICS = ("profit", "revenue", "units")
VERDICTS = ("treatment better", "control better", "no difference", "keep running")


# --- assignment ---------------------------------------------------------------------------------


def _block_size(share: float) -> int:
    """The smallest block (up to 20 SKUs) that treats a whole number of SKUs at this share;
    otherwise blocks of about 1 / min(share, 1 - share), whose counts alternate by rounding."""
    for size in range(2, 21):
        if abs(share * size - round(share * size)) < 1e-9:
            return size
    return max(2, round(1 / min(share, 1 - share)))


def assign(strata, pre_metric, share: float = 0.5, seed: int = 0) -> np.ndarray:
    """Treatment mask (True: the SKU gets the new price), stratified and blocked.

    `strata`: one label per SKU (a category code; None for a single stratum); `pre_metric`: the
    pre-period metric per SKU. Within each stratum SKUs are sorted by the pre-period metric (ties
    in random order) and cut into blocks of consecutive SKUs; each block treats floor or ceil of
    `share` of its SKUs, picked at random. Deterministic for a given seed."""
    if not (isinstance(share, Real) and 0 < share < 1):
        raise ValueError(f"share must be strictly between 0 and 1, got {share!r}")
    pre = np.asarray(pre_metric, dtype=float)
    if pre.ndim != 1:
        raise ValueError("pre_metric must be one number per SKU")
    if not np.all(np.isfinite(pre)):
        raise ValueError("pre_metric has missing or infinite values")
    n = len(pre)
    labels = np.zeros(n, dtype=int) if strata is None else np.asarray(strata)
    if labels.shape != (n,):
        raise ValueError(f"strata must have one label per SKU ({n}), got shape {labels.shape}")
    if share * n < 1 or (1 - share) * n < 1:
        raise ValueError(
            f"share={share} of {n} SKUs leaves an arm empty: at least one SKU per arm overall"
        )
    _, code = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(seed)
    size = _block_size(share)
    # Strata in random order, each sorted by the pre-period (random order among ties).
    tiebreak = rng.random(n)
    order = np.concatenate(
        [
            members[np.lexsort((tiebreak[members], pre[members]))]
            for members in (np.flatnonzero(code == s) for s in rng.permutation(code.max() + 1))
        ]
    )
    # Block boundaries: every `size` SKUs within a stratum, and at each stratum's end.
    stratum_of = code[order]
    new_stratum = np.r_[True, stratum_of[1:] != stratum_of[:-1]]
    start = np.flatnonzero(new_stratum)
    position = np.arange(n) - np.repeat(start, np.diff(np.r_[start, n]))
    block = np.cumsum(new_stratum | (position % size == 0)) - 1
    ends = np.r_[np.flatnonzero(np.diff(block)) + 1, n]  # cumulative SKUs at each block's end
    # Randomised systematic rounding: treated through block j = floor(share * ends_j + u).
    u = rng.random()
    through = np.floor(share * ends + u).astype(int)
    count = np.diff(np.r_[0, through])
    # Within each block, treat `count` SKUs picked at random.
    rank = np.empty(n, dtype=int)
    shuffled = np.lexsort((rng.random(n), block))  # block by block, random order inside
    rank[shuffled] = np.arange(n) - np.r_[0, ends[:-1]][block[shuffled]]
    treated_sorted = rank < count[block]
    treatment = np.zeros(n, dtype=bool)
    treatment[order] = treated_sorted
    return treatment


# --- the stopping rule ---------------------------------------------------------------------------


def spent(t, alpha: float = 0.05) -> np.ndarray:
    """Lan-DeMets O'Brien-Fleming-type spending: the type-I error used by information fraction t
    (two-sided), 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)); alpha at t >= 1, 0 at t = 0."""
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    z = ndtri(1 - alpha / 2)
    with np.errstate(divide="ignore"):
        return np.where(t > 0, 2 * ndtr(-z / np.sqrt(t)), 0.0)  # 2 - 2 Phi(...), no cancelling


_GRID = 801  # Simpson points over each look's continuation region (odd)


def _simpson(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(lo, hi, _GRID)
    w = np.ones(_GRID)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return x, w * (hi - lo) / (3 * (_GRID - 1))


@lru_cache(maxsize=256)
def _boundaries(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    """Two-sided critical values (z scale) for looks at these increasing information fractions:
    the chance of first crossing at look k under no effect is alpha(t_k) - alpha(t_{k-1}).

    Works on the B-value B(t) = sqrt(t) Z(t), a Brownian motion: the sub-density of B at each
    look on the region not yet crossed is carried to the next look by the Gaussian transition."""
    out: list[float] = []
    previous_spent = 0.0
    x = w = density = None
    t_prev = 0.0
    for t in fractions:
        target = float(spent(t, alpha)) - previous_spent
        s = np.sqrt(t - t_prev)
        if density is None:  # the first look: B(t) ~ N(0, t)
            c = -float(ndtri(target / 2)) if target > 0 else np.inf
            b = c * np.sqrt(t)
        elif target <= 1e-15:
            b = np.inf
        else:

            def excess(b, x=x, w=w, density=density, s=s, target=target):
                cross = ndtr((-b - x) / s) + ndtr((x - b) / s)
                return float(np.sum(w * density * cross)) - target

            mass = float(np.sum(w * density))
            b = np.inf if mass <= target else brentq(excess, 0.0, 40.0 * np.sqrt(t), xtol=1e-10)
        c = b / np.sqrt(t)
        out.append(float(c))
        # The sub-density of B(t) where no boundary has been crossed, on a grid for the next look.
        reach = min(b, 9.0 * np.sqrt(t))
        new_x, new_w = _simpson(-reach, reach)
        if density is None:
            new_density = np.exp(-(new_x**2) / (2 * t)) / np.sqrt(2 * np.pi * t)
        else:
            step = (new_x[:, None] - x[None, :]) / s
            kernel = np.exp(-(step**2) / 2) / (s * np.sqrt(2 * np.pi))
            new_density = kernel @ (w * density)
        x, w, density = new_x, new_w, new_density
        previous_spent += target
        t_prev = t
    return tuple(out)


def boundaries(fractions: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """Critical values |z| for looks at these information fractions (increasing, in (0, 1])."""
    key = tuple(round(float(t), 12) for t in fractions)
    return np.array(_boundaries(key, float(alpha)))


# --- analysis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentResult:
    metric: str
    lift_per_sku_day: float  # treatment minus control, metric per SKU per day (adjusted)
    se: float  # HC2 standard error of the lift
    ci_low: float  # the repeated confidence interval at this look (ordinary at t >= 1)
    ci_high: float
    lift_pct: float  # the lift in % of the control arm's adjusted mean (NaN: not meaningful)
    control_mean: float  # the control arm's adjusted mean, metric per SKU per day
    p_value: float  # nominal two-sided p-value of this look's z; compare with nominal_alpha
    verdict: str  # one of VERDICTS
    n_treatment: int
    n_control: int
    days_observed: int
    planned_days: int
    information_fraction: float  # days_observed / planned_days, at most 1
    alpha_spent: float  # type-I error spent up to and including this look
    boundary: float  # the critical |z| at this look
    nominal_alpha: float  # 2 (1 - Phi(boundary)): the boundary as a p-value threshold
    variance_ratio: float  # var(adjusted lift) / var(plain difference in means)
    plain_lift: float  # the plain difference in means, for reference
    plain_se: float


def _fit_hc2(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients and their HC2 covariance (rows with leverage 1, e.g. a SKU alone in its
    stratum, are fitted exactly and add nothing)."""
    bread = np.linalg.pinv(X.T @ X)
    beta = bread @ (X.T @ y)
    resid = y - X @ beta
    leverage = np.einsum("ij,jk,ik->i", X, bread, X)
    free = 1 - leverage
    weight = np.where(free > 1e-10, resid**2 / np.where(free > 1e-10, free, 1.0), 0.0)
    meat = (X * weight[:, None]).T @ X
    return beta, bread @ meat @ bread


def _vector(name: str, value, n: int | None = None) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one number per SKU")
    if n is not None and len(array) != n:
        raise ValueError(f"{name} has {len(array)} values, post has {n} (one per SKU)")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has missing or infinite values")
    return array


def analyse(
    post,
    pre,
    treatment,
    days_observed: int,
    planned_days: int,
    strata=None,
    alpha: float = 0.05,
    metric: str = "profit",
    looks: Sequence[int] = (),
) -> ExperimentResult:
    """The lift of the metric per SKU-day, its interval, and the verdict at this look.

    `post` and `pre`: per-SKU means of the metric per day in the test period so far and in the
    pre-period; `treatment`: the mask `assign` made; `strata`: the labels it was stratified on.
    `looks`: the days_observed of every earlier look whose result was read (they set this look's
    boundary; leave it empty only if this is the first look).
    The verdict crosses when |z| reaches this look's boundary, i.e. when `p_value` (nominal, of
    this look alone) is below `nominal_alpha`; before the end, p < alpha alone means nothing.
    At a look too early to spend any alpha the boundary and the interval are infinite."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not (isinstance(alpha, Real) and 0 < alpha < 0.5):
        raise ValueError(f"alpha must be strictly between 0 and 0.5, got {alpha!r}")
    y = _vector("post", post)
    n = len(y)
    x = _vector("pre", pre, n)
    arm = np.asarray(treatment)
    if arm.shape != (n,) or arm.dtype != bool:
        raise ValueError(f"treatment must be a boolean mask with one value per SKU ({n})")
    n_treatment, n_control = int(arm.sum()), int((~arm).sum())
    if min(n_treatment, n_control) < 2:
        raise ValueError(
            f"treatment needs at least 2 SKUs per arm, got {n_treatment} treated, "
            f"{n_control} control"
        )
    if not (isinstance(planned_days, int | np.integer) and planned_days > 0):
        raise ValueError(f"planned_days must be a positive whole number, got {planned_days!r}")
    if not (isinstance(days_observed, int | np.integer) and days_observed > 0):
        raise ValueError(f"days_observed must be a positive whole number, got {days_observed!r}")
    earlier = [int(d) for d in looks]
    if any(d <= 0 for d in earlier) or any(b <= a for a, b in pairwise(earlier)):
        raise ValueError(f"looks must be increasing positive days, got {list(looks)!r}")
    if earlier and earlier[-1] >= days_observed:
        raise ValueError(f"looks must all come before days_observed={days_observed}")
    if earlier and earlier[-1] >= planned_days:
        raise ValueError(
            f"looks: a look at day {earlier[-1]} was already the final one (planned_days="
            f"{planned_days}); no later look can spend more alpha"
        )
    labels = np.zeros(n, dtype=int) if strata is None else np.asarray(strata)
    if labels.shape != (n,):
        raise ValueError(f"strata must have one label per SKU ({n}), got shape {labels.shape}")
    _, code = np.unique(labels, return_inverse=True)
    dummies = (code[:, None] == np.arange(code.max() + 1)[None, :]).astype(float)
    if n <= dummies.shape[1] + 2:
        raise ValueError(f"post: {n} SKUs are too few for {dummies.shape[1]} strata")

    t = min(days_observed / planned_days, 1.0)
    fractions = [d / planned_days for d in earlier] + [t]
    boundary = float(boundaries(fractions, alpha)[-1])

    d = arm.astype(float)
    xc = x - x.mean()
    X = np.column_stack([d, xc, dummies])
    beta, cov = _fit_hc2(X, y)
    lift, se = float(beta[0]), float(np.sqrt(max(cov[0, 0], 0.0)))
    # Everyone at control: the fitted means less the lift (OLS with the strata fits the mean).
    control_mean = float(y.mean() - lift * d.mean())
    plain = float(y[arm].mean() - y[~arm].mean())
    plain_var = float(y[arm].var(ddof=1) / n_treatment + y[~arm].var(ddof=1) / n_control)

    z = lift / se if se > 0 else (0.0 if lift == 0 else np.sign(lift) * np.inf)
    p_value = float(2 * ndtr(-abs(z)))
    half = boundary * se if np.isfinite(boundary) else np.inf
    if np.isfinite(boundary) and abs(z) >= boundary:
        verdict = "treatment better" if lift > 0 else "control better"
    else:
        verdict = "keep running" if t < 1 else "no difference"
    return ExperimentResult(
        metric=metric,
        lift_per_sku_day=lift,
        se=se,
        ci_low=lift - half,
        ci_high=lift + half,
        # a percentage of a control mean that is not clearly positive (a loss-making arm, or
        # one too small against the lift's s.e.) would be absurd or of the wrong sign: NaN
        lift_pct=100 * lift / control_mean if control_mean > 2 * se else float("nan"),
        control_mean=control_mean,
        p_value=p_value,
        verdict=verdict,
        n_treatment=n_treatment,
        n_control=n_control,
        days_observed=int(days_observed),
        planned_days=int(planned_days),
        information_fraction=t,
        alpha_spent=float(spent(t, alpha)),
        boundary=boundary,
        nominal_alpha=float(2 * ndtr(-boundary)),
        variance_ratio=se**2 / plain_var if plain_var > 0 else float("nan"),
        plain_lift=plain,
        plain_se=float(np.sqrt(plain_var)),
    )


# --- simulation ----------------------------------------------------------------------------------


@dataclass
class SimulatedExperiment:
    strata: np.ndarray  # category code per SKU
    pre: np.ndarray  # per-SKU mean of the metric per day over the pre-period
    treatment: np.ndarray  # the mask `assign` made
    daily: np.ndarray  # the metric per SKU (rows) and test day (columns), effect applied
    true_effect: float  # the true lift, metric per SKU-day (treatment minus control, all SKUs)
    true_control_mean: float  # expected metric per SKU-day under control in the test period
    metric: str

    @property
    def days_test(self) -> int:
        return self.daily.shape[1]

    def post(self, days: int | None = None) -> np.ndarray:
        """Per-SKU mean of the metric per day over the first `days` test days (all by default)."""
        return self.daily[:, : self.days_test if days is None else days].mean(axis=1)

    @property
    def true_lift_pct(self) -> float:
        return 100 * self.true_effect / self.true_control_mean


def simulate_experiment(
    n_skus: int = 200,
    days_pre: int = 28,
    days_test: int = 28,
    true_lift_pct: float = 0.0,
    overdispersion: float = 0.7,
    seed: int = 0,
    *,
    shock_rho: float = 0.8,
    shock_sd: float = 0.3,
    drift_sd: float = 0.15,
    lift_sd_pct: float = 0.0,
    share: float = 0.5,
    metric: str = "profit",
) -> SimulatedExperiment:
    """A price test in a market with known demand.

    SKUs, their categories (the strata), today's prices, costs and expected demand come from
    `simulator.make_market` (with its weekly and yearly seasonality). Each day a SKU sells
    negative-binomial units (Var = mu + overdispersion mu^2) around its expected demand times a
    mean-one AR(1) shock in logs (day-to-day correlation `shock_rho`, stationary sd `shock_sd`);
    between the periods each SKU's level drifts by a mean-one log-normal factor (sd `drift_sd`
    in logs). Profit is units times the margin (revenue: times the price). The SKUs are assigned
    by `assign` on the pre-period metric, stratified by category; in the test period the
    treatment SKUs' metric is multiplied by 1 + lift, the lift per SKU drawn around
    `true_lift_pct` with sd `lift_sd_pct` (percent). The true effect per SKU-day is the mean over
    all SKUs of lift times the SKU's expected test-period metric under control."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    market = make_market(n_skus, seed=seed)
    rng = np.random.default_rng([seed, 11])
    idx = np.arange(n_skus)
    value = {
        "profit": market.price_today - market.cost,
        "revenue": market.price_today,
        "units": np.ones(n_skus),
    }[metric]
    first_day = 738000  # a fixed calendar: the same seasonality for every seed
    days = days_pre + days_test
    calendar = first_day + np.arange(days)[None, :]
    expected = market.demand(idx[:, None], market.price_today[:, None], day=calendar)
    if drift_sd > 0:  # each SKU's level moves between the periods (mean one)
        drift = np.exp(rng.normal(0, drift_sd, n_skus) - drift_sd**2 / 2)
        expected[:, days_pre:] *= drift[:, None]
    noise = rng.normal(0, shock_sd, (n_skus, days))
    shock = np.empty((n_skus, days))
    shock[:, 0] = noise[:, 0]  # stationary from the first day
    for d in range(1, days):
        shock[:, d] = shock_rho * shock[:, d - 1] + np.sqrt(1 - shock_rho**2) * noise[:, d]
    mu = expected * np.exp(shock - shock_sd**2 / 2)
    if overdispersion > 0:  # gamma(1/k, k): mean one, variance k
        mu = mu * rng.gamma(1 / overdispersion, overdispersion, (n_skus, days))
    units = rng.poisson(mu)
    metric_daily = units * value[:, None]
    pre = metric_daily[:, :days_pre].mean(axis=1)
    strata = np.array([int(c.removeprefix("cat")) for c in market.category])
    treatment = assign(strata, pre, share=share, seed=seed)
    lift = (true_lift_pct + lift_sd_pct * rng.standard_normal(n_skus)) / 100
    daily = metric_daily[:, days_pre:] * np.where(treatment, 1 + lift, 1.0)[:, None]
    control = expected[:, days_pre:].mean(axis=1) * value  # expected metric per day, no effect
    return SimulatedExperiment(
        strata=strata,
        pre=pre,
        treatment=treatment,
        daily=daily,
        true_effect=float(np.mean(lift * control)),
        true_control_mean=float(control.mean()),
        metric=metric,
    )
