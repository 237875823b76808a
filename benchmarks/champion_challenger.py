"""Champion and challenger: how often a retrained demand model replaces the one in force.

Simulated histories with a known demand curve per SKU (Poisson units at a price that moves
day to day, constant elasticity). Two cases, the same histories in both:

- tie: the model in force is as good as a refit (the true slopes plus estimation noise of the
  size a refit on this history has): promoting the refit is a coin toss that gains nothing;
- slightly worse: the model in force's slopes are 0.4 too flat: the refit is better, by little;
- better: the model in force misreads the price response (a slope of -1.0 where the truth is
  about -2.5): the refit should replace it.

Each history is judged twice by `ml.science.backtest.champion_challenger`: by the strict
comparison of mean deviance the gate used before (`deviance_challenger < deviance_champion`)
and by the paired bootstrap over SKUs it uses now (the improvement's 95 % interval above 0).

    .venv/bin/python benchmarks/champion_challenger.py [--runs 100] [--skus 40] [--days 150]

Prints one markdown table: the share of runs promoted by each rule, per case.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.science.backtest import champion_challenger
from ml.science.curve import DemandCurve
from ml.science.demand import Panel

TRUE_SLOPE = -2.5
HOLDOUT_DAYS = 28


def history(skus: int, days: int, seed: int) -> tuple[Panel, np.ndarray]:
    rng = np.random.default_rng(seed)
    slope = TRUE_SLOPE + rng.normal(0, 0.3, skus)
    sku = np.repeat(np.arange(skus), days)
    day = np.tile(738000 + np.arange(days), skus)
    price = 10 * np.exp(rng.normal(0, 0.15, skus * days))
    units = rng.poisson(4 * (price / 10) ** slope[sku])
    return Panel(sku=sku, day=day, units=units, price=price), slope


def champion(slope: np.ndarray) -> DemandCurve:
    n = len(slope)
    return DemandCurve.build(np.full(n, 10.0), np.full(n, 4.0), slope)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100, help="histories per case")
    parser.add_argument("--skus", type=int, default=40)
    parser.add_argument("--days", type=int, default=150)
    args = parser.parse_args()
    began = time.perf_counter()
    rows = []
    for case in ("tie", "slightly", "better"):
        strict = bootstrap = 0
        for seed in range(args.runs):
            panel, slope = history(args.skus, args.days, seed)
            noise = np.random.default_rng([seed, 1]).normal(0, 0.15, args.skus)
            held = champion(
                {"tie": slope + noise, "slightly": slope + 0.4}.get(case, np.full(args.skus, -1.0))
            )
            result = champion_challenger(panel, held, HOLDOUT_DAYS)
            strict += result.deviance_challenger < result.deviance_champion
            bootstrap += result.wins
        rows.append((case, strict / args.runs, bootstrap / args.runs))
    seconds = time.perf_counter() - began
    print(
        f"{args.runs} histories per case, {args.skus} SKUs x {args.days} days, the last "
        f"{HOLDOUT_DAYS} held out ({seconds:.0f} s)\n"
    )
    print("| case | promoted by strict < of mean deviance | promoted by the bootstrap's bound |")
    print("| --- | --- | --- |")
    labels = {
        "tie": "tie: the model in force as good as a refit (promoting gains nothing)",
        "slightly": "slightly worse: its slopes 0.4 too flat (the refit is a little better)",
        "better": "better: the model in force misreads price (the refit should win)",
    }
    for case, strict, bootstrap in rows:
        print(f"| {labels[case]} | {strict:.0%} | {bootstrap:.0%} |")


if __name__ == "__main__":
    main()
