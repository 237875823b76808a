"""A market with known demand, for judging recommendations (pure: numpy only).

Each SKU has a true demand curve of one of several forms around its base price:
- "constant": q = a (p / p_ref)^e
- "linear":   q = a (1 + e (p / p_ref - 1)), never below zero
- "logit":    q = a * 2 / (1 + exp(-e * (p / p_ref - 1) * 2))  (a saturating S-curve)
times weekly and yearly seasonality, a promotion lift, a competitor effect (buyers drift away
when the competitor is cheaper), and Poisson noise. The merchant's price history varies around
today's price (tests, promotions). `write_csv` produces the canonical import files; the oracle
knows the truth and finds the best price under the same rules; `score` says what share of the
oracle's profit lift over today's prices a set of recommendations captures.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

FORMS = ("constant", "linear", "logit")


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
        q = q * np.exp(
            -self.competitor_effect * np.clip(np.log(np.asarray(price, float) / comp), -1, 1)
        )
        if day is not None:
            d = np.asarray(day)
            q = (
                q
                * (1 + 0.15 * np.sin(2 * np.pi * d / 7))
                * (1 + 0.1 * np.sin(2 * np.pi * d / 365.25))
            )
        return q * np.exp(self.promo_lift * np.asarray(promo, float))

    def profit(self, i, price) -> np.ndarray:
        return (np.asarray(price, float) - self.cost[i]) * self.demand(i, price)


def make_market(n: int = 200, forms=FORMS, seed: int = 0) -> Market:
    rng = np.random.default_rng(seed)
    form = rng.integers(0, len(forms), n)
    form = np.array([FORMS.index(forms[f]) for f in form])
    ref = rng.uniform(5, 120, n)
    elasticity = -rng.uniform(0.6, 3.0, n)
    cost = ref * rng.uniform(0.35, 0.75, n)
    return Market(
        sku=[f"SIM{i:05d}" for i in range(n)],
        category=[f"cat{i % 6}" for i in range(n)],
        form=form,
        base_units=rng.gamma(2.0, 2.5, n),
        ref_price=ref,
        elasticity=elasticity,
        cost=cost,
        price_today=ref * rng.uniform(0.9, 1.15, n),
        competitor_today=ref * rng.uniform(0.9, 1.2, n),
    )


def write_csv(
    market: Market,
    folder: Path,
    days: int = 180,
    seed: int = 0,
    zero_days: bool = False,
    competitor_moves: bool = True,
) -> dict:
    """products.csv, sales.csv and competitor_prices.csv in the canonical formats.

    By default sales.csv has rows only for days with a sale (an order export: the price of a
    day without a sale is unknown). With `zero_days`, it is a daily report that lists every
    day on sale, a day without a sale as 0 units at that day's price. With `competitor_moves`
    the competitor re-prices now and then and the merchant follows half of each move, so the
    own price and the competitor's move together (as when a merchant watches a rival)."""
    rng = np.random.default_rng(seed + 1)
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
    start = date.today() - timedelta(days=days)
    rows = 0
    with (
        open(folder / "sales.csv", "w", newline="") as sales,
        open(folder / "competitor_prices.csv", "w", newline="") as offers,
    ):
        ws, wo = csv.writer(sales), csv.writer(offers)
        ws.writerow(["date", "sku", "units", "price", "promo"])
        wo.writerow(["sku", "competitor", "price", "observed_at"])
        moves = np.random.default_rng(seed + 2)  # its own stream: the rest stays comparable
        regime = np.ones(n)
        for d in range(days):
            day = start + timedelta(days=d)
            if competitor_moves and d % 7 == 0:
                # Each week a competitor re-prices with probability 0.2 (to 0.8-1.2 of today's
                # price), and is back at today's price for the last two weeks; the merchant
                # follows half of the move (so own and competitor prices move together).
                jump = moves.random(n) < 0.2
                regime = np.where(jump, moves.uniform(0.8, 1.2, n), regime)
            if competitor_moves and d >= days - 14:
                regime = np.ones(n)  # every day of the last two weeks, not from the next week
            price = market.price_today * np.exp(rng.normal(0, 0.1, n))  # tests and drift
            price = price * regime**0.5  # the merchant follows half of a competitor's move
            promo = rng.random(n) < 0.05
            price = np.where(promo, price * 0.85, price)
            comp = market.competitor_today * regime * np.exp(rng.normal(0, 0.03, n))
            units = rng.poisson(market.demand(idx, price, comp, day.toordinal(), promo))
            for i in idx if zero_days else np.flatnonzero(units):
                flag = "true" if promo[i] else "false"
                paid = round(float(price[i]), 2)
                ws.writerow([day.isoformat(), market.sku[i], int(units[i]), paid, flag])
                rows += 1
            if d % 7 == 0:
                for i in idx:
                    wo.writerow(
                        [
                            market.sku[i],
                            "Rival",
                            round(float(comp[i]), 2),
                            f"{day.isoformat()}T09:00:00Z",
                        ]
                    )
    return {"skus": n, "sales_rows": rows, "days": days}


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


def score(market: Market, recommended: np.ndarray, floor: np.ndarray, ceiling: np.ndarray) -> dict:
    """Share of the oracle's attainable profit lift that the recommendations capture."""
    idx = np.arange(len(market.sku))
    best = oracle(market, floor, ceiling)
    now = market.profit(idx, market.price_today).sum()
    ours = market.profit(idx, recommended).sum()
    top = market.profit(idx, best).sum()
    violations = int(np.sum((recommended < floor - 1e-6) | (recommended > ceiling + 1e-6)))
    return {
        "profit_today": round(float(now), 2),
        "profit_recommended": round(float(ours), 2),
        "profit_oracle": round(float(top), 2),
        "captured": round(float((ours - now) / (top - now)), 4) if top > now else 1.0,
        "violations": violations,
    }
