"""The demand model: how each SKU's daily units respond to its own price.

Pure module (numpy only). A Poisson model of daily counts with a fixed effect per SKU:

    E[units_it] = exp(alpha_i + b_i * log(price_it / typical_price_i) + gamma' x_it)

x holds the controls shared by all SKUs: day of week, yearly seasonality (two harmonics), a
trend, promotions and their discount depth (so that a promotion's lift is not read as the effect
of its price cut), and the log price gap to the lowest competitor, where known. (A reference
price is constant per product, so the SKU's fixed effect would absorb it: it is no control.)

Fitting:
1. The pooled model (one price slope b for all SKUs) by Newton steps on the shared coefficients,
   with the SKU intercepts profiled out in closed form (for Poisson, alpha_i = log(sum y_i /
   sum mu_i without alpha)). Standard errors from the Fisher information.
2. Each SKU's own slope by Newton steps with everything else held at the pooled fit, with its
   standard error; SKUs whose prices barely move get huge standard errors. Each day weighs as
   negative-binomial counts say (w / Var: 1 / (1 + k mu) on a row listed whatever sold, k the
   one under which the tenant's Pearson dispersion is 1: `_weights_k`), so a busy day's
   overdispersed units count less each; so does its curvature's (the hinge of step 4 keeps
   Poisson weights).
3. Empirical-Bayes shrinkage, SKU -> category -> tenant: each slope is pulled toward its
   category's mean in proportion to its noise (w = tau^2 / (tau^2 + se^2)), the category toward
   the pooled slope likewise. SKUs with no sales history get their category's prior. The
   curvature likewise, about the catalog's curvature at the SKU's slope where the catalog shows
   one (`_curvature_trend`: a curve that runs out at a price bends the more the steeper it is).
4. Where competitor prices are known, each SKU's extra slope above the lowest competitor (a
   hinge) is fitted with its slope and its curvature (so that a bend is not read as a hinge),
   on the ramp max(gap, 0) smoothed over the jitter of the competitor's readings (a reading
   carried over days is not the price buyers compared with on each of them: a sharp kink at
   the reading is flattened by that noise). Where the hinge is clear, the SKU's slope is the
   joint fit's below the competitor, and the hinge moves with that slope's pull in step 3 by
   their regression (the two are one reading; their correlation is stored for the decision).
5. The reported elasticity is the effect of the own price with the competitor's price held
   fixed: the SKU's slope plus the coefficient of the price gap (which moves with the own
   price), weighted by the share of the SKU's days on which the gap is known.
Every elasticity carries a standard error. Estimates are clipped to a plausible range.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from .curve import (
    HINGE_FIT_RANGE,
    HINGE_PRIOR_SD,
    HINGE_Z,
    PROMO_LIFT_RANGE,
    hinge_prior,
    ramp,
    used_hinge,
)

ELASTICITY_RANGE = (-8.0, 0.5)
# Demand may only bend downward (more elastic as the price rises, the usual shape); an upward
# bend would send the optimiser to the edges of its range on noise.
CURVATURE_RANGE = (-15.0, 0.0)
CURVATURE_PRIOR_SD = 8.0
LEVEL_WINDOW_DAYS = 56  # the recent level: sales against the forecast over the last 8 weeks
LEVEL_PRIOR = 10.0  # units of prior weight on "the year's level holds" (factor 1)
# today's competitor price, that the recent level's position is read against: the median of a
# SKU's readings over the history's last week (its days' readings as carried: the latest
# reading where it has held over half the week, as a weekly feed's; the middle of several
# from a daily feed; two weeks mixed in a reading from before a competitor's re-price)
TODAY_READINGS_DAYS = 7
# The controls of a promotion (its flag and its discount depth): the intercepts and the units a
# day are a day's at the shelf price, without them (ml.science.backtest adds them back)
PROMO_CONTROLS = ("promo", "discount_depth")


@dataclass
class Panel:
    """One row per SKU and day (days without a sales row are zero units while active)."""

    sku: np.ndarray  # int index 0..n_skus-1
    day: np.ndarray  # int day number (e.g. date.toordinal())
    units: np.ndarray
    price: np.ndarray
    promo: np.ndarray | None = None  # 0/1
    competitor_price: np.ndarray | None = None  # NaN where unknown
    # log(paid / shelf price) of the day (<= 0; 0 without a discount): the depth of a promotion
    # or coupon, apart from the shelf price the merchant sets (which `price` holds).
    discount: np.ndarray | None = None
    category: np.ndarray | None = None  # per SKU (length n_skus), int index
    time_effects: bool = False  # a dummy per period instead of weekday/season/trend (panels)
    # Rows that are in the data only because something sold that day (the price of a day
    # without a sale is unknown when prices moved): their likelihood is zero-truncated.
    truncated: np.ndarray | None = None
    # Per SKU (length n_skus): today's price, where the slope is wanted (NaN: the latest seen).
    current_price: np.ndarray | None = None
    # The jitter of the competitor's readings, in log price (one reading's error; 0: exact):
    # the hinge above the competitor is fitted on the ramp smoothed over what it leaves unknown
    # of the price buyers meet (ml.science.curve.ramp, RAMP_SCALE), as the curve reads it.
    competitor_sd: float = 0.0
    # Per SKU: the competitor's price today as the panel's rows read it, the median over the
    # last TODAY_READINGS_DAYS days of each day's lowest reading in force
    # (ml.panel.competitor_today; None: the median of the SKU's rows of those days): today's
    # position, where the level is read, is today's price against it, and a reprice that reads
    # it again measures how far the position has moved since in the same terms.
    competitor_today: np.ndarray | None = None
    # ... and per SKU the number of those days whose lowest price was read that day (how much
    # of a reading's jitter the median still holds; None: not counted)
    competitor_today_k: np.ndarray | None = None
    # the day (ordinal) competitor_today was read up to (None: not read)
    reading_day: int | None = None

    @property
    def n_skus(self) -> int:
        return int(self.sku.max()) + 1 if len(self.sku) else 0


@dataclass
class DemandFit:
    elasticity: np.ndarray  # per SKU, after shrinkage
    elasticity_se: np.ndarray
    raw_elasticity: np.ndarray  # per SKU, before shrinkage (NaN without data)
    raw_se: np.ndarray
    pooled_elasticity: float
    pooled_se: float
    category_elasticity: dict[int, float]
    typical_price: np.ndarray  # per SKU
    intercept: np.ndarray  # per SKU (log scale, at typical price, controls at zero)
    coef_names: list[str]
    coef: np.ndarray
    curvature: np.ndarray | None = None  # per SKU: d² log units / d(log price)², shrunk
    curvature_se: np.ndarray | None = None
    raw_curvature: np.ndarray | None = None
    # The prices each SKU was seen at (its evidence): recommendations stay near this range.
    price_low: np.ndarray | None = None
    price_high: np.ndarray | None = None
    # SKUs whose own estimate had the wrong sign (demand rising with price: confounded) and
    # that took their category's (or the tenant's) elasticity with its wider uncertainty.
    from_prior: np.ndarray | None = None
    dispersion: float = 1.0  # the tenant's Pearson dispersion (1 = Poisson)
    nb_k: float = 0.0  # negative-binomial k behind the zero-truncated rows (0: Poisson)
    # the negative-binomial k of the tenant's counts whose weights each SKU's own fits took
    # (`Pooled.weight_k`; 0: Poisson weights); `dispersion` is then the Pearson dispersion
    # beyond that variance
    weight_k: float = 0.0
    # the k the counts read and the median SKU's variance on its weights over Poisson's: the
    # weights were the negative binomial's only where they were the surer (`Pooled`)
    counts_k: float = 0.0
    weights_ratio: float = float("nan")
    # Per SKU, the extra slope of log units above the lowest competitor's price, as estimated
    # (0 with an infinite s.e. where the SKU's prices do not identify it): the curve uses it
    # where it is clearly negative (HINGE_Z s.e.), and its pessimistic end in the search.
    competitor_above: np.ndarray | None = None
    competitor_above_se: np.ndarray | None = None
    # The SKU's observed position against the lowest competitor, log(price / competitor):
    # lowest and highest (NaN where no competitor price was known on its days).
    gap_low: np.ndarray | None = None
    gap_high: np.ndarray | None = None
    # The s.d. the hinge's ramp was smoothed over (RAMP_SCALE x Panel.competitor_sd): the
    # curve reads the hinge on the same ramp.
    ramp_sd: float = 0.0
    # The spread of the catalog's hinges (ml.science.curve.hinge_prior: the mean and tau^2 of
    # those that have one, the share without, and the mean's own variance; None under
    # HINGE_SPREAD_MIN estimated): an unclear hinge is judged on its posterior on it.
    hinge_prior: tuple[float, float, float, float] | None = None
    # the pooled fit's controls on whose rows nothing sold (Pooled.closed): the average day the
    # intercept is read at is an average day of the others' rows
    closed: tuple[str, ...] = ()
    # The share of calendar days the shop is open (1 where no weekday is closed, `_open_share`):
    # the intercept is an open day's level, and a calendar day's expected units are an open
    # day's times this (what `units_per_day` stores, ml.services).
    open_share: float = 1.0
    # Per SKU, the correlation of the errors of `elasticity` and `competitor_above` (0 where
    # the slope is no part of the hinge's joint fit): where a SKU clearly collapses above the
    # competitor its slope is the joint fit's slope below it, and the two are read from the same
    # days, the one steeper where the other reads flatter (the joint fit's about -0.75 on the
    # simulator's markets; on the shrunk slope, with its other errors, -0.1 to -0.6). A move
    # across the competitor's price or above it depends on both together.
    slope_hinge_corr: np.ndarray | None = None
    # The hinges as the joint fit read them, before a clear one moved with its slope's pull
    # (None: the same as competitor_above): the catalog's spread of hinges is read from these,
    # each the truth plus its own noise of its s.e.
    hinge_read: np.ndarray | None = None
    # Per SKU, every recent day's expected units over the same days' at the shelf price
    # (`_promo_lift`; None: not read, as 1): `intercept` is a shelf day's, and what counts
    # units over every day (the stock sold through, a published change's realised lift) reads
    # them times this.
    promo_lift: np.ndarray | None = None
    # Per SKU, today's position above the competitor on the buyers' ramp that the level is read
    # at (NaN: none known; None: not read): a day's forecast at another position moves by the
    # hinge the curve uses (`position`)
    ramp_today: np.ndarray | None = None
    # today's position itself, log(today's price / the competitor's) (NaN: none known; None:
    # not read): stored, a reprice re-anchors the level at its own position
    gap_today: np.ndarray | None = None
    # the competitor's price that position is against and the days of its week whose lowest
    # price was read that day (NaN and 0: none known; None: not read): stored, a reprice counts
    # the competitor's move since beyond its readings' jitter (ml.selectors._counted)
    competitor_then: np.ndarray | None = None
    competitor_then_k: np.ndarray | None = None

    def position(self, sku, price, competitor) -> np.ndarray:
        """Per row, log units from today's position against the competitor to the row's
        (`price` against `competitor`), through the SKU's hinge where the curve uses one (a
        clear one); 0 where either position is unknown."""
        if self.ramp_today is None or self.competitor_above is None:
            return np.zeros(len(sku))
        h = used_hinge(self.competitor_above, self.competitor_above_se)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.log(np.asarray(price, float) / np.asarray(competitor, float))
            step = h[sku] * (ramp(gap, self.ramp_sd) - self.ramp_today[sku])
        return np.where(np.isfinite(step), step, 0.0)

    @property
    def hinge_normal(self) -> tuple[float, float] | None:
        """The same hinges' spread as one normal (their weighted mean and tau^2,
        `ml.science.curve.hinge_prior`): what a reader that knows no share without a hinge
        takes (stored beside the mixture for it)."""
        se = self.competitor_above_se
        read = self.competitor_above if self.hinge_read is None else self.hinge_read
        if se is None or read is None:
            return None
        spread = hinge_prior(np.where(np.isfinite(se), read, np.nan), se, False)
        return None if spread is None else spread[:2]

    def expected_units(self, sku: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Expected daily units at `price` on a day at the shelf price (no promotion), the other
        controls at their average day."""
        x = np.log(np.asarray(price, float) / self.typical_price[sku])
        c = 0.0 if self.curvature is None else self.curvature[sku]
        return np.exp(self.intercept[sku] + self.elasticity[sku] * x + c * x * x)

    def elasticity_at(self, sku: np.ndarray, price: np.ndarray) -> np.ndarray:
        """The elasticity at `price` (the slope of the curve there)."""
        x = np.log(np.asarray(price, float) / self.typical_price[sku])
        c = 0.0 if self.curvature is None else self.curvature[sku]
        return self.elasticity[sku] + 2 * c * x


def _base(values: np.ndarray, first, units) -> object:
    """The level a set of dummies leaves out: `first`, unless nothing sold on its rows (a
    weekday the shop is closed, a period without sales: measured against it, every other
    dummy would run off to plus infinity) or it has no rows at all (an export without the
    closed weekday's days: the other dummies would sum to one on every row, the intercepts
    again), then the level that sold the most."""
    if units is None:
        return first
    units = np.asarray(units, float)
    at = values == first
    if at.any() and units[at].sum() > 0:
        return first
    levels, where = np.unique(values, return_inverse=True)
    return levels[int(np.argmax(np.bincount(where, weights=units)))]


