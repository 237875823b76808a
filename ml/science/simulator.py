"""A market with known demand, for judging recommendations (pure: numpy only).

Each SKU has a true demand curve of one of several forms around its base price:
- "constant": q = a (p / p_ref)^e
- "linear":   q = a (1 + e (p / p_ref - 1)), never below zero
- "logit":    q = a * 2 / (1 + exp(-e * (p / p_ref - 1) * 2))  (a saturating S-curve)
times weekly and yearly seasonality, a promotion lift, a competitor effect (buyers drift away
when the competitor is cheaper), and Poisson noise. The merchant's price history varies around
today's price (tests, promotions): a new shelf price every day by default, or a sticky one
(`make_market(..., price_every=30)`: changed on about one day in 30, a competitor's move
followed only then, today's price since its last change), as most real merchants keep.
`write_csv` produces the canonical import files; the oracle knows the truth and finds the best
price under the same rules; `score` says what share of the oracle's profit lift over today's
prices a set of recommendations captures, how many SKUs a set of recommendations makes less
profitable than today's prices, and how many it changes.

The traps of real retail data, each off by default (`make_market(..., traps=True)` switches on
all of `TRAPS`; a keyword such as `overdispersion=0.8` switches one):
- overdispersion: gamma-Poisson (negative-binomial) counts, Var = mu + k mu^2;
- shock_rho, shock_sd: a per-SKU demand shock, AR(1) in logs over the days (mean-one multiplier,
  stationary sd `shock_sd` of its log);
- display_lift: promotions lift demand by display on top of their price cut and of the baseline
  `promo_lift` (both multiplicative, independent of the price), and their depth varies
  (`promo_depth`, a range of discounts off the shelf price);
- anchored_share, anchor_slope: for that share of SKUs, demand collapses once the own price
  passes the competitor's: an extra slope (drawn from the range) on log(p / competitor) above
  the competitor, bent smoothly over the first `anchor_bend` (in log price) past it;
- cost_share, elasticity: the ranges each SKU's cost (a share of its reference price) and the
  size of its true elasticity at the reference price are drawn from; the same in both settings
  (0.35-0.75 and 0.6-3.0), a keyword moves them: `cost_share=(0.85, 0.95)` is a grocer's thin
  margins, where a slope a little off turns a gain into a loss.
Expected demand (`Market.demand`) includes the display lift and the anchoring; the noise and the
shocks have mean one and show only in the simulated sales. The competitor's price of a day is
its level give or take `competitor_jitter` (log s.d.), so a price's true expected profit on a day
to come (`Market.expected_demand`, `Market.profit`: what the oracle and `score` use, and the true
slope `local_elasticity`) is averaged over that jitter around the competitor's price today: near
an anchored SKU's kink, one day's competitor price is not the price its buyers meet.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

FORMS = ("constant", "linear", "logit")

# Every trap on at once: `make_market(n, forms, seed, traps=True)`.
TRAPS = {
    "overdispersion": 0.7,  # Var = mu + 0.7 mu^2
    "shock_rho": 0.8,  # day-to-day autocorrelation of the log demand shock
    "shock_sd": 0.3,  # its stationary sd
    "display_lift": 0.6,  # exp(0.6) = 1.8x on promo days beyond the price cut and promo_lift
    "promo_depth": (0.10, 0.35),  # promotion discounts off the shelf price
    "anchored_share": 0.4,  # share of SKUs whose demand collapses above the competitor's price
    "anchor_slope": (3.0, 6.0),  # their extra slope on log(p / competitor) above it
    "cost_share": (0.35, 0.75),  # cost over the reference price (as without traps)
    "elasticity": (0.6, 3.0),  # the true elasticity's size at the reference price (as without)
}
# Traps off: the market as it always was (Poisson, a flat 15 % promotion, no anchoring).
NO_TRAPS = {
    "overdispersion": 0.0,
    "shock_rho": 0.0,
    "shock_sd": 0.0,
    "display_lift": 0.0,
    "promo_depth": (0.15, 0.15),
    "anchored_share": 0.0,
    "anchor_slope": (3.0, 6.0),
    "cost_share": (0.35, 0.75),
    "elasticity": (0.6, 3.0),
}


# Nodes of the average over the competitor's daily jitter (`Market.expected_demand`): they read
# it to within 0.05 % where the anchored demand bends smoothly (`anchor_bend` > 0; a sharp
# kink, `anchor_bend` 0, to within 0.3 %)
JITTER_NODES = 21


def _yearly(day) -> np.ndarray:
    """The yearly season's factor of an ordinal day (mean 1 over a year)."""
    return 1 + 0.1 * np.sin(2 * np.pi * np.asarray(day) / 365.25)


