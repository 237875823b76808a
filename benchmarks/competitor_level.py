"""How far today's competitor price is off the competitor's real price: the level of its readings
(ml.science.competitor.level) against its latest reading alone, on simulated feeds.

    .venv/bin/python benchmarks/competitor_level.py [--series 20000] [--readings 8] [--seed 0]

Each feed: a competitor's price today, its last `readings` readings (the latest first) jittered
3 % around it, and in a share of feeds a re-price somewhere in the run (the older readings at
the price it left). The tenant's jitter and re-prices are measured as the reprice measures them
(`noise_of_readings`: the jitter from consecutive changes' covariance, the re-prices' share
and size by EM on the changes' sizes). Printed per
setting: r.m.s. log error of the latest reading and of the level (all feeds and the re-priced
ones), and the level's stated s.d. (jitter / sqrt(weight)) as an r.m.s., which should match its
error. Then a tenant reading two sellers, one by a calm feed (0.5 % jitter) and one by a wild
scraper (6 %), half the feeds each, 30 % of them re-priced (s.d. 0.12): the level read with
the tenant's one noise against each seller's own (`Noise.for_seller`, as the reprice reads
them).
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
    print("\n| seller (jitter) | latest reading r.m.s. | level, the tenant's one noise | "
          "level, the seller's own noise |")  # fmt: skip
    print("| --- | --- | --- | --- |")
    half = args.series // 2
    sellers = (("calm", 0.005), ("wild", 0.06))
    parts = {name: feeds(rng, half, args.readings, 0.3, 0.12, jitter) for name, jitter in sellers}
    tenant = competitor.noise_of_readings(np.r_[parts["calm"][0], parts["wild"][0]])
    for name, jitter in sellers:
        r, level, _moved = parts[name]
        own = competitor.noise_of_readings(r)
        latest, one, each = (
            np.sqrt(np.mean(np.log(got / level) ** 2))
            for got in (r[:, 0], competitor.level(r, tenant)[0], competitor.level(r, own)[0])
        )
        print(f"| {name} ({jitter:.1%}) | {latest:.4f} | {one:.4f} | {each:.4f} |", flush=True)


if __name__ == "__main__":
    main()