def _controls(
    panel: Panel,
    day_range: tuple[int, int] | None = None,
    competitor: bool | None = None,
    units=None,
    every_level: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """The controls of each row. `day_range` (the tenant's first and last day) and `competitor`
    (whether the gap columns exist) where the panel is a block of the tenant's SKUs. `units`:
    the rows' units, where the fit chooses the weekday and the period its dummies leave out
    (`_base`); `every_level`: a dummy for every weekday (for a reader that picks them by name)."""
    day = panel.day.astype(float)
    first, final = (day.min(), day.max()) if day_range is None else map(float, day_range)
    names, cols = [], []
    if panel.time_effects:
        periods = np.unique(panel.day)
        base = _base(panel.day, periods[0], units)
        for period in periods:
            if period != base:
                cols.append((panel.day == period).astype(float))
                names.append(f"period_{period}")
    else:
        span = max(final - first, 1.0)
        if span >= 14:  # two weeks at least to tell weekdays apart
            dow = (panel.day % 7).astype(int)
            base = -1 if every_level else _base(dow, 0, units)
            for k in range(7):
                if k != base:
                    cols.append((dow == k).astype(float))
                    names.append(f"dow_{k}")
        if span >= 365:  # a yearly cycle only from a year of history (else it mimics a trend)
            for h in (1, 2):
                angle = 2 * np.pi * h * day / 365.25
                cols += [np.sin(angle), np.cos(angle)]
                names += [f"year_sin_{h}", f"year_cos_{h}"]
        cols.append((day - first) / span)
        names.append("trend")
    if panel.promo is not None:
        cols.append(np.asarray(panel.promo, float))
        names.append("promo")
    if panel.discount is not None:
        depth = np.nan_to_num(np.clip(np.asarray(panel.discount, float), -3.0, 0.0))
        cols.append(depth)
        names.append("discount_depth")
    other = panel.competitor_price
    if competitor is None:
        competitor = other is not None and bool(np.isfinite(other).any())
    if competitor:
        gap = np.log(np.asarray(panel.price, float) / np.asarray(other, float))
        known = np.isfinite(gap)
        cols += [np.where(known, gap, 0.0), (~known).astype(float)]
        names += ["competitor_gap", "competitor_gap_unknown"]
        # the extra slope above the competitor, pooled: in the pooled fit only (see fit_demand)
        cols.append(np.where(known, ramp(gap, _ramp_sd(panel)), 0.0))
        names.append("competitor_above")

    if not cols:  # a dummy per period and a single period: no control varies
        return np.empty((len(day), 0)), names
    return np.column_stack(cols), names


class Truncation(np.ndarray):
    """The rows whose presence depended on a sale (a bool mask), with the dispersion k of the
    counts behind them (Var = mu + k mu^2; 0: Poisson). Slicing keeps k."""

    def __new__(cls, mask, k: float = 0.0):
        out = np.asarray(mask, dtype=bool).view(cls)
        out.k = float(k)
        return out

    def __array_finalize__(self, obj):
        self.k = getattr(obj, "k", 0.0)


NB_GRID = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
WEIGHTS_K_MAX = 3.0  # the largest k the weights take (NB_GRID's largest)
# The smallest: below it the weights are Poisson's (a day of 10 units weighs at most 1/(1 + 10 k)
# less, within what the pooled stage's misfit reads as k on Poisson counts: 0.002-0.011)
WEIGHTS_K_MIN = 0.02
# Newton steps of the own slopes k is read with (the demo grocer's k within 0.002 of 25 steps'
# in 5; a third of the pooled stage's time in 25)
K_STEPS = 5


def _dispersion_k(y, mu, truncated) -> float:
    """The negative-binomial dispersion k that best explains the counts (the likelihood on a
    grid), truncated at zero where a row is there only because something sold. A zero-truncated
    Poisson on overdispersed counts misreads how often a day has a sale at a high price, and
    flattens every slope."""
    from scipy.special import gammaln

    best, best_ll = 0.0, -np.inf
    mu = np.clip(mu, 1e-9, np.exp(30.0))  # as _mean_weight clips the linear predictor
    for k in NB_GRID:
        if k == 0.0:
            ll = y * np.log(mu) - mu - gammaln(y + 1)
            p0 = np.exp(-mu)
        else:
            r = 1.0 / k
            ll = (
                gammaln(y + r)
                - gammaln(r)
                - gammaln(y + 1)
                + y * np.log(k * mu / (1 + k * mu))
                - r * np.log1p(k * mu)
            )
            p0 = np.exp(-r * np.log1p(k * mu))
        ll = np.where(truncated, ll - np.log(np.maximum(1 - p0, 1e-300)), ll)
        total = float(np.sum(ll))
        if total > best_ll:
            best, best_ll = k, total
    return best


def _mean_weight(eta, truncated):
    """E[y] and dE[y]/d eta (the Newton weight) per row: Poisson, or zero-truncated where
    `truncated` (a Truncation): Poisson, mean mu / (1 - e^-mu) and weight m (1 - m e^-mu); or
    negative binomial with the mask's k, mean mu / (1 - P0), P0 = (1 + k mu)^(-1/k). The
    estimating equations sum (y - m) x = 0 hold whatever the variance, so the slopes stay
    unbiased; their standard errors come from the sandwich (_variance_parts)."""
    mu = np.exp(np.clip(eta, -30, 30))
    if truncated is None:
        return mu, mu
    k = getattr(truncated, "k", 0.0)
    if k > 0:
        log_p0 = -np.log1p(k * mu) / k
        p0 = np.exp(log_p0)
        d = np.maximum(-np.expm1(log_p0), 1e-12)  # 1 - P0, precise where mu is small
        m = mu / d
        w = mu * (d - mu * p0 / (1 + k * mu)) / (d * d)
        m = np.where(truncated, m, mu)
        w = np.where(truncated, w, mu)
        return m, np.maximum(w, 1e-12)
    # Two transcendental passes instead of three (the fit calls this hundreds of times over
    # every row): d = 1 - e^-mu from expm1, and e^-mu as 1 - d where it only scales a term.
    d = np.expm1(-mu)
    np.negative(d, out=d)
    np.maximum(d, 1e-12, out=d)
    m = mu / d
    w = np.subtract(1.0, d)  # e^-mu
    w *= m
    np.subtract(1.0, w, out=w)
    w *= m  # m (1 - m e^-mu)
    m = np.where(truncated, m, mu)
    w = np.where(truncated, w, mu)
    return m, np.maximum(w, 1e-12, out=w)


def _weights_k(y, mu, sku, n: int, truncated) -> float:
    """The negative-binomial k whose weights each SKU's own fits take (`_row_weight`): the k
    under which the tenant's Pearson dispersion is 1, read as `_tenant_dispersion` reads it
    (`_central`: the SKUs' own, per degree of freedom, each capped at DISPERSION_CAP x the
    median SKU's, weighted; only SKUs that sold); 0 where it is at most 1 already or k would be
    below WEIGHTS_K_MIN, WEIGHTS_K_MAX at most; by bisection to within 0.001. A row there only
    because something sold (`truncated`) is read on the zero-truncated negative binomial's mean
    and variance. Capped: a few rows far off their mean (a bulk order, a mistyped count) move
    the likelihood's k (`_dispersion_k`) and would weigh every SKU's days as if all were that
    noisy."""
    mu = np.clip(mu, 1e-9, np.exp(30.0))
    cut = np.zeros(len(y), bool) if truncated is None else np.asarray(truncated, bool)
    # per degree of freedom (its rows less its intercept and slope), as the dispersion reads
    # it; only SKUs that sold (one that never did sits at a mean of about 0: no reading)
    df = np.maximum(np.bincount(sku, minlength=n) - 2.0, 0.0)
    has = (df > 0) & _spread(y, sku, n)
    if not has.any():
        return 0.0
    eta = np.log(mu)
    # the fit's own mean (a truncated row's at the truncation's k, `Truncation.k`)
    mean, _w = _mean_weight(eta, truncated if cut.any() else None)

    def median(k: float) -> float:
        var = _nb_variance(eta, k, cut)
        ratio = np.bincount(sku, weights=(y - mean) ** 2 / var, minlength=n)
        return _central(ratio[has] / df[has], df[has])

    if median(0.0) <= 1.0:
        return 0.0
    if median(WEIGHTS_K_MAX) > 1.0:
        return WEIGHTS_K_MAX
    low, high = 0.0, WEIGHTS_K_MAX
    while high - low > 1e-3:
        mid = 0.5 * (low + high)
        low, high = (mid, high) if median(mid) > 1.0 else (low, mid)
    # below WEIGHTS_K_MIN the weights are Poisson's: a misfit of the pooled stage's own
    # slopes (no bend, no hinge) reads as a k of 0.01 on Poisson counts
    return float(high) if high >= WEIGHTS_K_MIN else 0.0


def _spread(y, sku, n: int) -> np.ndarray:
    """Per SKU, whether its units vary at all: a SKU that never sold, or whose every order was
    one unit (an order export's rows, read at a mean near 0), says nothing of how noisy counts
    are; its Pearson dispersion of about 0 is no reading."""
    return _per_sku(np.maximum, y, sku, n, -np.inf) > _per_sku(np.minimum, y, sku, n, np.inf)


def _nb_variance(eta, k: float, truncated):
    """Per row, the negative binomial's variance at k (Var = mu + k mu^2, mu = e^eta), and
    where a row is there only because something sold (`truncated`) the zero-truncated law's:
    E[y^2] / P(y > 0) - E[y | y > 0]^2."""
    mu = np.maximum(np.exp(np.clip(eta, -30, 30)), 1e-9)
    var = mu * (1 + k * mu)
    if truncated is None or not np.any(truncated):
        return var
    log_p0 = -np.log1p(k * mu) / k if k > 0 else -mu
    sold = np.maximum(-np.expm1(log_p0), 1e-300)  # P(y > 0)
    mean = mu / sold
    cut = np.maximum((var + mu * mu) / sold - mean * mean, 1e-12)
    return np.where(np.asarray(truncated, bool), cut, var)


def _row_weight(eta, w, k: float, truncated):
    """Per row, the factor w / Var of each SKU's own estimating equations (w = dE[y]/d eta, the
    Newton weight of `_mean_weight`; Var the negative binomial's at k, zero-truncated where the
    row is: `_nb_variance`): the efficient weights where counts are overdispersed (a Poisson
    weight counts a busy day's units, a promotion's, as if each were as sure as a slow day's;
    1 / (1 + k mu) on a row listed whatever sold); 1 where k is 0 (Poisson's, whose variance is
    w). A function of the mean only, so the equations stay unbiased whatever the variance (the
    sandwich holds the rest)."""
    if not k > 0:
        return 1.0
    # never more than a Poisson's weight (1): a variance below the model's own weight is the
    # clipping of a mean near 0, or a truncation read at another k, not a surer row
    return np.minimum(w / _nb_variance(eta, k, truncated), 1.0)


def _profile_alpha(y, eta, sku, n, truncated=None, alpha=None):
    """SKU intercepts given the rest of the linear predictor: closed form for Poisson; with
    truncated rows, Newton steps from there."""
    sum_y = np.bincount(sku, weights=y, minlength=n)
    if alpha is None or truncated is None:
        sum_mu = np.bincount(sku, weights=np.exp(eta), minlength=n)
        with np.errstate(divide="ignore"):
            alpha = np.log(np.maximum(sum_y, 1e-12)) - np.log(np.maximum(sum_mu, 1e-300))
    if truncated is not None:
        for _ in range(4):  # warm-started by the caller: a few steps are enough
            m, w = _mean_weight(eta + alpha[sku], truncated)
            step = np.bincount(sku, weights=y - m, minlength=n) / np.maximum(
                np.bincount(sku, weights=w, minlength=n), 1e-12
            )
            alpha = alpha + np.clip(step, -2, 2)
            if np.max(np.abs(step)) < 1e-6:
                break
    return np.where(sum_y > 0, alpha, -30.0)  # a SKU that never sold: rate ~ 0


def _pooled(y, X, sku, n, trunc, beta, alpha, iterations, unbounded=None):
    """Newton steps on the shared coefficients (the price slope and the controls) with the SKU
    intercepts profiled out. Returns beta, alpha and the last step's m, weight, the within-SKU
    demeaned design and the information matrix (all at the point that step started from).

    Each step is halved until it does not overshoot: the estimating equations sum (y - m) x = 0
    are the gradient of a concave objective (m rises with the linear predictor), and a step is
    taken where the objective's slope along it at its end is not below minus its slope at its
    start (where the objective is quadratic along the step, exactly where it ends no lower than
    it began; elsewhere a guard against overshooting, not a proof of ascent). A full Newton
    step from the start overshot where promotions lift demand by far more than their cut: the
    promotion's coefficient swung between -2 and 11, then every coefficient ran off to 1e14,
    and that model was stored. A fit that ends unsettled (no part of a step holds, or the
    iterations run out while the last full step still moves a coefficient by more than
    POOLED_SETTLED_STEP and could still gain more than POOLED_SETTLED_RISE) raises
    PooledFitError, as `_check_pooled` does for coefficients beyond any market's. `unbounded`
    (per column): coefficients whose best value is minus infinity (`_no_sales`), left out of
    the step that judges whether the fit settled."""
    moving = slice(None) if unbounded is None else ~np.asarray(unbounded, bool)
    m, wt = _mean_weight(X @ beta + alpha[sku], trunc)
    full = rise = np.inf
    for _ in range(iterations):
        m0, wt0 = m, wt
        # Newton step on beta with the intercepts profiled: demean X within SKU (weighted).
        w_sum = np.bincount(sku, weights=wt0, minlength=n)
        sums = np.vstack(
            [np.bincount(sku, weights=wt0 * X[:, j], minlength=n) for j in range(X.shape[1])]
        )
        Xc = X - (sums.T / np.maximum(w_sum, 1e-12)[:, None])[sku]
        grad = Xc.T @ (y - m0)
        info = (Xc * wt0[:, None]).T @ Xc + 1e-8 * np.eye(X.shape[1])
        step = np.linalg.solve(info, grad)
        if trunc is not None:  # damped on the price slope only (controls may be near-collinear)
            step = step / max(1.0, abs(float(step[0])))
        full = float(np.max(np.abs(step[moving]), initial=0.0))
        along = X @ step
        rise = float(np.dot(y - m0, along))  # the objective's slope along the step, at its start
        for _halving in range(40):
            b = beta + step
            a = _profile_alpha(y, X @ b, sku, n, trunc, alpha)
            m_b, wt_b = _mean_weight(X @ b + a[sku], trunc)
            end = float(np.dot(y - m_b, along))
            if np.isfinite(end) and end >= -abs(rise):
                break
            step = step / 2
        else:
            break  # no part of the step holds: settled only if it had nothing left to gain
        beta, alpha, m, wt = b, a, m_b, wt_b
        if full < (1e-6 if trunc is not None else 1e-8):
            break
    if not (full <= POOLED_SETTLED_STEP or rise <= POOLED_SETTLED_RISE):
        raise PooledFitError(
            "the demand fit did not converge on this history (its last Newton step would move "
            f"a coefficient by {full:.3g} and could gain {rise:.3g})"
        )
    return beta, alpha, m0, wt0, Xc, info


class PooledFitError(ValueError):
    """The pooled demand fit did not settle: its Newton steps did not converge, or a
    coefficient is not finite or beyond any market's (a model that would read every SKU as the
    same absurd number, or a promotion as lifting demand e^1e11-fold)."""


# A pooled fit whose last full Newton step still moves a coefficient by more than this (log
# units) and whose objective could still gain more than POOLED_SETTLED_RISE (twice the gain of
# the log-likelihood, about) has not settled. Either alone is no sign: a coefficient the design
# barely identifies (a column of zeros but for rounding) keeps a step of 1e-4 in a settled fit,
# and a tenant's millions of rows keep a rise of several units in a fit whose coefficients have
# stopped moving.
POOLED_SETTLED_STEP = 0.05
POOLED_SETTLED_RISE = 1.0
POOLED_SLOPE_LIMIT = 20.0  # |pooled elasticity| beyond this is a fit that did not settle
# |coefficient| of a control beyond this (log units: e^25 times the demand) is one that ran away
POOLED_CONTROL_LIMIT = 25.0
# The coefficient of a control on whose rows nothing sold (`_no_sales`): its best value is minus
# infinity, and wherever its steps stopped it (about -8 where the others settle) is no figure;
# pinned here, as the intercept of a SKU that never sold (`_profile_alpha`)
CLOSED_COEF = -30.0


# The units a 0/1 control's rows must have been expected to sell (at the SKUs' own average
# rates) before nothing sold on them reads as a time nothing sells (`_no_sales`); under it,
# the control has no coefficient (`_rare_without_sales`).
CLOSED_MIN_UNITS = 10.0


def _rare_without_sales(controls: np.ndarray, y: np.ndarray, sku: np.ndarray, n: int):
    """Per column of `controls`, whether it is a 0/1 control on whose rows nothing sold
    though its SKUs' own average rates expected fewer than CLOSED_MIN_UNITS there (a
    promotion on three days of slow movers): that says nothing of whether anything sells
    then, and such a column has no coefficient (pinned at CLOSED_COEF it would read as
    "nothing sells on a promotion", and fail a partitioned fit whose other blocks sell then;
    there, ml.partitioned says so with the version instead, `Pooled.rare`)."""
    rate = np.bincount(sku, weights=y, minlength=n) / np.maximum(np.bincount(sku, minlength=n), 1)
    return _no_sales(controls, y) & (rate[sku] @ controls < CLOSED_MIN_UNITS)


def _no_sales(controls: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per column of `controls`, whether it is a 0/1 control with rows on none of which
    anything sold (a weekday the shop is closed, a period without sales): its coefficient's
    best value is minus infinity, and every Newton step moves it about one further down,
    rightly."""
    binary = np.all((controls == 0) | (controls == 1), axis=0)
    return binary & (controls.sum(axis=0) > 0) & (y @ controls == 0)


def open_days(controls: np.ndarray, names: list[str], closed) -> tuple[list[int], np.ndarray]:
    """The columns of `controls` (named `names`) that are closed controls (`Pooled.closed`),
    and per row whether it is on none of them: the rows an average day is read from."""
    shut = [names.index(name) for name in closed if name in names]
    return shut, ~(controls[:, shut] > 0).any(axis=1)


def _check_pooled(beta: np.ndarray, names: list[str], unbounded=None) -> None:
    """PooledFitError where a coefficient is not finite or beyond any market's (a control of
    `unbounded`, `_no_sales`, may go as far down as its steps took it)."""
    free = np.zeros(len(beta), bool) if unbounded is None else np.asarray(unbounded, bool)
    limits = np.r_[POOLED_SLOPE_LIMIT, np.full(len(names), POOLED_CONTROL_LIMIT)]
    bad = ~np.isfinite(beta) | (~free & (np.abs(beta) > limits))
    if bad.any():
        values = ", ".join(
            f"{name} {value:.3g}"
            for name, value, out in zip(["log_price", *names], beta, bad, strict=True)
            if out
        )
        raise PooledFitError(
            f"the demand fit did not converge on this history (beyond any market: {values})"
        )


def fit_demand(panel: Panel, iterations: int = 25) -> DemandFit:
    """The whole fit in one process: the pooled stage, every SKU's own fit given it, and the
    empirical-Bayes reduce. The partitioned fit (ml.partitioned) runs the same three stages with
    the SKUs split into blocks, each fitted on its own (fit_block), then reduce() over them."""
    pooled = fit_pooled(panel, iterations)
    if pooled.whole_fit is not None:  # the choice of weights fitted every SKU on them already
        return pooled.whole_fit
    return reduce(
        [fit_block(panel, pooled, iterations, alpha=pooled.alpha)], pooled, panel.category
    )


@dataclass
class Pooled:
    """The tenant-level part of the fit, estimated first and shared by every block of SKUs: the
    shared coefficients (the pooled price slope and the controls) with their covariance, the
    dispersion of the truncated counts, and the facts every block's design must agree on (the
    day range the trend and the error blocks are measured from, which controls exist)."""

    beta: np.ndarray
    cov: np.ndarray
    names: list[str]  # the controls (columns of the design after the price)
    day_range: tuple[int, int]
    competitor: bool  # the competitor gap columns are in the design
    truncated: bool  # some rows are zero-truncated
    nb_k: float
    ramp_sd: float
    time_effects: bool
    # Per SKU of the panel it was fitted on: the profiled intercepts at the pooled fit (the
    # start of each SKU's own fit; a SKU outside that panel starts from its closed form).
    alpha: np.ndarray
    # 0/1 controls on whose rows nothing sold (a weekday the shop is closed): their coefficient
    # is CLOSED_COEF, and their rows are no part of the average day the intercepts are read at
    closed: tuple[str, ...] = ()
    # 0/1 controls left out of the design because nothing sold on their few rows
    # (`_rare_without_sales`): on a sample of the tenant, to be checked on the whole of it
    rare: tuple[str, ...] = ()
    # weekdays (`dow_K`) without a row at all (`_unlisted`: a daily report that leaves out the
    # days the shop is closed): closed as those of `closed` are, for the open share
    unlisted: tuple[str, ...] = ()
    # The negative-binomial k of the tenant's counts (Var = mu + k mu^2; 0: Poisson), whose
    # weights each SKU's own fits take (`_row_weight`): overdispersed counts of a busy day
    # (a promotion's) say less per unit than a slow day's.
    weight_k: float = 0.0
    # The k the counts read (`_weights_k`), and the median SKU's variance of its own slope on
    # its weights over Poisson's (`_choose_weights`; NaN where not compared): the
    # weights are the negative binomial's (weight_k = counts_k) only where they are the surer
    counts_k: float = 0.0
    weights_ratio: float = float("nan")
    # Where the choice of weights fitted the whole panel the pooled fit was read on, that fit
    # on the chosen weights (`fit_demand` returns it rather than fit it again); not stored
    whole_fit: DemandFit | None = field(default=None, repr=False, compare=False)

    def without(self, controls) -> Pooled:
        """The same fit with the named closed controls given no coefficient (as a rare one,
        `rare`): their days read at the base level, every other coefficient as the fit with
        them pinned read it (refitted without them, the base weekday would take their days'
        zeros and every other weekday would read the difference: +0.65 on a shop's
        weekdays, review). For a sample that saw nothing sold on a weekday on which the
        tenant's other products sold (ml.partitioned)."""
        drop = [name for name in controls if name in self.names]
        if not drop:
            return self
        keep = np.r_[True, [name not in drop for name in self.names]]  # (the price first)
        return replace(
            self,
            beta=self.beta[keep],
            cov=self.cov[np.ix_(keep, keep)],
            names=[name for name in self.names if name not in drop],
            closed=tuple(name for name in self.closed if name not in drop),
            rare=(*self.rare, *drop),
            whole_fit=None,  # (fitted with the controls dropped here)
        )


