"""The price optimiser: for every SKU at once (numpy, no Python loop over SKUs), the price that
maximises the objective inside the merchant's rules, on the one demand curve (ml.science.curve).

Pure module. Hard rules are floors and ceilings:
- minimum margin over cost (default 10 %), absolute min / max price, MAP (a floor);
- the maximum step per reprice (default ±20 %), which yields to a hard rule: a SKU whose price
  today breaks a hard rule gets the nearest price that restores it;
- an optional competitor position (at most x % above the lowest competitor), which yields to
  the hard floors (a flagged conflict, never a violation of a floor).
Soft limits keep the curve where it is known and stop a ratchet: the prices the SKU was seen at,
widened by a margin (no extrapolation); a cumulative change per window; no second move in the
same direction before the last one has been observed. None of them ever forces a move.

A change is recommended only when its expected objective beats keeping today's price by the
minimum gain (absolute per day and relative). How far an uncertain move goes is set by the risk
budget (`loss_budget`): the whole move searched on the point estimate, a part of it (in
twentieths) or none per SKU, so that the run's expected gain is largest while the expected
share of its SKUs whose change loses money (more than `loss_tolerance`, 0.5 %, of the day's
objective) stays within the budget (1 %) and no change does so with a probability above
`max_loss_chance` (1 in 10); the gain's standard error combines the uncertain parts of the
curve as independent errors (`robust_value`); the budget is spent per call (per block of BLOCK
SKUs above 2 x BLOCK), less the chances of recent changes no sales have verified yet.
Without a budget (and with `gain_z` 1, the search at the gain's 1-s.e. lower end), a per-SKU
test instead: the move must still gain at its `test_z` (1.645: 95 % one-sided) lower end, or
the largest part of it that does (`shrink_to_pass`); where no part does, today's price is kept.
Where a rule forces a move, the smallest move that satisfies it is the baseline instead.
Price endings (e.g. .99) are candidates inside the search: the better of the nearest allowed
endings below and above, judged on the curve. Where the elasticity is uncertain the move
shrinks toward today's price. Contradictory rules (a floor above a ceiling) give no
recommendation and name the rule. Non-finite estimates never reach a recommendation: the SKU
keeps today's price, clamped to its hard rules.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace

import numpy as np
from scipy.special import ndtr

from .curve import KINK_AT, KINK_NODES, DemandCurve, measured_spread

# Bit flags of the rules that bind a recommendation (an int per SKU).
RULES = {
    "min_margin": 1,
    "max_step": 2,
    "min_price": 4,
    "max_price": 8,
    "map": 16,
    "competitor": 32,
    "ending": 64,
    "uncertainty": 128,
    "no_estimate": 256,
    "conflict": 512,  # contradictory hard rules: no recommendation
    "restores_rule": 1024,  # today's price breaks a hard rule; the step limit yielded
    "no_cost": 2048,  # profit objective without a cost: revenue was optimised instead
    "min_units": 4096,  # lowered to sell at least the minimum units (volume, clearance)
    "min_revenue": 8192,  # moved to keep at least the minimum revenue
    "reference": 16384,  # no sales yet: moved into the market's reference-price interval
    "no_cost_kept": 32768,  # profit objective without a cost: today's price kept (configured)
    "min_gain": 65536,  # the best move gains less than the minimum: today's price kept
    "evidence": 131072,  # held inside the prices the SKU was seen at (no extrapolation)
    "window": 262144,  # held by the cumulative change allowed per window
    "wait": 524288,  # moved this way recently: waits for sales at that price first
    "price_doubt": 1048576,  # today's price itself is in doubt: kept, moved only by a hard rule
    # held at or below the competitor's price: demand may fall away faster above it (a hinge
    # read, or one the data cannot rule out), and without it the move would have gone past
    "competitor_hinge": 2097152,
}
# How far below the competitor's price a raise held back by a possible collapse above it may
# stop and still be said to stop at it (log price; at least twice the buyers' ramp)
HINGE_NEAR = 0.03
NO_COST_FALLBACKS = ("revenue", "keep")


@dataclass
class Rules:
    min_margin: float | np.ndarray = 0.10
    max_step: float | np.ndarray = 0.20
    min_price: float | np.ndarray = np.nan
    max_price: float | np.ndarray = np.nan
    map_price: float | np.ndarray = np.nan
    competitor_price: float | np.ndarray = np.nan  # lowest competitor price
    # How far that price may be off the one buyers meet, in log price (the reprice gives the
    # day's jitter and the level's error; sqrt 2 x the jitter for one reading): the
    # pessimistic curve places the competitor's price one such s.d. toward the unfavourable
    # side of each move, as one part of the gain's standard error (0: the reading taken as
    # exact).
    competitor_sd: float | np.ndarray = 0.0
    # The jitter the demand model smoothed the hinge above the competitor over (the curve's
    # ramp_sd, ml.science.curve.ramp; 0: a sharp kink at the competitor's price).
    ramp_sd: float | np.ndarray = 0.0
    max_above_competitor: float | np.ndarray = np.nan  # e.g. 0.05 = at most 5 % above it
    # The competitor's price that rule caps against (NaN: competitor_price; the reprice gives
    # the lower of the level of its readings and its latest reading)
    competitor_cap: float | np.ndarray = np.nan
    ending: float | None = None  # e.g. 0.99
    # Optional per-day floors on expected units and revenue (e.g. keep 90 % of today's volume,
    # or sell the stock within N days): the objective is maximised among prices that meet them,
    # else the price that comes closest (the most units) is taken.
    min_units: float | np.ndarray = np.nan
    min_revenue: float | np.ndarray = np.nan
    # What the market pays for items like it (the reference-price model's interval): a SKU with
    # no sales yet (expected units 0) is moved into it; without one it keeps today's price.
    reference_low: float | np.ndarray = np.nan
    reference_high: float | np.ndarray = np.nan
    objective: str = "profit"  # profit | revenue
    # Profit needs a cost. Without one: "revenue" (maximise revenue instead) or "keep" (today's
    # price, moved only to restore a hard rule). Either way the recommendation says so.
    no_cost: str = "revenue"
    method: str = "analytic"  # analytic (exact for the constant-elasticity curve) | grid
    candidates: int = 41  # grid (and SKUs with a curvature or a competitor kink)
    # No extrapolation: the prices seen (per SKU; NaN unknown), widened by the margin, and the
    # positions against the lowest competitor seen, log(price / competitor).
    evidence_low: float | np.ndarray = np.nan
    evidence_high: float | np.ndarray = np.nan
    gap_low: float | np.ndarray = np.nan
    gap_high: float | np.ndarray = np.nan
    evidence_margin: float | np.ndarray = 0.05
    # The cumulative change allowed in the window, as absolute bounds (from the price history).
    window_low: float | np.ndarray = np.nan
    window_high: float | np.ndarray = np.nan
    # Moved up (down) recently and not observed since: no further move that way (0/1 per SKU).
    hold_up: float | np.ndarray = 0.0
    hold_down: float | np.ndarray = 0.0
    # Per SKU (0/1): today's price itself is in doubt (the reprice: every competitor prices
    # the item far from it, `ml.science.competitor.own_price_doubt`): kept, moved only to
    # restore a hard rule, as the "keep" fallback for a missing cost keeps a price.
    price_in_doubt: float | np.ndarray = 0.0
    # A change must gain at least this much objective per day over keeping today's price (or
    # the smallest move a rule forces), and this share of it, ...
    min_gain_abs: float | np.ndarray = 0.01
    min_gain_rel: float | np.ndarray = 0.01
    # The search: the price whose gain is best at its gain_z-s.e. lower end (0: the point
    # estimate's best; 1: the gain's 16th percentile, each side of today's price on its own
    # pessimistic curve).
    gain_z: float = 0.0
    # The risk budget (the default): each SKU's move is a part of the searched one (twentieths,
    # `shrink_steps`, or none), chosen so that the run's expected gain is largest while the
    # expected share of its SKUs whose change loses money (more than `loss_tolerance` of the
    # day's objective) stays within `loss_budget`, and no single change loses money with a
    # probability above `max_loss_chance`. The probabilities are the normal ones of the gain's
    # standard error (`robust_value`). None: the per-SKU test below instead.
    loss_budget: float | None = 0.01
    max_loss_chance: float = 0.10
    loss_tolerance: float = 0.005
    # Per SKU, the price before a recent change that no sales have verified yet (NaN: none):
    # the chance that change loses money is already spent from the budget, so nightly runs
    # without new data do not take a little more risk each night.
    unverified_from: float | np.ndarray = np.nan
    # ... and the chance charged for that change when it was decided (its recommendation's
    # `loss_chance`; NaN: unknown, e.g. a price the approver edited: judged on today's curve).
    unverified_chance: float | np.ndarray = np.nan
    # Without a budget: the test each move must pass, its gain still positive at the
    # test_z-s.e. lower end (1.645: a gain with 95 % probability, one-sided, to first order;
    # None: gain_z; 0: the point estimate's gain only), and where the searched price fails it,
    # the largest part of its move that passes (`shrink_to_pass`; False: today's price kept).
    # benchmarks/decision_decomposition.py measures each part.
    test_z: float | None = 1.645
    shrink_to_pass: bool = True
    # Fractions of the searched move tried, from the whole move down.
    shrink_steps: int = 20


@dataclass
class Recommendation:
    price: np.ndarray  # NaN where no recommendation (conflict)
    binding: np.ndarray  # int bit flags (RULES)
    units_now: np.ndarray
    units_new: np.ndarray
    revenue_now: np.ndarray
    revenue_new: np.ndarray
    profit_now: np.ndarray
    profit_new: np.ndarray
    floor: np.ndarray
    ceiling: np.ndarray
    low: np.ndarray  # the range searched (every rule, soft and hard)
    high: np.ndarray
    by_revenue: np.ndarray  # the objective was revenue (by the rules, or for want of a cost)
    value_now: np.ndarray  # the objective per day at today's price (profit, or revenue)
    value_new: np.ndarray
    # The chance the change loses money (more than `loss_tolerance` of the day's objective,
    # against the baseline: today's price or the smallest move a rule forces), as the risk
    # budget judged it; 0 where the optimiser keeps the baseline or a volume floor set the
    # price (the merchant's rule, as a restore), NaN without an estimate.
    loss_chance: np.ndarray | None = None
    conflicts: list[str] = field(default_factory=list)

    def rules_of(self, i: int) -> list[str]:
        return rule_names(self.binding[i])


def rule_names(mask: int) -> list[str]:
    """The names of the rules set in a binding mask."""
    return [name for name, bit in RULES.items() if mask & bit]


def _arr(value, n: int) -> np.ndarray:
    out = np.asarray(value, dtype=np.float64)
    return (
        np.broadcast_to(out, (n,)).astype(np.float64, copy=True)
        if out.ndim == 0
        else out.astype(np.float64)
    )


def _nanmax(*arrays: np.ndarray) -> np.ndarray:
    stacked = np.vstack(arrays)
    empty = np.all(np.isnan(stacked), axis=0)
    return np.where(empty, np.nan, np.max(np.where(np.isnan(stacked), -np.inf, stacked), axis=0))


def _nanmin(*arrays: np.ndarray) -> np.ndarray:
    stacked = np.vstack(arrays)
    empty = np.all(np.isnan(stacked), axis=0)
    return np.where(empty, np.nan, np.min(np.where(np.isnan(stacked), np.inf, stacked), axis=0))


def hard_bounds(price, cost, rules: Rules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hard floor and ceiling per SKU (NaN = none) and which rule set the floor (bit flags)."""
    n = len(price)
    cost = _arr(cost, n)
    margin_floor = np.where(cost > 0, cost * (1 + _arr(rules.min_margin, n)), np.nan)
    min_price, map_price = _arr(rules.min_price, n), _arr(rules.map_price, n)
    floor = _nanmax(margin_floor, min_price, map_price)
    ceiling = _arr(rules.max_price, n)
    return floor, ceiling, margin_floor


