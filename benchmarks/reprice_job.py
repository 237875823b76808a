"""The whole reprice job of a 100,000-SKU tenant, from the database to stored recommendations.

    .venv/bin/python benchmarks/reprice_job.py [--skus 100000] [--days 30]
        [--competitors 1] [--readings 1] [--stale-statistics]

Generates a tenant (products with costs; daily sales from known constant-elasticity curves;
per SKU `--competitors` sellers, each read on the last `--readings` days, the readings
jittering 3 % around the seller's price and a third of the sellers re-pricing once among
them: what today's competitor level is read from), imports it through the import service,
then times `manage.py reprice --sync` twice: the first run trains the demand model first (none
is in force), the second reuses it. With `--stale-statistics` the imports leave the planner's
statistics as they were (what refreshing them after a large import saves).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")


def run(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started, proc.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--competitors", type=int, default=1, help="sellers per SKU")
    parser.add_argument("--readings", type=int, default=1, help="daily readings per seller")
    parser.add_argument("--keep", action="store_true", help="keep the tenant (for profiling)")
    parser.add_argument(
        "--stale-statistics",
        action="store_true",
        help="imports leave the planner's statistics as they were (IMPORT_REFRESH_STATISTICS=0): "
        "the first training then plans on what the tables held before",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, days = args.skus, args.days
    price0 = rng.uniform(2, 200, n).round(2)
    cost = (price0 * rng.uniform(0.4, 0.8, n)).round(2)
    elasticity = -rng.uniform(0.5, 3.5, n)
    rate = rng.gamma(1.5, 1.5, n)
    py = sys.executable
    slug = f"bench-reprice-{os.getpid()}"
    run([py, "manage.py", "create_tenant", slug, "--name", "Reprice benchmark"])
    with tempfile.TemporaryDirectory() as tmp:
        products, sales, offers = (Path(tmp) / f for f in ("p.csv", "s.csv", "o.csv"))
        with open(products, "w", newline="") as out:
            w = csv.writer(out)
            w.writerow(["sku", "title", "category", "cost", "price"])
            for i in range(n):
                w.writerow([f"S{i:06d}", f"Item {i}", f"c{i % 50}", cost[i], price0[i]])
        rows = 0
        with open(sales, "w", newline="") as out:
            w = csv.writer(out)
            w.writerow(["date", "sku", "units", "price"])
            for d in range(days):
                day = (date(2024, 3, 1) + timedelta(days=d)).isoformat()
                p = price0 * np.exp(rng.normal(0, 0.08, n))
                units = rng.poisson(rate * (p / price0) ** elasticity)
                for i in np.flatnonzero(units):
                    w.writerow([day, f"S{i:06d}", int(units[i]), round(float(p[i]), 2)])
                    rows += 1
        offer_rows = 0
        with open(offers, "w", newline="") as out:
            w = csv.writer(out)
            w.writerow(["sku", "competitor", "price", "observed_at"])
            k = max(args.readings, 1)
            stamps = [
                (date.today() - timedelta(days=d)).isoformat() + "T08:00:00Z" for d in range(k)
            ]
            for c in range(max(args.competitors, 1)):
                level = price0 * rng.uniform(0.85, 1.2, n)
                before = level * np.exp(rng.normal(0, 0.1, n))  # the price before a re-price
                moved = np.where(rng.random(n) < 1 / 3, rng.integers(1, k + 1, n), k)
                jitter = np.exp(rng.normal(0, 0.03 if k > 1 else 0.0, (k, n)))
                for d in range(k):  # d days ago
                    p = np.where(d >= moved, before, level) * jitter[d]
                    for i in range(n):
                        w.writerow([f"S{i:06d}", f"Rival {c}", round(float(p[i]), 2), stamps[d]])
                    offer_rows += n
        for kind, path in (("products", products), ("sales", sales), ("competitor_prices", offers)):
            seconds, out = run(
                [py, "manage.py", "import_csv", slug, kind, str(path)],
                {"IMPORT_REFRESH_STATISTICS": "0"} if args.stale_statistics else None,
            )
            print(f"import {kind}: {seconds:.1f}s ({out})")
    print(f"{n:,} SKUs, {rows:,} sales rows over {days} days, {offer_rows:,} competitor readings")
    first, out1 = run([py, "manage.py", "reprice", slug, "--sync"])
    print(f"reprice job incl. training the demand model: {first:.1f}s -> {out1}")
    second, out2 = run([py, "manage.py", "reprice", slug, "--sync"])
    print(f"reprice job with the demand model in force:   {second:.1f}s -> {out2}")
    if args.keep:
        print(f"kept tenant {slug}")
        return
    import django

    django.setup()
    from tenants.models import Tenant
    from tenants.services import delete_tenant

    delete_tenant(tenant=Tenant.objects.get(slug=slug))


if __name__ == "__main__":
    main()
