"""How far today's competitor price is off the competitor's real price: the level of its readings
(ml.science.competitor.level) against its latest reading alone, on simulated feeds.

    .venv/bin/python benchmarks/competitor_level.py [--series 20000] [--readings 8] [--seed 0]
        [--tenants 60]

Each feed: a competitor's price today, its last `readings` readings (the latest first) jittered
3 % around it, and in a share of feeds a re-price somewhere in the run (the older readings at
the price it left). The tenant's jitter and re-prices are measured as the reprice measures them
(`noise_of_readings`: the jitter from consecutive changes' covariance, the re-prices' share
and size by EM on the changes' sizes). Printed per
setting: r.m.s. log error of the latest reading and of the level (all feeds and the re-priced
ones), and the level's stated s.d. (jitter / sqrt(weight)) as an r.m.s., which should match its
error. Then tenants reading several sellers, 30 % of each one's feeds re-priced (s.d. 0.12):
one by a calm feed (0.5 % jitter) and one by a wild scraper (6 %), half the feeds each; ten
alike (2 %), 150 feeds each. The level read with the tenant's one noise, with each seller's
own always, and as the reprice reads them (each seller's own only where it differs clearly
from the tenant's, `ml.science.competitor.own_noise_differs`). Last, `--tenants` tenants whose
sellers all behave alike (re-pricing on 0-50 % of steps): none should be read with its own
noise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.science import competitor

SETTINGS = [  # (share of feeds re-priced in the run, the re-price's s.d.)
    (0.0, 0.0),
    (0.3, 0.05),
    (0.3, 0.12),
    (0.3, 0.3),
    (1.0, 0.12),
]
JITTER = 0.03


def feeds(rng, series, readings, share, size, jitter=JITTER):
    level = np.exp(rng.normal(3.0, 0.4, series))
    r = level[:, None] * np.exp(rng.normal(0, jitter, (series, readings)))
    moved = rng.random(series) < share
    at = rng.integers(1, readings, series)
    jump = np.exp(rng.normal(0, size, series))
    older = np.arange(readings)[None, :] >= at[:, None]
    r = np.where(moved[:, None] & older, r * jump[:, None], r)
    return r, level, moved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=20000)
    parser.add_argument("--readings", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tenants", type=int, default=60, help="tenants of sellers alike")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.series} feeds of {args.readings} readings, jitter {JITTER:.0%}\n")
    print(
        "| re-priced feeds | re-price s.d. | latest reading r.m.s. | level r.m.s. | "
        "level r.m.s., re-priced feeds | level's stated s.d. (r.m.s.) | mean weight |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for share, size in SETTINGS:
        r, level, moved = feeds(rng, args.series, args.readings, share, size)
        noise = competitor.noise_of_readings(r)
        got, weight = competitor.level(r, noise)
        err = np.log(got / level)
        latest = np.sqrt(np.mean(np.log(r[:, 0] / level) ** 2))
        rms = lambda e: f"{np.sqrt(np.mean(e**2)):.4f}" if len(e) else "-"  # noqa: E731
        stated = np.sqrt(np.mean(noise.jitter**2 / weight))
        print(
            f"| {share:.0%} | {size:.2f} | {latest:.4f} | {rms(err)} | {rms(err[moved])} | "
            f"{stated:.4f} | {weight.mean():.2f} |",
            flush=True,
        )
    print(
        "\n| sellers (jitter; changes each) | latest reading r.m.s. | level, the tenant's one "
        "noise | level, each seller's own always | level, as the reprice reads them (own "
        "where it differs clearly) | sellers read with their own |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    half = args.series // 2
    cases = {  # name: [(seller, jitter, feeds)]
        "calm and wild": [("calm", 0.005, half), ("wild", 0.06, half)],
        "ten alike": [(f"s{i}", 0.02, 150) for i in range(10)],
    }
    for case, sellers in cases.items():
        parts = {
            name: feeds(rng, count, args.readings, 0.3, 0.12, jitter)
            for name, jitter, count in sellers
        }
        tenant = competitor.noise_of_readings(np.concatenate([p[0] for p in parts.values()]))
        errors = {"latest": [], "one": [], "own": [], "chosen": []}
        parts_of = {
            name: competitor.changes_of_readings(r[:, ::-1])[:2]  # in time order
            for name, (r, _level, _moved) in parts.items()
        }
        picked = dict(competitor.sellers_noise(tenant, parts_of))
        chosen = len(picked)
        for name, (r, level, _moved) in parts.items():
            own = competitor.noise_of_readings(r)
            use = picked.get(name, tenant)
            for key, got in (("latest", r[:, 0]), ("one", competitor.level(r, tenant)[0]),
                             ("own", competitor.level(r, own)[0]),
                             ("chosen", competitor.level(r, use)[0])):  # fmt: skip
                errors[key].append(np.log(got / level))
        rms = {k: np.sqrt(np.mean(np.concatenate(v) ** 2)) for k, v in errors.items()}
        jitters = sorted({f"{jitter:.1%}" for _name, jitter, _count in sellers})
        each = (args.readings - 1) * sellers[0][2]
        print(
            f"| {case} ({', '.join(jitters)}; {each:,}) | {rms['latest']:.4f} | {rms['one']:.4f} | "
            f"{rms['own']:.4f} | {rms['chosen']:.4f} | {chosen} of {len(sellers)} |",
            flush=True,
        )
    alike(rng, args.tenants, args.readings)


def stepping(rng, series, readings, share, jitter, size=0.04):
    """Feeds whose seller re-prices on each step with chance `share` (by s.d. `size`), read
    with `jitter`: the readings the latest first, and the price today."""
    moves = np.where(
        rng.random((series, readings)) < share, rng.normal(0, size, (series, readings)), 0
    )
    path = np.exp(rng.normal(3.0, 0.4, (series, 1)) + np.cumsum(moves, axis=1))
    r = path * np.exp(rng.normal(0, jitter, (series, readings)))
    return r[:, ::-1], path[:, -1], None


def alike(rng, tenants: int, readings: int) -> None:
    """Tenants whose sellers all behave alike (each tenant its own jitter, 1-4 %, and its
    sellers' chance of a re-price per step, 0-50 %; 3-11 sellers of 1,000-1,500 changes): how
    many sellers the reprice reads with their own noise (none should be), and the levels'
    error."""
    picked = total = 0
    errors = {"one": [], "chosen": []}
    for _ in range(tenants):
        jitter, share = rng.uniform(0.01, 0.04), rng.uniform(0.0, 0.5)
        sellers = {}
        for i in range(int(rng.integers(3, 12))):
            count = int(rng.integers(1000, 1500) // (readings - 1))
            sellers[f"s{i}"] = stepping(rng, count, readings, share, jitter)
        tenant = competitor.noise_of_readings(np.concatenate([r for r, _l, _m in sellers.values()]))
        parts = {
            name: competitor.changes_of_readings(r[:, ::-1])[:2]  # in time order
            for name, (r, _l, _m) in sellers.items()
        }
        own = dict(competitor.sellers_noise(tenant, parts))
        total, picked = total + len(sellers), picked + len(own)
        for name, (r, level, _moved) in sellers.items():
            errors["one"].append(np.log(competitor.level(r, tenant)[0] / level))
            used = own.get(name, tenant)
            errors["chosen"].append(np.log(competitor.level(r, used)[0] / level))
    rms = {k: np.sqrt(np.mean(np.concatenate(v) ** 2)) for k, v in errors.items()}
    print(
        "\n| tenants of sellers alike | sellers | read with their own | level r.m.s., the "
        "tenant's one noise | level r.m.s., as the reprice reads them |"
    )
    print("| --- | --- | --- | --- | --- |")
    print(f"| {tenants} | {total} | {picked} | {rms['one']:.4f} | {rms['chosen']:.4f} |")


if __name__ == "__main__":
    main()