BLOCK = 65_536  # SKUs per block: a block's arrays stay in the CPU cache
THREADS = max(1, min(8, os.cpu_count() or 1))  # numpy releases the GIL on large array maths


def optimise(
    price,
    cost,
    units,
    elasticity,
    elasticity_sd=None,
    rules: Rules | None = None,
    chunk: int = 100_000,
    curvature=None,
    competitor_slope=None,
    competitor_slope_se=None,
    curvature_se=None,
    hinge_spread=None,
    slope_hinge_corr=None,
) -> Recommendation:
    """Recommend a price per SKU. `units` are the expected units at today's price.

    `curvature` (optional, per SKU): log units are quadratic in log price around today's,
    log q(p) = log q0 + e d + curvature d^2 with d = log(p / p0); `competitor_slope` (optional):
    the extra slope above the competitor's price (ml.science.curve), an estimate with
    `competitor_slope_se` (used where clearly negative; its pessimistic end judges a raise past
    the competitor; an unclear hinge's on its posterior on `hinge_spread`, the catalog's spread
    of hinges, `ml.science.curve.hinge_prior`, measured on these SKUs where None, none where
    False) or, without one, a given fact; `slope_hinge_corr` (optional): the correlation of the
    errors of `elasticity` and of the hinge (0: independent). SKUs with either are
    optimised on the candidate grid (the analytic optimum holds for constant elasticity only).

    Large inputs are cut into blocks of BLOCK SKUs optimised on THREADS threads: cache-sized
    blocks on all cores. Every SKU is independent of the others except through the risk budget
    (`Rules.loss_budget`), which each block spends on its own SKUs.
    """
    rules = rules or Rules()
    n = len(price)
    if n <= 2 * BLOCK:
        return _optimise(
            price,
            cost,
            units,
            elasticity,
            elasticity_sd,
            rules,
            chunk,
            curvature,
            competitor_slope,
            competitor_slope_se,
            curvature_se,
            hinge_spread=hinge_spread,
            slope_hinge_corr=slope_hinge_corr,
        )
    if hinge_spread is None:  # one spread for every block (none: no block measures its own)
        hinge_spread = (
            measured_spread(n, rules.competitor_price, competitor_slope, competitor_slope_se)
            or False
        )
    blocks = [slice(start, min(n, start + BLOCK)) for start in range(0, n, BLOCK)]

    def per_sku(value):
        """One value per SKU (a scalar or a length-1 array broadcast; any other length is an
        error, as in the one-block path); None and text stay as they are."""
        if value is None or isinstance(value, str):
            return value
        array = np.asarray(value, dtype=np.float64)
        return value if array.ndim == 0 else np.broadcast_to(array, (n,))

    inputs = [
        per_sku(v)
        for v in (
            price,
            cost,
            units,
            elasticity,
            elasticity_sd,
            curvature,
            competitor_slope,
            competitor_slope_se,
            curvature_se,
            slope_hinge_corr,
        )
    ]
    per_rule = {f.name: per_sku(getattr(rules, f.name)) for f in fields(rules)}
    per_rule = {k: v for k, v in per_rule.items() if isinstance(v, np.ndarray)}
    errors = np.geterr()  # numpy's error state is per thread: the caller's holds in each block

    def run(sl):
        cut = [v[sl] if isinstance(v, np.ndarray) else v for v in inputs]
        with np.errstate(**errors):
            return _optimise(
                *cut[:5],
                replace(rules, **{k: v[sl] for k, v in per_rule.items()}),
                chunk,
                cut[5],
                cut[6],
                cut[7],
                cut[8],
                offset=sl.start,
                hinge_spread=hinge_spread,
                slope_hinge_corr=cut[9],
            )

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        parts = list(pool.map(run, blocks))
    arrays = {
        f.name: np.concatenate([getattr(p, f.name) for p in parts])
        for f in fields(Recommendation)
        if f.name != "conflicts"
    }
    conflicts = [c for p in parts for c in p.conflicts][:MAX_CONFLICTS]
    return Recommendation(**arrays, conflicts=conflicts)


MAX_CONFLICTS = 100  # messages kept (the flags mark every SKU)