@dataclass
class _Rows:
    """A panel's valid rows and what every stage derives from them the same way."""

    n: int
    sku: np.ndarray
    y: np.ndarray
    price: np.ndarray
    trunc: np.ndarray | None
    sub: Panel
    weight: np.ndarray  # rows per SKU
    typical: np.ndarray
    lp: np.ndarray
    controls: np.ndarray
    names: list[str]


def _rows(panel: Panel, n: int | None = None, pooled: Pooled | None = None) -> _Rows:
    """The valid rows of `panel` (SKUs 0..n-1), their design, and the truncation mask. With
    `pooled`, the design is the pooled fit's: its day range, its controls in its order."""
    n = panel.n_skus if n is None else n
    y = np.asarray(panel.units, float)
    price = np.asarray(panel.price, float)
    sku = np.asarray(panel.sku, int)
    valid = np.isfinite(y) & (y >= 0) & np.isfinite(price) & (price > 0)
    sku, y, price = sku[valid], y[valid], price[valid]
    keep = lambda values: None if values is None else np.asarray(values)[valid]  # noqa: E731
    trunc = keep(panel.truncated)
    if pooled is None:
        if trunc is not None:
            trunc = Truncation(trunc)
            if not trunc.any():
                trunc = None
    elif pooled.truncated or (trunc is not None and trunc.any()):
        # the tenant's truncation (and its k) holds in every block, whether or not the block
        # has truncated rows of its own
        mask = np.zeros(len(y), bool) if trunc is None else trunc
        trunc = Truncation(mask, pooled.nb_k)
    else:
        trunc = None
    competitor = keep(panel.competitor_price)
    if pooled is not None and pooled.competitor and competitor is None:
        competitor = np.full(len(y), np.nan)  # the tenant's gap is unknown on these SKUs' days
    sub = Panel(
        sku=sku,
        day=np.asarray(panel.day)[valid],
        units=y,
        price=price,
        promo=keep(panel.promo),
        competitor_price=competitor,
        discount=keep(panel.discount),
        time_effects=panel.time_effects,
        competitor_sd=panel.competitor_sd,
    )
    # Typical price per SKU: the unit-weighted geometric mean (today's scale for each SKU).
    log_p = np.log(price)
    weight = np.bincount(sku, minlength=n).astype(float)
    typical = np.exp(np.bincount(sku, weights=log_p, minlength=n) / np.maximum(weight, 1))
    lp = log_p - np.log(typical[sku])
    if pooled is None:
        controls, names = _controls(sub, units=y)
        varies = np.ptp(controls, axis=0) > 0  # e.g. a promo column without any promotion
        controls, names = controls[:, varies], [n for n, v in zip(names, varies, strict=True) if v]
    else:
        controls, every = _controls(sub, pooled.day_range, pooled.competitor, every_level=True)
        # the pooled fit's controls, in its order (one that did not vary there has no coefficient);
        # a period dummy of the pooled fit is built on this block's days whether or not the block
        # has rows in that period (the base period is the pooled fit's, not the block's first)
        columns = []
        for name in pooled.names:
            if name in every:
                columns.append(controls[:, every.index(name)])
            elif name.startswith("period_"):
                columns.append((sub.day == sub.day.dtype.type(name[7:])).astype(float))
            else:
                raise ValueError(f"the pooled fit's control {name!r} is not in this block")
        controls = np.column_stack(columns) if columns else np.empty((len(y), 0))
        names = list(pooled.names)
    return _Rows(n, sku, y, price, trunc, sub, weight, typical, lp, controls, names)


def fit_pooled(
    panel: Panel,
    iterations: int = 25,
    day_range: tuple[int, int] | None = None,
    ramp_sd: float | None = None,
) -> Pooled:
    """Stage 1: the pooled model on `panel` (the tenant, or a sample of its SKUs), with its
    cluster-robust covariance and the negative-binomial k behind the truncated rows. `day_range`
    (first and last day of the tenant's rows) where the panel is a sample of them. With a dummy
    per period, the sample's periods have one (a period no sampled SKU has reads as the base)."""
    r = _rows(panel)
    if day_range is not None:
        controls, every = _controls(r.sub, day_range, units=r.y)
        varies = np.ptp(controls, axis=0) > 0
        r.controls = controls[:, varies]
        r.names = [name for name, v in zip(every, varies, strict=True) if v]
    else:
        day_range = (int(r.sub.day.min()), int(r.sub.day.max()))
    # (a period without sales is the period's news, not a rare control's: `_no_sales` reads it)
    rare = _rare_without_sales(r.controls, r.y, r.sku, r.n)
    rare &= np.array([not name.startswith("period_") for name in r.names], dtype=bool)
    dropped = tuple(name for name, drop in zip(r.names, rare, strict=True) if drop)
    if rare.any():
        r.controls = r.controls[:, ~rare]
        r.names = [name for name, drop in zip(r.names, rare, strict=True) if not drop]
    n, sku, y, trunc, controls, names = r.n, r.sku, r.y, r.trunc, r.controls, r.names
    X = np.column_stack([r.lp, controls])
    beta = np.zeros(X.shape[1])
    beta[0] = -1.0
    alpha = _profile_alpha(y, X @ beta, sku, n, trunc)
    closed = np.r_[False, _no_sales(controls, y)]  # (never the price)
    beta, alpha, m, _wt, Xc, info = _pooled(
        y, X, sku, n, trunc, beta, alpha, iterations, unbounded=closed
    )
    if trunc is not None:  # sale-day rows: the dispersion matters for the truncation
        k = _dispersion_k(y, np.exp(X @ beta + alpha[sku]), trunc)
        if k > 0:
            trunc = Truncation(trunc, k)
            alpha = _profile_alpha(y, X @ beta, sku, n, trunc, alpha)
            beta, alpha, m, _wt, Xc, info = _pooled(
                y, X, sku, n, trunc, beta, alpha, iterations, unbounded=closed
            )
    # the counts' noise beyond each SKU's own response to price (its own slope, the rest at the
    # pooled fit), not the one pooled slope's misfit of SKUs whose slopes differ
    offset = controls @ beta[1:]
    own = _newton_per_sku(y, (r.lp,), (0.0,), offset, sku, n, trunc, beta[0], alpha, K_STEPS)
    eta = own.alpha[sku] + own.coef[sku, 0] * r.lp + offset
    weight_k = _weights_k(y, np.exp(np.clip(eta, -30, 30)), sku, n, trunc)
    del offset, own, eta
    _check_pooled(beta, names, closed)
    beta = np.where(closed, CLOSED_COEF, beta)
    # Standard errors that hold under overdispersion and correlation within a SKU: the
    # sandwich clustered by SKU (every SKU's days are one cluster), never below the model's.
    bread = np.linalg.pinv(info)
    residual = y - m
    scores = np.column_stack(
        [np.bincount(sku, weights=Xc[:, j] * residual, minlength=n) for j in range(X.shape[1])]
    )
    clusters = int(np.count_nonzero(np.bincount(sku, minlength=n)))
    meat = scores.T @ scores * (clusters / max(clusters - 1, 1))
    robust = bread @ meat @ bread
    diagonal = np.maximum(np.diag(robust), np.diag(bread))
    cov = np.where(np.eye(len(beta), dtype=bool), diagonal, robust)
    pooled = Pooled(
        beta=beta,
        cov=cov,
        names=names,
        day_range=(int(day_range[0]), int(day_range[1])),
        competitor=r.sub.competitor_price is not None
        and bool(np.isfinite(r.sub.competitor_price).any()),
        truncated=trunc is not None,
        nb_k=float(getattr(trunc, "k", 0.0)) if trunc is not None else 0.0,
        ramp_sd=_ramp_sd(r.sub) if ramp_sd is None else ramp_sd,
        time_effects=panel.time_effects,
        alpha=alpha,
        closed=tuple(name for name, dead in zip(names, closed[1:], strict=True) if dead),
        rare=dropped,
        unlisted=() if panel.time_effects else _unlisted(r.sub.day, r.trunc, day_range),
        weight_k=float(weight_k),
        counts_k=float(weight_k),
    )
    # (the row-length arrays go before the choice fits its sample twice)
    del r, X, Xc, m, _wt, residual, scores, y, sku, trunc, controls
    return _choose_weights(panel, pooled, iterations)


# The SKUs the choice of weights fits twice (`_choose_weights`; spread over the catalog as the
# partitioned fit's pooled sample is, `sample_ranges`)
WEIGHTS_SAMPLE_SKUS = 400
# The fewest SKUs read on their own data whose variances it compares: with fewer the median is
# too noisy to go against the negative binomial's weights, which the counts call for
WEIGHTS_MIN_SKUS = 30


