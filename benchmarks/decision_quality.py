"""Decision quality through the real path: simulated market -> canonical CSVs -> import_csv's
service -> demand training -> reprice job -> export_recommendations' CSV, scored against an oracle
that knows the true demand curves (share of the attainable profit lift captured, rule
violations, the share of SKUs whose recommendation earns less than today's price, and how often
the exported elasticity interval holds the true local elasticity at today's price), for several
seeds and demand forms.

    .venv/bin/python benchmarks/decision_quality.py [--skus 200] [--days 365] [--seeds 0,1]
        [--reports orders,daily] [--no-competitor-moves] [--traps]

A year of history by default: the demand model controls for yearly seasonality (the simulated
market has a yearly cycle), which a shorter history cannot tell from a trend. Two kinds of sales
file: "orders" (rows only for days with a sale, the price of other days unknown) and "daily"
(a daily report listing days without a sale as 0 units at the day's price). The competitor
re-prices now and then and the merchant follows half of each move (`--no-competitor-moves`:
competitor prices only jitter). `--traps` makes every market a trap market
(`ml.science.simulator.TRAPS`: overdispersed, serially correlated demand; promotions of
varying depth with a display lift; demand that collapses above the competitor's price for a
share of SKUs).

Per case: captured share, violations, losing share (SKUs whose true profit at the recommended
price is more than 0.5 % below today's; a true profit is a day to come's, averaged over the
competitor's daily jitter around today's price, `Market.profit`) and coverage (share of SKUs
with a finite exported elasticity interval, `elasticity_low`..`elasticity_high`, that holds the
true local elasticity at today's price, the competitor's price held at today's level with its
daily jitter averaged over, `Market.local_elasticity`; n: how many SKUs were counted).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import secrets
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")


def _number(text: str | None) -> float:
    """An exported cell as a number: NaN where empty (unknown)."""
    return float(text) if text not in ("", None) else float("nan")


TRAP_GROUPS = {  # --trap NAME switches on these keys of ml.science.simulator.TRAPS
    "overdispersion": ("overdispersion",),
    "shocks": ("shock_rho", "shock_sd"),
    "promotions": ("display_lift", "promo_depth"),
    "anchoring": ("anchored_share", "anchor_slope"),
}


def run_once(
    forms: tuple[str, ...],
    seed: int,
    skus: int,
    days: int,
    daily: bool,
    moves: bool = True,
    traps: bool = False,
    switches: dict | None = None,
) -> dict:
    from django.core.management import call_command

    from ml.science.simulator import make_market, score, write_csv
    from pricing_saas.catalog.importer import import_file
    from pricing_saas.pricing import services as pricing
    from tenants.context import tenant_context
    from tenants.services import create_tenant, delete_tenant

    market = make_market(skus, forms, seed, traps=traps, **(switches or {}))
    tenant = create_tenant(name="Decision quality", slug=f"dq-{secrets.token_hex(4)}")
    try:
        with tempfile.TemporaryDirectory() as tmp, tenant_context(tenant):
            write_csv(market, Path(tmp), days, seed, zero_days=daily, competitor_moves=moves)
            for kind in ("products", "sales", "competitor_prices"):
                import_file(kind=kind, path=Path(tmp) / f"{kind}.csv")
            job = pricing.start_reprice(enqueue=False)
            pricing.run_reprice(job_id=job.pk)
        exported = io.StringIO()  # the merchant's view: the export command's CSV
        call_command("export_recommendations", tenant.slug, stdout=exported)
        got = {row["sku"]: row for row in csv.DictReader(io.StringIO(exported.getvalue()))}
        recommended = np.array([float(got[s]["recommended_price"]) for s in market.sku])
        low = np.array([_number(got[s]["elasticity_low"]) for s in market.sku])
        high = np.array([_number(got[s]["elasticity_high"]) for s in market.sku])
        # The rules hold for the catalog the merchant imported: prices and costs in cents.
        p0, cost = np.round(market.price_today, 2), np.round(market.cost, 2)
        floor = np.maximum(cost * 1.1, p0 * 0.8)
        ceiling = np.maximum(p0 * 1.2, floor)
        result = score(market, recommended, floor, ceiling)
        truth = market.local_elasticity(np.arange(skus), p0)  # competitor at today's price
        counted = np.isfinite(low) & np.isfinite(high) & np.isfinite(truth)
        inside = (low <= truth) & (truth <= high)
        result["covered"] = int(np.sum(inside & counted))
        result["counted"] = int(np.sum(counted))
        result["coverage"] = result["covered"] / result["counted"] if counted.any() else np.nan
        return result
    finally:
        delete_tenant(tenant=tenant)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--reports", default="orders,daily")
    parser.add_argument(
        "--no-competitor-moves",
        action="store_true",
        help="competitor prices only jitter; the merchant never follows them",
    )
    parser.add_argument(
        "--traps",
        action="store_true",
        help="trap markets: overdispersed, autocorrelated demand, promotions with a display "
        "lift and varying depth, demand anchored to the competitor's price for some SKUs",
    )
    parser.add_argument(
        "--trap",
        action="append",
        default=[],
        choices=sorted(TRAP_GROUPS),
        help="switch on one trap (repeatable): " + ", ".join(sorted(TRAP_GROUPS)),
    )
    args = parser.parse_args()
    import django

    from ml.science.simulator import TRAPS

    switches = {key: TRAPS[key] for name in args.trap for key in TRAP_GROUPS[name]}

    django.setup()
    cases = [("constant",), ("linear",), ("logit",), ("constant", "linear", "logit")]
    reports = args.reports.split(",")
    traps = " (trap markets: ml.science.simulator.TRAPS)" if args.traps else ""
    traps += f" (traps: {', '.join(args.trap)})" if args.trap else ""
    print(f"{args.skus} SKUs, {args.days} days of history{traps}\n")
    print(
        "| demand forms | seed | "
        + " | ".join(
            f"captured share ({r}) | violations ({r}) | losing share ({r}) | coverage ({r}, n)"
            for r in reports
        )
        + " |"
    )
    print("| --- | --- |" + " --- | --- | --- | --- |" * len(reports))
    shares: dict[str, list[float]] = {r: [] for r in reports}
    losing: dict[str, list[float]] = {r: [] for r in reports}
    coverage: dict[str, list[float]] = {r: [] for r in reports}
    for forms in cases:
        for seed in (int(s) for s in args.seeds.split(",")):
            cells = []
            for report in reports:
                result = run_once(
                    forms,
                    seed,
                    args.skus,
                    args.days,
                    report == "daily",
                    not args.no_competitor_moves,
                    args.traps,
                    switches,
                )
                shares[report].append(result["captured"])
                losing[report].append(result["losing_share"])
                coverage[report].append(result["coverage"])
                cells += [
                    f"{result['captured']:.3f}",
                    str(result["violations"]),
                    f"{result['losing_share']:.3f}",
                    f"{result['coverage']:.3f} ({result['counted']})",
                ]
            print(f"| {'+'.join(forms)} | {seed} | " + " | ".join(cells) + " |", flush=True)
    for report in reports:
        print(f"\nmean captured share ({report}): {np.mean(shares[report]):.3f}")
        print(f"mean losing share ({report}): {np.mean(losing[report]):.3f}")
        print(f"mean coverage ({report}): {np.nanmean(coverage[report]):.3f}")


if __name__ == "__main__":
    main()