def _optimise(
    price,
    cost,
    units,
    elasticity,
    elasticity_sd,
    rules: Rules,
    chunk: int,
    curvature,
    competitor_slope=None,
    competitor_slope_se=None,
    curvature_se=None,
    offset: int = 0,
    hinge_spread=None,
    slope_hinge_corr=None,
) -> Recommendation:
    p0 = np.asarray(price, dtype=np.float64)
    n = len(p0)
    c = _arr(cost, n)
    q0 = _arr(units, n)
    e = _arr(elasticity, n)
    sd = _arr(np.nan if elasticity_sd is None else elasticity_sd, n)
    curve = DemandCurve.build(
        p0,
        q0,
        e,
        sd,
        0.0 if curvature is None else curvature,
        competitor_price=rules.competitor_price,
        competitor_sd=rules.competitor_sd,
        ramp_sd=rules.ramp_sd,
        competitor_slope=competitor_slope,
        competitor_slope_se=competitor_slope_se,
        curvature_se=curvature_se,
        evidence_low=rules.evidence_low,
        evidence_high=rules.evidence_high,
        gap_low=rules.gap_low,
        gap_high=rules.gap_high,
        hinge_spread=hinge_spread,
        slope_hinge_corr=slope_hinge_corr,
    )
    binding = np.zeros(n, dtype=np.int64)

    floor, ceiling, margin_floor = hard_bounds(p0, c, rules)
    conflict = ~np.isnan(floor) & ~np.isnan(ceiling) & (floor > ceiling + 1e-9)
    conflicts = []
    for i in np.flatnonzero(conflict)[:MAX_CONFLICTS]:
        conflicts.append(
            f"SKU #{offset + i}: floor {floor[i]:.2f} (margin, min or MAP) is above "
            f"the max price {ceiling[i]:.2f}"
        )
    binding[conflict] |= RULES["conflict"]

    # Soft bounds. The step limit, the evidence range, the window and the wait for evidence
    # only ever narrow the range around today's price; the competitor position may push the
    # price down (within the others). All of them yield to the hard rules.
    step = _arr(rules.max_step, n)
    margin = _arr(rules.evidence_margin, n)
    with np.errstate(invalid="ignore", over="ignore"):
        # positions against today's competitor seen before (a price never seen below, or
        # above, the competitor's is not taken there on a curve fitted elsewhere)
        beside_lo = curve.competitor_price * np.exp(curve.gap_low) * (1 - margin)
        beside_hi = curve.competitor_price * np.exp(curve.gap_high) * (1 + margin)
        soft_lo = {
            "max_step": p0 * (1 - step),
            "evidence": np.minimum(_nanmax(curve.evidence_low * (1 - margin), beside_lo), p0),
            "window": np.minimum(_arr(rules.window_low, n), p0),
            "wait": np.where(_arr(rules.hold_down, n) > 0, p0, np.nan),
        }
        soft_hi = {
            "max_step": p0 * (1 + step),
            "evidence": np.maximum(_nanmin(curve.evidence_high * (1 + margin), beside_hi), p0),
            "window": np.maximum(_arr(rules.window_high, n), p0),
            "wait": np.where(_arr(rules.hold_up, n) > 0, p0, np.nan),
        }
    lo = _nanmax(*soft_lo.values())
    hi = _nanmin(*soft_hi.values())
    cap_at = _arr(rules.competitor_cap, n)
    cap_at = np.where(np.isfinite(cap_at), cap_at, _arr(rules.competitor_price, n))
    comp_cap = cap_at * (1 + _arr(rules.max_above_competitor, n))
    hi = np.maximum(_nanmin(hi, comp_cap), lo)  # the competitor cannot force a bigger step
    # Hard rules win: raise to the floor, lower to the ceiling.
    lo_final = _nanmax(lo, floor)
    hi_final = _nanmin(hi, ceiling)
    hi_final = np.where(np.isnan(floor), hi_final, np.maximum(hi_final, floor))
    lo_final = np.where(np.isnan(ceiling), lo_final, np.minimum(lo_final, ceiling))
    breaks_now = (~np.isnan(floor) & (p0 < floor - 1e-9)) | (
        ~np.isnan(ceiling) & (p0 > ceiling + 1e-9)
    )
    binding[breaks_now] |= RULES["restores_rule"]

    # Cold start: no volume to weigh a price against. Into the reference interval, or keep.
    cold = np.isfinite(q0) & (q0 == 0) & np.isfinite(p0) & (p0 > 0) & ~conflict
    valid = curve.usable
    if rules.no_cost not in NO_COST_FALLBACKS:
        raise ValueError(f"no_cost must be one of {NO_COST_FALLBACKS}, not {rules.no_cost!r}")
    for name in ("loss_budget", "max_loss_chance", "loss_tolerance"):
        value = getattr(rules, name)
        if (value is not None or name != "loss_budget") and not (
            np.isfinite(value) and 0 <= value <= 1
        ):
            raise ValueError(f"{name} must be a share between 0 and 1, not {value!r}")
    estimated = valid.copy()  # a usable estimate (for the expected units, whatever the price)
    kept = np.zeros(n, dtype=bool)
    costless = ~(c > 0)
    # today's price itself in doubt: kept whatever else holds (no reference-price move for a
    # product without sales either: a typo'd new product is the usual case)
    doubted = ~conflict & (_arr(rules.price_in_doubt, n) > 0)
    if rules.objective == "profit":
        if rules.no_cost == "keep":
            kept = valid & costless & ~conflict  # today's price, moved only by a hard rule
            valid = valid & ~kept
        else:
            binding[valid & costless & ~doubted] |= RULES["no_cost"]
    kept, valid = kept | doubted, valid & ~doubted
    by_revenue = np.full(n, rules.objective == "revenue") | costless
    ref_low, ref_high = _arr(rules.reference_low, n), _arr(rules.reference_high, n)
    guided = cold & np.isfinite(ref_low) & np.isfinite(ref_high) & ~doubted
    binding[~estimated & ~conflict & ~guided] |= RULES["no_estimate"]
    best = np.clip(p0, lo_final, hi_final)  # the fallback: today's price inside the rules
    toward = np.clip(np.clip(p0, ref_low, ref_high), lo_final, hi_final)
    min_u, min_r = _arr(rules.min_units, n), _arr(rules.min_revenue, n)
    floors = valid & ~conflict & (np.isfinite(min_u) | np.isfinite(min_r))
    # the competitor hinge in force, or one the data cannot rule out for a raise past it
    kinked = np.isfinite(curve.competitor_price) & (
        (curve.competitor_slope < 0) | (curve.pessimistic_hinge(rules.gain_z, True) < 0)
    )
    # The search is robust: a raise is judged with the elasticity gain_z standard errors more
    # elastic, a cut with it that much less elastic (each side of today's price on its own
    # pessimistic curve), so an uncertain SKU gets a smaller move that still pays, not none.
    with np.errstate(invalid="ignore"):
        doubt = rules.gain_z * np.where(np.isnan(sd), 0.0, sd)
    if rules.method == "analytic":
        robust = _robust_analytic(
            curve, p0, c, e, doubt, lo_final, hi_final, rules.objective, by_revenue
        )
        best = np.where(valid, robust, best)
        curved = (
            valid
            & ~conflict
            & ((curve.curvature != 0) | (curve.curvature_se > 0) | kinked | floors)
        )
        if curved.any():
            best = _grid(
                curve, c, lo_final, hi_final, curved, best, rules, chunk, by_revenue, doubt=doubt
            )
    else:
        best = _grid(
            curve,
            c,
            lo_final,
            hi_final,
            valid & ~conflict,
            best,
            rules,
            chunk,
            by_revenue,
            doubt=doubt,
        )
    held = np.zeros(n, dtype=bool)  # a volume or revenue floor moved the price
    if floors.any():
        floored = _grid(
            curve,
            c,
            lo_final,
            hi_final,
            floors,
            best,
            rules,
            chunk,
            by_revenue,
            min_u,
            min_r,
            doubt=doubt,
        )
        shaped = floors & (np.abs(floored - best) > 1e-9)
        # The floor forces the move where today's price does not meet it (clearance): the
        # merchant's rule, taken whole like a restore. Where today's price meets it, the floor
        # only stops a move the optimiser chose short: that move is weighed as any other.
        with np.errstate(invalid="ignore"):
            met = (~np.isfinite(min_u) | (q0 >= min_u * (1 - 1e-6))) & (
                ~np.isfinite(min_r) | (p0 * q0 >= min_r * (1 - 1e-6))
            )
        held = shaped & ~met
        q_new = curve.units(floored)
        revenue = floored * q_new
        for name, floor_, got in (("min_units", min_u, q_new), ("min_revenue", min_r, revenue)):
            known = np.isfinite(floor_)
            unmet = known & (got < floor_ * (1 - 1e-6))  # the floor cannot be reached: say so
            at_floor = known & (got <= floor_ * (1 + 1e-3))
            binding[floors & (unmet | (shaped & at_floor))] |= RULES[name]
        untold = shaped & ((binding & (RULES["min_units"] | RULES["min_revenue"])) == 0)
        binding[untold] |= np.where(
            np.isfinite(min_u[untold]), RULES["min_units"], RULES["min_revenue"]
        )
        best = floored

    # Uncertainty: shrink the move toward today's price (kept inside the bounds).
    with np.errstate(all="ignore"):
        rel_sd = np.where(np.isfinite(sd) & (np.abs(e) > 0), sd / np.maximum(np.abs(e), 1e-9), 0.0)
    # The move is scaled by how sure the estimate is that demand falls as the price rises:
    # 2 P(e < 0) - 1 under a normal posterior, i.e. 2 Phi(|e| / sd) - 1. A sure estimate moves
    # all the way (s.e. <= |e| / 3: 99.7 %), one whose interval reaches zero part of the way
    # (s.e. = |e| / 2: 95 %, = |e|: 68 %) and a coin flip not at all. The estimate is already
    # shrunk toward its category, so a confident one is not held back twice (the simulator:
    # 1 / (1 + (sd / e)^2) cost 1 % of the attainable lift, benchmarks/RESULTS.md).
    with np.errstate(all="ignore"):
        z = np.where(rel_sd > 0, 1.0 / np.maximum(rel_sd, 1e-12), np.inf)
    weight = np.where(held, 1.0, 2 * ndtr(z) - 1)  # a floor the merchant set is kept
    shrunk = p0 + weight * (best - p0)
    moved_less = valid & (weight < 0.999) & (np.abs(shrunk - best) > 1e-6)
    best = np.where(valid, np.clip(shrunk, lo_final, hi_final), best)

    # Candidates in whole cents: the best price, or the best allowed ending near it.
    upper = _nanmin(ceiling, np.where(breaks_now, np.nan, p0 * (1 + step)))
    lower = _nanmax(floor, np.where(breaks_now, np.nan, p0 * (1 - step)))
    cents = lambda x: _to_cents(x, lo_final, hi_final, lower - 1e-9, upper + 1e-9)  # noqa: E731
    candidate = cents(np.where(guided, toward, best))
    snapped = np.zeros(n, dtype=bool)
    if rules.ending is not None:
        candidate, snapped = _best_ending(
            curve,
            c,
            by_revenue,
            np.where(guided, toward, best),
            candidate,
            lo_final,
            hi_final,
            rules.ending,
            estimated,
        )
    # The baseline: today's price, or the smallest move that satisfies every rule.
    base = cents(np.clip(p0, lo_final, hi_final))
    inside = ~(p0 < lo_final - 1e-9) & ~(p0 > hi_final + 1e-9)  # today's price is allowed
    base = np.where(inside, p0, base)
    forced = ~conflict & (np.abs(base - p0) >= 0.005)
    # Never a loss by construction: a candidate replaces the baseline only when it gains the
    # minimum on the curve, and still gains at the test_z lower end of its gain.
    with np.errstate(invalid="ignore"):
        value_base = curve.value(base, c, by_revenue)
        # (the gain the recommendation shows: a mixed hinge's mixture, `expected_units`)
        gain = curve.expected_value(candidate, c, by_revenue) - value_base
    need = np.maximum(_arr(rules.min_gain_abs, n), _arr(rules.min_gain_rel, n) * np.abs(value_base))
    test_z = rules.gain_z if rules.test_z is None else rules.test_z
    differs = np.abs(candidate - base) >= 0.005
    if rules.loss_budget is None:  # the per-SKU test (the budget weighs its own parts)
        with np.errstate(invalid="ignore"):
            gain_low = robust_value(curve, candidate, c, by_revenue, test_z, candidate > base, base)
        passes = (gain >= need) & np.nan_to_num(gain_low >= 0)
    else:
        passes = gain >= need
    shrunk = np.zeros(n, dtype=bool)
    charged = np.full(n, np.nan)  # the chance the budget charged each move it chose
    # Retried without a budget: a move that gains the minimum on the curve but fails the test
    # (a part of a move that does not gain the minimum whole gains less still: the search never
    # overshoots the point estimate's best by more than an ending's snap).
    retry = valid & ~conflict & differs & ~held & ~passes & ~guided & (gain >= need)
    if rules.loss_budget is not None:
        # The risk budget decides every estimated move (a floor the merchant set still holds).
        rows = valid & ~conflict & differs & ~held & ~guided
        chosen, found, whole, charged = _within_budget(
            curve,
            c,
            by_revenue,
            base,
            candidate,
            value_base,
            need,
            rows,
            rules,
            chunk,
            counted=int(np.sum(valid & ~conflict)),
            spent=_unverified_risk(curve, c, by_revenue, p0, valid & ~conflict, rules),
        )
        candidate = np.where(found, chosen, candidate)
        passes = np.where(rows, found, passes)
        shrunk = found & ~whole
        moved_less = moved_less | shrunk
        snapped = np.where(shrunk, rules.ending is not None, snapped)
    elif rules.shrink_to_pass and retry.any():
        smaller, found = _largest_passing(
            curve, c, by_revenue, base, candidate, need, test_z, retry, rules, chunk
        )
        candidate = np.where(found, smaller, candidate)
        passes = passes | found
        moved_less = moved_less | found
        shrunk = found  # strictly inside the range: no bound shaped it; an ending may have
        snapped = np.where(found, rules.ending is not None, snapped)
    accept = valid & ~conflict & differs & (held | passes)
    binding[valid & ~conflict & differs & ~accept] |= RULES["min_gain"]
    final = np.where(accept | guided, candidate, base)
    moved = ~conflict & (np.abs(final - base) >= 0.005)
    at_base = forced & ~moved  # the smallest move a rule forces, and no further
    binding[at_base & ~breaks_now & (base < p0)] |= RULES["competitor"]
    binding[at_base] |= RULES["restores_rule"]
    binding[guided & moved] |= RULES["reference"]
    binding[moved & moved_less] |= RULES["uncertainty"]
    binding[moved & snapped] |= RULES["ending"]

    # Which bound shaped a moved price (cents away at most, or the ending's snap).
    tol = np.where(snapped, 1.0, 0.006)
    shifted = ~conflict & (np.abs(final - p0) >= 0.005)  # by the optimiser or by a rule
    # a bound shapes a price only on the side it moved to (or where it forced the move)
    went_down = (final < p0 - 0.004) | (lo_final > p0 + 1e-9)
    went_up = (final > p0 + 0.004) | (hi_final < p0 - 1e-9)
    # a shrunk move lies strictly inside the range (from a baseline a rule forced: that rule)
    shaped = shifted & ~(shrunk & accept & ~forced)
    at_lo = shaped & went_down & (np.abs(final - lo_final) <= tol)
    at_hi = shaped & went_up & (np.abs(final - hi_final) <= tol)
    near = lambda a, b: np.abs(a - b) <= 1e-6 * np.maximum(1.0, np.abs(a))  # noqa: E731
    binding[at_lo & ~np.isnan(margin_floor) & near(lo_final, margin_floor)] |= RULES["min_margin"]
    binding[at_lo & near(lo_final, _arr(rules.map_price, n))] |= RULES["map"]
    binding[at_lo & near(lo_final, _arr(rules.min_price, n))] |= RULES["min_price"]
    binding[at_hi & near(hi_final, ceiling)] |= RULES["max_price"]
    binding[at_hi & ~np.isnan(comp_cap) & near(hi_final, comp_cap)] |= RULES["competitor"]
    for name in ("max_step", "evidence", "window", "wait"):
        binding[at_lo & near(lo_final, soft_lo[name])] |= RULES[name]
        binding[at_hi & near(hi_final, soft_hi[name])] |= RULES[name]
    # A kept price says which soft limit kept it: the one at today's price on the side where
    # the curve (inside the hard rules alone) would have taken it.
    stay = np.flatnonzero(valid & ~conflict & ~shifted)
    if len(stay):
        k0, part = p0[stay], curve.subset(stay)
        hard_lo = np.where(np.isnan(floor[stay]), k0 * 0.5, floor[stay])
        hard_hi = np.where(np.isnan(ceiling[stay]), k0 * 2.0, ceiling[stay])
        free = _robust_analytic(
            part,
            k0,
            c[stay],
            e[stay],
            doubt[stay],
            hard_lo,
            hard_hi,
            rules.objective,
            by_revenue[stay],
        )
        wants_up, wants_down = free > k0 * 1.005, free < k0 * 0.995
        told = np.zeros(len(stay), dtype=bool)
        for name in ("wait", "window", "evidence"):
            blocks = (wants_up & near(soft_hi[name][stay], k0)) | (
                wants_down & near(soft_lo[name][stay], k0)
            )
            binding[stay[blocks]] |= RULES[name]
            binding[stay[blocks]] &= ~RULES["min_gain"]
            told |= blocks
        # Kept because the move does not pay once the estimate's uncertainty is allowed for
        # (the point estimate alone would have moved it): the minimum-gain reason.
        point = _analytic(k0, c[stay], e[stay], lo_final[stay], hi_final[stay], rules.objective)
        binding[stay[~told & (np.abs(point - k0) > 0.005 * k0)]] |= RULES["min_gain"]
    # A raise that stops at or below the competitor's price, or a price kept there (today's at
    # or below it), where the same search on the curve without the hinge above it would have
    # gone past it and that move would pay on that curve (the minimum gain, and the cap on a
    # change's chance of losing money): the possible collapse held it, said with the
    # competitor's price (for a kept price instead of the minimum gain's reason). Not where
    # anything else caps the price short of the competitor, nor where a volume floor sets it.
    comp = curve.competitor_price
    ramp_sd = np.zeros(n) if curve.ramp_sd is None else curve.ramp_sd
    with np.errstate(invalid="ignore", divide="ignore"):
        below = final >= comp * np.exp(-np.maximum(HINGE_NEAR, 2 * ramp_sd))
        near_kink = (final <= comp + 0.005) & below & (p0 <= comp + 0.005)
        room = hi_final > comp * 1.01
    check = np.flatnonzero(
        valid & ~conflict & ~held & ~guided & ~floors & kinked & near_kink & room
        & (final > p0 - 0.005)
    )  # fmt: skip
    if len(check):
        k = len(check)
        plain = replace(
            curve.subset(check), competitor_slope=np.zeros(k), hinge_raw=np.zeros(k),
            hinge_se=np.zeros(k), hinge_tau2=np.full(k, np.nan),
            hinge_centre=np.full(k, np.nan), slope_hinge_corr=None,
        )  # fmt: skip
        at = np.ones(k, dtype=bool)
        free = _grid(plain, c[check], lo_final[check], hi_final[check], at, p0[check].copy(),
                     rules, chunk, by_revenue[check], doubt=doubt[check])  # fmt: skip
        free = p0[check] + weight[check] * (free - p0[check])  # as the move's sign doubt
        b = base[check][:, None]
        up_free = free[:, None] > b
        gain_free, chance_free = _normal_chance(
            plain, free[:, None], c[check], by_revenue[check], b, up_free, value_base[check], rules
        )
        pays = (
            (free > comp[check] * 1.01)
            & (gain_free[:, 0] >= need[check])
            & (chance_free[:, 0] <= rules.max_loss_chance)
        )
        said = check[pays]
        binding[said] |= RULES["competitor_hinge"]
        binding[said[~shifted[said]]] &= ~RULES["min_gain"]
    if kept.any():
        # "keep" (no cost, profit objective): today's price, moved only to restore a hard
        # rule (margin, min, max, MAP); no step, competitor position, ending or volume floor.
        hard_lo, hard_hi = np.nan_to_num(floor, nan=0.0), np.nan_to_num(ceiling, nan=np.inf)
        held_today = _to_cents(np.clip(p0, hard_lo, hard_hi), floor, ceiling, floor, ceiling)
        final = np.where(kept, held_today, final)
        binding[kept] = np.where(
            doubted[kept], RULES["price_doubt"], RULES["no_cost_kept"]
        ) | np.where(breaks_now[kept], RULES["restores_rule"], 0)
    final = np.where(conflict, np.nan, final)
    loss_chance = np.where(estimated & ~conflict, 0.0, np.nan)
    # the optimiser's own bets (a move a volume floor forced is the merchant's rule's, as a
    # restore is: the budget does not weigh it, and a later run spends nothing on it): the
    # chance the budget charged where it chose the move, else judged here
    bet = valid & ~conflict & ~held & (np.abs(final - base) >= 0.005)
    known = bet & ~kept & np.isfinite(charged) & (np.abs(final - candidate) < 1e-9)
    loss_chance[known] = charged[known]
    bet = np.flatnonzero(bet & ~known)
    if len(bet):
        b = base[bet][:, None]
        _gain, chance = _chance(curve.subset(bet), final[bet][:, None], c[bet], by_revenue[bet],
                                b, final[bet][:, None] > b, value_base[bet], rules)  # fmt: skip
        loss_chance[bet] = chance[:, 0]
    with np.errstate(all="ignore"):
        # what the recommendation shows: the gain the budget weighed (where the hinge is a
        # mixture, its expected units: `DemandCurve.expected_units`)
        units_new = np.where(estimated, curve.expected_units(final), q0)
        unit_cost = np.nan_to_num(c, nan=0.0)
        value_now = curve.value(p0, c, by_revenue)
        value_new = np.where(estimated, curve.expected_value(final, c, by_revenue), value_now)
        return Recommendation(
            price=final,
            binding=binding,
            units_now=q0,
            units_new=units_new,
            revenue_now=p0 * q0,
            revenue_new=final * units_new,
            profit_now=(p0 - unit_cost) * q0,
            profit_new=(final - unit_cost) * units_new,
            floor=floor,
            ceiling=ceiling,
            low=lo_final,
            high=hi_final,
            by_revenue=by_revenue,
            value_now=value_now,
            value_new=value_new,
            loss_chance=loss_chance,
            conflicts=conflicts,
        )