def _bent_ramp(x: np.ndarray, width: float) -> np.ndarray:
    """0 below 0, x - width/2 above `width`, a parabola between (smooth: continuous slope)."""
    if width <= 0:
        return np.maximum(x, 0.0)
    return np.where(x <= 0, 0.0, np.where(x < width, x * x / (2 * width), x - width / 2))


@dataclass
class Market:
    sku: list[str]
    category: list[str]
    form: np.ndarray  # index into FORMS
    base_units: np.ndarray  # units/day at the reference price
    ref_price: np.ndarray
    elasticity: np.ndarray  # the slope at the reference price (log-log for "constant")
    cost: np.ndarray
    price_today: np.ndarray
    competitor_today: np.ndarray
    competitor_effect: float = 0.3
    promo_lift: float = 0.5
    # The traps (see the module docstring); the defaults are the trap-free market.
    overdispersion: float = 0.0
    shock_rho: float = 0.0
    shock_sd: float = 0.0
    display_lift: float = 0.0
    promo_depth: tuple[float, float] = (0.15, 0.15)
    anchor_slope: np.ndarray | None = None  # per SKU, 0 where not anchored; None: none is
    anchor_bend: float = 0.05
    # The competitor's price of a day around its level (log s.d.): the simulated days' and the
    # readings' jitter, over which a day to come's expected demand is averaged.
    competitor_jitter: float = 0.03
    # Days between the merchant's own shelf-price changes on average (1: a new price every
    # day, as always; a competitor's move is then followed only on such a day); a sticky
    # price, as most real merchants keep, carries less evidence.
    price_every: float = 1.0

    @property
    def anchored(self) -> np.ndarray:
        if self.anchor_slope is None:
            return np.zeros(len(self.sku), dtype=bool)
        return self.anchor_slope > 0

    def demand(self, i, price, competitor=None, day=None, promo=0.0) -> np.ndarray:
        """Expected units per day (the truth) of SKUs `i` at `price`."""
        i = np.asarray(i)
        ratio = np.asarray(price, float) / self.ref_price[i]
        e, a, form = self.elasticity[i], self.base_units[i], self.form[i]
        constant = a * ratio**e
        linear = a * np.maximum(1 + e * (ratio - 1), 0.0)
        logit = a * 2 / (1 + np.exp(-e * (ratio - 1) * 2))
        q = np.where(form == 0, constant, np.where(form == 1, linear, logit))
        comp = self.competitor_today[i] if competitor is None else np.asarray(competitor, float)
        gap = np.log(np.asarray(price, float) / comp)
        q = q * np.exp(-self.competitor_effect * np.clip(gap, -1, 1))
        if self.anchor_slope is not None:
            q = q * np.exp(-self.anchor_slope[i] * _bent_ramp(gap, self.anchor_bend))
        if day is not None:
            d = np.asarray(day)
            q = q * (1 + 0.15 * np.sin(2 * np.pi * d / 7)) * _yearly(d)
        if self.display_lift:
            q = q * np.exp(self.display_lift * np.asarray(promo, float))
        return q * np.exp(self.promo_lift * np.asarray(promo, float))

    @staticmethod
    def season_ahead(days: int = 28, end: date | None = None) -> float:
        """The yearly season's mean factor over the `days` days after `end` (today by
        default), against the year's average day (`expected_demand`'s): what a price set at the
        end of a history earns over the days to come is the average day's times this."""
        first = (end or date.today()).toordinal() + 1
        return float(np.mean(_yearly(np.arange(first, first + days))))

    def expected_demand(self, i, price, competitor=None) -> np.ndarray:
        """Expected units of a day to come (the truth) of SKUs `i` at `price`, on the average
        day without a promotion: `demand` averaged over the day's competitor price, its level
        (today's by default) give or take `competitor_jitter` (Gauss-Hermite, JITTER_NODES)."""
        i = np.asarray(i)
        comp = self.competitor_today[i] if competitor is None else np.asarray(competitor, float)
        if not self.competitor_jitter > 0:
            return self.demand(i, price, comp)
        nodes, weights = np.polynomial.hermite_e.hermegauss(JITTER_NODES)
        weights = weights / weights.sum()
        return sum(
            w * self.demand(i, price, comp * np.exp(self.competitor_jitter * z))
            for z, w in zip(nodes, weights, strict=True)
        )

    def profit(self, i, price) -> np.ndarray:
        """The true expected profit of a day to come at `price` (`expected_demand`)."""
        return (np.asarray(price, float) - self.cost[i]) * self.expected_demand(i, price)

    def local_elasticity(self, i, price, competitor=None, step: float = 1e-4) -> np.ndarray:
        """The true d log(expected units) / d log(own price) at `price`, the competitor's price
        held at its level (today's by default), on the average day without a promotion
        (`expected_demand`): a central difference in log price. NaN where expected demand is
        zero (a linear curve's end)."""
        i = np.asarray(i)
        price = np.asarray(price, float)
        comp = self.competitor_today[i] if competitor is None else np.asarray(competitor, float)
        up = self.expected_demand(i, price * np.exp(step), comp)
        down = self.expected_demand(i, price * np.exp(-step), comp)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (np.log(up) - np.log(down)) / (2 * step)
        return np.where((up > 0) & (down > 0), slope, np.nan)


