"""Backtest on a tenant's own history: fit the demand model on all but the last weeks, then
forecast the held-out days at the prices that were actually charged, against two references
that know the same past: each SKU's average day, and the same model without its price response.

Pure module (numpy). The held-out rows keep their likelihood type: rows that are in the data only
because something sold are scored with the zero-truncated mean, so the comparison is fair.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .curve import DemandCurve
from .demand import (
    PROMO_CONTROLS,
    Panel,
    Truncation,
    _controls,
    _mean_weight,
    fit_demand,
    open_days,
)


@dataclass
class BacktestResult:
    train_days: int
    test_days: int
    skus: int  # SKUs with rows on both sides of the cut
    test_rows: int
    deviance_model: float  # mean Poisson deviance per held-out row (lower is better)
    deviance_no_price: float
    deviance_average: float
    deviance_recent: float  # each SKU's average day over the last RECENT_DAYS before the cut
    mae_model: float
    mae_average: float
    units_actual: float  # total held-out units
    units_forecast: float
    # the held-out days whose price was off the SKU's typical price (the training days' mean
    # log price) by more than MOVED_PRICE and at most FAR_PRICE (in log price): where the
    # price response moves the forecast most, near the prices the SKU sold at (NaN: no such
    # day), and the products they are of
    moved_rows: int = 0
    moved_skus: int = 0
    deviance_model_moved: float = float("nan")
    deviance_no_price_moved: float = float("nan")
    # the 95 % interval of the price response's gain on those days (`gain_from_price_moved`),
    # the products resampled with their days (`paired_bootstrap`); NaN: fewer than
    # MIN_SCORED_SKUS products moved (a handful of products is no sample of a catalog)
    moved_gain_low: float = float("nan")
    moved_gain_high: float = float("nan")
    # the held-out days further than FAR_PRICE from the typical price, scored apart (NaN: none)
    far_rows: int = 0
    deviance_model_far: float = float("nan")
    deviance_no_price_far: float = float("nan")

    @property
    def gain_over_average(self) -> float:
        return _gain(self.deviance_model, self.deviance_average)

    @property
    def gain_over_recent(self) -> float:
        return _gain(self.deviance_model, self.deviance_recent)

    @property
    def gain_from_price(self) -> float:
        return _gain(self.deviance_model, self.deviance_no_price)

    @property
    def gain_from_price_moved(self) -> float:
        """The share of the forecast's deviance the price response removes on the held-out
        days whose price moved (NaN: none did): a slope that forecasts a moved price worse than
        none is no slope to price on."""
        return _gain(self.deviance_model_moved, self.deviance_no_price_moved)

    @property
    def gain_from_price_far(self) -> float:
        """The same share on the held-out days priced further than FAR_PRICE from the typical
        price (NaN: none): prices the curve saw rarely, where it extrapolates."""
        return _gain(self.deviance_model_far, self.deviance_no_price_far)

    def moved_interval(self) -> str:
        """The moved days' gain's interval in words, or why none is stated."""
        if np.isfinite(self.moved_gain_low) and np.isfinite(self.moved_gain_high):
            return (
                f"95% interval {self.moved_gain_low:+.1%} to {self.moved_gain_high:+.1%}, "
                f"bootstrap over {self.moved_skus:,} products"
            )
        return f"no interval: {self.moved_skus:,} products moved, {MIN_SCORED_SKUS} needed"


def _gain(deviance: float, reference: float) -> float:
    """1 - deviance / reference: the share of the reference's deviance the model removes
    (NaN where the reference is none: nothing to remove)."""
    return 1 - deviance / reference if reference > 0 else float("nan")


RECENT_DAYS = 28  # the naive forecast: each SKU's average day over the last four weeks
MOVED_PRICE = 0.05  # a held-out day's price over this far (log) from the SKU's typical one moved
# ... and at most this far (log 0.25: 28 % above, 22 % below): near the prices the SKU sold at
# most, where the slope and the bend are read and where a reprice moves a price (a step and the
# window's cumulative change are 20 % by default; a rule set may allow more). A day further off is
# scored apart (`deviance_model_far`): a price the curve saw rarely, where it extrapolates; on a
# real grocer's sales mostly another unit or pack read as a price, a few such days can outweigh
# every moved day's (benchmarks/RESULTS.md, 2026-12-06, twenty-third). The distance is from
# the training days' mean log price, not today's price.
FAR_PRICE = 0.25


def _percent(log_change: float) -> str:
    return f"{abs(np.expm1(log_change)):.0%}"


MOVED_WORDS = (
    f"over {MOVED_PRICE:g} and at most {FAR_PRICE:g} off its typical price in log price (about "
    f"{_percent(-MOVED_PRICE)} to {_percent(-FAR_PRICE)} below or {_percent(MOVED_PRICE)} to "
    f"{_percent(FAR_PRICE)} above it; the typical price: its training days' mean)"
)
FAR_WORDS = (
    f"over {FAR_PRICE:g} off its typical price in log price (prices the curve saw rarely, where "
    "it extrapolates: check such days for a unit or pack change read as a price)"
)


def _deviance(y, m) -> np.ndarray:
    m = np.maximum(m, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / m), 0.0)
    return 2 * (term - (y - m))


def _subset(panel: Panel, rows: np.ndarray) -> Panel:
    pick = lambda v: None if v is None else np.asarray(v)[rows]  # noqa: E731
    return Panel(
        sku=panel.sku[rows],
        day=panel.day[rows],
        units=panel.units[rows],
        price=panel.price[rows],
        promo=pick(panel.promo),
        competitor_price=pick(panel.competitor_price),
        discount=pick(panel.discount),
        category=panel.category,
        time_effects=panel.time_effects,
        truncated=pick(panel.truncated),
        current_price=panel.current_price,
        competitor_sd=panel.competitor_sd,
    )


KNOWN_IN_ADVANCE = ("dow_", "promo", "discount_depth")


def _known_in_advance(panel: Panel, fit, train_rows, test) -> np.ndarray:
    """Per held-out row, the fitted effect of its weekday, relative to the training days'
    average, and of its promotion and discount depth (the fit's intercept is the average day
    at the shelf price: `ml.science.demand.PROMO_CONTROLS`, none on it)."""
    controls, names = _controls(
        _subset(panel, np.ones(len(panel.sku), dtype=bool)), every_level=True
    )
    shift = np.zeros(int(test.sum()))
    # the average day is one of the rows of no closed control (a weekday the shop is closed:
    # its pinned coefficient moves its held-out days to nothing sold)
    average = train_rows & open_days(controls, names, fit.closed)[1]
    for j, name in enumerate(names):
        if not name.startswith(KNOWN_IN_ADVANCE) or name not in fit.coef_names:
            continue
        coef = fit.coef[fit.coef_names.index(name)]
        column = controls[:, j]
        centre = 0.0 if name in PROMO_CONTROLS else column[average].mean()
        shift += coef * (column[test] - centre)
    return shift


def backtest(panel: Panel, holdout_days: int = 28) -> BacktestResult:
    # the rows the fit reads (`demand._rows`): a row without a count or a price is no day to
    # forecast nor one to average (a NaN there made every total and average NaN)
    units, prices = np.asarray(panel.units, float), np.asarray(panel.price, float)
    valid = np.isfinite(units) & (units >= 0) & np.isfinite(prices) & (prices > 0)
    if not valid.all():
        panel = _subset(panel, valid)
    day = np.asarray(panel.day)
    cut = day.max() - holdout_days
    train_rows, test_rows = day <= cut, day > cut
    if not train_rows.any() or not test_rows.any():
        raise ValueError(f"the history must be longer than the {holdout_days} held-out days")
    fit = fit_demand(_subset(panel, train_rows))
    n = panel.n_skus
    seen = np.bincount(panel.sku[train_rows], minlength=n) > 0
    priced = np.isfinite(np.asarray(panel.price, float)) & (np.asarray(panel.price, float) > 0)
    test = test_rows & seen[panel.sku] & priced
    sku, y = panel.sku[test], np.asarray(panel.units, float)[test]
    price = np.asarray(panel.price, float)[test]
    trunc = (
        None
        if panel.truncated is None
        else Truncation(np.asarray(panel.truncated, bool)[test], fit.nb_k)
    )
    # Forecasts on the log scale, each turned into the expected value of the row: the average
    # day, moved by what is known of the held-out day in advance (its weekday, whether a
    # promotion runs and how deep its discount is), as a merchant's forecast would be.
    known = _known_in_advance(panel, fit, train_rows, test)
    model = np.log(np.maximum(fit.expected_units(sku, price), 1e-12)) + known
    if panel.competitor_price is not None:  # the level is today's position's (the hinge's)
        model = model + fit.position(sku, price, np.asarray(panel.competitor_price, float)[test])
    # the same SKU level and the same days, the price held at its typical value (the intercept
    # is a day's at the shelf price: without the held-out day's promotion the price's part
    # would count the promotion's too)
    no_price = fit.intercept[sku] + known
    train_y = np.asarray(panel.units, float)[train_rows]
    average_all = np.log(
        np.maximum(
            np.bincount(panel.sku[train_rows], weights=train_y, minlength=n)
            / np.maximum(np.bincount(panel.sku[train_rows], minlength=n), 1),
            1e-12,
        )
    )
    average = average_all[sku]
    window = train_rows & (day > cut - RECENT_DAYS)
    recent_sum = np.bincount(
        panel.sku[window], weights=np.asarray(panel.units, float)[window], minlength=n
    )
    recent_days = np.bincount(panel.sku[window], minlength=n)
    per_day = np.where(
        recent_days > 0, recent_sum / np.maximum(recent_days, 1), np.exp(average_all)
    )
    recent = np.log(np.maximum(per_day, 1e-12))[sku]
    means = {
        name: _mean_weight(eta, trunc)[0]
        for name, eta in (
            ("model", model),
            ("no_price", no_price),
            ("average", average),
            ("recent", recent),
        )
    }
    deviance = {name: _deviance(y, mean) for name, mean in means.items()}
    # (every held-out row's SKU was seen in training: its typical price is positive)
    off = np.abs(np.log(price / np.asarray(fit.typical_price, float)[sku]))
    moved, far = (off > MOVED_PRICE) & (off <= FAR_PRICE), off > FAR_PRICE

    def mean_on(name: str, rows: np.ndarray) -> float:
        return float(np.mean(deviance[name][rows])) if rows.any() else np.nan

    scored, index = np.unique(sku[moved], return_inverse=True)
    gain_low = gain_high = np.nan
    if len(scored) >= MIN_SCORED_SKUS:
        # the gain's interval: the ratio of the sums resampled, each product's moved days
        # together (its share removed: never above 1)
        removed = np.bincount(index, weights=deviance["no_price"][moved] - deviance["model"][moved])
        reference = np.bincount(index, weights=deviance["no_price"][moved])
        gain_low, gain_high = paired_bootstrap(removed, reference, floor=1e-12)
    return BacktestResult(
        train_days=int(cut - day.min() + 1),
        test_days=holdout_days,
        skus=len(np.unique(sku)),
        test_rows=len(y),
        deviance_model=float(np.mean(deviance["model"])),
        deviance_no_price=float(np.mean(deviance["no_price"])),
        deviance_average=float(np.mean(deviance["average"])),
        deviance_recent=float(np.mean(deviance["recent"])),
        mae_model=float(np.mean(np.abs(y - means["model"]))),
        mae_average=float(np.mean(np.abs(y - means["average"]))),
        units_actual=float(y.sum()),
        units_forecast=float(means["model"].sum()),
        moved_rows=int(moved.sum()),
        moved_skus=len(scored),
        deviance_model_moved=mean_on("model", moved),
        deviance_no_price_moved=mean_on("no_price", moved),
        moved_gain_low=float(gain_low),
        moved_gain_high=float(gain_high),
        far_rows=int(far.sum()),
        deviance_model_far=mean_on("model", far),
        deviance_no_price_far=mean_on("no_price", far),
    )


# --- champion and challenger: does a retrained version beat the one in force? ---------------

MIN_NEW_DAYS = 14  # days the version in force has not seen, before a fair comparison is possible
MAX_HOLDOUT_DAYS = 28


BOOTSTRAP_DRAWS = 1000  # resamples of the SKUs behind the improvement's interval
MOVED = 0.01  # a SKU whose price spans less than 1 % over both periods tells nothing of price


@dataclass
class Challenge:
    """A retrained model (the challenger: the same method refitted on the history up to the
    holdout) against the version in force (the champion), both forecasting the same held-out
    days that neither saw.

    The challenger wins only when it is better beyond noise: the difference of mean deviance
    (champion minus challenger, per held-out row) has a 95 % interval from a paired bootstrap
    over SKUs (each SKU's rows resampled together, both models scored on the same draws), and
    its lower end must be above 0. A refit that merely ties with the model in force, a little
    better on these days by chance, keeps the model in force."""

    holdout_days: int
    skus: int  # SKUs scored (both models give a usable curve, the SKU sold and its price moved)
    rows: int
    deviance_challenger: float  # mean Poisson deviance per held-out row (lower is better)
    deviance_champion: float
    difference_low: float = 0.0  # 95 % interval of deviance_champion - deviance_challenger
    difference_high: float = 0.0
    skus_price_still: int = 0  # left out: their price did not move over both periods
    skus_prior: int = 0  # scored with the champion's prior (the version has no estimate)

    @property
    def difference(self) -> float:
        return self.deviance_champion - self.deviance_challenger

    @property
    def wins(self) -> bool:
        """Better beyond noise, on enough SKUs for the SKU bootstrap to mean anything (with a
        handful, every resample is nearly the same and the interval is far too narrow)."""
        return self.skus >= MIN_SCORED_SKUS and self.difference_low > 0

    @property
    def improvement(self) -> float:
        """Share of the champion's deviance the challenger removes (negative: worse)."""
        return 1 - self.deviance_challenger / max(self.deviance_champion, 1e-12)


# A verdict on fewer SKUs is one on luck: the version in force stays.
MIN_SCORED_SKUS = 20


def paired_bootstrap(
    per_sku_diff: np.ndarray,
    per_sku_rows: np.ndarray,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
    floor: float = 1.0,
) -> tuple[float, float]:
    """95 % percentile interval of sum(diff) / sum(rows) with the SKUs resampled (a SKU's days
    stay together: they share its level and its errors). Fixed seed: the same data, the same
    verdict. `floor`: the least denominator (1: a count of rows; a sum of deviances, less)."""
    n = len(per_sku_diff)
    rng = np.random.default_rng(seed)
    ratios = np.empty(draws)
    chunk = max(1, min(draws, 5_000_000 // max(n, 1)))
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        pick = rng.integers(0, n, size=(size, n))
        ratios[start : start + size] = per_sku_diff[pick].sum(1) / np.maximum(
            per_sku_rows[pick].sum(1), floor
        )
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(low), float(high)


def holdout_for(last_day: int, champion_last_day: int) -> int:
    """Held-out days for a fair comparison: the newest days, no more than half of those the
    champion never saw (so the challenger learns from at least as many new days as are held
    out), at most MAX_HOLDOUT_DAYS; 0 when fewer than MIN_NEW_DAYS are new."""
    new = int(last_day) - int(champion_last_day)
    if new < MIN_NEW_DAYS:
        return 0
    return min(MAX_HOLDOUT_DAYS, new // 2)


def curve_of_fit(fit) -> DemandCurve:
    """A fit's demand curve per SKU, anchored at each SKU's typical price."""
    typical = np.asarray(fit.typical_price, float)
    return DemandCurve.from_estimates(
        typical,
        np.exp(np.asarray(fit.intercept, float)),
        fit.elasticity,
        typical,
        fit.curvature,
        competitor_slope=fit.competitor_above,
        competitor_slope_se=fit.competitor_above_se,
        ramp_sd=fit.ramp_sd,
    )


def _price_response_forecast(curve: DemandCurve, panel: Panel, ref, test) -> np.ndarray:
    """Held-out units forecast by a curve: each SKU's level fitted on its reference rows (the
    weeks just before the cut, at the prices then), moved along the curve to each held-out
    day's price and competitor price. Both models get the same level method, so the comparison
    is about what each says of price."""
    n = panel.n_skus
    rows = ref | test
    sku = panel.sku[rows]
    piece = replace(
        curve.subset(sku),
        competitor_price=(
            np.full(len(sku), np.nan)
            if panel.competitor_price is None
            else np.asarray(panel.competitor_price, float)[rows]
        ),
    )
    shape = np.exp(piece.log_ratio(np.asarray(panel.price, float)[rows]))
    in_ref, in_test = ref[rows], test[rows]
    y = np.asarray(panel.units, float)[rows]
    sold = np.bincount(sku[in_ref], weights=y[in_ref], minlength=n)
    expected = np.bincount(sku[in_ref], weights=np.nan_to_num(shape[in_ref]), minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(expected > 0, sold / expected, np.nan)
    return level[sku[in_test]] * shape[in_test]


def champion_challenger(panel: Panel, champion: DemandCurve, holdout_days: int) -> Challenge:
    """Refit the demand model on all but the last `holdout_days` and compare its forecasts of
    those days with the champion's (`champion`: one curve per panel SKU index), on the SKUs
    both can forecast. Poisson deviance of the held-out daily units; the same level method for
    both (`_price_response_forecast`), so a SKU's level (`units_ref`) is not needed: a SKU the
    champion knows only by its prior slope (no estimate of its own) is scored with that prior.

    Only SKUs whose price moved over the reference and held-out days (by MOVED or more) count:
    at one steady price both models forecast the SKU's recent level and differ by nothing but
    rounding, so such SKUs would only dilute the comparison."""
    day = np.asarray(panel.day)
    cut = day.max() - holdout_days
    train = day <= cut
    if holdout_days < 1 or not train.any() or train.all():
        raise ValueError(f"the history must be longer than the {holdout_days} held-out days")
    challenger = curve_of_fit(fit_demand(_subset(panel, train)))
    price = np.asarray(panel.price, float)
    priced = np.isfinite(price) & (price > 0)
    n = panel.n_skus
    fitted = len(challenger.elasticity)
    if fitted < n:  # the last SKUs sold only on the held-out days: the challenger knows none
        challenger = challenger.subset(np.minimum(np.arange(n), fitted - 1))
        challenger = replace(
            challenger, elasticity=np.where(np.arange(n) < fitted, challenger.elasticity, np.nan)
        )
    sloped = lambda c: (  # noqa: E731
        np.isfinite(c.elasticity)
        & (c.elasticity < 0)
        & np.isfinite(c.price_ref)
        & (c.price_ref > 0)
    )
    usable = challenger.usable & sloped(champion)
    prior = usable & ~champion.usable  # a slope but no volume of its own: the version's prior
    ref = train & (day > cut - RECENT_DAYS) & priced & usable[panel.sku]
    sold_before = np.bincount(panel.sku[ref], minlength=n) > 0
    test = ~train & priced & usable[panel.sku] & sold_before[panel.sku]
    both = ref | test
    low = np.full(n, np.inf)
    high = np.zeros(n)
    np.minimum.at(low, panel.sku[both], price[both])
    np.maximum.at(high, panel.sku[both], price[both])
    moved = high >= low * (1 + MOVED)
    still = int(np.sum(np.isin(np.arange(n), panel.sku[test]) & ~moved))
    test &= moved[panel.sku]
    if not test.any():
        raise ValueError(
            "no SKU can be forecast by both models over the held-out days at a price that moved"
        )
    y = np.asarray(panel.units, float)[test]
    sku = panel.sku[test]
    deviance = {}
    for name, curve in (("challenger", challenger), ("champion", champion)):
        forecast = _price_response_forecast(curve, panel, ref & moved[panel.sku], test)
        deviance[name] = _deviance(y, np.nan_to_num(forecast, nan=1e-12))
    scored = np.unique(sku)
    index = np.searchsorted(scored, sku)
    diff = np.bincount(index, weights=deviance["champion"] - deviance["challenger"])
    rows = np.bincount(index).astype(float)
    interval = paired_bootstrap(diff, rows)
    return Challenge(
        holdout_days=int(holdout_days),
        skus=len(scored),
        rows=int(test.sum()),
        deviance_challenger=float(np.mean(deviance["challenger"])),
        deviance_champion=float(np.mean(deviance["champion"])),
        difference_low=interval[0],
        difference_high=interval[1],
        skus_price_still=still,
        skus_prior=int(np.sum(prior[scored])),
    )
