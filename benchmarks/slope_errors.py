"""How far the demand fit's slope at today's price is from the truth, and how often its stated
95 % interval holds it, per demand form and per third of the true slopes (steepest, middle,
flattest): the science alone, in seconds per market, without the import, the database or the
reprice of benchmarks/decision_decomposition.py (whose interval coverage is the same reading
through the whole product).

    .venv/bin/python benchmarks/slope_errors.py [--skus 200] [--days 365] [--seeds 0,1]
        [--traps] [--trap NAME=VALUE ...] [--forms constant,linear,logit] [--price-every 1]
        [--volume 1]

Each market's days are `ml.science.simulator.simulate`'s, read as a daily report lists them:
every day of every product, its units at the price paid with its promotion flag (the canonical
sales file has no shelf price), and the competitor's price of that day exactly, its jitter
(`competitor_sd`) known. The product reads weekly readings carried over the days between, and
today's competitor price as the median of the last week's readings (the fit here: the median of
the last week's days). `fit_demand` reads them with today's price (the slope is stated where
the decision is made); the stated slope and its s.e. are the curve's at today's price against
the competitor's price level today, as the simulator knows it
(`DemandCurve.local_elasticity`: the elasticity there, and the share
of a hinge the fit reads above the competitor that is in force at today's position), against
`Market.local_elasticity` there. Products whose true demand collapses above the competitor are
left out (decision_decomposition.py scores them through the whole product). The thirds are cut
per market, then pooled over the seeds.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from decision_decomposition import parse_traps, positive  # noqa: E402

from ml.science.curve import DemandCurve  # noqa: E402
from ml.science.demand import Panel, fit_demand  # noqa: E402
from ml.science.simulator import FORMS, make_market, simulate  # noqa: E402

END = date(2026, 12, 6)  # the seasons follow the calendar: every run reads the same days
THIRDS = ("steepest", "middle", "flattest")


def market_panel(market, days: int, seed: int) -> Panel:
    """The market's days as a daily report lists them (see the module's docstring)."""
    rows = list(simulate(market, days, seed, end=END))
    n = len(market.sku)
    join = lambda name: np.concatenate([getattr(r, name) for r in rows])  # noqa: E731
    return Panel(
        sku=np.tile(np.arange(n), len(rows)),
        day=np.repeat([r.day.toordinal() for r in rows], n),
        units=join("units").astype(float),
        price=np.round(join("price"), 2),
        promo=join("promo").astype(float),
        competitor_price=np.round(join("competitor"), 2),
        category=np.array([int(c.removeprefix("cat")) for c in market.category]),
        current_price=np.round(market.price_today, 2),
        competitor_sd=float(market.competitor_jitter),
    )


def errors(market, fit) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per third of the true slopes at today's price (products without a collapse): each
    product's error (stated minus true) and stated s.e."""
    today = np.round(market.price_today, 2)
    curve = DemandCurve.from_estimates(
        today,
        np.exp(fit.intercept),
        fit.elasticity,
        fit.typical_price,
        fit.curvature,
        elasticity_se=fit.elasticity_se,
        curvature_se=fit.curvature_se,
        competitor_price=np.round(market.competitor_today, 2),
        competitor_slope=fit.competitor_above,
        competitor_slope_se=fit.competitor_above_se,
        ramp_sd=fit.ramp_sd,
        hinge_spread=fit.hinge_prior if fit.hinge_prior is not None else False,
        slope_hinge_corr=fit.slope_hinge_corr,
    )
    stated, stated_se = curve.local_elasticity()
    true = market.local_elasticity(np.arange(len(market.sku)), today)
    free = np.ones(len(true), bool) if market.anchor_slope is None else market.anchor_slope == 0
    free &= np.isfinite(true)
    out = {name: (np.zeros(0), np.zeros(0)) for name in THIRDS}
    if free.sum() < len(THIRDS):
        return out
    low, high = np.quantile(true[free], [1 / 3, 2 / 3])
    for name, pick in zip(THIRDS, (true <= low, (true > low) & (true <= high), true > high),
                          strict=True):  # fmt: skip
        sel = free & pick & np.isfinite(stated) & np.isfinite(stated_se) & (stated_se > 0)
        out[name] = (stated[sel] - true[sel], stated_se[sel])
    return out


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise SystemExit(f"--seeds {text!r}: whole numbers separated by commas") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds {text!r}: each at least 0, none twice")
    return seeds


def _at_least_one_day(text: str) -> float:
    value = positive(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: own prices change at most every day (1)")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--forms", default=",".join(FORMS))
    parser.add_argument("--traps", action="store_true")
    parser.add_argument("--trap", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--price-every", type=_at_least_one_day, default=1.0)
    parser.add_argument("--volume", type=positive, default=1.0)
    args = parser.parse_args()
    if args.skus < 6 or args.days < 60:
        raise SystemExit("--skus must be at least 6 and --days at least 60")
    forms = [f for f in args.forms.split(",") if f]
    unknown = sorted(set(forms) - set(FORMS))
    if unknown or not forms or len(set(forms)) != len(forms):
        raise SystemExit(f"--forms {args.forms!r}: one or more of {', '.join(FORMS)}, none twice")
    switches = parse_traps(args.trap)
    seeds = _seeds(args.seeds)
    print(
        f"{args.skus} SKUs, {args.days} days, seeds {args.seeds}, "
        f"{'every trap' if args.traps else 'traps as named'}"
        + "".join(f", {k} {v}" for k, v in switches.items())
        + "; daily report, the competitor's price of each day\n"
    )
    print("| form | third of true slopes | SKUs | mean error | median z | covered | median s.e. |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for form in forms:
        pooled: dict[str, list] = {name: [] for name in THIRDS}
        for seed in seeds:
            market = make_market(
                args.skus,
                (form,),
                seed,
                traps=args.traps,
                price_every=args.price_every,
                volume=args.volume,
                **switches,
            )
            fit = fit_demand(market_panel(market, args.days, seed))
            for name, got in errors(market, fit).items():
                pooled[name].append(got)
        for name in (*THIRDS, "all"):
            parts = [p for k in (THIRDS if name == "all" else (name,)) for p in pooled[k]]
            err = np.concatenate([e for e, _ in parts])
            se = np.concatenate([s for _, s in parts])
            if not len(err):
                print(f"| {form} | {name} | 0 | | | | |")
                continue
            print(
                f"| {form} | {name} | {len(err)} | {np.mean(err):+.2f} | "
                f"{np.median(err / se):+.2f} | {np.mean(np.abs(err) <= 1.96 * se):.2f} | "
                f"{np.median(se):.2f} |"
            )


if __name__ == "__main__":
    main()