def robust_value(curve, price, cost, by_revenue, z: float, up, base=None, kink=True) -> np.ndarray:
    """The objective at `price` (per SKU, or (n, k) candidates per SKU) less z standard errors
    of its gain over `base` (over today's price where None, where every curve agrees), the gain
    returned where `base` is given. Each uncertain part of the curve (the slope, the bend, the
    hinge above the competitor, and where the competitor's price really is) is moved to its
    z-s.e. end toward the move's unfavourable side one at a time; the losses are combined as
    errors, the root of their sum of squares: to first order, the gain's own z-s.e. lower end.
    Putting every part at its end at once (their sum) asks for all errors to go wrong together,
    which is far less likely than z s.e. of any one of them, and shrinks moves that would pay
    (benchmarks/RESULTS.md, decision decomposition). The slope's and the hinge's errors are
    correlated where the curve says how (`slope_hinge_corr`; both ends lie on the same side,
    more elastic and steeper for a raise, less and flatter for a cut, so their cross term is
    2 rho x the slope's loss x the loss at the hinge's own end, the catalog's shift of a raise's
    end being no error of the slope's): a SKU's slope below the competitor and its hinge are
    read from the same days, and the slope above it (their sum) is surer than either, so that
    pair may be judged less pessimistically than either part alone; the other parts are
    independent.
    `kink=False`: without the part of where the competitor's price really is
    (`_over_the_kink` integrates over it instead)."""
    price = np.asarray(price, dtype=np.float64)
    col = (lambda v: v[:, None]) if price.ndim == 2 else (lambda v: v)
    up = np.asarray(up, dtype=bool)
    spread = col(z * np.nan_to_num(curve.elasticity_se, nan=0.0, posinf=0.0))
    e = col(curve.elasticity)
    hinge = np.where(
        up, col(curve.pessimistic_hinge(z, True)), col(curve.pessimistic_hinge(z, False))
    )
    with np.errstate(all="ignore"):

        def gain(**end):
            value = curve.value(price, cost, by_revenue, **end)
            return value if base is None else value - curve.value(base, cost, by_revenue, **end)

        point = gain()
        steep = gain(hinge=hinge)
        losses = [
            point - gain(elasticity=np.where(up, e - spread, e + spread)),
            point - steep,
            point - gain(curvature=curve.pessimistic_curvature(z)),
            # the competitor's price judged with the hinge at its end (the kink needs one)
            steep - gain(hinge=hinge, competitor=curve.pessimistic_kink(z, up)) if kink else 0.0,
        ]
        losses = [np.maximum(np.nan_to_num(loss), 0.0) for loss in losses]
        var = sum(loss**2 for loss in losses)
        rho = None if curve.slope_hinge_corr is None else np.nan_to_num(curve.slope_hinge_corr)
        if rho is not None and np.any(rho != 0):
            # the correlation is the SKU's own hinge estimate's: the cross term takes its own
            # end's loss (a raise is judged at the steeper of its own end and the catalog's,
            # whose shift is no error of the slope's; a cut at its own end)
            raw = col(np.nan_to_num(curve.hinge_raw))
            se = col(np.nan_to_num(curve.hinge_se, posinf=0.0))
            own = np.minimum(np.where(up, raw - z * se, raw + z * se), 0.0)
            # (evaluated only where a correlated hinge was judged at another end than its own:
            # a raise at the catalog's steeper one; elsewhere the hinge's loss is its own)
            other = (col(rho) != 0) & (np.abs(own - hinge) > 1e-12)
            own_loss = losses[1]
            if np.any(other):
                own_loss = np.maximum(np.nan_to_num(point - gain(hinge=own)), 0.0)
            cross = 2 * col(rho) * losses[0] * own_loss
            var = np.maximum(var + cross, 0.0)
        return point - np.sqrt(var)