def _choose_weights(panel: Panel, pooled: Pooled, iterations: int) -> Pooled:
    """The negative binomial's weights where they are the surer, else Poisson's: each SKU's own
    fit (`fit_block`, `reduce`) on both, on up to WEIGHTS_SAMPLE_SKUS of the panel's SKUs, and
    the negative binomial's kept (`weight_k` = `counts_k`) where the median SKU's stated
    variance of its slope at today's price is below Poisson's (`weights_ratio`, their ratio;
    over the SKUs read on their own data, WEIGHTS_MIN_SKUS of them at least: with fewer, or
    nothing sold in the sample, the negative binomial's, as the counts call for). Near a ratio
    of 1 the two are about as sure as each other, and which one a retrained version takes
    changes little (the demo grocer at 1.06: 543 changes on Poisson's, 531 on the other).
    Both weights give estimating equations that hold whatever the variance, so each slope is
    unbiased either way, and its variance as the fit states it (the sandwich over blocks of
    days and held prices, the dispersion, the shrinkage) says which is the surer. The negative
    binomial's are the efficient ones where each day's noise is its own; where prices are held
    for months and a demand shock lasts weeks, a held price's days share one shock and the few
    days a promotion moves the price are most of what a slope is read from, and those busy
    days are the ones its weights weigh least: there the stated variance was 1.3 x Poisson's
    and the captured lift 0.30 against 0.55 (RESULTS). Read on Poisson weights after all, the
    counts' k stays in `counts_k`."""
    if not pooled.weight_k > 0:
        return pooled
    n = block_size(panel)
    ranges = sample_ranges(n, WEIGHTS_SAMPLE_SKUS)
    if ranges == [(0, n)]:
        sample = panel
    else:
        sample = concatenate([block_of(panel, low, high) for low, high in ranges])
    units, price = np.asarray(sample.units, float), np.asarray(sample.price, float)
    if not np.any(np.isfinite(units) & (units > 0) & np.isfinite(price) & (price > 0)):
        return pooled  # (nothing sold in the sample: nothing to compare)
    whole = sample is panel  # (its fit on the chosen weights is fit_demand's: kept)
    size = block_size(sample)
    # (the whole panel as fit_demand fits it, from the pooled fit's intercepts)
    start = pooled.alpha if whole and len(pooled.alpha) == size else None
    se, own, fits = [], True, []
    for k in (pooled.weight_k, 0.0):
        trial = replace(pooled, weight_k=k)
        block = fit_block(sample, trial, iterations, alpha=start, n=size)
        fit = reduce([block], trial, sample.category)
        fits.append(fit)
        se.append(np.asarray(fit.elasticity_se, float))
        # only SKUs read on their own data (one that never sold, or took its category's
        # slope, states the same prior either way)
        own = own & np.isfinite(fit.raw_se)
        if fit.from_prior is not None:
            own = own & ~(np.asarray(fit.from_prior) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (se[0] / se[1]) ** 2
    ratio = ratio[own & np.isfinite(ratio) & (ratio > 0)]
    median = float(np.median(ratio)) if len(ratio) else float("nan")
    # too few to judge: the weights the counts call for
    chosen = 1 if len(ratio) >= WEIGHTS_MIN_SKUS and not median < 1.0 else 0
    return replace(
        pooled,
        weight_k=(pooled.weight_k, 0.0)[chosen],
        weights_ratio=median,
        whole_fit=replace(fits[chosen], weights_ratio=median) if whole else None,
    )


def _unlisted(day: np.ndarray, trunc, day_range: tuple[int, int]) -> tuple[str, ...]:
    """The weekdays (`dow_K`, K the day ordinal mod 7) on which no row falls over four weeks
    or more, where every other weekday has UNLISTED_MIN_ROWS rows or more that are there
    whatever sold (not zero-truncated): a daily report that lists only the days the shop is
    open has no row to read a closed weekday's zero from (its dummy never varies, so it is no
    closed control). An order export's rows are there because something sold, and a weekday
    without one says nothing of whether the shop was open (review: lumpy orders of a few SKUs
    read 2 of 7 weekdays closed in most runs)."""
    if day_range[1] - day_range[0] < 27 or not len(day):
        return ()
    weekday = (np.asarray(day) % 7).astype(int)
    listed = np.bincount(weekday, minlength=7) > 0  # any row: a sale there is news of it
    solid = weekday if trunc is None else weekday[~np.asarray(trunc, bool)]
    rows = np.bincount(solid, minlength=7)
    if listed.all() or not rows.any() or rows[rows > 0].min() < UNLISTED_MIN_ROWS:
        return ()
    return tuple(f"dow_{k}" for k in range(7) if not listed[k])


UNLISTED_MIN_ROWS = 4  # a row on every open weekday of four weeks, for one SKU


@dataclass
class BlockFit:
    """Stage 2 for one block of SKUs (0..n-1 of its panel): every per-SKU quantity of the fit
    given the pooled one, and the per-SKU parts of the tenant-wide quantities the reduce
    completes (the dispersion behind every standard error, the mean offset of the intercepts,
    the recent level, which needs the shrunk slopes)."""

    n: int
    rows: np.ndarray  # rows per SKU
    typical: np.ndarray
    alpha: np.ndarray
    straight: np.ndarray  # the straight (kernel-weighted) slope, NaN where not identified
    slope_var: dict  # _variance_parts of the slope
    raw_c: np.ndarray
    raw_c_se: np.ndarray  # before the dispersion
    curvature_var: dict | None  # _variance_parts of the curvature (None: stored before it)
    sold: np.ndarray
    last: np.ndarray
    centre: np.ndarray
    share: np.ndarray | None  # share of each SKU's days with a known competitor gap
    hinge: np.ndarray  # NaN where not fitted
    hinge_se: np.ndarray  # before the dispersion
    b_joint: np.ndarray
    b_joint_se: np.ndarray
    hinge_var: dict | None  # _variance_parts of the hinge (its eligible rows)
    offset_sum: float
    offset_rows: int
    price_low: np.ndarray
    price_high: np.ndarray
    gap_low: np.ndarray
    gap_high: np.ndarray
    # the rows of the last LEVEL_WINDOW_DAYS (for the recent level)
    recent_sku: np.ndarray
    recent_y: np.ndarray
    recent_x: np.ndarray
    recent_trunc: np.ndarray | None
    # the correlation of b_joint's and the hinge's errors in the joint fit (NaN where not
    # fitted; None: a block stored before it was read, taken as 0)
    b_joint_corr: np.ndarray | None = None
    # the promotion's part of each recent row's offset (its flag and discount depth at the
    # pooled coefficients) and its sum over the open rows: the intercepts and the recent level
    # are a day's at the shelf price (None: a block stored before it, the average day's)
    recent_promo: np.ndarray | None = None
    promo_sum: float | None = None
    # each recent row's position above the competitor on the buyers' ramp (NaN: no reading),
    # and per SKU today's (today's price against the median of the last week's readings,
    # TODAY_READINGS_DAYS; NaN: none): the recent level is read at today's position through
    # the SKU's hinge (None: a block stored before positions were kept)
    recent_ramp: np.ndarray | None = None
    ramp_today: np.ndarray | None = None
    # per SKU today's position itself, log(today's price / the competitor's price today,
    # Panel.competitor_today, else the last week's rows' median), within the positions the SKU
    # was seen at (NaN: none; None: a block stored before it): stored with the estimates, so a
    # reprice carries the level where the price or the competitor's has moved since
    # (ml.selectors.demand_curve)
    gap_today: np.ndarray | None = None
    # per SKU the competitor's price gap_today is against and the days of its week whose
    # lowest price was read that day (NaN and 0: none; 0 too where not counted; None: a block
    # stored before them): stored, a reprice tells the competitor's move since from the
    # product's own as the fit read the competitor, whatever was imported after
    competitor_then: np.ndarray | None = None
    competitor_then_k: np.ndarray | None = None
    # the curvature read beside the hinge (its model s.e. before the dispersion) and how the
    # hinge and the slope at `centre` move with it (`_JointBend`; NaN, inf, 0 where not read;
    # None: a block stored before it): a clear hinge's curve bends as its own joint fit reads
    joint_c: np.ndarray | None = None
    joint_c_se: np.ndarray | None = None
    joint_c_hinge: np.ndarray | None = None
    joint_c_slope: np.ndarray | None = None


def fit_block(
    panel: Panel,
    pooled: Pooled,
    iterations: int = 25,
    alpha: np.ndarray | None = None,
    n: int | None = None,
    every_origin: bool = False,
) -> BlockFit:
    """Stage 2: each SKU's own slope, curvature and hinge above the competitor, with everything
    shared held at `pooled`. `alpha`: start intercepts per SKU (NaN: from the closed form).
    `every_origin`: the hinge's error blocks for every origin of the 14-day grid (a block
    cannot know the first day of the other blocks' eligible rows; the reduce picks one)."""
    r = _rows(panel, n, pooled)
    n, sku, y, price, trunc, sub, lp = r.n, r.sku, r.y, r.price, r.trunc, r.sub, r.lp
    day, weight, typical, names, beta = sub.day, r.weight, r.typical, r.names, pooled.beta
    # Per-SKU slopes, everything else at the pooled fit.
    # The pooled extra slope above the competitor keeps the SKUs whose demand collapses there
    # (anchored to the competitor's price) from loading their collapse on the gap's coefficient,
    # which every SKU's elasticity carries; it is left out of the per-SKU fits, where each SKU's
    # own hinge is fitted.
    beta_offset = beta.copy()
    if "competitor_above" in names:
        beta_offset[1 + names.index("competitor_above")] = 0.0
    offset = r.controls @ beta_offset[1:]
    # the promotion's part of it (flag and discount depth): none on a day at the shelf price
    promo_cols = [j for j, name in enumerate(names) if name in PROMO_CONTROLS]
    promo_part = r.controls[:, promo_cols] @ beta_offset[1:][promo_cols]
    # the average day the intercepts are read at: of the rows of no closed control
    shut, open_rows = open_days(r.controls, names, pooled.closed)
    sold_shut = [names[j] for j in shut if float(y @ r.controls[:, j]) > 0]
    if sold_shut:  # the pooled stage's sample saw nothing sold there; these SKUs sold
        raise PooledFitError(
            f"the demand fit's pooled sample read {', '.join(sold_shut[:3])} as a time nothing "
            "sells, but these SKUs sold then: the fit cannot price them on it"
        )
    if alpha is not None and np.isfinite(alpha).all():
        a = np.asarray(alpha, float).copy()
    else:  # intercepts profiled at the pooled fit (where no start value was given)
        a = _profile_alpha(y, r.controls @ beta[1:] + beta[0] * lp, sku, n, trunc)
        a = a if alpha is None else np.where(np.isfinite(alpha), alpha, a)
    raw = np.full(n, np.nan)
    b = np.full(n, float(beta[0]))
    last = np.zeros(n)
    order = np.lexsort((day, sku))  # by SKU, then day: each SKU's run ends with its latest day
    ends = np.flatnonzero(np.r_[sku[order][1:] != sku[order][:-1], True])
    held = _held(sub, sku, day, lp, order)
    last[sku[order][ends]] = lp[order][ends]
    seen_low = _per_sku(np.minimum, lp, sku, n, np.inf)  # each SKU's prices' range, in logs
    seen_high = _per_sku(np.maximum, lp, sku, n, -np.inf)
    if panel.current_price is not None:  # the slope where the decision is made: today's price,
        with np.errstate(divide="ignore", invalid="ignore"):  # where the SKU's prices reach it
            today = np.log(np.asarray(panel.current_price, float) / typical)
        low, high = seen_low - LOCAL_BANDWIDTH, seen_high + LOCAL_BANDWIDTH
        last = np.where(np.isfinite(today) & (today >= low) & (today <= high), today, last)
    kw = np.exp(-0.5 * ((lp - last[sku]) / LOCAL_BANDWIDTH) ** 2) if LOCAL_BANDWIDTH else 1.0
    k = pooled.weight_k
    for _ in range(iterations):
        eta = a[sku] + b[sku] * lp + offset
        m, var_b = _mean_weight(eta, trunc)
        q = _row_weight(eta, var_b, k, trunc)
        wt = var_b * kw * q
        s0 = np.bincount(sku, weights=wt, minlength=n)
        s1 = np.bincount(sku, weights=wt * lp, minlength=n)
        s2 = np.bincount(sku, weights=wt * lp * lp, minlength=n)
        res = (y - m) * kw * q
        g = np.bincount(sku, weights=res * (lp - (s1 / np.maximum(s0, 1e-12))[sku]), minlength=n)
        info_b = s2 - s1 * s1 / np.maximum(s0, 1e-12)
        step = np.where(info_b > 1e-9, g / np.maximum(info_b, 1e-9), 0.0)
        b = np.clip(b + np.clip(step, -1, 1), -20, 5)
        a = _profile_alpha(y, b[sku] * lp + offset, sku, n, trunc, a)
        if np.max(np.abs(step)) < 1e-7:
            break
    has = (info_b > 1e-9) & (np.bincount(sku, weights=y, minlength=n) > 0)
    raw[has] = b[has]
    # Where the straight fit's slope sits on a bent curve: the weighted least-squares slope of
    # log units that bend with log price is the curve's slope near the weighted mean log price
    # of the SKU's days, and with Poisson weights (more units at lower prices, promotions) that
    # mean lies below the kernel's centre. The curvature carries the slope from there (reading
    # it at the centre made bent curves look less elastic at today's price: the simulator's
    # S-shaped curves by 0.2). On a lopsided spread of prices (a sticky price held for months
    # at a few levels, deep promotions on a few days) the straight slope is the curve's slope
    # not at that mean but half the spread's skew (third over second central moment) from it:
    # of a quadratic, the straight fit's slope is b + c m3 / m2 at the mean (two prices: the
    # slope midway between them). It stays inside the prices the SKU was seen at.
    mean = s1 / np.maximum(s0, 1e-12)
    s3 = np.bincount(sku, weights=wt * lp**3, minlength=n)
    m2 = s2 / np.maximum(s0, 1e-12) - mean**2
    m3 = s3 / np.maximum(s0, 1e-12) - 3 * mean * s2 / np.maximum(s0, 1e-12) + 2 * mean**3
    with np.errstate(divide="ignore", invalid="ignore"):
        skewed = np.where(m2 > 1e-9, mean + m3 / (2 * m2), mean)
    skewed = np.clip(np.nan_to_num(skewed, nan=0.0), seen_low, seen_high)
    centre = np.where(has, skewed, last)
    day0 = pooled.day_range[0]
    # the score's row weight kw q; the model's variance of a row var_b / q (negative binomial)
    slope_var = _variance_parts(
        y, m, var_b * kw, lp, sku, day, n, s0, s1, np.maximum(info_b, 1e-12), kw * q, var_b / q,
        [day0], held, floor_var=None if k == 0 else _nb_variance(eta, 0.0, trunc),
    )  # fmt: skip
    del eta
    sold = np.bincount(sku, weights=y, minlength=n) > 0

    # Curvature: log units quadratic in log price, slope and curvature per SKU fitted together
    # (SKUs whose prices do not show a curve get their category's).
    # The slope stays the straight fit's (the average slope over the SKU's prices: steadier
    # than the joint fit's slope when the history is short); the curvature bends it.
    raw_c, raw_c_se, (m_c, w_c, effective_c, info_c, q_c, poisson_c) = _curvature(
        y, lp, offset, sku, n, trunc, b, a, iterations, k=k
    )
    raw_c = np.where(sold, raw_c, np.nan)
    # its s.e. as honest as the slope's: a sticky price's few levels and a run of shocks
    # correlate its errors over days, as the slope's
    curvature_var = _variance_parts(
        y, m_c, w_c, effective_c, sku, day, n, np.ones(n), np.zeros(n),
        np.maximum(info_c, 1e-12), q_c, w_c / q_c, origins=[day0], since=held,
        floor_var=None if k == 0 else poisson_c,
    )  # fmt: skip
    del m_c, w_c, effective_c, q_c, poisson_c  # row-length: not held through the hinge's fit
    # The hinge above the competitor, fitted together with the slope and the curvature: where
    # a SKU's demand clearly falls faster above the competitor's price, its slope is the one
    # below it.
    h, h_se = np.full(n, np.nan), np.full(n, np.inf)
    b_joint, b_joint_se = np.full(n, np.nan), np.full(n, np.inf)
    b_joint_corr = np.full(n, np.nan)
    hinge_var = None
    bend = _JointBend(np.full(n, np.nan), np.full(n, np.inf), np.zeros(n), np.zeros(n))
    if sub.competitor_price is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.log(price / np.asarray(sub.competitor_price, float))
        # on the ramp as buyers meet it: the reading carried over days is off by its jitter
        g = np.where(np.isfinite(gap), ramp(gap, pooled.ramp_sd), 0.0)
        # only SKUs seen both above and below the competitor can show a hinge
        above = np.bincount(sku, weights=np.nan_to_num(gap) > 0, minlength=n)
        eligible = (above > 0) & (above < np.bincount(sku, minlength=n))
        e = eligible[sku]
        if e.any():
            t = None if trunc is None else trunc[e]
            # (on Poisson weights: its doubt on the negative binomial's reads only the counts'
            # noise of the few days above the competitor, where the collapse's shape, which the
            # ramp only approximates, errs more: RESULTS.md)
            h, h_se, b_joint, b_joint_se, b_joint_corr, parts, bend = _joint_fit(
                y[e], lp[e], offset[e], sku[e], n, t, b, a, iterations, g[e], HINGE_PRIOR_SD,
                centre,
            )  # fmt: skip
            m_r, w_r, effective, info_h, _q, _poisson = parts
            # its s.e. as honest as the slope's: dispersion and correlation over days
            first = int(day[e].min())
            # origins at or before the first day (every residue mod SE_BLOCK_DAYS once)
            origins = range(first - SE_BLOCK_DAYS + 1, first + 1) if every_origin else [first]
            hinge_var = _variance_parts(
                y[e], m_r, w_r, effective, sku[e], day[e], n, np.ones(n), np.zeros(n),
                np.maximum(info_h, 1e-12), origins=list(origins), since=[s[e] for s in held],
            )  # fmt: skip
            hinge_var["first"] = first
    # (a closed day's nothing sold is no news of the level of the days the shop is open)
    recent = (day > pooled.day_range[1] - LEVEL_WINDOW_DAYS) & open_rows
    # (NaN, not None: a block that knows no position today, not one staged before positions)
    recent_ramp, ramp_today, gap_today = None, np.full(n, np.nan), np.full(n, np.nan)
    competitor_then, competitor_then_k = np.full(n, np.nan), np.zeros(n, np.int64)
    # the positions against the competitor each SKU was seen at (stored: a curve's evidence)
    gap_low = _gap_range(price, sub.competitor_price, sku, n, np.minimum, np.inf)
    gap_high = _gap_range(price, sub.competitor_price, sku, n, np.maximum, -np.inf)
    if sub.competitor_price is not None:
        comp = np.asarray(sub.competitor_price, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            on_ramp = np.where(np.isfinite(gap), ramp(gap, pooled.ramp_sd), np.nan)
            # today's price: the panel's, else the latest day's without a promotion (a paid
            # price below the shelf's is no position the level is read at)
            plain = np.ones(len(sku), dtype=bool)
            if sub.promo is not None:
                plain &= np.asarray(sub.promo, float) == 0
            if sub.discount is not None:
                plain &= ~(np.nan_to_num(np.asarray(sub.discount, float)) < -0.01)
            now = _latest_per_sku(price, day, sku, n, plain)
            if panel.current_price is not None:
                given = np.asarray(panel.current_price, float)
                now = np.where(np.isfinite(given) & (given > 0), given, now)
            # against the competitor's price today as a reprice reads it again (every day of
            # the last week's), else the median of the SKU's rows of the history's last week:
            # one reading's jitter times a steep hinge would move the level by a quarter
            if panel.competitor_today is not None:
                read = np.asarray(panel.competitor_today, float)
                if panel.competitor_today_k is not None:
                    competitor_then_k = np.asarray(panel.competitor_today_k, np.int64)
            else:  # (the days' readings not counted: 0, read as one reading's jitter)
                late = (day > pooled.day_range[1] - TODAY_READINGS_DAYS) & np.isfinite(comp)
                read = _median_per_sku(comp, sku, n, late)
            # (none where no recent day's level is read: no position to carry it from)
            read = np.where(np.bincount(sku[recent], minlength=n) > 0, read, np.nan)
            competitor_then = read
            competitor_then_k = np.where(np.isfinite(read), competitor_then_k, 0)
            # within the positions the SKU was seen at: its days are no evidence of others (as
            # a later curve carries the level, DemandCurve.from_position)
            gap_today = np.clip(np.log(now / read), gap_low, gap_high)
            ramp_today = ramp(gap_today, pooled.ramp_sd)
        recent_ramp = on_ramp[recent]
    return BlockFit(
        n=n,
        rows=weight,
        typical=typical,
        alpha=a,
        straight=raw,
        slope_var=slope_var,
        raw_c=raw_c,
        raw_c_se=raw_c_se,
        curvature_var=curvature_var,
        sold=sold,
        last=last,
        centre=centre,
        share=_gap_share(r) if "competitor_gap" in names else None,
        hinge=h,
        hinge_se=h_se,
        b_joint=b_joint,
        b_joint_se=b_joint_se,
        hinge_var=hinge_var,
        offset_sum=float(np.sum(offset[open_rows])),
        offset_rows=int(np.count_nonzero(open_rows)),
        price_low=np.where(weight > 0, _per_sku(np.minimum, price, sku, n, np.inf), np.nan),
        price_high=np.where(weight > 0, _per_sku(np.maximum, price, sku, n, -np.inf), np.nan),
        gap_low=gap_low,
        gap_high=gap_high,
        recent_sku=sku[recent],
        recent_y=y[recent],
        recent_x=lp[recent],
        recent_trunc=None if trunc is None else trunc[recent],
        b_joint_corr=b_joint_corr,
        recent_promo=promo_part[recent],
        promo_sum=float(np.sum(promo_part[open_rows])),
        recent_ramp=recent_ramp,
        ramp_today=ramp_today,
        gap_today=gap_today,
        competitor_then=competitor_then,
        competitor_then_k=competitor_then_k,
        joint_c=bend.curvature,
        joint_c_se=bend.se,
        joint_c_hinge=bend.hinge_per,
        joint_c_slope=bend.slope_per,
    )


def _gap_share(r: _Rows) -> np.ndarray:
    """Per SKU, the share of its days on which the competitor gap is known."""
    rows = np.maximum(np.bincount(r.sku, minlength=r.n), 1)
    flag = "competitor_gap_unknown"  # dropped when the gap is known on every day
    unknown = r.controls[:, r.names.index(flag)] if flag in r.names else np.zeros(len(r.sku))
    return 1.0 - np.bincount(r.sku, weights=unknown, minlength=r.n) / rows


def _concat(blocks: list[BlockFit], name: str) -> np.ndarray:
    return np.concatenate([getattr(block, name) for block in blocks])


def _no_rows(n: int, origin: int) -> dict:
    """_variance_parts of SKUs without a row (a block without a hinge to fit)."""
    zero = np.zeros(n)
    info2 = np.full(n, 1e-24)  # as np.maximum(info, 1e-12) ** 2 of no rows
    return {"pearson": zero, "df": zero, "model": zero, "model_floor": zero, "info2": info2,
            "meat": [zero], "clusters": [np.full(n, np.inf)], "origins": [origin]}  # fmt: skip


def _variance_of(parts: list[dict], origin: int | None = None):
    """The tenant's dispersion and each SKU's variance from the blocks' _variance_parts (in
    SKU order): the formula of the one-process fit over all of them. `origin`: the first day of the
    error blocks' grid (a block that computed every origin has one per residue mod 14). Also
    each SKU's variance with the factor for few clusters on the sandwich (`_few_clusters`), for
    the s.e. a decision reads: not the variance that the spread between SKUs and the shrinkage
    read (`_widen`)."""

    def pick(p, key):
        if origin is None or len(p["origins"]) == 1:
            return p[key][0]
        residues = [o % SE_BLOCK_DAYS for o in p["origins"]]
        return p[key][residues.index(origin % SE_BLOCK_DAYS)]

    pearson = np.concatenate([p["pearson"] for p in parts])
    df = np.concatenate([p["df"] for p in parts])
    model = np.concatenate([p["model"] for p in parts])
    info2 = np.concatenate([p["info2"] for p in parts])
    meat = np.concatenate([pick(p, "meat") for p in parts])
    clusters = np.concatenate([pick(p, "clusters") for p in parts])
    # the dispersion's floor: Poisson counts (1 where the score's variance is a Poisson's; below
    # 1 under the negative binomial's weights, whose variance has room for k mu^2 more)
    floor_model = np.concatenate([p.get("model_floor", p["model"]) for p in parts])
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.clip(np.where(model > 0, floor_model / model, 1.0), 0.0, 1.0)
    floor = np.nan_to_num(floor, nan=1.0)
    tenant = _tenant_dispersion(pearson, df, floor)
    phi = (pearson + DISPERSION_PRIOR_ROWS * tenant) / (df + DISPERSION_PRIOR_ROWS)
    phi = np.maximum(phi, floor)
    variance = np.maximum(phi * model / info2, meat / info2)
    # with the factor on the sandwich, which few clusters make noisy (the model's variance
    # reads every row): never below the variance
    widened = np.maximum(phi * model / info2, meat * _few_clusters(clusters) / info2)
    return variance, phi, tenant, widened


# A SKU's dispersion counts toward the tenant's at most this many times the median SKU's
# (`_central`): a few absurd fits do not set it; a skewed but real spread of SKUs does.
DISPERSION_CAP = 4.0


def _central(ratio, weight) -> float:
    """The weighted mean of `ratio` with each value capped at DISPERSION_CAP x the weighted
    median (not the median itself: the dispersions of slow SKUs' counts are skewed, and their
    median reads low; not the plain mean: a few SKUs whose own fit is absurd read thousands)."""
    order = np.argsort(ratio, kind="stable")
    cumulative = np.cumsum(weight[order])
    median = ratio[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])]
    capped = np.minimum(ratio, DISPERSION_CAP * median) if median > 0 else ratio
    return float(np.sum(weight * capped) / np.sum(weight))