def make_market(
    n: int = 200,
    forms=FORMS,
    seed: int = 0,
    traps: bool = False,
    price_every: float = 1.0,
    volume: float = 1.0,
    **switches,
) -> Market:
    """A market of `n` SKUs. `traps=True` switches on every trap of `TRAPS`; keywords named as
    in `TRAPS` set single traps (on top of either). Without traps the market (and every file
    `write_csv` makes of it) is the same as it always was for the same seed. `price_every`
    (days, on average, between the merchant's own shelf-price changes; 1 by default, a new
    price every day) makes the merchant's prices sticky, with or without traps. `volume` scales
    every SKU's units a day (1: about 5 at the reference price on average; 0.1: a catalog of
    slow movers)."""
    if not price_every >= 1:
        raise ValueError(f"price_every must be at least 1 day, not {price_every!r}")
    if not volume > 0:
        raise ValueError(f"volume must be positive, not {volume!r}")
    unknown = set(switches) - set(TRAPS)
    if unknown:
        raise TypeError(f"unknown trap(s) {sorted(unknown)}: use {', '.join(TRAPS)}")
    setting = {**(TRAPS if traps else NO_TRAPS), **switches}
    for name, top in (("cost_share", 1.0), ("elasticity", np.inf)):
        low, high = _range(name, setting[name])
        if not 0 < low <= high < top:
            raise ValueError(
                f"{name} must be a range (low, high) with 0 < low <= high"
                + (f" < {top:g}" if np.isfinite(top) else "")
                + f", not {setting[name]!r}"
            )
    rng = np.random.default_rng(seed)
    form = rng.integers(0, len(forms), n)
    form = np.array([FORMS.index(forms[f]) for f in form])
    ref = rng.uniform(5, 120, n)
    elasticity = -rng.uniform(*setting["elasticity"], n)
    cost = ref * rng.uniform(*setting["cost_share"], n)
    market = Market(
        sku=[f"SIM{i:05d}" for i in range(n)],
        category=[f"cat{i % 6}" for i in range(n)],
        form=form,
        base_units=rng.gamma(2.0, 2.5, n) * volume,
        ref_price=ref,
        elasticity=elasticity,
        cost=cost,
        price_today=ref * rng.uniform(0.9, 1.15, n),
        competitor_today=ref * rng.uniform(0.9, 1.2, n),
        overdispersion=float(setting["overdispersion"]),
        shock_rho=float(setting["shock_rho"]),
        shock_sd=float(setting["shock_sd"]),
        display_lift=float(setting["display_lift"]),
        promo_depth=tuple(float(x) for x in setting["promo_depth"]),
        price_every=float(price_every),
    )
    if setting["anchored_share"] > 0:
        pick = np.random.default_rng([seed, 7])  # its own stream: the rest stays as it was
        anchored = pick.random(n) < setting["anchored_share"]
        low, high = setting["anchor_slope"]
        market.anchor_slope = np.where(anchored, pick.uniform(low, high, n), 0.0)
    return market


def _range(name: str, value) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a range (low, high), not {value!r}") from None
    return low, high