def _fractions(base, candidate, rules) -> tuple[np.ndarray, np.ndarray]:
    """Per SKU (rows of `base` and `candidate`, as (m, 1) columns): the whole move and its
    twentieths (`shrink_steps`) down to the smallest, in cents, on an allowed ending where one
    is set, never past `base`; and whether each is a raise."""
    steps = np.linspace(1.0, 0.0, max(2, int(rules.shrink_steps)) + 1)[:-1]
    up = candidate > base
    price = np.round(base + steps[None, :] * (candidate - base), 2)
    if rules.ending is not None:
        down_end = _ending_below(price, rules.ending)
        price = np.round(
            np.where(up, down_end, np.where(down_end < price - 1e-9, down_end + 1, price)), 2
        )
    price[:, :1] = candidate  # the whole move as searched (already on an allowed ending)
    return price, np.broadcast_to(up, price.shape)


SURE_CHANCE = 1e-6  # a move's chance of losing money below which its parts are not weighed


def _chance(part, price, cost, by_revenue, base, up, value_base, rules):
    """Per SKU and price: the gain over `base` on the curve and the chance that it loses more
    than `loss_tolerance` of `value_base` (normal around its point estimate, the standard
    error `robust_value`'s 1-s.e. lower end).

    Where the hinge's posterior is a mixture (`DemandCurve.hinge_parts`: a chance r that the
    SKU is one of the catalog's SKUs whose demand collapses above the competitor, none
    otherwise), one normal around the mixture's mean undercounts a raise past the competitor:
    it loses with about the chance r, far more than a normal tail (review). There the chance is
    each part's, weighed by its probability: (1 - r) x without a hinge (a fact) + r x with the
    hinge's normal posterior if it has one; the gain is the same mixture's where that is less
    than the curve's own (a move is never made on more gain than the recommendation shows). A
    clear or leaning hinge keeps the
    gain on its own estimate and is charged the larger of its own chance and that mixture's
    (its own estimate in place of the posterior): a cut back below the competitor that counts
    on a hinge the SKU may not have is charged that chance too (review). A hinge its days
    cannot read (`DemandCurve.unread_hinge`: the catalog's spread itself, or the fit's prior
    where none is measured) is weighed so for a raise only; a cut keeps the curve's own gain
    and chance."""
    gain, chance = _normal_chance(part, price, cost, by_revenue, base, up, value_base, rules)
    r, m, v, mixed = part.hinge_parts()
    rows = np.flatnonzero(mixed)
    if not len(rows):
        return gain, chance
    sub, k = part.subset(rows), len(rows)
    # a clear or leaning hinge is the SKU's own estimate if it has one (the search counts on
    # it: a cut back below the competitor, review); any other, its posterior on the slab
    leaning = sub.leaning_hinge()
    mean = np.where(leaning, sub.hinge_raw, m[rows])
    sd = np.where(leaning, sub.hinge_se, np.sqrt(v[rows]))
    alone = {"hinge_centre": np.full(k, np.nan), "hinge_tau2": np.full(k, np.nan)}
    # (the slope's correlation is with the SKU's own hinge estimate: none without a hinge, and
    # none where the posterior on the catalog's spread stands in for it)
    corr = None if sub.slope_hinge_corr is None else np.where(leaning, sub.slope_hinge_corr, 0.0)
    none = replace(
        sub, competitor_slope=np.zeros(k), hinge_raw=np.zeros(k), hinge_se=np.zeros(k),
        slope_hinge_corr=None, **alone,
    )  # fmt: skip
    some = replace(
        sub, competitor_slope=np.minimum(mean, 0.0), hinge_raw=mean, hinge_se=sd,
        slope_hinge_corr=corr, **alone,
    )  # fmt: skip
    ups = np.broadcast_to(up, np.shape(price))[rows]
    args = (price[rows], cost[rows], by_revenue[rows], base[rows], ups, value_base[rows], rules)
    gain_none, chance_none = _normal_chance(none, *args)
    gain_some, chance_some = _normal_chance(some, *args)
    w = r[rows][:, None]
    mixture = (1 - w) * chance_none + w * chance_some
    gain, chance = gain.copy(), chance.copy()
    lean = leaning[:, None]
    # a leaning one keeps its gain (its own hinge, as the search) and the larger chance; any
    # other counts on no more gain than the curve shows (a cut below the competitor that pays
    # only if the SKU collapses above it is not made on that chance: its shown gain must pay)
    mixed_gain = (1 - w) * gain_none + w * gain_some
    mixed_gain = np.where(lean, gain[rows], np.minimum(gain[rows], mixed_gain))
    mixture = np.where(lean, np.maximum(chance[rows], mixture), mixture)
    # a hinge its days cannot read (`unread_hinge`) is the catalog's for a raise only: a cut
    # that counts on a collapse above the competitor the SKU may not have is not made on it
    own = sub.unread_hinge()[:, None] & ~ups
    gain[rows] = np.where(own, gain[rows], mixed_gain)
    chance[rows] = np.where(own, chance[rows], mixture)
    return gain, chance


