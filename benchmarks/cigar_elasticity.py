"""The demand model on real data: Baltagi's cigarette panel (46 US states, 1963-1992) with
states as SKUs and years as periods; real prices = nominal / cpi; `pimin` (the lowest price in
adjoining states) as the competitor price. Printed beside the published static fixed-effects
reference in ../shared/data/README.md (-1.10, s.e. 0.20; -1.02 with income and neighbour price).

    .venv/bin/python benchmarks/cigar_elasticity.py
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml.science.curve import ramp_slope  # noqa: E402
from ml.science.demand import Panel, fit_demand  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cigar_panel.csv"


def main() -> None:
    with open(DATA, newline="") as handle:
        rows = list(csv.DictReader(handle))
    states = {s: i for i, s in enumerate(sorted({r["state"] for r in rows}))}
    col = lambda name: np.array([float(r[name]) for r in rows])  # noqa: E731
    sku = np.array([states[r["state"]] for r in rows])
    year = col("year").astype(int)
    cpi = col("cpi")
    price, sales, neighbour = col("price") / cpi, col("sales"), col("pimin") / cpi
    print(f"{len(rows)} rows, {len(states)} states, years {year.min()}-{year.max()}")
    for label, competitor in (
        ("own price only", None),
        ("with the neighbour price as competitor", neighbour),
    ):
        fit = fit_demand(
            Panel(
                sku=sku,
                day=year,
                units=sales,
                price=price,
                competitor_price=competitor,
                time_effects=True,
            )
        )
        spread = np.percentile(fit.elasticity, [10, 50, 90])
        coef = dict(zip(fit.coef_names, fit.coef, strict=True))
        gap = coef.get("competitor_gap")
        if gap is not None:
            # log(p / pimin) moves with p: the own-price effect is the slope, the gap's
            # coefficient and the pooled extra slope above the neighbour where it is in force
            # (the ramp's slope, averaged over the state-years)
            above = coef.get("competitor_above", 0.0)
            share = float(np.mean(ramp_slope(np.log(price / neighbour), fit.ramp_sd)))
            total = fit.pooled_elasticity + gap + above * share
            print(
                f"  own-price elasticity with the neighbour price held fixed: {total:.3f} "
                f"(slope {fit.pooled_elasticity:.3f} + gap coefficient {gap:.3f} + "
                f"{above:.3f} above the neighbour x {share:.2f} of the state-years)"
            )
        print(
            f"{label}: pooled elasticity {fit.pooled_elasticity:.3f} "
            f"(model s.e. {fit.pooled_se:.3f}); per-state after shrinkage "
            f"p10/p50/p90 {spread.round(2).tolist()}"
        )
    print(
        "reference (state and year fixed effects, OLS on logs, clustered s.e.): -1.10 (0.20); "
        "-1.02 (0.22) with log real income and log real neighbour price"
    )


if __name__ == "__main__":
    main()