def make_trap_market(n: int = 200, forms=FORMS, seed: int = 0) -> Market:
    """`make_market` with every trap of `TRAPS` on."""
    return make_market(n, forms, seed, traps=True)


@dataclass
class Day:
    """One simulated day of all SKUs."""

    number: int  # 0 .. days-1
    day: date
    shelf: np.ndarray  # the shelf price (before a promotion's discount)
    price: np.ndarray  # the price paid
    promo: np.ndarray  # bool
    depth: np.ndarray  # the promotion's discount off the shelf price (0 without one)
    competitor: np.ndarray
    expected: np.ndarray  # expected units (the truth, without the day's shock)
    units: np.ndarray  # the counts sold


def simulate(
    market: Market,
    days: int = 180,
    seed: int = 0,
    competitor_moves: bool = True,
    end: date | None = None,
) -> Iterator[Day]:
    """The market's days, oldest first, as `write_csv` writes them (same seed, same days): the
    `days` before `end` (today by default; the seasons follow the calendar, so a history that
    must be the same on every day of the year names its end)."""
    rng = np.random.default_rng(seed + 1)
    n = len(market.sku)
    idx = np.arange(n)
    start = (end or date.today()) - timedelta(days=days)
    moves = np.random.default_rng(seed + 2)  # its own stream: the rest stays comparable
    traps = np.random.default_rng([seed, 3])  # the traps' draws, apart from both
    regime = np.ones(n)
    low, high = market.promo_depth
    rho, sd = market.shock_rho, market.shock_sd
    shock = traps.normal(0, sd, n) if sd > 0 else np.zeros(n)  # stationary from day one
    hold = np.random.default_rng([seed, 11])  # sticky prices' own stream
    held = None
    # a sticky price's last change: today's price has been in force since then
    since = days - hold.geometric(1 / market.price_every, n) if market.price_every > 1 else None
    for d in range(days):
        day = start + timedelta(days=d)
        if competitor_moves and d % 7 == 0:
            # Each week a competitor re-prices with probability 0.2 (to 0.8-1.2 of today's
            # price), and is back at today's price for the last two weeks; the merchant
            # follows half of the move (so own and competitor prices move together; a sticky
            # merchant on its next change day).
            jump = moves.random(n) < 0.2
            regime = np.where(jump, moves.uniform(0.8, 1.2, n), regime)
        if competitor_moves and d >= days - 14:
            regime = np.ones(n)  # every day of the last two weeks, not from the next week
        shelf = market.price_today * np.exp(rng.normal(0, 0.1, n))  # tests and drift
        shelf = shelf * regime**0.5  # the merchant follows half of a competitor's move
        if market.price_every > 1:  # a sticky price: a new one (and the move) now and then
            change = hold.random(n) < 1 / market.price_every
            held = shelf if held is None else np.where(change, shelf, held)
            shelf = np.where(d >= since, market.price_today, held)
        promo = rng.random(n) < 0.05
        if low == high:
            depth = np.where(promo, low, 0.0)
            price = np.where(promo, shelf * (1 - low), shelf)
        else:
            depth = np.where(promo, traps.uniform(low, high, n), 0.0)
            price = shelf * (1 - depth)
        comp = market.competitor_today * regime * np.exp(rng.normal(0, market.competitor_jitter, n))
        expected = market.demand(idx, price, comp, day.toordinal(), promo)
        mu = expected
        if sd > 0:
            if d > 0:
                shock = rho * shock + np.sqrt(1 - rho**2) * traps.normal(0, sd, n)
            mu = mu * np.exp(shock - sd**2 / 2)  # mean one
        if market.overdispersion > 0:
            k = market.overdispersion  # gamma(1/k, k): mean 1, variance k
            mu = mu * traps.gamma(1 / k, k, n)
        units = rng.poisson(mu)
        yield Day(d, day, shelf, price, promo, depth, comp, expected, units)