def _normal_chance(part, price, cost, by_revenue, base, up, value_base, rules):
    """`_chance` with the gain normal around its point estimate (prices (n, k)); where a
    steep hinge's kink is within reach of the competitor price's doubt, `_over_the_kink`."""
    with np.errstate(all="ignore"):
        gain = part.value(price, cost, by_revenue) - part.value(base, cost, by_revenue)
        spread = gain - robust_value(part, price, cost, by_revenue, 1.0, up, base)
        spread = np.maximum(np.nan_to_num(spread, nan=np.inf), 1e-12)
        allowed = -rules.loss_tolerance * np.abs(np.nan_to_num(value_base))[:, None]
        chance = ndtr((allowed - gain) / spread)
    return _over_the_kink(part, price, cost, by_revenue, base, up, allowed, gain, chance)


def _over_the_kink(part, price, cost, by_revenue, base, up, allowed, gain, chance):
    """The gain and its chance of losing money averaged over where the competitor's price
    really is (normal in log price with the readings' s.d., `competitor_sd`; KINK_NODES),
    for the SKUs with a hinge whose kink a candidate or today's price comes within KINK_REACH
    s.d. of. One normal around the gain at the read price reads that doubt by a 1-s.e. step
    of the competitor's price: a steep hinge (an extra slope of 8-12) that a 2-3 s.d. error
    puts a move across loses far more often than that normal tail says (RESULTS: the SKUs
    cut across the competitor on a price read 1-7 % low). The other parts' doubt stays normal
    around each node's gain. The chance is the larger of the two, the gain the smaller. The
    hinge is the one the curve uses (a clear one; a mixed posterior's parts are averaged where
    `_chance` weighs them). An unclear hinge on a spread without a share of SKUs that have
    none is not: taken at its posterior's mean, it cost clean markets 0.007-0.013 of the lift
    for no fewer SKUs losing money (RESULTS)."""
    price = np.asarray(price, dtype=np.float64)
    rows = part.near_kink(price, base)
    if not len(rows):
        return gain, chance
    sd = part.competitor_sd
    sub, p, b = part.subset(rows), price[rows], np.asarray(base, float)[rows]
    c, rev, ups, low = (np.asarray(cost, float)[rows], np.asarray(by_revenue)[rows],
                        np.broadcast_to(up, price.shape)[rows], allowed[rows])  # fmt: skip
    with np.errstate(all="ignore"):
        other = gain[rows] - robust_value(sub, p, c, rev, 1.0, ups, b, kink=False)
        other = np.maximum(np.nan_to_num(other, nan=np.inf), 1e-12)
        mean, risk = np.zeros_like(p), np.zeros_like(p)
        shifts = [node * sd[rows] for node in KINK_AT]  # equally likely: each 1 / KINK_NODES
        at_price = sub.values_as_competitor_moves(p, c, rev, shifts)
        at_base = sub.values_as_competitor_moves(b, c, rev, shifts)
        for v, v_base in zip(at_price, at_base, strict=True):
            g = v - v_base
            mean += g / KINK_NODES
            risk += ndtr((low - g) / other) / KINK_NODES
    gain, chance = gain.copy(), chance.copy()
    gain[rows] = np.minimum(gain[rows], mean)
    chance[rows] = np.maximum(chance[rows], np.clip(np.nan_to_num(risk, nan=1.0), 0.0, 1.0))
    return gain, chance


