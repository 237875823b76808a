"""The demand curve: expected daily units, revenue and profit of a set of SKUs at any price.

Pure module (numpy). This is the one curve of the product: the optimiser searches it, the
reprice job stores its figures, the SKU chart draws it, the explanations quote it and the KPI
forecasts read it. `ml.selectors.demand_curve` builds it from a stored demand-model version.

Around each SKU's anchor price p_ref (today's price) the log of expected units is

    log q(p) = log q_ref + e d + c d^2 + h (R(log(p / comp)) - R(log(p_ref / comp)))

with d = log(p / p_ref): e is the elasticity at p_ref with the competitor's price held fixed,
c the curvature (demand bends down as the price rises), and h <= 0 the extra slope above the
lowest competitor's price, where one is known (demand may fall faster once the price passes the
competitor's). R is the ramp max(g, 0) as buyers meet it when the competitor's real price is
the reading give or take its jitter s: E[max(g + eps, 0)], eps ~ N(0, s^2) (`ramp`, `ramp_sd`;
the demand model fits the hinge on the same ramp, with the same s). The curve is trusted only
between `evidence_low` and `evidence_high` (the prices the SKU was seen at) and, where a
competitor's price is known, at the positions against it the SKU was seen at (`gap_low`,
`gap_high`): the optimiser does not leave that range.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.special import ndtr, ndtri

HINGE_Z = 2.0  # a hinge is used where it is this many standard errors below zero
# Equally likely positions of the competitor's price (KINK_NODES slices of its normal doubt,
# each at its own mean): the loss near a steep kink is a step in that price, which a few Gauss-
# Hermite nodes read in jumps of their weights (0.24, 0.05); 40 slices, of 0.025 each. The
# risk budget (ml.science.optimizer._over_the_kink) and the units a recommendation shows
# (`DemandCurve.expected_units`) read the same.
KINK_NODES = 40
KINK_REACH = 3.5  # its s.d.s (with the buyers' ramp) within which a kink is reached
_KINK_EDGES = np.exp(-0.5 * ndtri(np.arange(KINK_NODES + 1) / KINK_NODES) ** 2) / np.sqrt(2 * np.pi)
KINK_AT = KINK_NODES * (_KINK_EDGES[:-1] - _KINK_EDGES[1:])  # each slice at its own mean
# The demand fit's prior on a SKU's extra slope above the competitor, N(0, 3^2), while the
# joint fit runs (taken out of the reading after: `ml.science.demand._without_hinge_prior`;
# another value reads other hinges into a staged block: raise ml.partitioned.STAGED_FORMAT);
# also the posterior of a hinge its days cannot read where no catalog's spread is measured
HINGE_PRIOR_SD = 3.0
# its negative half (a positive hinge is none: the curve uses min(h, 0)), the mean and variance
PRIOR_HALF_MEAN = -HINGE_PRIOR_SD * np.sqrt(2 / np.pi)
PRIOR_HALF_VAR = HINGE_PRIOR_SD**2 * (1 - 2 / np.pi)
# The fewest estimated hinges the catalog's spread of hinges is measured on (tau^2 by moments
# from a handful is noise); below it each hinge is judged on its own.
HINGE_SPREAD_MIN = 20
# A hinge the SKU's own data lean toward (this many s.e. below zero, whatever the end asked
# for) is never judged flatter than its own estimate says.
HINGE_LEAN_Z = 1.0
CURVATURE_FLOOR = -15.0  # the most a curve may bend (ml.science.demand.CURVATURE_RANGE)


def ramp(gap, sd=0.0) -> np.ndarray:
    """E[max(gap + eps, 0)] with eps ~ N(0, sd^2): how far above the competitor's price a price
    at log gap `gap` to its reading is, on average, where the real price is the reading give or
    take `sd` (the readings' jitter) — sd phi(gap / sd) + gap Phi(gap / sd); max(gap, 0) at
    sd 0. Smooth, so a hinge fitted on it is not flattened by the readings' noise."""
    gap = np.asarray(gap, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    if not np.any(sd > 0):
        return np.maximum(gap, 0.0)
    with np.errstate(all="ignore"):
        t = gap / np.where(sd > 0, sd, 1.0)
        smooth = sd * np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi) + gap * ndtr(t)
    return np.where(sd > 0, smooth, np.maximum(gap, 0.0))


def ramp_slope(gap, sd=0.0) -> np.ndarray:
    """d ramp / d gap: Phi(gap / sd), the share of the hinge in force at `gap` (a step at 0
    where sd is 0)."""
    gap = np.asarray(gap, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    with np.errstate(all="ignore"):
        smooth = ndtr(gap / np.where(sd > 0, sd, 1.0))
    return np.where(sd > 0, smooth, (gap > 0).astype(np.float64))


def hinge_prior(raw, se, mixture: bool = True) -> tuple[float, float, float, float] | None:
    """The spread of a catalog's hinges above the competitor, over the hinges estimated with a
    finite s.e. above 0 (None under HINGE_SPREAD_MIN of them): (centre, tau^2, spike, the
    centre's own variance: it is an estimate, off by about that much, which a SKU's posterior
    on it carries where its own estimate weighs little, above all where tau^2 is 0). A share
    `spike` of SKUs has no hinge at all (0: their demand does not change its slope at the
    competitor's price); the others' hinges are normal around `centre` with variance tau^2
    beyond each one's own noise. Fitted by maximum likelihood (EM, `_spike_and_slab`): most
    catalogs are a mixture of SKUs buyers do not compare and SKUs whose demand collapses above
    the competitor, which one normal spread pictures badly (it pulls every SKU without a hinge
    toward the collapsing ones' mean, and every collapsing one toward none). `mixture=False`:
    one normal spread (spike 0): tau^2 by DerSimonian and Laird's moments, the centre and its
    variance the mean weighted by 1 / (tau^2 + s.e.^2), so that a hinge read with a wide s.e.
    moves the centre as little as it says (`_one_normal`). Every part of the fit reads a hinge
    beyond +-HINGE_FIT_RANGE at the range's end.

    A hinge's posterior on it (`DemandCurve.hinge_posterior`) is what a raise past the
    competitor is judged on where the SKU's own data do not lean toward a hinge: where no SKU's
    hinge differs from none beyond noise, such a hinge is the catalog's (about none), not its
    own noise at its pessimistic end."""
    raw, se = np.asarray(raw, dtype=np.float64), np.asarray(se, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        est = np.isfinite(raw) & np.isfinite(se) & (se > 0)
    if est.sum() < HINGE_SPREAD_MIN:
        return None
    # a hinge steeper than HINGE_FIT_RANGE is a collapse like any other (and a rise past it
    # as unlikely as any), read at the range's end by every part of the fit (an absurd
    # reading, 1e31 or more, made the mixture's start and the normal spread absurd: review)
    raw, se = np.clip(raw[est], -HINGE_FIT_RANGE, HINGE_FIT_RANGE), se[est]
    spread = _one_normal(raw, se)
    if not mixture:
        return (*spread[:2], 0.0, spread[2])
    # the mixture's EM starts from the readings' plain mean and spread by moments: started
    # from the weighted centre, a catalog whose SKUs without a hinge are read far more surely
    # than its collapsing ones put the slab on the spike, and no collapse was found (review)
    start = float(np.mean(raw))
    with np.errstate(over="ignore"):  # an s.e. past 1e154: a reading that says nothing
        start_tau2 = max(float(np.mean((raw - start) ** 2 - se**2)), 0.0)
    return _spike_and_slab(raw, se, start, start_tau2, spread)


def _one_normal(raw, se) -> tuple[float, float, float]:
    """One normal spread of readings `raw` with standard errors `se` (a random-effects mean,
    DerSimonian and Laird): tau^2 from Cochran's Q about the inverse-variance mean, then the
    mean weighted by 1 / (tau^2 + s.e.^2) and its variance. An s.e. is read within 1e-6 and
    1e6 (beyond: a reading that says all, or nothing; its weight stays finite); a reading at
    1e6 or more is no part of Q or its degrees of freedom (it would add one to those and
    nothing to Q, reading tau^2 too small: review). `raw` within +-HINGE_FIT_RANGE
    (`hinge_prior`), so every sum stays finite."""
    s2 = np.clip(se, 1e-6, 1e6) ** 2
    w = 1.0 / s2
    total = float(np.sum(w))
    fixed = float(np.sum(w * raw) / total)
    counted = se < 1e6
    q = float(np.sum((w * (raw - fixed) ** 2)[counted]))
    # sum(w) - sum(w^2) / sum(w), as each weight times the sum of the others (no cancellation
    # where one reading's weight dwarfs the rest: review)
    wc = w[counted]
    before = np.r_[0.0, np.cumsum(wc)[:-1]]
    after = np.r_[np.cumsum(wc[::-1])[::-1][1:], 0.0]
    scale = float(np.sum(wc * (before + after)) / np.sum(wc)) if len(wc) else 0.0
    tau2 = max((q - (len(wc) - 1)) / scale, 0.0) if scale > 0 else 0.0
    v = 1.0 / (tau2 + s2)
    return float(np.sum(v * raw) / np.sum(v)), tau2, float(1.0 / np.sum(v))


SPIKE_MAX = 0.99  # the largest share of SKUs the fit may say have no hinge (never certain)
HUBER = 2.5  # s.d. from the slab beyond which a reading weighs less in the slab's fit
# The widest spread of the collapsing SKUs' hinges (s.d. 2.5): a few extreme readings (-20 to
# -60) do not widen it until every moderate reading looks like none (review)
SLAB_TAU2_MAX = 6.25
HINGE_FIT_RANGE = 10.0  # |hinge| the spread's fit reads a reading at, at most
MIXTURE_LR = 6.0  # twice the log-likelihood gain over one normal spread a mixture must show


def _spike_and_slab(
    raw, se, centre, tau2, normal, iterations: int = 200
) -> tuple[float, float, float, float]:
    """EM for raw_i ~ spike N(0, se_i^2) + (1 - spike) N(centre, tau^2 + se_i^2): the share of
    SKUs without a hinge and the normal spread of the others' (each M step weighs a hinge by
    its responsibility and its precision; tau^2 by the weighted moments, as `_tau2` in the
    demand model), each reading further down-weighted where it lies more than HUBER s.d. from
    the slab (an M-estimate: one extreme hinge does not widen the slab until every moderate
    reading looks like none). Started with half the SKUs in the spike and the slab at twice
    `centre` with spread `tau2` (the readings' plain mean and spread). One normal spread
    (`normal`: its centre, tau^2 and centre's variance, `_one_normal`) is returned unless the
    mixture reads the hinges clearly better (MIXTURE_LR, against the better of the two normal
    spreads) and is finite (the slab's mean's variance is 1 / the sum of its weights'
    precision, each SKU's responsibility over its variance about the slab). `raw` within
    +-HINGE_FIT_RANGE (`hinge_prior`: a few extreme hinges do not become the slab or widen
    it)."""
    as_normal = (normal[0], normal[1], 0.0, normal[2])
    se = np.clip(se, 1e-6, 1e6)  # beyond: a reading that says nothing, or all
    s2 = se * se

    def loglik(spike, mu, t2):
        zero = -0.5 * (raw * raw / s2 + np.log(s2))
        v = t2 + s2
        slab = -0.5 * ((raw - mu) ** 2 / v + np.log(v))
        top = np.maximum(zero, slab)
        with np.errstate(divide="ignore"):
            mix = np.log(spike * np.exp(zero - top) + (1 - spike) * np.exp(slab - top)) + top
        return float(np.sum(mix)), zero, slab

    spike, mu, t2 = 0.5, centre / 0.5, tau2
    for _ in range(iterations):
        _, zero, slab = loglik(spike, mu, t2)
        with np.errstate(over="ignore"):
            odds = spike / (1 - spike) * np.exp(np.clip(zero - slab, -700, 700))
        r = 1.0 / (1.0 + odds)  # each SKU's chance of a hinge
        if r.sum() < 1e-9:
            spike = SPIKE_MAX
            break
        # Huber weights of each reading's distance from the slab (the mean), and its squared
        # distance capped at HUBER s.d. (the spread): bounded influence for both
        u = np.minimum(1.0, HUBER / np.maximum(np.abs(raw - mu) / np.sqrt(t2 + s2), 1e-12))
        w = r * u / (t2 + s2)
        # (a hinge is a fall of demand, never a rise: the centre at most 0)
        new_mu = min(float(np.sum(w * raw) / np.sum(w)), 0.0)
        w2 = r / (t2 + s2) ** 2
        d2 = np.minimum((raw - new_mu) ** 2, HUBER**2 * (t2 + s2))
        new_t2 = min(max(float(np.sum(w2 * (d2 - s2)) / np.sum(w2)), 0.0), SLAB_TAU2_MAX)
        new_spike = min(float(1 - np.mean(r)), SPIKE_MAX)
        done = abs(new_mu - mu) + abs(new_t2 - t2) + abs(new_spike - spike) < 1e-7
        spike, mu, t2 = new_spike, new_mu, new_t2
        if done:
            break
    fitted = loglik(spike, mu, t2)[0]
    # kept only where it reads the hinges clearly better than one normal spread (a likelihood
    # ratio test; one parameter more, stricter than 5 %): a catalog where no SKU's hinge
    # differs from none fits a mixture whose two parts are alike, for nothing. Against the
    # better of two normal spreads (the start's and the one returned, neither the likeliest
    # normal): a kept mixture never reads the hinges worse than the normal spread it replaces
    null = max(loglik(0.0, centre, tau2)[0], loglik(0.0, normal[0], normal[1])[0])
    better = 2 * (fitted - null) > MIXTURE_LR
    if not (np.isfinite([fitted, mu, t2, spike]).all()) or not better:
        return as_normal
    # the slab mean's variance: a weighted mean's, with the last M step's weights (each SKU's
    # responsibility and Huber weight over its variance about the slab; review)
    _, zero, slab = loglik(spike, mu, t2)
    with np.errstate(over="ignore"):
        odds = spike / (1 - spike) * np.exp(np.clip(zero - slab, -700, 700))
    r = 1.0 / (1.0 + odds)
    u = np.minimum(1.0, HUBER / np.maximum(np.abs(raw - mu) / np.sqrt(t2 + s2), 1e-12))
    a = r * u / (t2 + s2)
    total = float(np.sum(a))
    if not total > 0:  # no weight left on the slab: one normal spread
        return as_normal
    return mu, t2, spike, float(np.sum(a * a * (t2 + s2)) / total**2)


def measured_spread(n: int, competitor_price, competitor_slope, competitor_slope_se):
    """`hinge_prior` of these n SKUs' hinges where a competitor's price is known, the inputs
    read as `DemandCurve.build` reads them (no s.e.: a fact, not an estimate)."""
    raw = np.nan_to_num(_column(competitor_slope, n, 0.0))
    se = np.nan_to_num(_column(competitor_slope_se, n, 0.0), nan=np.inf, posinf=np.inf)
    known = np.isfinite(_column(competitor_price, n))
    return hinge_prior(np.where(known, raw, np.nan), se)


def _spread_of(spread) -> tuple[float, float, float, float]:
    """(centre, tau^2, spike, the centre's variance) of a spread as `hinge_prior` gives it, or
    as an older version stored it (centre, tau^2[, spike]: spike 0 and the centre's variance 0
    where not stored); NaNs where none (False or None)."""
    if not spread:
        return np.nan, np.nan, np.nan, np.nan
    values = [float(v) for v in spread] + [0.0] * (4 - len(spread))
    return values[0], values[1], values[2], values[3]


# Every day's units over a shelf day's, as a promotion lift is read (`all_days`): a promotion
# read as selling less than a shelf day is a confounded reading (promotions on products in
# decline), read as none; past 10 a few deep discounts on a slow mover are extrapolated along
# the discount's pooled coefficient (the demo grocer's products, whose loyalty prices and
# coupons discount most days, read 1.6 in the median and 8.1 at most).
PROMO_LIFT_RANGE = (1.0, 10.0)


def used_hinge(raw, se) -> np.ndarray:
    """The hinge a curve uses of one read as `raw` with s.e. `se`: itself where it is clearly
    negative (HINGE_Z s.e.), else 0 (the demand fit's recent level and backtest read the
    same)."""
    raw, se = np.asarray(raw, dtype=np.float64), np.asarray(se, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.minimum(np.where(raw + HINGE_Z * se < 0, raw, 0.0), 0.0)


def _smaller(a: np.ndarray, b: np.ndarray, margin=None) -> np.ndarray:
    """Per element the units of the smaller gain: the fewer where `margin` (the money a unit
    adds; None: units alone) is not negative, the more where it is (NaN: the other)."""
    if margin is None:
        return np.fmin(a, b)
    return np.where(np.asarray(margin) < 0, np.fmax(a, b), np.fmin(a, b))


def _all_days(lift: np.ndarray) -> np.ndarray:
    """A promotion lift made safe to multiply by: in PROMO_LIFT_RANGE (NaN, unknown: 1)."""
    return np.where(np.isfinite(lift), np.clip(lift, *PROMO_LIFT_RANGE), 1.0)


def _column(value, n: int, fill: float = np.nan) -> np.ndarray:
    if value is None:
        return np.full(n, fill)
    out = np.asarray(value, dtype=np.float64)
    return np.broadcast_to(out, (n,)).astype(np.float64, copy=True) if out.ndim == 0 else out


@dataclass
class DemandCurve:
    price_ref: np.ndarray  # the anchor: today's price
    units_ref: np.ndarray  # expected units per day at price_ref (0: no volume to learn from)
    elasticity: np.ndarray  # d log q / d log p at price_ref (competitor's price held fixed)
    elasticity_se: np.ndarray
    curvature: np.ndarray  # c of the module's formula: half of d² log q / d(log p)²
    competitor_price: np.ndarray  # lowest competitor price (NaN: unknown)
    competitor_slope: np.ndarray  # extra slope above the competitor used (<= 0; 0: none)
    evidence_low: np.ndarray  # lowest price seen (NaN: unknown)
    evidence_high: np.ndarray  # highest price seen
    # The SKU's own estimate had the wrong sign: the slope is its category's (or the tenant's).
    borrowed: np.ndarray | None = None
    # The hinge as estimated and its s.e. (0 and 0 when given as a fact; s.e. inf: unknown):
    # the search judges a raise past the competitor with its pessimistic end.
    hinge_raw: np.ndarray | None = None
    hinge_se: np.ndarray | None = None
    curvature_se: np.ndarray | None = None  # 0: the curvature taken as given
    # The positions against the competitor seen, log(price / competitor) (NaN: unknown).
    gap_low: np.ndarray | None = None
    gap_high: np.ndarray | None = None
    # How far today's competitor price may be off, in log price (the short-run jitter of the
    # competitor's readings; 0: exact): the kink's position is judged at its pessimistic end.
    competitor_sd: np.ndarray | None = None
    # The jitter the hinge's ramp is smoothed over (`ramp`), as the demand model fitted it
    # (0: a sharp kink at the reading).
    ramp_sd: np.ndarray | None = None
    # The catalog's spread of hinges (`hinge_prior`: the slab's mean and tau^2 and the share of
    # SKUs without a hinge, the same on every SKU; NaN: none known), that an unclear hinge's
    # posterior is taken on.
    hinge_centre: np.ndarray | None = None
    hinge_tau2: np.ndarray | None = None
    hinge_spike: np.ndarray | None = None
    hinge_centre_var: np.ndarray | None = None  # the centre's own variance (an estimate)
    # The correlation of the errors of `elasticity` and of the hinge's own estimate (0 or None:
    # independent): the gain's s.e. combines the two with it (ml.science.optimizer).
    slope_hinge_corr: np.ndarray | None = None
    # Every day's expected units over a shelf day's, as the SKU's recent promotions went (None
    # or 1: none): `units_ref` and what the curve gives are a shelf day's; the stock a price
    # sells through and a published change's forecast, counted over every day, are those
    # times this (`all_days`).
    promo_lift: np.ndarray | None = None
    # Where a stored model's level was carried from the position it was read at to today's
    # (ml.selectors.demand_curve): that position and today's, log(price / competitor's price),
    # and the factor on the level (1: not carried; None: a curve that carries nothing). The
    # SKU page says why its units now are not the fit's.
    position_then: np.ndarray | None = None
    position_now: np.ndarray | None = None
    level_carried: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        price_ref,
        units_ref,
        elasticity,
        elasticity_se=None,
        curvature=None,
        competitor_price=None,
        competitor_slope=None,
        evidence_low=None,
        evidence_high=None,
        borrowed=None,
        gap_low=None,
        gap_high=None,
        competitor_slope_se=None,
        curvature_se=None,
        competitor_sd=None,
        ramp_sd=None,
        hinge_spread=None,
        slope_hinge_corr=None,
        promo_lift=None,
    ) -> DemandCurve:
        """`competitor_slope` with `competitor_slope_se` is an estimate, used where it is
        clearly negative (HINGE_Z s.e.); without an s.e. it is taken as given. `hinge_spread`
        (`hinge_prior`: the catalog's, as the demand model measured it over every SKU) is
        where an unclear hinge's posterior is taken; None: measured on these SKUs' hinges
        where a competitor's price is known; False: none (each hinge on its own)."""
        p = np.asarray(price_ref, dtype=np.float64)
        n = len(p)
        raw = np.nan_to_num(_column(competitor_slope, n, 0.0))
        hinge_se = np.nan_to_num(_column(competitor_slope_se, n, 0.0), nan=np.inf, posinf=np.inf)
        used = used_hinge(raw, hinge_se)
        if hinge_spread is None:
            hinge_spread = measured_spread(n, competitor_price, raw, hinge_se)
        centre, tau2, spike, centre_var = _spread_of(hinge_spread)
        return cls(
            price_ref=p,
            units_ref=_column(units_ref, n),
            elasticity=_column(elasticity, n),
            elasticity_se=_column(elasticity_se, n),
            curvature=np.nan_to_num(_column(curvature, n, 0.0)),
            competitor_price=_column(competitor_price, n),
            competitor_slope=used,
            hinge_raw=raw,
            hinge_se=hinge_se,
            curvature_se=np.nan_to_num(_column(curvature_se, n, 0.0), nan=0.0, posinf=0.0),
            evidence_low=_column(evidence_low, n),
            evidence_high=_column(evidence_high, n),
            borrowed=np.zeros(n, bool) if borrowed is None else np.asarray(borrowed, bool),
            gap_low=_column(gap_low, n),
            gap_high=_column(gap_high, n),
            competitor_sd=np.nan_to_num(_column(competitor_sd, n, 0.0), nan=0.0, posinf=0.0),
            ramp_sd=np.nan_to_num(_column(ramp_sd, n, 0.0), nan=0.0, posinf=0.0),
            hinge_centre=np.full(n, float(centre)),
            hinge_tau2=np.full(n, float(tau2)),
            hinge_spike=np.full(n, float(spike)),
            hinge_centre_var=np.full(n, float(centre_var)),
            slope_hinge_corr=np.clip(
                np.nan_to_num(_column(slope_hinge_corr, n, 0.0), nan=0.0, posinf=0.0, neginf=0.0),
                -1.0,
                1.0,
            ),
            promo_lift=_all_days(_column(promo_lift, n, 1.0)),
        )

    @property
    def all_days(self) -> np.ndarray:
        """Per SKU, what a shelf day's units are multiplied by to read every day's (its recent
        promotions going on as they went; 1 where none or unknown)."""
        return np.ones(len(self)) if self.promo_lift is None else self.promo_lift

    @classmethod
    def from_estimates(
        cls, price, units_per_day, elasticity, typical_price, curvature=None, **rest
    ) -> DemandCurve:
        """Anchored at `price` from a fit stated at each SKU's typical price (what the demand
        model stores): the slope and level carried along the curve to today's price (and,
        where the fit read the level at another position against the competitor, through its
        hinge: `from_position`, ml.selectors.demand_curve)."""
        p = np.asarray(price, dtype=np.float64)
        c = np.nan_to_num(_column(curvature, len(p), 0.0))
        with np.errstate(all="ignore"):
            x = np.log(p / np.asarray(typical_price, dtype=np.float64))
            e = np.asarray(elasticity, dtype=np.float64)
            units = np.asarray(units_per_day, dtype=np.float64) * np.exp(e * x + c * x * x)
        return cls.build(p, units, e + 2 * c * x, curvature=c, **rest)

    def __len__(self) -> int:
        return len(self.price_ref)

    def subset(self, index) -> DemandCurve:
        return DemandCurve(
            **{
                f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                for f in fields(self)
            }
        )

    @property
    def usable(self) -> np.ndarray:
        """A price response to price on: a finite, falling slope and some volume."""
        return (
            np.isfinite(self.elasticity)
            & (self.elasticity < 0)
            & np.isfinite(self.units_ref)
            & (self.units_ref > 0)
            & np.isfinite(self.price_ref)
            & (self.price_ref > 0)
        )

    def local_elasticity(self) -> tuple[np.ndarray, np.ndarray]:
        """The slope of the curve at today's price and its s.e.: the elasticity, plus the hinge
        in the share it is in force at today's position against the competitor (all of it above
        a sharp kink, none below; on the smoothed ramp, Phi(gap / s)): what a small move does.
        Where the jitter leaves it open which side of the competitor today's price is on, the
        slope is either the elasticity or the elasticity plus the whole hinge: the s.e. holds
        that spread too (h^2 Phi (1 - Phi), the variance of h times a coin with odds Phi). A
        hinge estimated but not clear is left out of the slope; the s.e. then holds what leaving
        it out may miss: its second moment under its posterior on the spread of the catalog's
        hinges (`hinge_posterior`; its mean alone, about nothing, where no hinge differs from
        the others beyond noise)."""
        n = len(self)
        sd = np.zeros(n) if self.ramp_sd is None else self.ramp_sd
        hinge_se = self.hinge_se if self.hinge_se is not None else np.zeros(n)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.log(self.price_ref / self.competitor_price)
            known = np.isfinite(self.competitor_price) & (self.competitor_slope < 0)
            share = np.nan_to_num(np.where(known, ramp_slope(gap, sd), 0.0))
            slope = self.elasticity + share * self.competitor_slope
            doubt = share * np.nan_to_num(hinge_se, posinf=0.0)
            side = self.competitor_slope**2 * share * (1 - share)
            # a hinge estimated but not used (not clear): the slope takes none, off by the
            # hinge's second moment under its posterior on the spread of the catalog's hinges
            mean, var = self.hinge_posterior()
            prior = np.isfinite(self.competitor_price) & np.isfinite(self._spread_known())
            unused = prior & np.isfinite(hinge_se) & (hinge_se > 0) & ~known
            reach = np.nan_to_num(np.where(unused, ramp_slope(gap, sd), 0.0))
            # one the SKU's own data lean toward: its own second moment, as the search judges it
            own = np.nan_to_num(self.hinge_raw) ** 2 + np.where(unused, hinge_se, 0.0) ** 2
            second = np.where(self.leaning_hinge(), np.maximum(own, mean**2 + var), mean**2 + var)
            side = side + reach**2 * np.where(unused, second, 0.0)
            # the slope's error and the clear hinge's are correlated (`slope_hinge_corr`)
            rho = 0.0 if self.slope_hinge_corr is None else np.nan_to_num(self.slope_hinge_corr)
            cross = 2 * np.where(known, rho, 0.0) * self.elasticity_se * doubt
            cross = np.where(np.isfinite(cross), cross, 0.0)  # (an unknown slope: its s.e. inf)
            spread = np.where(
                (share > 0) | (side > 0),
                np.sqrt(np.maximum(self.elasticity_se**2 + doubt**2 + cross + side, 0.0)),
                self.elasticity_se,
            )
        return slope, spread

    @property
    def hinge_spread(self) -> tuple[float, float, float, float] | bool | None:
        """The catalog's spread of hinges this curve holds (`hinge_prior`: centre, tau^2,
        spike, the centre's variance); False where it holds none (each hinge on its own), None
        where it was never set (a curve made field by field)."""
        if self.hinge_tau2 is None or self.hinge_centre is None:
            return None
        if not len(self) or not np.isfinite(self.hinge_tau2[0]):
            return False
        cv = 0.0 if self.hinge_centre_var is None else float(self.hinge_centre_var[0])
        return (
            float(self.hinge_centre[0]),
            float(self.hinge_tau2[0]),
            float(self._spike()[0]),
            cv if np.isfinite(cv) else 0.0,
        )

    def _spike(self) -> np.ndarray:
        """The catalog's share of SKUs without a hinge, per SKU (0: one normal spread)."""
        if self.hinge_spike is None:
            return np.zeros(len(self))
        return np.nan_to_num(self.hinge_spike, nan=0.0)

    def leaning_hinge(self) -> np.ndarray:
        """Per SKU: its hinge is clear, or its own data lean toward one (HINGE_LEAN_Z s.e.
        below zero): judged on its own end where that is steeper than the catalog's."""
        n = len(self)
        if self.hinge_raw is None or self.hinge_se is None:
            return np.zeros(n, dtype=bool)
        with np.errstate(invalid="ignore"):
            lean = np.nan_to_num(self.hinge_raw) + HINGE_LEAN_Z * self.hinge_se < 0
        return (self.competitor_slope < 0) | lean

    def unread_hinge(self) -> np.ndarray:
        """Per SKU: a competitor's price known and the SKU's own hinge unread (s.e. inf: its
        days on one side of the competitor too few to tell one, or none; a slow mover in an
        order export lists only the days it sold, and a collapse above the competitor hides its
        own days there). Whether its demand collapses above the competitor, its days cannot
        say: a raise is judged on the catalog's spread of hinges, or where none is measured
        (fewer than HINGE_SPREAD_MIN hinges read) on the fit's own prior (`hinge_parts`; the
        optimiser weighs that mixture for raises only). A SKU above the competitor today whose
        slope was read on days above it holds some of its hinge already and is judged the more
        warily for it: on the simulator, slow movers above the competitor that collapse there
        read slopes 1.9 s.e. less elastic than they are."""
        n = len(self)
        if self.hinge_se is None or self.competitor_price is None:
            return np.zeros(n, dtype=bool)
        return ~np.isfinite(self.hinge_se) & np.isfinite(self.competitor_price)

    def _spread_known(self) -> np.ndarray:
        """tau^2 of the catalog's hinges per SKU (NaN where no spread is known)."""
        return np.full(len(self), np.nan) if self.hinge_tau2 is None else self.hinge_tau2

    def hinge_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per SKU, the hinge's posterior on the catalog's spread of hinges as its two parts:
        the chance r that the SKU is one of those with a hinge (1 where the spread has no share
        without one), the normal posterior (mean m, variance v) of its hinge if it is (the
        weight w = tau^2 / (tau^2 + s.e.^2) on its own estimate, the rest on the catalog's
        mean; v = w s.e.^2 + (1 - w)^2 x the mean's own variance),
        and where the posterior is such a mixture (0 < r < 1 possible: a spread with a share
        without a hinge, a hinge estimated, a competitor's price known; a clear or leaning one
        too, `leaning_hinge`, whose own end the search keeps).
        Without a spread, or where the hinge is a fact (s.e. 0) or unknown (s.e. inf): r = 1,
        its own estimate and s.e.^2; but an unknown one (`unread_hinge`) is the spread itself,
        a mixture: r = 1 - spike, m the slab's mean, v its tau^2 and the mean's own variance;
        where no spread is known, the fit's prior N(0, HINGE_PRIOR_SD^2) as the curve uses a
        hinge (min(h, 0): r = 1/2, m and v its negative half's). The
        chance is read off the reading's two likelihoods, (1 - spike) N(raw; centre, tau^2 +
        s^2) against spike N(raw; 0, s^2), with a reading above the point where the slab's
        wider tail would read it as likelier again taken at that point (-centre s^2 / tau^2; no
        more a sign of a collapse than there): r never falls as the reading falls."""
        n = len(self)
        raw = np.zeros(n) if self.hinge_raw is None else np.nan_to_num(self.hinge_raw)
        se = np.zeros(n) if self.hinge_se is None else self.hinge_se
        # as the spread's fit reads them (0: a fact; inf: unknown)
        se = np.where(np.isfinite(se) & (se > 0), np.clip(se, 1e-6, 1e6), se)
        tau2 = self._spread_known()
        centre = np.full(n, np.nan) if self.hinge_centre is None else self.hinge_centre
        spike = np.clip(self._spike(), 0.0, 1.0)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            prior = np.isfinite(tau2) & np.isfinite(centre) & np.isfinite(se) & (se > 0)
            s2 = np.where(prior, se, 1.0) ** 2
            t2, mu = np.nan_to_num(tau2), np.nan_to_num(centre)
            w = np.where(prior, t2 / (t2 + s2), 1.0)
            m = np.where(prior, w * raw + (1 - w) * mu, raw)
            # the centre is an estimate too: what the posterior takes of it, it takes with its
            # variance (with tau^2 0 the posterior is the centre, not a certainty)
            cv = np.zeros(n) if self.hinge_centre_var is None else self.hinge_centre_var
            v = np.where(prior, w * s2 + (1 - w) ** 2 * np.nan_to_num(cv), se * se)
            turn = np.where(t2 > 0, -mu * s2 / np.where(t2 > 0, t2, 1.0), np.inf)
            x = np.minimum(raw, turn)
            log_odds = (
                -0.5 * ((x - mu) ** 2 / (t2 + s2) + np.log(t2 + s2))
                + 0.5 * (x * x / s2 + np.log(s2))
                + np.log1p(-spike)
                - np.log(spike)
            )
            mixed = prior & (spike > 0) & np.isfinite(self.competitor_price)
            r = np.where(mixed, 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700, 700))), 1.0)
            # an unread hinge (`unread_hinge`): the catalog's spread itself, its share with a
            # hinge and its slab (the centre's own variance too); without one, the fit's prior
            # N(0, HINGE_PRIOR_SD^2) as the curve uses a hinge, min(h, 0): none with chance
            # one half, else its negative half (PRIOR_HALF_MEAN, PRIOR_HALF_VAR)
            unread = self.unread_hinge()
            spread = np.isfinite(tau2) & np.isfinite(centre)
            r = np.where(unread, np.where(spread, 1.0 - spike, 0.5), r)
            m = np.where(unread, np.where(spread, mu, PRIOR_HALF_MEAN), m)
            v = np.where(unread, np.where(spread, t2 + np.nan_to_num(cv), PRIOR_HALF_VAR), v)
        return r, m, v, mixed | unread

    def hinge_posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Per SKU: the hinge's posterior mean and variance on the catalog's spread of hinges
        (`hinge_parts`: r m and r (v + m^2) - (r m)^2, the mixture's; with no share without a
        hinge, the normal posterior); its own estimate and s.e.^2 where no spread is known, or
        where the hinge is a fact (s.e. 0); one its days cannot read (`unread_hinge`), the
        mixture's of the catalog's spread or of the fit's prior."""
        r, m, v, _ = self.hinge_parts()
        return r * m, np.maximum(r * (v + m * m) - (r * m) ** 2, 0.0)

    def _per_sku(self, values: np.ndarray, shape) -> np.ndarray:
        return values if len(shape) == 1 else values[:, None]

    def pessimistic_curvature(self, z: float) -> np.ndarray:
        """The curvature z s.e. more bent (fewer units both above and below today's price);
        `-z` for the straighter end. A curve without a curvature s.e. takes it as given."""
        c_se = 0.0 if self.curvature_se is None else self.curvature_se
        return np.clip(self.curvature - z * c_se, CURVATURE_FLOOR, 0.0)

    def pessimistic_hinge(self, z: float, raise_: bool) -> np.ndarray:
        """The hinge z s.e. toward the unfavourable side: steeper for a raise past the
        competitor (even where it is not clearly there), flatter for a cut back below it. A
        curve without a hinge s.e. takes its hinge as given."""
        if self.hinge_se is None or self.hinge_raw is None:
            return self.competitor_slope
        with np.errstate(invalid="ignore"):
            if raise_:
                # wherever the data can estimate one (the SKU was seen on both sides): a hinge
                # the SKU's data lean toward (z s.e. below zero; every clear one) at its own
                # end: a rare SKU that collapses above the competitor is not judged on a
                # catalog where few do; any other at its posterior's end on the catalog's
                # spread of hinges (the spread itself where the SKU's days read none, or the
                # fit's prior where no spread is known: `unread_hinge`)
                # (with a share of SKUs without a hinge: its end if it has one, times the
                # chance it has; a leaning one, its end if it has one: `hinge_parts`)
                unread = self.unread_hinge()
                known = np.isfinite(self.hinge_se) | unread
                r, m, v, _ = self.hinge_parts()
                own = self.hinge_raw - z * self.hinge_se
                slab = m - z * np.sqrt(v)
                steep = np.where(self.leaning_hinge(), np.minimum(own, slab), r * slab)
                # an unread hinge on the fit's prior alone: at least as steep as that prior's
                # own z-quantile, -HINGE_PRIOR_SD z (min(h, 0) of N(0, 3^2); r x its half's
                # end is its mean at z 0 but far milder in the tail: review)
                prior = unread & ~np.isfinite(self._spread_known())
                steep = np.where(prior, np.minimum(steep, -HINGE_PRIOR_SD * z), steep)
                steep = np.where(known, steep, self.competitor_slope)
                return np.minimum(np.minimum(steep, self.competitor_slope), 0.0)
            flat = np.where(np.isfinite(self.hinge_se), self.hinge_raw + z * self.hinge_se, 0.0)
            return np.where(self.competitor_slope < 0, np.minimum(flat, 0.0), 0.0)

    def pessimistic_kink(self, z: float, raise_) -> np.ndarray:
        """The competitor's price z of its reading's s.d. toward the unfavourable side: lower for
        a raise (the collapse starts sooner), higher for a cut (less of the move is above it)."""
        sd = np.zeros(len(self)) if self.competitor_sd is None else self.competitor_sd
        comp, raise_ = self.competitor_price, np.asarray(raise_, bool)
        if raise_.ndim == 2:  # per candidate price
            comp, sd = comp[:, None], sd[:, None]
        return comp * np.exp(np.where(raise_, -1.0, 1.0) * z * sd)

    def log_ratio(
        self, price, elasticity=None, hinge=None, curvature=None, competitor=None
    ) -> np.ndarray:
        """log(q(price) / q_ref); `price` is (n,) or (n, k) (k candidate prices per SKU).
        `elasticity` and `hinge` replace the slope and the competitor hinge (e.g. pessimistic
        ones) where given, per SKU or per candidate."""
        price = np.asarray(price, dtype=np.float64)
        col = lambda v: self._per_sku(v, price.shape)  # noqa: E731
        per = lambda v: v if v.ndim == price.ndim == 2 else col(v)  # noqa: E731
        e = self.elasticity if elasticity is None else np.asarray(elasticity, dtype=np.float64)
        h = self.competitor_slope if hinge is None else np.asarray(hinge, dtype=np.float64)
        c = self.curvature if curvature is None else np.asarray(curvature, dtype=np.float64)
        slope = per(e)
        with np.errstate(all="ignore"):
            d = np.log(price / col(self.price_ref))
            out = slope * d
            if c.any():  # (each term only where some SKU has it: a hot path)
                out += col(c) * d * d
            hinge = per(h)
            kink = np.isfinite(col(self.competitor_price)) & (hinge < 0)
            if not kink.any():
                return out
            comp = col(self.competitor_price) if competitor is None else per(competitor)
            sd = 0.0 if self.ramp_sd is None else col(self.ramp_sd)
            above = ramp(np.log(price / comp), sd) - ramp(np.log(col(self.price_ref) / comp), sd)
        return np.where(kink, out + hinge * above, out)

    def from_position(self, gap, competitor=None) -> np.ndarray:
        """Per SKU, log units from the position `gap` (log(price / competitor's price)) to
        today's (price_ref against `competitor`, else competitor_price) through the hinge the
        curve uses; 0 where either is unknown, where no hinge is used, or where the positions
        the SKU was seen at are unknown. Both positions are taken within those seen (gap_low to
        gap_high): the hinge is no evidence of where the SKU never stood (a reading far off or
        a competitor's deep cut moves the level no further than the SKU's own days have)."""
        n = len(self)
        gap = _column(gap, n)
        comp = self.competitor_price if competitor is None else _column(competitor, n)
        sd = 0.0 if self.ramp_sd is None else self.ramp_sd
        low, high = _column(self.gap_low, n), _column(self.gap_high, n)
        bounded = np.isfinite(low) & np.isfinite(high)
        with np.errstate(all="ignore"):
            now = np.where(bounded, np.clip(np.log(self.price_ref / comp), low, high), np.nan)
            then = np.where(bounded, np.clip(gap, low, high), np.nan)
            step = self.competitor_slope * (ramp(now, sd) - ramp(then, sd))
        return np.where(np.isfinite(step) & (self.competitor_slope < 0), step, 0.0)

    def values_as_competitor_moves(self, price, cost, revenue_mask, shifts):
        """`value(price, cost, revenue_mask, competitor=...)` with the competitor's price at
        competitor_price x exp(s) for each s of `shifts` (per SKU arrays, log price), one
        array per shift, in order; `price` (n, k). What does not depend on where the
        competitor's price is (the slope, the bend, the margin) is computed once, the hinge's
        ramp once per shift: the chance of a loss near a kink reads 40 positions of it
        (ml.science.optimizer._over_the_kink)."""
        price = np.asarray(price, dtype=np.float64)
        col = lambda v: self._per_sku(v, price.shape)  # noqa: E731
        unit_cost = self._unit_cost(price, cost, revenue_mask)
        with np.errstate(all="ignore"):
            d = np.log(price / col(self.price_ref))
            out = col(self.elasticity) * d
            if self.curvature.any():
                out += col(self.curvature) * d * d
            scale = (price - unit_cost) * col(self.units_ref)
            hinge = col(self.competitor_slope)
            kink = np.isfinite(col(self.competitor_price)) & (hinge < 0)
            gap = np.log(price / col(self.competitor_price))
            ref_gap = np.log(col(self.price_ref) / col(self.competitor_price))
            sd = 0.0 if self.ramp_sd is None else col(self.ramp_sd)
        for shift in shifts:
            with np.errstate(all="ignore"):
                s = col(np.asarray(shift, dtype=np.float64))
                above = ramp(gap - s, sd) - ramp(ref_gap - s, sd)
                value = scale * np.exp(np.where(kink, out + hinge * above, out))
            yield value

    def units(self, price, elasticity=None, hinge=None, curvature=None, competitor=None):
        price = np.asarray(price, dtype=np.float64)
        with np.errstate(all="ignore"):
            return self._per_sku(self.units_ref, price.shape) * np.exp(
                self.log_ratio(price, elasticity, hinge, curvature, competitor)
            )

    def units_interval(self, price, z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per SKU, expected units per day at `price` ((n,); `expected_units`) and the ends of
        its z-s.e. interval: each uncertain part of the curve (the slope, the bend, the hinge
        above the competitor, where the competitor's price really is) at both of its z-s.e.
        ends, the shifts of log units below and above the curve's own point combined as errors
        (the root of their sum of squares, the slope's and the hinge's with their correlation),
        as the optimiser combines a gain's (ml.science.optimizer.robust_value). The interval
        of the change from
        today's price: the level at today's price is not part of it. Where the slope's s.e. is
        not finite (inf or NaN), the interval of a move is 0 to inf (unknown). Where the
        competitor's price is, only as far as the curve says (`competitor_sd`: a curve from
        `ml.selectors.demand_curve` holds the doubt its caller gives it; a stored forecast's
        is the one its recommendation was decided on, `Recommendation.competitor_sd`)."""
        price = np.asarray(price, dtype=np.float64)
        if price.shape != (len(self),):
            raise ValueError(f"units_interval takes one price per SKU, not shape {price.shape}")
        n = len(self)
        point = self.log_ratio(price)
        e = self.elasticity
        se = np.nan_to_num(self.elasticity_se, nan=0.0, posinf=0.0)  # (unknown: below)
        steep, flat = self.pessimistic_hinge(z, True), self.pessimistic_hinge(z, False)
        bent, straight = self.pessimistic_curvature(z), self.pessimistic_curvature(-z)
        sd = np.zeros(n) if self.competitor_sd is None else self.competitor_sd
        comp = self.competitor_price
        with np.errstate(all="ignore"):
            at_steep = self.log_ratio(price, hinge=steep)
            at_kink = [
                self.log_ratio(price, hinge=steep, competitor=comp * np.exp(s * z * sd))
                for s in (-1.0, 1.0)
            ]

            def shifts(*ends):
                moved = np.stack([np.nan_to_num(end - base) for end, base in ends])
                return np.maximum(-moved.min(axis=0), 0.0), np.maximum(moved.max(axis=0), 0.0)

            slope = shifts(
                (self.log_ratio(price, elasticity=e - z * se), point),
                (self.log_ratio(price, elasticity=e + z * se), point),
            )
            parts = [
                slope,
                shifts((at_steep, point), (self.log_ratio(price, hinge=flat), point)),
                shifts(
                    (self.log_ratio(price, curvature=bent), point),
                    (self.log_ratio(price, curvature=straight), point),
                ),
                # where the competitor's price is, judged with the hinge at its steep end (the
                # kink needs one), as the search judges it
                shifts(*((moved, at_steep) for moved in at_kink)),
            ]
            down = sum(part[0] ** 2 for part in parts)
            up = sum(part[1] ** 2 for part in parts)
            rho = 0.0 if self.slope_hinge_corr is None else np.nan_to_num(self.slope_hinge_corr)
            if np.any(rho != 0) and self.hinge_se is not None:
                # the slope's and the hinge's own errors move log units the same way (both
                # with the price), so each side's cross term takes its own ends: the hinge's
                # own estimate's (the correlation is its), not the catalog's
                raw = np.nan_to_num(self.hinge_raw)
                h_se = np.nan_to_num(self.hinge_se, posinf=0.0)
                own = shifts(
                    (self.log_ratio(price, hinge=np.minimum(raw - z * h_se, 0.0)), point),
                    (self.log_ratio(price, hinge=np.minimum(raw + z * h_se, 0.0)), point),
                )
                down = np.maximum(down + 2 * rho * slope[0] * own[0], 0.0)
                up = np.maximum(up + 2 * rho * slope[1] * own[1], 0.0)
            # a slope of unknown doubt (inf or NaN): any number of units, but at today's price
            unknown = ~np.isfinite(self.elasticity_se) & (np.abs(price - self.price_ref) > 0)
            low = np.where(unknown, 0.0, self.units_ref * np.exp(point - np.sqrt(down)))
            high = np.where(unknown, np.inf, self.units_ref * np.exp(point + np.sqrt(up)))
            # the point is what the recommendation shows (a mixed hinge's mixture: inside the
            # interval, whose low end holds the hinge's steep end)
            units = np.clip(self.expected_units(price), low, high)
            return units, low, high

    def profit(self, price, cost) -> np.ndarray:
        """Profit per day; a SKU without a cost counts its revenue."""
        return self.value(price, cost, np.zeros(len(self), dtype=bool))

    def expected_units(self, price) -> np.ndarray:
        """Expected units per day at `price` ((n,) or (n, k)) as a recommendation shows them:
        the curve's own, but where its hinge above the competitor is a mixture that the
        decision weighs (`hinge_parts`: a chance r that the SKU is one whose demand collapses
        there, a hinge its days cannot read among them; not a clear or leaning one, which the
        curve already uses and the search keeps) the mixture's, (1 - r) x the curve without a
        hinge + r x the curve with its posterior mean, and never more than the curve's own (a
        cut back below the competitor that would sell more only if the SKU collapses above it
        is not shown that gain, as it is not made on it): the mixture the risk budget weighs
        (ml.science.optimizer._chance). On a raise past the competitor on a hinge its days
        cannot read, in a catalog where few SKUs collapse, the curve's own could show about
        twice the gain the mixture expects. Near the kink of a hinge the curve uses, where the
        competitor's price is doubted (`competitor_sd`), the units are averaged over where it
        really is, as the budget averages the gain (`_over_the_competitors_doubt`), and never
        more than at the price as read. So the card, the export, the chart and the forecast
        show what the decision weighed."""
        return self._expected_units(np.asarray(price, dtype=np.float64))

    def _expected_units(self, price: np.ndarray, margin=None) -> np.ndarray:
        """`expected_units`, the smaller of two readings taken where `margin` (the money a unit
        adds at `price`, its shape; None: units alone) is not negative and the larger where it
        is: the smaller gain, as the budget weighs it (below cost, fewer units lose less)."""
        own = self._over_the_competitors_doubt(price, self.units(price), margin)
        if self.hinge_se is None or self.hinge_raw is None:
            return own
        r, m, _v, mixed = self.hinge_parts()
        rows = mixed & ~self.leaning_hinge()
        if not rows.any():
            return own
        # (a mixed hinge that is not leaning is not used by the curve: its own is without one)
        with np.errstate(all="ignore"):
            some = self.units(price, hinge=np.where(rows, np.minimum(m, 0.0), 0.0))
            w = self._per_sku(np.where(rows, r, 0.0), price.shape)
            mixture = (1 - w) * own + w * some
        return np.where(self._per_sku(rows, price.shape), _smaller(own, mixture, margin), own)

    def _over_the_competitors_doubt(
        self, price: np.ndarray, units: np.ndarray, margin=None
    ) -> np.ndarray:
        """`units` at `price` ((n,) or (n, k)), but for the SKUs whose hinge the curve uses and
        whose kink `price` or today's price comes within KINK_REACH s.d. of (the competitor's
        price doubted by `competitor_sd`, with the buyers' ramp): the mean over KINK_NODES
        equally likely positions of the competitor's price, where the smaller gain (fewer
        units; more below cost, `margin`). Today's units are the level read at wherever the
        competitor's price was, so they do not move with it."""
        rows = self.near_kink(price, self.price_ref)
        if not len(rows):
            return units
        sd, comp = self.competitor_sd, self.competitor_price
        part, at = self.subset(rows), price[rows]
        with np.errstate(all="ignore"):
            mean = (
                sum(
                    part.units(at, competitor=comp[rows] * np.exp(node * sd[rows]))
                    for node in KINK_AT
                )
                / KINK_NODES
            )
        out = np.array(units, dtype=np.float64, copy=True)
        out[rows] = _smaller(units[rows], mean, None if margin is None else margin[rows])
        return out

    def near_kink(self, price, base) -> np.ndarray:
        """The SKUs (their indices) whose hinge the curve uses and whose kink `price` ((n,) or
        (n, k)) or `base` (the price a move starts from, (n,) or (n, 1)) comes within
        KINK_REACH s.d. of, the competitor's price doubted (`competitor_sd`, with the buyers'
        ramp): where the gain is averaged over where that price really is
        (ml.science.optimizer._over_the_kink, `expected_units`)."""
        sd, comp = self.competitor_sd, self.competitor_price
        if sd is None or not np.any(sd > 0):
            return np.zeros(0, dtype=np.int64)
        with np.errstate(all="ignore"):
            ramp_sd = 0.0 if self.ramp_sd is None else self.ramp_sd
            reach = (KINK_REACH * np.sqrt(sd**2 + ramp_sd**2))[:, None]
            near = np.zeros(len(self), dtype=bool)
            for at in (price, base):
                at = np.asarray(at, dtype=np.float64)
                at = at if at.ndim == 2 else at[:, None]
                near |= (np.abs(np.log(at / comp[:, None])) <= reach).any(axis=1)
        return np.flatnonzero((sd > 0) & np.isfinite(comp) & (self.competitor_slope < 0) & near)

    def _unit_cost(self, price: np.ndarray, cost, revenue_mask) -> np.ndarray:
        """The cost a unit sold at `price` ((n,) or (n, k)) is counted at: 0 where the objective
        is revenue (`revenue_mask`) or no cost is known."""
        col = lambda v: self._per_sku(v, price.shape)  # noqa: E731
        return np.where(col(revenue_mask), 0.0, col(np.nan_to_num(_column(cost, len(self)))))

    def expected_value(self, price, cost, revenue_mask) -> np.ndarray:
        """`value` on `expected_units`: the objective per SKU a recommendation shows (where the
        units are the smaller of two readings, the smaller value: below cost, the more
        units)."""
        price = np.asarray(price, dtype=np.float64)
        margin = price - self._unit_cost(price, cost, revenue_mask)
        return margin * self._expected_units(price, margin)

    def expected_profit(self, price, cost) -> np.ndarray:
        """Profit per day on `expected_units`; a SKU without a cost counts its revenue."""
        return self.expected_value(price, cost, np.zeros(len(self), dtype=bool))

    def value(
        self,
        price,
        cost,
        revenue_mask,
        elasticity=None,
        hinge=None,
        curvature=None,
        competitor=None,
    ) -> np.ndarray:
        """The objective per SKU: revenue where `revenue_mask`, else profit."""
        price = np.asarray(price, dtype=np.float64)
        unit_cost = self._unit_cost(price, cost, revenue_mask)
        return (price - unit_cost) * self.units(price, elasticity, hinge, curvature, competitor)
