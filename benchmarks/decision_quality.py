"""Decision quality through the real path: simulated market -> canonical CSVs -> import_csv's
service -> demand training -> reprice job -> export_recommendations' CSV, scored against an oracle
that knows the true demand curves (share of the attainable profit lift captured, and rule
violations), for several seeds and demand forms.

    .venv/bin/python benchmarks/decision_quality.py [--skus 200] [--days 365] [--seeds 0,1]
        [--reports orders,daily] [--no-competitor-moves]

A year of history by default: the demand model controls for yearly seasonality (the simulated
market has a yearly cycle), which a shorter history cannot tell from a trend. Two kinds of sales
file: "orders" (rows only for days with a sale, the price of other days unknown) and "daily"
(a daily report listing days without a sale as 0 units at the day's price). The competitor
re-prices now and then and the merchant follows half of each move (`--no-competitor-moves`:
competitor prices only jitter).
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


def run_once(
    forms: tuple[str, ...], seed: int, skus: int, days: int, daily: bool, moves: bool = True
) -> dict:
    from django.core.management import call_command

    from ml.simulator import make_market, score, write_csv
    from pricing_saas.catalog.importer import import_file
    from pricing_saas.pricing import services as pricing
    from tenants.context import tenant_context
    from tenants.services import create_tenant, delete_tenant

    market = make_market(skus, forms, seed)
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
        got = {
            row["sku"]: row["recommended_price"]
            for row in csv.DictReader(io.StringIO(exported.getvalue()))
        }
        recommended = np.array([float(got[s]) for s in market.sku])
        # The rules hold for the catalog the merchant imported: prices and costs in cents.
        p0, cost = np.round(market.price_today, 2), np.round(market.cost, 2)
        floor = np.maximum(cost * 1.1, p0 * 0.8)
        ceiling = np.maximum(p0 * 1.2, floor)
        return score(market, recommended, floor, ceiling)
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
    args = parser.parse_args()
    import django

    django.setup()
    cases = [("constant",), ("linear",), ("logit",), ("constant", "linear", "logit")]
    reports = args.reports.split(",")
    print(f"{args.skus} SKUs, {args.days} days of history\n")
    print("| demand forms | seed | " + " | ".join(
        f"captured share ({r}) | violations ({r})" for r in reports) + " |")  # fmt: skip
    print("| --- | --- |" + " --- | --- |" * len(reports))
    shares: dict[str, list[float]] = {r: [] for r in reports}
    for forms in cases:
        for seed in (int(s) for s in args.seeds.split(",")):
            cells = []
            for report in reports:
                result = run_once(forms, seed, args.skus, args.days, report == "daily",
                                  not args.no_competitor_moves)  # fmt: skip
                shares[report].append(result["captured"])
                cells += [f"{result['captured']:.3f}", str(result["violations"])]
            print(f"| {'+'.join(forms)} | {seed} | " + " | ".join(cells) + " |", flush=True)
    for report in reports:
        print(f"\nmean captured share ({report}): {np.mean(shares[report]):.3f}")


if __name__ == "__main__":
    main()
