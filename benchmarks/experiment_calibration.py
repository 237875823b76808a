"""A/B price tests, calibrated on simulated experiments with a known effect.

For true lifts of 0 %, 2 % and 5 % of profit, many experiments in a market with known demand
(negative-binomial units times margin, SKU heterogeneity, AR(1) daily shocks, a SKU-level drift
between the periods; `ml.science.experiments.simulate_experiment`): SKUs assigned by `assign`
(stratified by category, blocked on pre-period profit), read by `analyse` once at the planned end
and, separately, at equally spaced looks with the group-sequential stopping rule.

    .venv/bin/python benchmarks/experiment_calibration.py [--experiments 400] [--skus 200]
        [--null-experiments 2000] [--days-pre 28] [--days-test 35] [--looks 5]

Prints two markdown tables: the fixed-horizon read-out (coverage of the 95 % interval, bias,
variance ratio) and the stopping rule (error rate and power under repeated looks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtri

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.science.experiments import analyse, simulate_experiment

EFFECTS = (0.0, 2.0, 5.0)  # true lift of profit per SKU-day, %
DIFFERENT = ("treatment better", "control better")


def run(effect: float, runs: int, args, look_days: list[int]) -> dict:
    """`runs` experiments at this true lift: the final read-out and the sequential one."""
    final, sequential = [], []
    for seed in range(runs):
        test = simulate_experiment(
            args.skus, args.days_pre, args.days_test, effect, args.overdispersion, seed
        )
        end = analyse(
            test.post(), test.pre, test.treatment, args.days_test, args.days_test, test.strata
        )
        final.append(
            (
                end.lift_per_sku_day,
                end.se,
                test.true_effect,
                end.ci_low <= test.true_effect <= end.ci_high,
                end.variance_ratio,
                end.plain_lift,
                end.verdict in DIFFERENT,
                test.true_control_mean,
            )
        )
        stop_day, all_cover, naive = 0, True, False
        for k, days in enumerate(look_days):
            look = analyse(
                test.post(days),
                test.pre,
                test.treatment,
                days,
                args.days_test,
                test.strata,
                looks=look_days[:k],
            )
            all_cover &= look.ci_low <= test.true_effect <= look.ci_high
            naive |= look.p_value < 0.05
            if not stop_day and look.verdict in DIFFERENT:
                stop_day = days
        sequential.append((stop_day > 0, stop_day or args.days_test, all_cover, naive))
    f = np.array(final, dtype=float)
    s = np.array(sequential, dtype=float)
    error = f[:, 0] - f[:, 2]
    true = f[:, 2].mean()
    return {
        "effect": effect,
        "runs": runs,
        "true": true,
        "coverage": f[:, 3].mean(),
        "bias_pct": 100 * error.mean() / true if effect else None,
        "bias_pct_mc": 100 * error.std() / np.sqrt(runs) / true if effect else None,
        "bias_se": error.mean() / f[:, 1].mean(),
        "sd_over_se": f[:, 0].std() / f[:, 1].mean(),
        "ratio_estimated": f[:, 4].mean(),
        "ratio_empirical": f[:, 0].var() / f[:, 5].var(),
        "reject_final": f[:, 6].mean(),
        # The lift a test of this size finds 80 % of the time at the end, % of control's mean.
        "mde_pct": 100 * (ndtri(0.975) + ndtri(0.8)) * f[:, 1].mean() / f[:, 7].mean(),
        "reject_sequential": s[:, 0].mean(),
        "mean_days": s[:, 1].mean(),
        "rci_coverage": s[:, 2].mean(),
        "reject_naive": s[:, 3].mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=400, help="per effect")
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument(
        "--null-experiments", type=int, default=2000, help="at effect 0, for the error rates"
    )
    parser.add_argument("--days-pre", type=int, default=28)
    parser.add_argument("--days-test", type=int, default=35, help="the planned test length")
    parser.add_argument("--looks", type=int, default=5, help="equally spaced, the last at the end")
    parser.add_argument("--overdispersion", type=float, default=0.7)
    args = parser.parse_args()
    look_days = sorted({round(args.days_test * (k + 1) / args.looks) for k in range(args.looks)})
    look_days = [d for d in look_days if d > 0]
    started = time.perf_counter()
    null_runs = max(args.experiments, args.null_experiments)
    rows = [run(e, null_runs if e == 0 else args.experiments, args, look_days) for e in EFFECTS]
    elapsed = time.perf_counter() - started

    print(
        f"{args.skus} SKUs, {args.days_pre} pre-period days, {args.days_test} test days, "
        f"overdispersion {args.overdispersion}; looks at days {look_days}; {elapsed:.1f} s\n"
    )
    print("Read once at the planned end (the ordinary 95 % interval):\n")
    print(
        "| true lift | experiments | true effect (profit/SKU-day) | coverage of 95 % CI "
        "(goal 0.92-0.98) | bias, % of effect (± 2 Monte-Carlo s.e.) | bias, in s.e. "
        "| sd / mean s.e. | variance ratio, estimated | variance ratio, empirical | power "
        "| lift found 80 % of the time |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        bias = "—"
        if r["bias_pct"] is not None:
            bias = f"{r['bias_pct']:+.1f} % (± {2 * r['bias_pct_mc']:.1f} %)"
        print(
            f"| {r['effect']:.0f} % | {r['runs']} | {r['true']:.2f} | {r['coverage']:.3f} "
            f"| {bias} | {r['bias_se']:+.3f} | {r['sd_over_se']:.3f} "
            f"| {r['ratio_estimated']:.3f} | {r['ratio_empirical']:.3f} | {r['reject_final']:.3f} "
            f"| {r['mde_pct']:.1f} % |"
        )
    print(f"\nStopping rule, {len(look_days)} looks (O'Brien-Fleming-type alpha spending):\n")
    print(
        "| true lift | experiments | stopped with a difference (at 0 %: the false-positive "
        "rate, goal <= 0.05) | the same looks read at p < 0.05 each time | all repeated CIs "
        "cover | mean days run |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['effect']:.0f} % | {r['runs']} | {r['reject_sequential']:.3f} "
            f"| {r['reject_naive']:.3f} | {r['rci_coverage']:.3f} | {r['mean_days']:.1f} |"
        )
    null = rows[0]
    print(
        f"\nfalse-positive rate under {len(look_days)} looks at effect 0: "
        f"{null['reject_sequential']:.3f} (naive peeking: {null['reject_naive']:.3f})"
    )


if __name__ == "__main__":
    main()