def _unverified_risk(curve, cost, by_revenue, price, rows, rules) -> float:
    """The summed chance that the recent changes no sales have verified yet (from
    `rules.unverified_from` to today's `price`) lose money, judged as when they were decided:
    on today's curve anchored at the price before the change (its slope and level carried
    there along the curve).
    Where the chance charged when it was decided is known (`rules.unverified_chance`), that
    one counts: a curve re-estimated since, or a policy changed since, does not change what was
    bet. One judged again (a change the merchant approved at a price of their own) counts at
    most `max_loss_chance`."""
    before = np.broadcast_to(np.asarray(rules.unverified_from, float), (len(price),))
    with np.errstate(invalid="ignore"):
        at = np.flatnonzero(
            rows & np.isfinite(before) & (before > 0) & (np.abs(before - price) >= 0.005)
        )
    if not len(at):
        return 0.0
    part, b = curve.subset(at), before[at][:, None]
    c, rev = cost[at], by_revenue[at]
    with np.errstate(all="ignore"):
        shift = np.log(before[at] / part.price_ref)
        part = replace(
            part,
            price_ref=before[at].astype(np.float64),
            units_ref=part.units(before[at]),
            elasticity=part.elasticity + 2 * part.curvature * shift,
        )
        value_before = part.value(before[at], c, rev)
    _gain, chance = _chance(part, price[at][:, None], c, rev, b, price[at][:, None] > b,
                            value_before, rules)  # fmt: skip
    charged = np.broadcast_to(np.asarray(rules.unverified_chance, float), (len(price),))[at]
    # what was bet counts whole (under a looser policy then, too); a chance judged again at
    # most the cap
    chance = np.where(
        np.isfinite(charged), charged, np.minimum(chance[:, 0], rules.max_loss_chance)
    )
    return float(np.nansum(chance))


def _gain_and_chance(part, price, cost, by_revenue, base, up, value_base, need, rules):
    """Per SKU and candidate price: the gain over `base` on the curve (-inf where the price
    is no move, gains less than `need` or may lose money with a chance above
    `max_loss_chance`) and the chance of losing money (0 where -inf)."""
    gain, chance = _chance(part, price, cost, by_revenue, base, up, value_base, rules)
    moves = np.where(up, price > base + 0.004, price < base - 0.004)
    ok = moves & np.isfinite(gain) & (gain >= need[:, None]) & (chance <= rules.max_loss_chance)
    return np.where(ok, gain, -np.inf), np.where(ok, chance, 0.0)


def _within_budget(
    curve,
    cost,
    by_revenue,
    base,
    candidate,
    value_base,
    need,
    rows,
    rules,
    chunk,
    counted=None,
    spent=0.0,
):
    """The risk budget: per SKU in `rows`, the whole move from `base` toward `candidate`, a part
    of it (`_fractions`) or none, so that the expected gain summed over the SKUs is largest
    while the expected share of all SKUs here that lose money stays within `loss_budget`.

    Each part's gain on the curve must reach `need`; its chance of losing money is
    P(gain < -loss_tolerance x |value_base|) with the gain normal around its point estimate and
    its standard error the one `robust_value` combines (its 1-s.e. lower end); a part whose
    chance is above `max_loss_chance` is never taken. One price per SKU maximises
    gain - lam x chance; lam >= 0 is the smallest that keeps the sum of the chosen chances
    within the budget (bisection; 0 where the best parts already fit): the budget goes to the
    moves that gain most for the risk they take. The budget is `loss_budget` x `counted` (the
    SKUs here with an estimate to move on; all of them where None): SKUs that cannot move
    (no estimate, contradictory rules) lend no risk to the others; `spent` (the chances of
    recent changes not yet verified) is taken from it first. Returns the prices, where a move
    was chosen, where it is the whole move, and the chance of losing money each chosen move
    was charged (NaN where none was chosen)."""
    n = len(candidate)
    counted = n if counted is None else counted
    out, found, whole = candidate.copy(), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    charged = np.full(n, np.nan)
    rows_at = np.flatnonzero(rows)
    if not len(rows_at):
        return out, found, whole, charged
    gains, chances, prices, doubtful = [], [], [], []
    for start in range(0, len(rows_at), max(1, chunk)):
        at = rows_at[start : start + max(1, chunk)]
        b = base[at][:, None]
        price, up = _fractions(b, candidate[at][:, None], rules)
        part = curve.subset(at)
        c, rev, v0, floor = cost[at], by_revenue[at], value_base[at], need[at]
        gain = np.full(price.shape, -np.inf)
        chance = np.zeros(price.shape)
        # the whole move first: where it is all but sure (no chance to speak of), no part of it
        # can do better, and the parts are not evaluated (most SKUs of a confident catalog)
        g, p = _gain_and_chance(part, price[:, :1], c, rev, b, up[:, :1], v0, floor, rules)
        gain[:, :1], chance[:, :1] = g, p
        risky = np.flatnonzero(~(np.isfinite(g[:, 0]) & (p[:, 0] <= SURE_CHANCE)))
        if len(risky):
            g, p = _gain_and_chance(
                part.subset(risky),
                price[risky, 1:],
                c[risky],
                rev[risky],
                b[risky],
                up[risky, 1:],
                v0[risky],
                floor[risky],
                rules,
            )
            gain[risky, 1:], chance[risky, 1:] = g, p
        gains.append(gain)
        chances.append(chance)
        prices.append(price)
        mask = np.zeros(len(at), dtype=bool)
        mask[risky] = True
        doubtful.append(mask)
    gain, chance, price = np.vstack(gains), np.vstack(chances), np.vstack(prices)
    doubt = np.concatenate(doubtful)
    # "no move" is a choice too: gain 0, no chance of a loss
    gain = np.hstack([gain, np.zeros((len(gain), 1))])
    chance = np.hstack([chance, np.zeros((len(chance), 1))])
    # the sure moves are taken whole (their chances, all but 0, still count); the budget left
    # is shared among the doubtful ones
    pick = np.where(np.isfinite(gain[:, 0]) & ~doubt, 0, gain.shape[1] - 1)
    budget = float(rules.loss_budget) * counted - float(spent) - float(chance[~doubt, 0].sum())
    budget = max(budget, 0.0)
    g, p = gain[doubt], chance[doubt]

    def choose(lam: float):
        chosen = np.argmax(g - lam * p, axis=1)
        return chosen, float(p[np.arange(len(chosen)), chosen].sum())

    chosen, spent = choose(0.0)
    if len(g) and spent > budget:
        # bisection on lam in log steps: from a price of risk no move can pay to one every move
        # pays, halving the ratio until it is within 0.1 %
        scale = max(float(np.max(np.where(np.isfinite(g), g, 0.0))), 1e-12)
        low, high = scale * 1e-9, scale * 1e9
        while high / low > 1.001:
            mid = np.sqrt(low * high)
            if choose(mid)[1] > budget:
                low = mid
            else:
                high = mid
        chosen, _ = choose(high)
    pick[doubt] = chosen
    took = pick < price.shape[1]
    chosen = price[np.arange(len(pick)), np.minimum(pick, price.shape[1] - 1)]
    out[rows_at[took]] = chosen[took]
    found[rows_at[took]] = True
    whole[rows_at[took & (pick == 0)]] = True
    charged[rows_at[took]] = chance[np.flatnonzero(took), pick[took]]
    return out, found, whole, charged


def _largest_passing(curve, cost, by_revenue, base, candidate, need, z, rows, rules, chunk):
    """Per SKU in `rows`: the largest move from `base` toward `candidate` (a fraction of it, in
    cents, on an allowed ending where one is set, never past `base`) whose gain on the curve
    is at least `need` and still positive at its z-s.e. lower end. Returns the prices and where
    one was found. Both bounds are inside the searched range, so every fraction is too. In
    blocks of `chunk` SKUs (bounded memory, as the grid)."""
    out, found = candidate.copy(), np.zeros(len(candidate), dtype=bool)
    rows_at = np.flatnonzero(rows)
    for start in range(0, len(rows_at), max(1, chunk)):
        at = rows_at[start : start + max(1, chunk)]
        b = base[at][:, None]
        price, up = _fractions(b, candidate[at][:, None], rules)
        price, up = price[:, 1:], up[:, 1:]  # the parts: the whole move failed
        move = np.where(up, price > b + 0.004, price < b - 0.004)
        part = curve.subset(at)
        c, rev = cost[at], by_revenue[at]
        with np.errstate(all="ignore"):
            # (the gain the recommendation shows: a mixed hinge's mixture)
            gain = part.expected_value(price, c, rev) - part.value(b, c, rev)
            ok = move & (gain >= need[at][:, None])
            # the lower end only where the point gain already clears the minimum
            low = robust_value(part, price, c, rev, z, up, b)
        ok &= np.nan_to_num(low >= 0)
        first = np.argmax(ok, axis=1)  # the largest fraction that passes
        hit = ok[np.arange(len(at)), first]
        out[at[hit]] = price[hit, first[hit]]
        found[at[hit]] = True
    return out, found