def _tenant_dispersion(pearson, df, floor=None) -> float:
    """The tenant's Pearson dispersion, each SKU's pull (`_variance_of`): the SKUs' own (Pearson
    over degrees of freedom; a SKU that never sold has none), weighted by their degrees of
    freedom, each capped at DISPERSION_CAP x the median SKU's (`_central`). Not the ratio of
    the sums: a few SKUs whose own fit is absurd (a slope at its clip, a mean near 0 on a day
    that sold) carry residuals of thousands of times their variance, and on a real grocer's
    year 1 % of its SKUs made that ratio 6.9 where the SKUs' own read 1.5 (and every SKU with
    few days of its own took it). At least the floor's likewise (the dispersion of Poisson
    counts: 1 under Poisson weights, below 1 under the negative binomial's)."""
    ok = df > 0
    if not ok.any():
        return 1.0
    lowest = 1.0 if floor is None else _central(np.asarray(floor)[ok], df[ok])
    return max(_central(pearson[ok] / df[ok], df[ok]), lowest)


def reduce(blocks: list[BlockFit], pooled: Pooled, category=None, recent=None) -> DemandFit:
    """Stage 3: the blocks' SKUs in order (block 0's SKUs first) as one fit: the standard
    errors with the tenant's dispersion, the hinges, the empirical-Bayes shrinkage SKU ->
    category -> pooled, the intercepts at the tenant's mean offset and recent level.
    `recent(j)`: block j with its recent rows, where `blocks` were read without them (one
    block's rows in memory at a time)."""
    n = sum(block.n for block in blocks)
    beta, cov, names = pooled.beta, pooled.cov, pooled.names
    pooled_e, pooled_se = float(beta[0]), float(np.sqrt(max(cov[0, 0], 0.0)))
    variance, phi, dispersion, widened = _variance_of([block.slope_var for block in blocks])
    raw = _concat(blocks, "straight")
    has = np.isfinite(raw)
    raw_se = np.full(n, np.inf)
    raw_se[has] = np.sqrt(variance[has])
    raw_c = _concat(blocks, "raw_c")
    raw_c_se = _concat(blocks, "raw_c_se") * np.sqrt(phi)  # overdispersion widens it too
    widen_c = np.ones(n)
    if all(block.curvature_var is not None for block in blocks):
        # and errors correlated over days (the sandwich, as the slope's): never below
        parts = [block.curvature_var for block in blocks]
        robust_c, _phi_c, _tenant_c, widened_c = _variance_of(parts)
        model_c = raw_c_se
        raw_c_se = np.where(np.isfinite(raw_c_se), np.maximum(raw_c_se, np.sqrt(robust_c)),
                            raw_c_se)  # fmt: skip
        widen_c = _widen(raw_c_se**2, np.maximum(model_c**2, widened_c))
    hinge, hinge_se = np.zeros(n), np.full(n, np.inf)
    clear, joint_corr = np.zeros(n, dtype=bool), np.zeros(n)
    fitted = [block.hinge_var for block in blocks if block.hinge_var is not None]
    if fitted:
        first = min(part["first"] for part in fitted)
        parts = [block.hinge_var or _no_rows(block.n, first) for block in blocks]
        # (the hinge's s.e. is read as a variance by the catalog's spread of hinges: no
        # factor for few clusters)
        robust, phi_h, _tenant_h, _widened_h = _variance_of(parts, first)
        # the joint fit weighs days as Poisson counts: its model s.e.s scale by the Pearson
        # dispersion of that variance (the slope's where it is the same, Poisson weights)
        phi_joint = phi if pooled.weight_k == 0 else phi_h
        h, b_joint = _concat(blocks, "hinge"), _concat(blocks, "b_joint")
        h_se = np.maximum(_concat(blocks, "hinge_se") * np.sqrt(phi_joint), np.sqrt(robust))
        b_joint_se = _concat(blocks, "b_joint_se") * np.sqrt(phi_joint)
        clear = has & np.isfinite(h) & (h + HINGE_Z * h_se < 0) & np.isfinite(b_joint)
        known = has & np.isfinite(h) & np.isfinite(h_se)
        hinge, hinge_se = np.where(known, h, 0.0), np.where(known, h_se, np.inf)
        raw = np.where(clear, b_joint, raw)
        corr = [np.full(b.n, np.nan) if b.b_joint_corr is None else b.b_joint_corr for b in blocks]
        joint_corr = np.where(clear, np.nan_to_num(np.concatenate(corr)), 0.0)
        raw_se = np.where(clear, np.maximum(raw_se, b_joint_se), raw_se)
        widened = np.where(clear, np.maximum(widened, b_joint_se**2), widened)

    # Empirical Bayes: SKU -> category -> pooled.
    category = np.zeros(n, int) if category is None else np.asarray(category, int)
    # The s.e. that decisions read takes the factor for few clusters on the SKU's own part; the
    # spread between SKUs and the weights read the variance itself.
    widen = _widen(raw_se**2, widened)
    shrunk, shrunk_se, by_cat, weight = _shrink(raw, raw_se, category, pooled_e, pooled_se, widen)
    # A clear hinge moves with its slope's pull: read together, the hinge's error regresses on
    # the slope's (rho s.e.(h) / s.e.(b) per unit; rho < 0, so against the slope's shift), so
    # where the slope is pulled toward its category the hinge moves by that much, the way the
    # slope above the competitor (their sum) stays near what the days above it say; never past
    # clear (HINGE_Z s.e.); applied below, where the slope stays the SKU's own. Its s.e. is left
    # as read (its conditional variance is smaller: conservative, and `slope_hinge_corr`'s
    # covariance holds either way).
    with np.errstate(invalid="ignore", divide="ignore"):
        follow = joint_corr * hinge_se / raw_se * (shrunk - raw)
    follow = np.where(clear & np.isfinite(follow), follow, 0.0)
    # A clear hinge's curve bends as its joint fit reads it: the hinge-free fit's curvature
    # takes the collapse above the competitor for a bend (on 40 of 80 SKUs of straight curves
    # with an extra slope of 8 above the competitor: -11.5, carrying the slope at today's price
    # to -4.3 where the truth is -1.5, and then the hinge on top; -2.6 read beside the hinge).
    # Its s.e. the joint fit's with the dispersion, never below the hinge-free one's where that
    # is read, and widened as that one is for few clusters; shrunk toward the category with the
    # others, and the hinge and the slope follow what the shrinkage moves it by (`_JointBend`;
    # two one-variable regressions added, the slope's and the curvature's: their errors'
    # covariance is small). Where the joint fit reads no bend (the SKU's own prices hardly
    # move), the hinge-free one is the collapse's, not a bend: the category's.
    parts = ("joint_c", "joint_c_se", "joint_c_hinge", "joint_c_slope")
    joint_c = (
        _concat(blocks, "joint_c")
        if fitted and all(getattr(block, f) is not None for block in blocks for f in parts)
        else None
    )
    bent = np.zeros(n, dtype=bool)
    if joint_c is not None:
        bent = clear & np.isfinite(joint_c)
        joint_c_se = _concat(blocks, "joint_c_se") * np.sqrt(phi_joint)
        # (a hinge-free curvature its prices did not identify: s.e. inf, no floor)
        floor_c = np.where(np.isfinite(raw_c_se), raw_c_se, 0.0)
        raw_c = np.where(bent, joint_c, np.where(clear, np.nan, raw_c))
        raw_c_se = np.where(bent, np.maximum(joint_c_se, floor_c),
                            np.where(clear, np.inf, raw_c_se))  # fmt: skip
    # The competitor gap is log(price / competitor): moving the own price moves it too. The
    # own-price elasticity (the competitor's price held fixed) is the slope plus the gap's
    # coefficient, for the share of each SKU's days on which the gap is known (added below).
    gap_shift, gap_var = np.zeros(n), np.zeros(n)
    if "competitor_gap" in names:
        j = 1 + names.index("competitor_gap")
        share = _concat(blocks, "share")
        gap_shift, gap_var = beta[j] * share, (share**2) * max(cov[j, j], 0.0)
    known_c = np.isfinite(raw_c) & np.isfinite(raw_c_se)
    if known_c.any():
        # Shrunk toward what the catalog's curvatures say at the SKU's slope: a curve whose
        # demand runs out at a price (a linear one, an S-curve) bends the more the steeper it
        # is, so a catalog's one mean pulled its steepest curves' bends toward its flat ones'
        # (the simulator's order exports of thin-margin markets: the steepest third of linear
        # curves -3.35 for a true -7.32, 95 % coverage 0.50; raises past where those curves
        # fall away were charged too little risk). The trend is read against the own-price
        # slope (the gap's coefficient is added to `shrunk` below).
        # (the slope's s.e. without the gap coefficient's doubt, common to every SKU: the
        # trend's own fit takes it up)
        trend, trend_var = _curvature_trend(raw_c, raw_c_se, shrunk + gap_shift, shrunk_se)
        resid = raw_c - trend
        prec = 1 / raw_c_se[known_c] ** 2
        pooled_c = float(np.sum(prec * resid[known_c]) / np.sum(prec))
        pooled_c_se = float(np.sqrt(1 / np.sum(prec)))
        curvature, curvature_se, _, weight_c = _shrink(
            resid, raw_c_se, category, pooled_c, pooled_c_se, widen_c
        )
        curvature = curvature + trend
        curvature_se = np.sqrt(curvature_se**2 + (1 - weight_c) ** 2 * trend_var)
    else:
        curvature, curvature_se = np.zeros(n), np.full(n, np.inf)
    curvature = np.clip(curvature, *CURVATURE_RANGE)
    if bent.any():
        moved = np.where(bent, curvature - raw_c, 0.0)
        follow = follow + np.where(bent, _concat(blocks, "joint_c_hinge") * moved, 0.0)
        # (the shrunk slope holds its own estimate with the weight `weight`)
        shrunk = shrunk + np.where(bent, weight * _concat(blocks, "joint_c_slope") * moved, 0.0)
    # the own-price elasticity: the slope plus the gap's coefficient (above)
    shrunk = shrunk + gap_shift
    shrunk_se = np.sqrt(shrunk_se**2 + gap_var)
    own = np.isfinite(raw)
    last, centre = _concat(blocks, "last"), _concat(blocks, "centre")
    if LOCAL_BANDWIDTH:
        # A SKU's own slope belongs to the weighted centre of its days near today's price: the
        # curvature carries it to today's price (where the decision is made and its sign is
        # judged), taking the curvature's doubt along that distance.
        shrunk = np.where(own, shrunk + 2 * curvature * (last - centre), shrunk)
        reach = 2 * (last - centre) * np.nan_to_num(curvature_se, posinf=0.0)
        shrunk_se = np.where(own, np.sqrt(shrunk_se**2 + reach**2), shrunk_se)
    shrunk = np.clip(shrunk, *ELASTICITY_RANGE)
    # Demand that rises with the price is confounding (promotions, seasons, display), not a
    # curve to price on: such a SKU takes its category's elasticity (else the tenant's, else a
    # weak default) with the category's spread as its uncertainty, instead of no estimate.
    shrunk, shrunk_se, from_prior = _sign_fallback(shrunk, shrunk_se, category)
    hinge_read = hinge
    moves = clear & ~from_prior  # (a slope that took its category's is no longer the joint fit's)
    hinge = np.where(moves, np.minimum(hinge + follow, -HINGE_Z * hinge_se - 1e-9), hinge)
    # (and never steeper than the steeper of its reading and -HINGE_FIT_RANGE: a bend pulled
    # far moves it by no more than a collapse the catalog's spread still reads)
    hinge = np.where(moves, np.maximum(hinge, np.minimum(hinge_read, -HINGE_FIT_RANGE)), hinge)
    # The slope's error and the hinge's, where the slope is the hinge's joint fit's: the
    # shrunk slope carries the weight w of its own estimate's error (the category's mean, the
    # gap's coefficient and the curvature's reach are errors of their own), so its covariance
    # with the hinge is w rho s.e.(raw) s.e.(hinge), stated as a correlation on the final s.e.
    # (the joint fit's model correlation, read on the robust s.e.s)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope_hinge_corr = np.where(
            moves & (shrunk_se > 0),
            joint_corr * weight * raw_se / shrunk_se,
            0.0,
        )
    slope_hinge_corr = np.clip(np.nan_to_num(slope_hinge_corr), -0.99, 0.99)
    if LOCAL_BANDWIDTH:
        # Stated at the typical price (as the stored estimates and expected_units read it): the
        # curve's slope at today's price is the local one again. A SKU that took its category's
        # slope keeps its own curvature, so the borrowed slope is restated the same way: at
        # today's price the curve gives the borrowed slope, never a bend back past zero.
        shrunk = np.where(own, shrunk - 2 * curvature * last, shrunk)
    mu_day_controls = 0.0  # the intercept is reported at the average day: controls ~ mean 0
    mean_offset = sum(block.offset_sum for block in blocks) / max(
        sum(block.offset_rows for block in blocks), 1
    )
    # at the shelf price: the average day without its promotions' part (a block stored before
    # the part was kept: the average day's, as it was)
    shelf = all(block.promo_sum is not None for block in blocks)
    if shelf:  # (blocks of one fit staged by two versions: the average day's for all, review)
        mean_offset -= sum(float(block.promo_sum) for block in blocks) / max(
            sum(block.offset_rows for block in blocks), 1
        )
    intercept = _concat(blocks, "alpha") + mu_day_controls + mean_offset
    # the hinge a curve of the fit uses (a clear one): the recent level is read at today's
    # position against the competitor through it (every block's, or none's: blocks staged by
    # a version before positions were kept read none, as before, review)
    positions = all(block.ramp_today is not None for block in blocks)
    used = used_hinge(hinge, hinge_se) if positions else np.zeros(n)
    # (a level read as the year's, with a dummy per period, is at no position: none stored)
    positions_kept = (
        positions and not pooled.time_effects and all(b.gap_today is not None for b in blocks)
    )
    levels, lifts, at = [], [], 0
    for j, block in enumerate(blocks if shelf or not pooled.time_effects else ()):
        own_sku = slice(at, at + block.n)  # per SKU: each block's recent rows, its estimates
        block = block if recent is None else recent(j)
        args = (block.recent_sku, block.recent_x, block.n, block.recent_trunc)
        position = _position(block, used[own_sku])
        level = np.ones(block.n)
        if not pooled.time_effects:
            level = _recent_level(
                block.recent_y, *args, intercept[own_sku], shrunk[own_sku],
                curvature[own_sku], block.recent_promo if shelf else None, position,
            )  # fmt: skip
            levels.append(level)
        if shelf:
            lifts.append(
                _promo_lift(*args, intercept[own_sku] + np.log(level), shrunk[own_sku],
                            curvature[own_sku], block.recent_promo, position)
            )  # fmt: skip
        at += block.n
    if levels:
        intercept = intercept + np.log(np.concatenate(levels))
    return DemandFit(
        elasticity=shrunk,
        elasticity_se=shrunk_se,
        raw_elasticity=raw,
        raw_se=raw_se,
        pooled_elasticity=pooled_e,
        pooled_se=pooled_se,
        category_elasticity=by_cat,
        curvature=curvature,
        curvature_se=curvature_se,
        raw_curvature=raw_c,
        typical_price=_concat(blocks, "typical"),
        intercept=intercept,
        coef_names=["log_price", *names],
        coef=beta,
        price_low=_concat(blocks, "price_low"),
        price_high=_concat(blocks, "price_high"),
        from_prior=from_prior,
        dispersion=dispersion,
        nb_k=pooled.nb_k,
        weight_k=pooled.weight_k,
        counts_k=pooled.counts_k,
        weights_ratio=pooled.weights_ratio,
        competitor_above=hinge,
        competitor_above_se=hinge_se,
        gap_low=_concat(blocks, "gap_low"),
        gap_high=_concat(blocks, "gap_high"),
        ramp_sd=pooled.ramp_sd,
        # the catalog's spread read from the hinges as read (each its own noise of its s.e.)
        hinge_prior=hinge_prior(np.where(np.isfinite(hinge_se), hinge_read, np.nan), hinge_se),
        closed=tuple(pooled.closed),
        open_share=_open_share((*pooled.closed, *pooled.unlisted)),
        slope_hinge_corr=slope_hinge_corr,
        hinge_read=hinge_read,
        promo_lift=np.concatenate(lifts) if shelf and lifts else None,
        ramp_today=_concat(blocks, "ramp_today") if positions else None,
        gap_today=_concat(blocks, "gap_today") if positions_kept else None,
        competitor_then=(
            _concat(blocks, "competitor_then")
            if positions_kept and all(b.competitor_then is not None for b in blocks)
            else None
        ),
        competitor_then_k=(
            _concat(blocks, "competitor_then_k")
            if positions_kept and all(b.competitor_then_k is not None for b in blocks)
            else None
        ),
    )


