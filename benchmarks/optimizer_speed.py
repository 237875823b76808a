"""Optimiser speed: 1,000,000 SKUs and their candidate grid, vectorised, beside a plain per-SKU
Python loop measured in the same run (on a sample, then scaled: the loop would take minutes).

    .venv/bin/python benchmarks/optimizer_speed.py [--skus 1000000] [--loop-sample 20000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataclasses import replace

from ml.science.optimizer import Rules, optimise


def loop_optimise(price, cost, units, elasticity, sd, comp, rules: Rules) -> list[float]:
    """The straightforward version of the same rules: one SKU at a time, plain Python. The
    search is robust (a raise judged with the elasticity gain_z s.e. more elastic, a cut with it
    that much less), the move shrinks by how sure the sign is, prices are whole cents, and a
    change must beat today's price by the minimum gain, also with the elasticity test_z s.e.
    toward the unfavourable side (the one uncertain part of a constant-elasticity curve); where
    it does not, the largest part of the move that does (in shrink_steps)."""
    out = []
    k, z = rules.candidates, rules.gain_z
    zt = z if rules.test_z is None else rules.test_z
    for p0, c, q0, e, s, cp in zip(price, cost, units, elasticity, sd, comp, strict=True):
        floor = c * (1 + rules.min_margin) if c > 0 else None
        lo, hi = p0 * (1 - rules.max_step), p0 * (1 + rules.max_step)
        cap = cp * (1 + rules.max_above_competitor)
        hi = max(min(hi, cap), lo)
        if floor is not None:
            lo, hi = max(lo, floor), max(hi, floor)

        def value(p, slope, c=c, q0=q0, p0=p0):
            return (p - c) * q0 * (p / p0) ** slope

        best, best_value = p0, -math.inf
        for j in range(k):
            candidate = lo + (hi - lo) * j / (k - 1)
            v = value(candidate, e - z * s if candidate > p0 else e + z * s)
            if v > best_value:
                best, best_value = candidate, v
        # how sure the estimate is that demand falls with price: 2 Phi(|e| / s) - 1
        weight = math.erf(abs(e) / (s * math.sqrt(2))) if s > 0 else 1.0
        best = min(max(p0 + weight * (best - p0), lo), hi)
        # prices are money: whole cents, still inside the bounds
        low, high = math.ceil(lo * 100 - 1e-6) / 100, math.floor(hi * 100 + 1e-6) / 100
        best = min(max(round(best, 2), low), high) if low <= high else low
        base = p0 if lo - 1e-9 <= p0 <= hi + 1e-9 else min(max(round(p0, 2), low), high)
        if abs(best - base) >= 0.005:
            need = max(rules.min_gain_abs, rules.min_gain_rel * abs(value(base, e)))
            worst = e - zt * s if best > base else e + zt * s
            pays = value(best, e) - value(base, e) >= need
            if not (pays and value(best, worst) - value(base, worst) >= 0):
                # the largest part of the move that passes both (where the whole move pays)
                whole, best = best, base
                for j in range(1, rules.shrink_steps if pays and rules.shrink_to_pass else 0):
                    part = round(base + (1 - j / rules.shrink_steps) * (whole - base), 2)
                    if abs(part - base) < 0.005:
                        continue
                    gain = value(part, e) - value(base, e)
                    if gain >= need and value(part, worst) - value(base, worst) >= 0:
                        best = part
                        break
        out.append(best)
    return out


def best_of(runs: int, fn):
    fn()  # warm-up: first-touch page faults are not the optimiser's
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=1_000_000)
    parser.add_argument("--loop-sample", type=int, default=20_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.skus
    price = rng.uniform(1, 500, n)
    cost = price * rng.uniform(0.3, 0.9, n)
    units = rng.gamma(2.0, 5.0, n)
    elasticity = -rng.uniform(0.3, 4.0, n)
    sd = np.abs(elasticity) * rng.uniform(0.0, 0.6, n)
    comp = price * rng.uniform(0.8, 1.3, n)
    common = {"max_step": 0.2, "min_margin": 0.1, "candidates": 41, "competitor_price": comp,
              "max_above_competitor": 0.05}  # fmt: skip
    # the loop's decision: each SKU on its own (the per-SKU test, searched at 1 s.e.)
    rules = Rules(**common, loss_budget=None, gain_z=1.0)
    grid_rules = replace(rules, method="grid")
    vector_s, rec = best_of(3, lambda: optimise(price, cost, units, elasticity, sd, rules))
    grid_s, grid = best_of(3, lambda: optimise(price, cost, units, elasticity, sd, grid_rules))
    # the product's default: the risk budget over all the SKUs (no per-SKU loop can do it)
    budget_s, budget = best_of(
        3, lambda: optimise(price, cost, units, elasticity, sd, Rules(**common))
    )
    m = args.loop_sample
    started = time.perf_counter()
    columns = [a[:m].tolist() for a in (price, cost, units, elasticity, sd, comp)]
    looped = loop_optimise(*columns, rules)
    loop_s = (time.perf_counter() - started) * n / m
    agree = np.mean(np.abs(np.array(looped) - grid.price[:m]) < 1e-6 * price[:m])
    profit = lambda p: (p - cost) * units * (p / price) ** elasticity  # noqa: E731
    gain = profit(rec.price).sum() / profit(grid.price).sum() - 1
    k = rules.candidates
    print(f"per-SKU Python loop ({k} candidates), {m:,} SKUs, scaled to {n:,}: {loop_s:.1f} s")
    print(
        f"vectorised grid ({k} candidates), {n:,} SKUs: {grid_s:.2f} s "
        f"-> {loop_s / grid_s:.0f}x; same price as the loop on {agree:.1%}"
    )
    print(
        f"vectorised analytic optimum (per-SKU test), {n:,} SKUs: {vector_s:.2f} s -> "
        f"{loop_s / vector_s:.0f}x; profit {gain:+.3%} vs the grid"
    )
    moved = np.mean(np.abs(budget.price - price) >= 0.005)
    print(
        f"vectorised analytic optimum with the risk budget (default), {n:,} SKUs: "
        f"{budget_s:.2f} s ({budget_s / vector_s:.2f}x the per-SKU test); {moved:.1%} moved"
    )
    # A catalog where 40 % of SKUs collapse above the competitor (an extra slope of 3-12, as
    # estimated with an s.e.), the competitor's price read with 3 % doubt: the moves near a
    # kink are judged over where that price really is (`_over_the_kink`), timed beside the
    # same catalog with the price exact (where that part is skipped).
    hinge = np.where(rng.random(n) < 0.4, -rng.uniform(3, 12, n), 0.0)
    near = price * rng.uniform(0.9, 1.1, n)  # competitors near the price
    kinked = {"competitor_slope": hinge, "competitor_slope_se": np.abs(hinge) * 0.2 + 0.5}
    timed = {}
    for doubt in (0.0, 0.03):
        rules_k = Rules(**{**common, "competitor_price": near}, competitor_sd=doubt)
        timed[doubt] = best_of(
            3, lambda r=rules_k: optimise(price, cost, units, elasticity, sd, r, **kinked)
        )
    (exact_s, exact), (doubt_s, doubted) = timed[0.0], timed[0.03]
    changed = np.mean(np.abs(doubted.price - exact.price) >= 0.005)
    print(
        f"the same with hinges above a competitor near the price (40 % of SKUs), {n:,} SKUs: "
        f"its price exact {exact_s:.2f} s; read with 3 % doubt {doubt_s:.2f} s "
        f"({doubt_s / exact_s:.2f}x); {changed:.1%} of prices differ"
    )


if __name__ == "__main__":
    main()