def _ending_below(price, ending: float):
    """The nearest price ending in `ending` at or below `price` (16.99 stays 16.99: the
    float error of 16.99 - 0.99 is not a whole unit less)."""
    return np.floor(price - ending + 1e-9) + ending


def _best_ending(curve, cost, by_revenue, price, fallback, lo, hi, ending, estimated):
    """The better of the nearest prices ending in `ending` below and above `price` that lie
    inside [lo, hi], judged on the curve (the nearer one where there is no estimate); where
    neither fits, `fallback`. Returns the prices and where an ending was taken."""
    down = _ending_below(price, ending)
    up = down + 1.0
    fits = lambda x: (np.isnan(lo) | (x >= lo - 1e-9)) & (np.isnan(hi) | (x <= hi + 1e-9)) & (x > 0)  # noqa: E731
    ok_down, ok_up = fits(down), fits(up)
    with np.errstate(all="ignore"):
        v_down = np.where(ok_down, curve.value(down, cost, by_revenue), -np.inf)
        v_up = np.where(ok_up, curve.value(up, cost, by_revenue), -np.inf)
    nearer_up = np.abs(up - price) < np.abs(price - down)
    pick_up = np.where(
        estimated & np.isfinite(v_down) & np.isfinite(v_up),
        v_up > v_down,
        np.where(ok_up & ok_down, nearer_up, ok_up),
    )
    chosen = np.where(pick_up, up, down)
    snapped = (ok_up | ok_down) & np.isfinite(price)
    out = np.where(snapped, np.round(chosen, 2), fallback)
    return out, snapped & (np.abs(out - fallback) > 1e-9)


def _analytic(p0, c, e, lo, hi, objective: str) -> np.ndarray:
    """The exact optimum of the constant-elasticity curve q = q0 (p / p0)^e inside [lo, hi].

    Profit (p - c) q is unimodal: with e < -1 its peak is c e / (1 + e); with -1 <= e < 0 it
    rises with price. Revenue p q falls with price when e < -1 and rises when e > -1. Without a
    cost, profit is revenue.
    """
    unit_cost = np.nan_to_num(c, nan=0.0)
    with np.errstate(all="ignore"):
        peak = np.where(e < -1, unit_cost * e / (1 + e), np.inf)
    if objective == "revenue":
        peak = np.where(e < -1, 0.0, np.where(e > -1, np.inf, p0))
    else:
        peak = np.where((e < -1) & (unit_cost <= 0), 0.0, peak)
    low = np.where(np.isnan(lo), 0.0, lo)
    high = np.where(np.isnan(hi), np.maximum(p0, low), hi)
    return np.clip(peak, low, high)


def _robust_analytic(curve, p0, c, e, doubt, lo, hi, objective, by_revenue) -> np.ndarray:
    """The constant-elasticity optimum on the pessimistic curve: above today's price with the
    elasticity `doubt` more negative, below it with `doubt` less negative; the better side."""
    low = np.where(np.isnan(lo), 0.0, lo)
    high = np.where(np.isnan(hi), np.maximum(p0, low), hi)
    with np.errstate(invalid="ignore"):  # an infinite s.e. against an infinite estimate
        e_up, e_down = e - doubt, e + doubt
    anchor = np.clip(p0, low, high)
    up = _analytic(p0, c, e_up, anchor, high, objective)
    down = _analytic(p0, c, e_down, low, anchor, objective)
    with np.errstate(all="ignore"):
        v_up = curve.value(up, c, by_revenue, e_up)
        v_down = curve.value(down, c, by_revenue, e_down)
    return np.where(np.nan_to_num(v_down, nan=-np.inf) > np.nan_to_num(v_up, nan=-np.inf), down, up)


def _grid(
    curve: DemandCurve,
    c,
    lo,
    hi,
    ok_all,
    best,
    rules: Rules,
    chunk: int,
    by_revenue,
    min_u=None,
    min_r=None,
    doubt=None,
) -> np.ndarray:
    """Evaluate a candidate grid per SKU on the curve (any shape), in chunks of SKUs, then a
    finer grid around the best point; with floors on units or revenue, the best candidate that
    meets them (else the one with the most units)."""
    steps = np.linspace(0.0, 1.0, max(3, int(rules.candidates)))
    best = best.copy()
    for start in range(0, len(best), chunk):
        sl = slice(start, min(len(best), start + chunk))
        ok = np.flatnonzero(ok_all[sl]) + start
        if not len(ok):
            continue
        part = curve.subset(ok)
        a, b = lo[ok], hi[ok]
        for _round in range(2):  # the grid, then a grid as fine again around its best
            cand = a[:, None] + (b - a)[:, None] * steps[None, :]
            slope = hinge = bend = kink = None
            up = cand > part.price_ref[:, None]
            if doubt is not None and min_u is not None:
                # volume floors are met on the pessimistic curve, every part at its end
                e_ok, z_ok = part.elasticity[:, None], doubt[ok][:, None]
                slope = np.where(up, e_ok - z_ok, e_ok + z_ok)
                hinge = np.where(
                    up,
                    part.pessimistic_hinge(rules.gain_z, True)[:, None],
                    part.pessimistic_hinge(rules.gain_z, False)[:, None],
                )
                bend = part.pessimistic_curvature(rules.gain_z)
                kink = part.pessimistic_kink(rules.gain_z, up)
            demand = part.units(cand, slope, hinge, bend, kink)
            unit_cost = np.where(by_revenue[ok], 0.0, np.nan_to_num(c[ok], nan=0.0))
            value = (cand - unit_cost[:, None]) * demand
            if doubt is not None and min_u is None:
                # each side of today's price at the joint pessimistic end of its gain
                value = robust_value(part, cand, c[ok], by_revenue[ok], rules.gain_z, up)
            if min_u is not None:
                need_u = np.nan_to_num(min_u[ok], nan=-np.inf)[:, None]
                need_r = np.nan_to_num(min_r[ok], nan=-np.inf)[:, None]
                meets = (demand >= need_u * (1 - 1e-9)) & (cand * demand >= need_r * (1 - 1e-9))
                value = np.where(meets, value, -np.inf)
                closest = np.argmax(np.where(need_u > -np.inf, demand, cand * demand), axis=1)
                pick = np.where(meets.any(axis=1), np.argmax(value, axis=1), closest)
                best[ok] = cand[np.arange(len(cand)), pick]
                break
            pick = np.argmax(np.nan_to_num(value, nan=-np.inf), axis=1)
            best[ok] = cand[np.arange(len(cand)), pick]
            width = (b - a) / (len(steps) - 1)
            a, b = np.maximum(best[ok] - width, lo[ok]), np.minimum(best[ok] + width, hi[ok])
    return best


def _to_cents(price, lo, hi, lower_limit=None, upper_limit=None) -> np.ndarray:
    """Prices are money: round to cents without leaving [lo, hi]. Where [lo, hi] holds no
    whole cent (a margin floor such as 146.137 that a lower competitor cap was raised to), the
    cent above lo if it stays within `upper_limit` (the hard ceiling and the step limit: only
    the competitor position, the weakest rule, gives), else the cent below hi if it stays
    within `lower_limit`; if neither does, the price is left as it is."""
    low = np.where(np.isnan(lo), 0.0, np.ceil(lo * 100 - 1e-6) / 100)
    high = np.where(np.isnan(hi), np.inf, np.floor(hi * 100 + 1e-6) / 100)
    cents = np.clip(np.round(price, 2), low, high)
    up_ok = low <= (np.inf if upper_limit is None else np.nan_to_num(upper_limit, nan=np.inf))
    down_ok = high >= (-np.inf if lower_limit is None else np.nan_to_num(lower_limit, nan=-np.inf))
    narrow = np.where(up_ok, low, np.where(down_ok & np.isfinite(high), high, price))
    return np.where(low <= high, cents, narrow)