def _open_share(closed) -> float:
    """The share of calendar days the shop is open: the weekdays nothing sold on, or without a
    row at all (`Pooled.unlisted`), are closed (a closed promotion or past period says nothing
    of the days ahead; a share of rows would count an order export's filled gaps, which a
    closed weekday has only some of)."""
    return 1.0 - sum(1 for name in closed if name.startswith("dow_")) / 7.0


# The ramp's smoothing in units of the competitor readings' jitter: a reading carried over the
# days until the next one is off the day's price by two jitters, the reading's and the day's
# (sqrt 2: what the change between consecutive readings measures).
RAMP_SCALE = np.sqrt(2.0)


def _ramp_sd(panel: Panel) -> float:
    sd = float(panel.competitor_sd or 0.0)
    return RAMP_SCALE * sd if np.isfinite(sd) and sd > 0 else 0.0


def _gap_range(price, competitor, sku, n, reduce, empty):
    if competitor is None:
        return np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.log(price / np.asarray(competitor, float))
    known = np.isfinite(gap)
    out = _per_sku(reduce, gap[known], sku[known], n, empty)
    return np.where(np.isfinite(out), out, np.nan)


LOCAL_BANDWIDTH = 0.25  # log-price distance over which a SKU's slope is local to today's price


WRONG_SIGN = -0.05  # an elasticity above this is no usable price response
DEFAULT_PRIOR = (-1.5, 1.0)  # where not even the tenant's slope is negative: weak, wide
DISPERSION_PRIOR_ROWS = 30.0  # rows of weight on the tenant's dispersion for each SKU's
SE_BLOCK_DAYS = 14  # days whose errors may be correlated (a shock, a display, a season)
# The fewest independent clusters the small-sample correction assumes (t with 2 degrees of
# freedom: a SKU whose slope rests on one or two held prices is not read as certain)
SE_CLUSTERS_MIN = 3.0
# a price within 0.5 % of the row before's, in a band twice as wide around its run's mean
# price, is the same price held (`_held_since`)
HELD_PRICE_TOLERANCE = 0.005
SHRINK_FLOOR = 0.5  # a SKU keeps at least this weight on its own data (see _shrink)
# The catalog's curvature as a trend in the slope (`_curvature_trend`): read where at least
# this many SKUs' curvatures are (within the span), in this many rounds of its weights, where
# its slope terms differ from none at this level, within this middle share of the read slopes
CURVATURE_TREND_MIN = 30
CURVATURE_TREND_ROUNDS = 20
CURVATURE_TREND_P = 0.05
CURVATURE_TREND_SPAN = 0.95


def _per_sku(reduce, values, sku, n, empty):
    out = np.full(n, empty, float)
    reduce.at(out, sku, values)
    return out


def _variance_parts(
    y, m, w, x, sku, day, n, s0, s1, info, kw=1.0, var=None, origins=(0,), since=None,
    floor_var=None,
):  # fmt: skip
    """Per SKU, the parts of the variance of its own price slope that holds when counts are
    overdispersed and errors correlate over nearby days: the larger of (a) the model variance
    scaled by the SKU's Pearson dispersion (shrunk toward the tenant's) and (b) the sandwich
    clustered by blocks of SE_BLOCK_DAYS days from the tenant's first day (one of `origins`):
    the largest of each row in the block of its own day and each row in the block of the day
    its price was set (`since`: a list of such days per row, `_held_runs` and `_held_since`,
    each one sandwich; a price held longer than a block is one cluster; None: the first
    alone). The day blocks are the floor: a slope with an intercept on one or two held prices
    leaves each held price's errors summing to 0, a sandwich of nothing. Also the effective
    number of held-price clusters per SKU (`_clusters`, of the larger held-price sandwich, at
    most the first reading's), for the small-sample factor (`_few_clusters`), which multiplies
    the larger of the two: where the day blocks are the larger (one or two held prices) their
    many blocks are still only as independent as the held prices.
    The tenant's dispersion needs every SKU: _variance_of completes the variance over all the
    blocks' parts (in one process, over the one block)."""
    rows = np.bincount(sku, minlength=n).astype(float)
    # w is the kernel-weighted model weight kw * Var: the Pearson residual uses Var alone (never
    # w / kw: a row far from today's price has kw ~ 0, and one SKU's price jump would then
    # inflate the whole tenant's dispersion)
    var = np.maximum(w if var is None else var, 1e-12)
    pearson = np.bincount(sku, weights=(y - m) ** 2 / var, minlength=n)
    # (a SKU whose units never vary, one that never sold or sold one unit an order, sits at a
    # mean of about 0: its dispersion is no reading, and no part of the tenant's)
    df = np.where(_spread(y, sku, n), np.maximum(rows - 2, 0), 0)
    centred = x - (s1 / np.maximum(s0, 1e-12))[sku]
    score = kw * (y - m) * centred
    share = (kw * centred) ** 2 * var  # each row's part of the score's variance (independent)
    meats, clusters = [], []
    for origin in origins:
        meat, g = _clustered(score, share, sku, day, n, origin)
        if since is not None:  # the larger held-price sandwich, with its own clusters (never
            g = np.full(n, np.inf)  # more than the first reading's: never a smaller factor)
            best = np.full(n, -np.inf)
            for held_since in since:
                held, few = _clustered(score, share, sku, held_since, n, origin)
                g = np.where(held > best, np.minimum(few, g), g)
                best = np.maximum(best, held)
            meat = np.maximum(meat, best)
        meats.append(meat)
        clusters.append(g)
    # the model variance of a kernel-weighted score: phi * sum(kw^2 Var x^2) / info^2
    model = np.bincount(sku, weights=kw * w * centred**2, minlength=n)
    out = {"pearson": pearson, "df": df, "model": model, "info2": info**2, "meat": meats,
           "clusters": clusters, "origins": list(origins)}  # fmt: skip
    if floor_var is not None:  # the same score's variance were the counts Poisson (the floor)
        out["model_floor"] = np.bincount(sku, weights=kw * kw * floor_var * centred**2, minlength=n)
    return out


def _widen(variance, widened) -> np.ndarray:
    """Per SKU, the factor (at least 1) from its variance to the variance with the factor for
    few clusters, where both are finite and positive; 1 elsewhere."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(np.isfinite(variance) & (variance > 0), widened / variance, 1.0)
    return np.maximum(np.nan_to_num(ratio, nan=1.0, posinf=1.0), 1.0)


def _clustered(score, share, sku, day, n: int, origin: int):
    """Per SKU, the sandwich's meat over blocks of SE_BLOCK_DAYS days from `origin` (each row
    in the block of `day`), with the small-sample factor G / (G - 1), and the effective number
    of its clusters (`_clusters`)."""
    block = (day - origin) // SE_BLOCK_DAYS
    width = int(block.max()) + 1
    key = sku.astype(np.int64) * width + block
    uniq, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=score)
    owner = uniq // width
    meat = np.bincount(owner, weights=sums**2, minlength=n)
    groups = np.bincount(owner, minlength=n).astype(float)
    meat = meat * np.where(groups > 1, groups / np.maximum(groups - 1, 1), 1.0)
    return meat, _clusters(np.bincount(inverse, weights=share), owner, n)


def _held(sub: Panel, sku, day, lp, order) -> list[np.ndarray]:
    """Each row's price: held since that day, a promotion's day breaking the run or (where the
    row lists a paid price) not: both where they differ, the sandwich the larger
    (`_variance_parts`). `order`: the rows by SKU, then day."""
    runs = _held_runs(sku, day, lp, order)
    paid = sub.promo
    if paid is not None and sub.discount is not None:  # a listed shelf price is no paid price
        paid = np.where(np.asarray(sub.discount, float) < -0.01, 0.0, paid)
    since = _held_since(sku, day, lp, order, paid, runs)
    return [runs] if np.array_equal(since, runs) else [runs, since]


def _held_since(sku, day, price, order=None, promo=None, runs=None) -> np.ndarray:
    """Per row, the first day of its held price's run (`_held_runs`), promotions apart: where a
    file lists the paid price only, a promotion's day shows its discounted price, and it would
    end the held shelf price's run (the shelf price after it starting a new one: a price held
    for months with a promotion each few weeks read as many held prices, and its interval too
    narrow where demand drifts). A promotion's row (`promo` > 0: a promotion listed at its
    paid price) belongs to the run of its SKU's latest row without one up to its day (the price
    held before it, which goes on after it when the merchant keeps it); where none came before
    (a SKU on promotion from its first day, or on every day), to its run among all rows
    (`runs`, `_held_runs` of every row: computed where not given), as without the flag. The
    sandwich reads held prices both ways and takes the larger, with that reading's number of
    clusters but never more than the first's (`_variance_parts`): reading a promotion inside
    its run never narrows a SKU's own variance nor raises its count of clusters."""
    day = np.asarray(day)
    regular = None if promo is None else ~(np.asarray(promo, dtype=np.float64) > 0)
    runs = _held_runs(sku, day, price, order) if runs is None else runs
    if regular is None or regular.all():
        return runs
    since = runs.copy()
    rows = np.flatnonzero(regular)
    if len(rows):
        since[rows] = _held_runs(sku[rows], day[rows], np.asarray(price)[rows])
    # by SKU, then day, a day's regular row before its promotion's
    by = np.lexsort((~regular, day, sku))
    latest = np.maximum.accumulate(np.where(regular[by], np.arange(len(by)), -1))
    at = np.maximum(latest, 0)
    inherits = (latest >= 0) & (sku[by][at] == sku[by])
    since[by] = np.where(regular[by], since[by], np.where(inherits, since[by][at], runs[by]))
    return since


def _held_runs(sku, day, price, order=None) -> np.ndarray:
    """Per row, the first day of the run of the SKU's rows at the same price that the row
    belongs to: within HELD_PRICE_TOLERANCE of the row before's (a paid price read off revenue
    over units jitters) and in the same band, twice that wide, around the run's mean price (a
    price nudged a little every day is not held: it crosses bands; rows that come back to a
    band are that held price again). A jitter up to about 0.1 % stays held; a larger one splits
    a held price toward the blocks of its days. Days without a row (an order export's days
    without a sale) do not end a run; a missing price does. The sandwich clusters rows by the
    block of that day: a price held for months is one cluster, not one per block of days, since
    every error over those months moves the slope's estimate the same way (a slow drift in
    demand while the price stands still looks like the price's effect); prices that move every
    few days fall in the blocks of their days, as before. `price` in logs; `order`: the rows by
    SKU, then day (sorted here where not given)."""
    price, day = np.asarray(price, dtype=np.float64), np.asarray(day)
    if len(price) < 2:
        return day.copy()
    order = np.lexsort((day, sku)) if order is None else order
    ps, ss = price[order], sku[order]
    starts = np.empty(len(price), bool)
    starts[0] = True
    tolerance = np.log1p(HELD_PRICE_TOLERANCE)
    with np.errstate(invalid="ignore"):
        starts[1:] = ~(np.abs(ps[1:] - ps[:-1]) <= tolerance)
    starts[1:] |= ss[1:] != ss[:-1]
    run = np.cumsum(starts) - 1
    # bands of twice the tolerance around each run's mean price: a drift spans several, a
    # jitter stays in one; a run's rows in one band are one held price, from its first day
    # (a price that wanders out and back is the same price again)
    known = np.isfinite(ps)
    rows = np.bincount(run, weights=known)
    mean = np.bincount(run, weights=np.where(known, ps, 0.0)) / np.maximum(rows, 1)
    with np.errstate(invalid="ignore"):
        band = np.nan_to_num(np.round((ps - mean[run]) / (2 * tolerance))).astype(np.int64)
    span = int(np.max(np.abs(band)))
    _, first, group = np.unique(
        run.astype(np.int64) * (2 * span + 1) + band + span, return_index=True, return_inverse=True
    )
    since = np.empty_like(day)
    since[order] = day[order][first[group.ravel()]]
    return since