def write_csv(
    market: Market,
    folder: Path,
    days: int = 180,
    seed: int = 0,
    zero_days: bool = False,
    competitor_moves: bool = True,
    end: date | None = None,
    reading_every: int = 7,
) -> dict:
    """products.csv, sales.csv and competitor_prices.csv in the canonical formats (the `days`
    before `end`, today by default; a competitor reading every `reading_every` days: weekly by
    default, 1 for a daily feed, each the day's jittered price).

    By default sales.csv has rows only for days with a sale (an order export: the price of a
    day without a sale is unknown). With `zero_days`, it is a daily report that lists every
    day on sale, a day without a sale as 0 units at that day's price. With `competitor_moves`
    the competitor re-prices now and then and the merchant follows half of each move (a sticky
    merchant, `price_every`, only on its own change days), so the own price and the
    competitor's move together (as when a merchant watches a rival).
    A promotion's row says promo=true with the price paid (the canonical sales format has no
    shelf-price or discount column); its depth is in `simulate`'s days."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(market.sku)
    idx = np.arange(n)
    with open(folder / "products.csv", "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["sku", "title", "category", "cost", "price", "currency"])
        for i in idx:
            cost, price = round(float(market.cost[i]), 2), round(float(market.price_today[i]), 2)
            w.writerow(
                [market.sku[i], f"Simulated item {i}", market.category[i], cost, price, "USD"]
            )
    rows = promo_rows = 0
    with (
        open(folder / "sales.csv", "w", newline="") as sales,
        open(folder / "competitor_prices.csv", "w", newline="") as offers,
    ):
        ws, wo = csv.writer(sales), csv.writer(offers)
        ws.writerow(["date", "sku", "units", "price", "promo"])
        wo.writerow(["sku", "competitor", "price", "observed_at"])
        for today in simulate(market, days, seed, competitor_moves, end):
            day, units, promo, price = today.day, today.units, today.promo, today.price
            for i in idx if zero_days else np.flatnonzero(units):
                flag = "true" if promo[i] else "false"
                paid = round(float(price[i]), 2)
                ws.writerow([day.isoformat(), market.sku[i], int(units[i]), paid, flag])
                rows += 1
                promo_rows += bool(promo[i])
            if today.number % reading_every == 0:
                for i in idx:
                    wo.writerow(
                        [
                            market.sku[i],
                            "Rival",
                            round(float(today.competitor[i]), 2),
                            f"{day.isoformat()}T09:00:00Z",
                        ]
                    )
    return {"skus": n, "sales_rows": rows, "days": days, "promo_rows": promo_rows}


def oracle(
    market: Market, floor: np.ndarray, ceiling: np.ndarray, points: int = 2001
) -> np.ndarray:
    """The true best price inside [floor, ceiling] per SKU (a fine grid on the true curve)."""
    steps = np.linspace(0, 1, points)
    best = np.empty(len(market.sku))
    for i in range(len(market.sku)):
        grid = floor[i] + (ceiling[i] - floor[i]) * steps
        best[i] = grid[np.argmax(market.profit(np.full(points, i), grid))]
    return best


def losing(today: np.ndarray, mine: np.ndarray) -> np.ndarray:
    """Per SKU, whether the true profit `mine` at a recommended price falls short of `today`'s
    by more than 0.5 % of today's (a recommendation that loses money)."""
    return mine < today - 0.005 * np.abs(today)


def score(market: Market, recommended: np.ndarray, floor: np.ndarray, ceiling: np.ndarray) -> dict:
    """Share of the oracle's attainable profit lift that the recommendations capture; rule
    violations; `losing_share`, the share of SKUs whose true profit at the recommended price
    falls short of today's by more than 0.5 % of today's (recommendations that lose money);
    `changed`, how many recommendations differ from today's price (in cents, as the merchant's
    catalog has it) by more than 0.005."""
    idx = np.arange(len(market.sku))
    recommended = np.asarray(recommended, float)
    best = oracle(market, floor, ceiling)
    today = market.profit(idx, market.price_today)
    mine = market.profit(idx, recommended)
    now, ours = today.sum(), mine.sum()
    top = market.profit(idx, best).sum()
    violations = int(np.sum((recommended < floor - 1e-6) | (recommended > ceiling + 1e-6)))
    lost = losing(today, mine)
    changed = np.abs(recommended - np.round(market.price_today, 2)) > 0.005 + 1e-9
    return {
        "profit_today": round(float(now), 2),
        "profit_recommended": round(float(ours), 2),
        "profit_oracle": round(float(top), 2),
        "captured": round(float((ours - now) / (top - now)), 4) if top > now else 1.0,
        "violations": violations,
        "losing_share": round(float(np.mean(lost)), 4),
        "changed": int(np.sum(changed)),
    }