def _clusters(share, owner, n: int) -> np.ndarray:
    """Per SKU, the effective number of independent clusters of its estimate: (sum a)^2 /
    sum a^2 over its clusters, a each cluster's part of the score's variance were its rows
    independent (the design's, not the residuals': steady). The kernel around today's price
    weighs far prices little, so a slope that rests on one or two held prices near today's has
    few, whatever the history's length; inf for a SKU without rows."""
    total = np.bincount(owner, weights=share, minlength=n)
    square = np.bincount(owner, weights=share * share, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(square > 0, total * total / square, np.inf)


def _few_clusters(clusters) -> np.ndarray:
    """Per SKU, the factor on the variance of its estimate for the s.e. that decisions read,
    for few independent clusters: with G of them the estimate over its s.e. is about t with
    G - 1 degrees of freedom, not normal (heavy tails: moves judged unlikely to lose money lose
    more often than said), so the variance is scaled by (t_{G-1}(0.975) / z(0.975))^2, the t
    critical values advised for few clusters (Cameron and Miller) stated as a wider s.e. for
    the normal the decisions read. G at least SE_CLUSTERS_MIN; with daily prices over months it
    is in the tens and the factor about 1.1; 1 where unknown (inf)."""
    from scipy.stats import t as student

    g = np.asarray(clusters, dtype=np.float64)
    known = np.isfinite(g)
    g = np.maximum(np.where(known, g, SE_CLUSTERS_MIN), SE_CLUSTERS_MIN)
    ratio = student.ppf(0.975, g - 1) / student.ppf(0.975, np.inf)
    return np.where(known, ratio * ratio, 1.0)


def _sign_fallback(e, se, category):
    """Wrong-sign SKUs take the mean elasticity of the right-sign SKUs of their category (their
    spread as the s.e.), else of the tenant's, else DEFAULT_PRIOR. The means are of final
    estimates, so they carry the competitor gap as every other SKU's does."""
    good = e < WRONG_SIGN
    wrong = ~good
    if good.sum() > 2:
        tenant = (float(np.mean(e[good])), max(float(np.std(e[good])), 0.25))
    else:
        tenant = DEFAULT_PRIOR
    out, out_se = e.copy(), se.copy()
    for cat in np.unique(category[wrong]):
        members = wrong & (category == cat)
        peers = good & (category == cat)
        if peers.sum() > 2:
            out[members] = float(np.mean(e[peers]))
            out_se[members] = max(float(np.std(e[peers])), 0.25)
        else:
            out[members], out_se[members] = tenant
    return out, out_se, wrong


def _recent_level(
    y, sku, x, n, trunc, intercept, slope, curvature, promo=None, position=None
) -> np.ndarray:
    """Per SKU, sold over forecast in the last LEVEL_WINDOW_DAYS of the history (at the prices
    charged), pulled toward 1 by LEVEL_PRIOR units: the level of the near future, where the
    year's average day lags a trend or a season (backtest: 17 % too few units without it).
    `promo` (per row, log units; None: none): the promotion's part of the row's forecast (its
    flag and discount depth at the pooled coefficients): `intercept` is a day's at the shelf
    price, and a promotion in the window lifts what the forecast expects of its day, not the
    level of every day at the shelf price (RESULTS: SKUs priced over 10 % above the competitor
    read a level 27 % above the truth's on the simulator: promotions there take the price below
    the competitor and sell several times a normal day). `position` (per row, log units; None:
    none): the row's position against the competitor to today's through the SKU's hinge
    (`_position`): the level is today's position's, and a day below the competitor (a
    promotion that crosses it, a week the competitor was dearer) sells more by the hinge, not
    by a higher level (SKUs priced over 10 % above a competitor they collapse above read 1.20 x
    the truth's level without it on the standard trap markets, 1.66 x where the collapse is
    steep; 1.00 and 1.17 with it)."""
    s, xr = sku, x  # the rows of the last LEVEL_WINDOW_DAYS (fit_block keeps them)
    eta = intercept[s] + slope[s] * xr + curvature[s] * xr * xr
    if promo is not None:
        eta = eta + promo
    if position is not None:
        eta = eta + position
    m, _w = _mean_weight(eta, trunc)
    sold = np.bincount(s, weights=y, minlength=n)
    expected = np.bincount(s, weights=m, minlength=n)
    return (sold + LEVEL_PRIOR) / (expected + LEVEL_PRIOR)


def _latest_per_sku(values, day, sku, n: int, mask) -> np.ndarray:
    """Per SKU, `values` on its latest day among the rows of `mask` (NaN: none)."""
    out = np.full(n, np.nan)
    rows = np.flatnonzero(mask)
    if len(rows):
        order = rows[np.lexsort((day[rows], sku[rows]))]
        last = np.r_[sku[order][1:] != sku[order][:-1], True]
        out[sku[order][last]] = values[order][last]
    return out


def _median_per_sku(values, sku, n: int, mask) -> np.ndarray:
    """Per SKU, the median of `values` over the rows of `mask` (NaN: none)."""
    out = np.full(n, np.nan)
    rows = np.flatnonzero(mask)
    if len(rows):
        order = rows[np.lexsort((values[rows], sku[rows]))]
        s, v = sku[order], values[order]
        counts = np.bincount(s, minlength=n)
        start = np.cumsum(counts) - counts
        has = counts > 0
        low = start[has] + (counts[has] - 1) // 2
        high = start[has] + counts[has] // 2
        out[has] = (v[low] + v[high]) / 2
    return out


def _position(block: BlockFit, hinge: np.ndarray) -> np.ndarray | None:
    """Per recent row of `block`, log units from its position against the competitor to
    today's, through each SKU's `hinge` (<= 0; 0: none used): h (ramp(row) - ramp(today)); 0
    where either is unknown. None: the block holds no positions (no competitor; staged before
    they were kept)."""
    if block.recent_ramp is None or block.ramp_today is None or not np.any(hinge < 0):
        return None
    s = block.recent_sku
    with np.errstate(invalid="ignore"):
        step = hinge[s] * (block.recent_ramp - block.ramp_today[s])
    return np.where(np.isfinite(step), step, 0.0)


def _promo_lift(sku, x, n, trunc, intercept, slope, curvature, promo, position=None) -> np.ndarray:
    """Per SKU, the units its recent days (the last LEVEL_WINDOW_DAYS, at the prices charged)
    are expected to sell with their promotions over the same days at the shelf price: what a
    shelf day's units (`intercept`, the level's) are multiplied by to read every day's, as the
    stock that sells through or the realised lift of a published change count them, where the
    promotions go on as they went (1 without promotions or recent days; in PROMO_LIFT_RANGE).
    `promo`: each row's promotion part (log units). A row present only because something sold
    (an order export's sale days whose price moved: zero-truncated rows) stands for the days
    like it that sold nothing and are not listed: it is weighed by one over its chance of a
    sale (a shelf day's is the smaller, so the days missing are mostly shelf days)."""
    eta = intercept[sku] + slope[sku] * x + curvature[sku] * x * x
    if position is not None:
        eta = eta + position
    mu = np.exp(np.clip(eta, -30, 30))
    with_promo = mu * np.exp(np.clip(promo, -30, 30))
    weight = np.ones_like(mu)
    if trunc is not None:
        k = getattr(trunc, "k", 0.0)
        log_p0 = -np.log1p(k * with_promo) / k if k > 0 else -with_promo
        weight = np.where(trunc, 1 / np.maximum(-np.expm1(log_p0), 1e-6), 1.0)
    shelf = np.bincount(sku, weights=weight * mu, minlength=n)
    every = np.bincount(sku, weights=weight * with_promo, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where(shelf > 0, every / shelf, 1.0)
    return np.clip(np.nan_to_num(lift, nan=1.0, posinf=PROMO_LIFT_RANGE[1]), *PROMO_LIFT_RANGE)


def _bend_is_read(c, c_se, prior_sd: float = CURVATURE_PRIOR_SD) -> np.ndarray:
    """Where a curvature fitted on a weak prior N(0, prior_sd^2) is informative: its s.e. well
    inside the prior's (the data, not the prior, set it) and the bend not one that runs away
    (|c| under 39)."""
    return (np.asarray(c_se) < 0.7 * prior_sd) & (np.abs(c) < 39)


def _curvature(y, x, offset, sku, n, trunc, b0, a0, iterations, prior_sd=CURVATURE_PRIOR_SD, k=0.0):
    """Per-SKU Newton steps on (slope, curvature) of log units in x = log(price / typical),
    intercepts profiled, with a weak prior N(0, prior_sd^2) on the curvature (where the prices
    hardly move, the data cannot pin a bend down, and the likelihood alone would let it drift).
    Returns the curvature and its s.e. (NaN and inf where the prices do not identify it), and
    for the sandwich `_sandwich_rows`' parts of the curvature. (The hinge above the competitor:
    `_joint_fit`.)"""
    cols = (x, x * x)
    fit = _newton_per_sku(y, cols, (0.0, 1 / prior_sd**2), offset, sku, n, trunc, b0, a0,
                          iterations, k)  # fmt: skip
    c, b = fit.coef[:, 1], fit.coef[:, 0]
    c_se = np.where(fit.ok, np.sqrt(np.maximum(fit.inv[:, 1, 1], 0)), np.inf)
    ok = fit.ok & _bend_is_read(c, c_se, prior_sd) & (np.abs(b) < 19)
    return (
        np.where(ok, c, np.nan),
        np.where(ok, c_se, np.inf),
        _sandwich_rows(fit, cols, 1, y, offset, sku, trunc, k),
    )


@dataclass
class _PerSku:
    """`_newton_per_sku`'s fit: per SKU its coefficients, the (prior-added) information and its
    inverse (0 where not identified), whether the prices identify them (`ok`), the profiled
    intercepts, and each column's weighted mean per SKU."""

    coef: np.ndarray  # (n, k)
    info: np.ndarray  # (n, k, k)
    inv: np.ndarray  # (n, k, k)
    ok: np.ndarray
    alpha: np.ndarray
    means: np.ndarray  # (n, k)


def _newton_per_sku(
    y, cols, prec, offset, sku, n, trunc, b0, a0, iterations, weight_k=0.0
) -> _PerSku:
    """Per-SKU Newton steps on the coefficients of `cols` (the first the slope, started at
    `b0`; the others at 0 under normal priors of precision `prec`), the intercepts profiled in
    closed form after each step (at least one step, `iterations` 0 too: the information the
    s.e.s are read from is the last step's). A step is capped so that the slope moves at most
    1 and the others at most 5; the slope stays in [-20, 5], the others in [-40, 10]. A SKU's
    terms are identified where the slope's information is positive and their correlation
    matrix is not singular (determinant above 1e-6)."""
    k = len(cols)
    prec = np.asarray(prec, dtype=np.float64)
    coef = np.zeros((n, k))
    coef[:, 0] = b0
    a = a0.copy()
    info = np.zeros((n, k, k))
    ok = np.zeros(n, bool)
    means = np.zeros((n, k))
    diag = np.arange(k)

    def linear():  # each row's offset and its SKU's terms
        return offset + sum(coef[sku, j] * cols[j] for j in range(k))

    for _ in range(max(iterations, 1)):
        eta = a[sku] + linear()
        m, w = _mean_weight(eta, trunc)
        q = _row_weight(eta, w, weight_k, trunc)  # (the negative binomial's: score and weight)
        w = w * q
        del eta
        s0 = np.maximum(np.bincount(sku, weights=w, minlength=n), 1e-12)
        sums = [np.bincount(sku, weights=w * c, minlength=n) for c in cols]
        means = np.stack([s / s0 for s in sums], axis=1)
        for j in range(k):
            for i in range(j, k):
                v = np.bincount(sku, weights=w * cols[j] * cols[i], minlength=n)
                info[:, j, i] = info[:, i, j] = v - sums[j] * sums[i] / s0
        info[:, diag, diag] += prec
        grad = (
            np.stack([np.bincount(sku, weights=(y - m) * q * c, minlength=n) for c in cols], axis=1)
            - prec * coef
        )
        scale_diag = np.sqrt(np.maximum(np.einsum("ijj->ij", info), 1e-300))
        with np.errstate(all="ignore"):
            corr = info / scale_diag[:, :, None] / scale_diag[:, None, :]
            det = np.linalg.det(np.where(np.isfinite(corr), corr, 0.0))
        ok = (info[:, 0, 0] > 1e-9) & (det > 1e-6)
        safe = np.where(ok[:, None, None], info, np.eye(k))
        step = np.where(ok[:, None], np.linalg.solve(safe, grad[:, :, None])[:, :, 0], 0.0)
        cap = np.maximum(
            1.0, np.maximum(np.abs(step[:, 0]), np.abs(step[:, 1:]).max(axis=1, initial=0.0) / 5)
        )
        coef = coef + step / cap[:, None]
        coef[:, 0] = np.clip(coef[:, 0], -20, 5)
        coef[:, 1:] = np.clip(coef[:, 1:], -40, 10)
        a = _profile_alpha(y, linear(), sku, n, trunc, a)
        if np.max(np.abs(step / cap[:, None]), initial=0.0) < 1e-7:
            break
    inv = np.where(
        ok[:, None, None], np.linalg.inv(np.where(ok[:, None, None], info, np.eye(k))), 0.0
    )
    return _PerSku(coef=coef, info=info, inv=inv, ok=ok, alpha=a, means=means)


def _joint_fit(y, x, offset, sku, n, trunc, b0, a0, iterations, z, prior_sd, at):
    """Per-SKU Newton steps on (slope, curvature, coefficient of `z`) of log units in x, the
    intercepts profiled, with weak normal priors on the last two (CURVATURE_PRIOR_SD,
    `prior_sd`): the hinge above the competitor read beyond the curve's bend (a curve that
    bends down as the price rises is otherwise read as a hinge wherever the SKU's days above
    the competitor are its dearer days). Returns the third coefficient, its s.e., the slope at
    x = `at` (per SKU: where the straight fit's slope sits) and its s.e. (NaN and inf where
    the prices do not identify them), the correlation of the two's errors (the model's: NaN
    where not identified); and for the sandwich (`_variance_parts` with s1 = 0)
    each row's mean and weight, its effective regressor of the third coefficient (the row's
    part of the coefficient's influence) and that regressor's information (on Poisson weights:
    `_sandwich_rows`' weight factor 1 and no floor); and the curvature read beside the hinge
    (`_JointBend`)."""
    cols = (x, x * x, z)
    prec = (0.0, 1 / CURVATURE_PRIOR_SD**2, 1 / prior_sd**2)
    fit = _newton_per_sku(y, cols, prec, offset, sku, n, trunc, b0, a0, iterations)
    # the prior keeps a hinge the data barely read near none while the fit runs; where the data
    # hold over half of its information it is read as they say (below), so the prior is no
    # part of the reading the rest of the fit shrinks again
    pulled_se = np.where(fit.ok, np.sqrt(np.maximum(fit.inv[:, 2, 2], 0)), np.inf)
    pulled_ok = fit.ok & (pulled_se < 0.7 * prior_sd)
    fit = _without_hinge_prior(fit, prec[2], pulled_ok)
    coef, inv = fit.coef, fit.inv
    h = coef[:, 2]
    b = coef[:, 0] + 2 * coef[:, 1] * at
    h_se = np.where(fit.ok, np.sqrt(np.maximum(inv[:, 2, 2], 0)), np.inf)
    b_var = inv[:, 0, 0] + 4 * at * inv[:, 0, 1] + 4 * at * at * inv[:, 1, 1]
    b_se = np.where(fit.ok, np.sqrt(np.maximum(b_var, 0)), np.inf)
    ok = pulled_ok & fit.ok & (np.abs(h) < 39) & (np.abs(b) < 19)
    b_se = np.where(ok, b_se, np.inf)
    # the correlation of the two's errors as the estimates vary over samples: the priors'
    # information (which only pulls the last two toward 0) out of the sandwich (I+P)^-1 I (I+P)^-1
    # (the hinge's prior already out of `inv` and `info`)
    sampling = inv @ (fit.info - np.diag((*prec[:2], 0.0))[None, :, :]) @ inv
    with np.errstate(divide="ignore", invalid="ignore"):
        s_b = sampling[:, 0, 0] + 4 * at * sampling[:, 0, 1] + 4 * at * at * sampling[:, 1, 1]
        corr = (sampling[:, 0, 2] + 2 * at * sampling[:, 1, 2]) / np.sqrt(s_b * sampling[:, 2, 2])
    return (
        np.where(ok, h, np.nan),
        np.where(ok, h_se, np.inf),
        np.where(ok, b, np.nan),
        b_se,
        np.where(ok & np.isfinite(corr), np.clip(corr, -1.0, 1.0), np.nan),
        _sandwich_rows(fit, cols, 2, y, offset, sku, trunc),
        _JointBend.of(fit, ok, at),
    )


def _without_hinge_prior(fit: _PerSku, p: float, where: np.ndarray) -> _PerSku:
    """The joint fit read without its last coefficient's (the hinge's) prior of precision
    `p`, at the SKUs `where`: one Newton step from the prior's optimum on the same quadratic
    (exact for a quadratic log-likelihood), the inverse information without that prior by
    Sherman and Morrison (inv + p inv e e' inv / (1 - p e' inv e)), the intercepts moved so
    that each SKU's weighted mean of its linear predictor stays. The slope and the bend move
    with the hinge as their errors covary: read beside a hinge pulled toward none, they take
    the part of the collapse the hinge lost (a slope read steeper below the competitor, a bend
    read deeper)."""
    inv = fit.inv
    share = 1 - p * inv[:, 2, 2]  # the data's share of the hinge's information
    use = where & (share > 0.05)
    share = np.where(use, share, 1.0)
    column = inv[:, :, 2]  # inv e
    freed = inv + p * column[:, :, None] * column[:, None, :] / share[:, None, None]
    freed = np.where(use[:, None, None], freed, inv)
    step = np.where(use[:, None], freed[:, :, 2] * (p * fit.coef[:, 2])[:, None], 0.0)
    coef = fit.coef + step
    coef[:, 0] = np.clip(coef[:, 0], -20, 5)
    coef[:, 1:] = np.clip(coef[:, 1:], -40, 10)
    # a step that ends past a coefficient's bound is no joint move: such a SKU reads no hinge
    hit = use & np.any(np.abs(coef - (fit.coef + step)) > 1e-12, axis=1)
    coef = np.where(hit[:, None], fit.coef, coef)
    freed = np.where(hit[:, None, None], inv, freed)
    use = use & ~hit
    moved = coef - fit.coef
    info = fit.info.copy()
    info[use, 2, 2] -= p
    return replace(
        fit,
        coef=coef,
        inv=freed,
        info=info,
        alpha=fit.alpha - np.sum(fit.means * moved, axis=1),
        ok=fit.ok & ~hit,
    )


@dataclass
class _JointBend:
    """The curvature of the joint fit (read beside the hinge, where the hinge-free fit's takes
    a collapse above the competitor for a bend), its model s.e. (the curvature's prior's
    information in; the hinge's taken out, `_without_hinge_prior`),
    and how far the hinge and the slope at `at` move per unit the curvature moves as the two
    are read together (the regressions of their errors on the curvature's, off the same
    covariance): where the curvature is pulled toward its category, the hinge and the slope
    follow it. NaN, inf and 0 where the joint fit does not identify them: as `_curvature`, a
    curvature is read only where the data, not the prior, set it (a SKU that holds its price
    while the competitor's moves across it shows a hinge but no bend)."""

    curvature: np.ndarray
    se: np.ndarray
    hinge_per: np.ndarray
    slope_per: np.ndarray

    @classmethod
    def of(cls, fit: _PerSku, ok: np.ndarray, at) -> _JointBend:
        inv = fit.inv
        var = inv[:, 1, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            hinge_per = inv[:, 2, 1] / var
            slope_per = (inv[:, 0, 1] + 2 * at * var) / var
        c = fit.coef[:, 1]
        read = ok & (var > 0) & np.isfinite(hinge_per) & np.isfinite(slope_per)
        read &= _bend_is_read(c, np.sqrt(np.maximum(var, 0.0)))
        return cls(
            np.where(read, c, np.nan),
            np.where(read, np.sqrt(np.maximum(var, 0.0)), np.inf),
            np.where(read, hinge_per, 0.0),
            np.where(read, slope_per, 0.0),
        )


def _sandwich_rows(fit: _PerSku, cols, j: int, y, offset, sku, trunc, k=0.0):
    """What `_variance_parts` needs for the sandwich of coefficient `j` of a per-SKU fit: each
    row's mean and weight, and the coefficient's influence per row (row j of the inverse
    information times the row's centred regressors), stated as one regressor whose information
    is 1 / inv[j, j]. One column at a time: row-length vectors only, on a tenant of tens of
    millions of rows. Also each row's weight factor (`_row_weight`; 1 on Poisson weights) and
    its variance were the counts Poisson (the floor; None on Poisson weights)."""
    inv, means = fit.inv, fit.means
    eff_info = np.where(fit.ok, 1 / np.maximum(inv[:, j, j], 1e-300), 0.0)
    effective = np.zeros(len(y))
    for i, col in enumerate(cols):
        effective += (inv[:, j, i] * eff_info)[sku] * (col - means[sku, i])
    eta = fit.alpha[sku] + offset + sum(fit.coef[sku, i] * cols[i] for i in range(len(cols)))
    m, w = _mean_weight(eta, trunc)
    q = np.broadcast_to(np.asarray(_row_weight(eta, w, k, trunc), dtype=np.float64), m.shape)
    # (and each row's variance were the counts Poisson: the floor of a weighted fit's)
    return m, w, effective, eff_info, q, None if not k > 0 else _nb_variance(eta, 0.0, trunc)


def _curvature_trend(raw, se, slope, slope_se=None) -> tuple[np.ndarray, np.ndarray]:
    """The catalog's curvature as a quadratic in the own-price slope, c ~ b0 + b1 e + b2 e^2,
    fitted over the SKUs whose curvature is read (weighted by 1 / (s.e.^2 + tau^2), tau^2 the
    spread about it by moments, a few rounds), per SKU at its slope, with the variance of that
    reading: the fitted mean's, and the slope's own doubt through the trend's derivative
    (`slope_se`; a slope read too flat reads a flatter bend too). A linear curve bends by
    e(1 - e) / 2, an S-curve by about e / 2 and more, a constant one not at all: the catalog
    says which it holds, where the SKUs' own curvatures are read (CURVATURE_TREND_MIN of them
    within the span below) and the trend differs from none beyond its doubt (b1 = b2 = 0
    rejected at CURVATURE_TREND_P); otherwise a flat trend at 0 (the shrinkage toward the
    category and the catalog as before). It is fitted over and read within the middle
    CURVATURE_TREND_SPAN of the read SKUs' slopes: a SKU's slope beyond them takes the trend at
    that end (a quadratic's extrapolation, and its variance, run away; a single SKU far out sets
    no range and has no leverage)."""
    n = len(raw)
    flat = np.zeros(n), np.zeros(n)
    e = np.clip(np.nan_to_num(slope, nan=0.0), *ELASTICITY_RANGE)
    known = np.isfinite(raw) & np.isfinite(se) & (se > 0) & np.isfinite(slope)
    if known.sum() < CURVATURE_TREND_MIN:
        return flat
    tail = (1 - CURVATURE_TREND_SPAN) / 2
    low, high = np.quantile(e[known], [tail, 1 - tail])
    # fitted over the SKUs within that span too: one SKU read surely far out has no leverage
    # on the trend the others read
    known &= (e >= low) & (e <= high)
    if known.sum() < CURVATURE_TREND_MIN:
        return flat
    # centred and scaled (the design's conditioning)
    middle, spread = float(np.mean(e[known])), float(np.std(e[known]))
    if not spread > 1e-6:
        return flat
    design = lambda v: np.column_stack([np.ones(len(v)), (v - middle) / spread,  # noqa: E731
                                        ((v - middle) / spread) ** 2])  # fmt: skip
    x, y, s2 = design(e[known]), raw[known], se[known] ** 2
    tau2 = _tau2(y, se[known], float(np.mean(y)))
    for last in range(CURVATURE_TREND_ROUNDS + 1):
        w = 1 / (s2 + tau2)
        info = x.T @ (x * w[:, None])
        if np.linalg.cond(info) > 1e12:
            return flat
        beta = np.linalg.solve(info, x.T @ (w * y))
        if last == CURVATURE_TREND_ROUNDS:
            break  # the coefficients and their covariance on the last spread
        r = y - x @ beta
        tau2 = max(float(np.mean(r * r - s2)), 0.01)
    cov = np.linalg.inv(info)
    # no trend where the slopes' terms are not told from none (Wald; the chi-square of two
    # degrees of freedom is beyond -2 log p with chance p)
    wald = float(beta[1:] @ np.linalg.solve(cov[1:, 1:], beta[1:]))
    if not wald > -2 * np.log(CURVATURE_TREND_P):
        return flat
    at = np.clip(e, low, high)
    d = design(at)
    fitted = d @ beta
    trend = np.clip(fitted, *CURVATURE_RANGE)
    variance = np.einsum("ij,jk,ik->i", d, cov, d)
    if slope_se is not None:
        # (0 where the slope is beyond the span or the trend at the curvature's range's end)
        z = (at - middle) / spread
        moves = (
            (e > low) & (e < high) & (fitted > CURVATURE_RANGE[0]) & (fitted < CURVATURE_RANGE[1])
        )
        derivative = np.where(moves, (beta[1] + 2 * beta[2] * z) / spread, 0.0)
        variance = variance + derivative**2 * np.nan_to_num(
            np.asarray(slope_se, dtype=np.float64) ** 2, nan=0.0, posinf=0.0
        )
    return trend, variance


def _tau2(est: np.ndarray, se: np.ndarray, centre: float) -> float:
    """Between-unit variance by the method of moments (never below a small floor)."""
    if len(est) < 2:
        return 0.25
    return float(max(np.mean((est - centre) ** 2 - se**2), 0.01))


def _shrink(raw, raw_se, category, pooled, pooled_se, widen=None):
    """Empirical Bayes SKU -> category -> pooled. `widen`: per SKU, a factor on its own
    variance in its posterior's s.e. only (`_few_clusters`), not in the weights or the spread.
    Returns the shrunk values, their s.e.s, the category means and each SKU's weight on its own
    estimate (0 where it has none)."""
    n = len(raw)
    widen = np.ones(n) if widen is None else np.asarray(widen, dtype=np.float64)
    known = np.isfinite(raw) & np.isfinite(raw_se)
    out = np.full(n, pooled)
    out_se = np.full(n, max(pooled_se, 0.5))
    weight = np.zeros(n)
    by_cat: dict[int, float] = {}
    tau_all = _tau2(raw[known], raw_se[known], pooled)
    for cat in np.unique(category):
        members = category == cat
        k = members & known
        if k.sum() >= 2:
            prec = 1 / (raw_se[k] ** 2 + tau_all)
            cat_mean = float(np.sum(prec * raw[k]) / np.sum(prec))
            cat_se = float(np.sqrt(1 / np.sum(prec)))
            # The category's own estimate is pulled toward the pooled slope too.
            w_cat = tau_all / (tau_all + cat_se**2)
            cat_mean = w_cat * cat_mean + (1 - w_cat) * pooled
        else:
            cat_mean, cat_se = pooled, max(pooled_se, np.sqrt(tau_all))
        by_cat[int(cat)] = cat_mean
        tau = _tau2(raw[k], raw_se[k], cat_mean) if k.sum() >= 3 else tau_all
        w = np.maximum(tau / (tau + raw_se[k] ** 2), SHRINK_FLOOR)
        out[k] = w * raw[k] + (1 - w) * cat_mean
        weight[k] = w
        # the posterior spread, plus what is unsure about the category's own mean
        out_se[k] = np.sqrt(w * raw_se[k] ** 2 * widen[k] + (1 - w) ** 2 * cat_se**2)
        cold = members & ~known  # no usable history: the category's prior
        out[cold] = cat_mean
        out_se[cold] = np.sqrt(cat_se**2 + tau)
    return out, out_se, by_cat, weight


def sample_blocks(n_blocks: int, block_skus: int, sample_skus: int) -> np.ndarray:
    """The blocks the pooled stage of a partitioned fit reads: every block while they hold at
    most `sample_skus` SKUs (then the pooled estimates are the one-process fit's), else that
    many SKUs' worth of blocks spread evenly over the tenant (deterministic)."""
    wanted = max(1, -(-sample_skus // max(block_skus, 1)))
    if wanted >= n_blocks:
        return np.arange(n_blocks)
    return np.unique(np.round(np.linspace(0, n_blocks - 1, wanted)).astype(int))


def sample_ranges(n_skus: int, sample_skus: int, slices: int = 20) -> list[tuple[int, int]]:
    """Positions [start, stop) in the tenant's product order that the pooled stage of the
    partitioned fit (ml.partitioned) reads: every product while the tenant has at most
    `sample_skus` (then the pooled estimates are the one-process fit's); else `slices` runs of
    consecutive products, `sample_skus` in all, spread evenly from the first product to the
    last (deterministic), so that old and new products and every stretch of the catalog count,
    whatever the size of the blocks the parts fit."""
    if n_skus <= sample_skus:
        return [(0, n_skus)]
    k = max(1, min(slices, sample_skus))
    size = max(sample_skus // k, 1)
    starts = np.unique(np.round(np.linspace(0, n_skus - size, k)).astype(int))
    return [(int(a), int(a + size)) for a in starts]


def block_of(panel: Panel, low: int, high: int) -> Panel:
    """The rows and per-SKU values of SKUs low..high-1 of `panel`, numbered from 0."""
    rows = (panel.sku >= low) & (panel.sku < high)
    pick = lambda values: None if values is None else np.asarray(values)[rows]  # noqa: E731
    per_sku = lambda values: None if values is None else np.asarray(values)[low:high]  # noqa: E731
    return Panel(
        sku=np.asarray(panel.sku)[rows] - low,
        day=np.asarray(panel.day)[rows],
        units=np.asarray(panel.units)[rows],
        price=np.asarray(panel.price)[rows],
        promo=pick(panel.promo),
        competitor_price=pick(panel.competitor_price),
        discount=pick(panel.discount),
        category=per_sku(panel.category),
        time_effects=panel.time_effects,
        truncated=pick(panel.truncated),
        current_price=per_sku(panel.current_price),
        competitor_sd=panel.competitor_sd,
        competitor_today=per_sku(panel.competitor_today),
        competitor_today_k=per_sku(panel.competitor_today_k),
    )


def concatenate(panels: list[Panel]) -> Panel:
    """Blocks one after another as one panel (SKUs renumbered in order; the per-SKU categories
    and today's prices where every block has them)."""
    offsets = np.cumsum([0] + [block_size(p) for p in panels])

    def per_sku(name: str):
        values = [getattr(p, name) for p in panels]
        return None if any(v is None for v in values) else np.concatenate(values)

    join = lambda name: (  # noqa: E731
        None
        if all(getattr(p, name) is None for p in panels)
        else np.concatenate(
            [
                np.asarray(getattr(p, name))
                if getattr(p, name) is not None
                else np.full(len(p.sku), np.nan if name == "competitor_price" else 0.0)
                for p in panels
            ]
        )
    )
    return Panel(
        sku=np.concatenate([np.asarray(p.sku) + o for p, o in zip(panels, offsets, strict=False)]),
        day=join("day"),
        units=join("units"),
        price=join("price"),
        promo=join("promo"),
        competitor_price=join("competitor_price"),
        discount=join("discount"),
        truncated=None if all(p.truncated is None for p in panels) else join("truncated") > 0,
        time_effects=panels[0].time_effects,
        competitor_sd=panels[0].competitor_sd,
        category=per_sku("category"),
        current_price=per_sku("current_price"),
        competitor_today=per_sku("competitor_today"),
        competitor_today_k=per_sku("competitor_today_k"),
    )


def block_size(panel: Panel) -> int:
    """SKUs of a block's panel (its per-SKU arrays say so where its last SKUs have no row)."""
    for values in (panel.category, panel.current_price):
        if values is not None:
            return len(values)
    return panel.n_skus


def fit_in_blocks(
    panel: Panel, block_skus: int, sample_skus: int, iterations: int = 25
) -> DemandFit:
    """The partitioned fit in one process, as ml.partitioned runs it in tasks: the pooled stage
    on the sample of blocks (sample_blocks), each block's SKUs fitted alone given it, one
    reduce. With every block in the sample the estimates are fit_demand's up to the Newton
    loops' stopping rule (each block stops when its own SKUs have converged, not the
    tenant's slowest SKU: differences far below 1e-6)."""
    n = panel.n_skus if panel.category is None else len(panel.category)
    bounds = [*range(0, n, block_skus), n]
    blocks = [block_of(panel, lo, hi) for lo, hi in itertools.pairwise(bounds)]
    sample = sample_blocks(len(blocks), block_skus, sample_skus)
    valid = np.isfinite(np.asarray(panel.price, float)) & (np.asarray(panel.price, float) > 0)
    valid &= np.isfinite(np.asarray(panel.units, float)) & (np.asarray(panel.units, float) >= 0)
    days = np.asarray(panel.day)[valid]
    pooled = fit_pooled(
        concatenate([blocks[i] for i in sample]),
        iterations,
        day_range=(int(days.min()), int(days.max())),
        ramp_sd=_ramp_sd(panel),
    )
    starts = np.cumsum([0] + [block_size(blocks[i]) for i in sample])
    fits = []
    for i, block in enumerate(blocks):
        alpha = None
        if i in sample:
            j = int(np.flatnonzero(sample == i)[0])
            alpha = pooled.alpha[starts[j] : starts[j + 1]]
        fits.append(
            fit_block(
                block, pooled, iterations, alpha=alpha, n=block_size(block), every_origin=True
            )
        )
    return reduce(fits, pooled, panel.category)
