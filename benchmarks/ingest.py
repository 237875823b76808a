"""Ingest benchmark: `import_csv` of N generated sales rows (or competitor readings) beside a raw
`psql \\copy` of the same file into a bare table with the same columns, in one run, on the same
database.

    .venv/bin/python benchmarks/ingest.py [--rows 1000000] [--skus 10000] [--kind competitor_prices]

Prints wall time of each, the ratio, and the peak memory (max RSS) of the import process. The
competitor kind also imports a day's feed of 1,000 readings onto them, then respells one stored
reading in 100 in lower case (as readings stored before an import read spellings as one may
be) and times `merge_competitor_spellings` on the tenant.
Uses DATABASE_URL when set, else the embedded Postgres (like the app). The bare table is an
ordinary (logged) table in `public`, created, filled and dropped by the role that owns the schema
(settings.DATABASE_OWNER: the application role may not create tables); a TEMP table would skip
the write-ahead log and flatter the raw side. Without an owner role the application role does it.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")


def generate_products(folder: Path, skus: int, rng: random.Random) -> Path:
    products = folder / "products.csv"
    with open(products, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sku", "title", "category", "brand", "cost", "price", "currency"])
        for i in range(skus):
            price = round(rng.uniform(2, 200), 2)
            writer.writerow(
                [
                    f"SKU{i:06d}",
                    f"Product {i}",
                    f"cat{i % 40}",
                    f"brand{i % 90}",
                    round(price * 0.6, 2),
                    price,
                    "USD",
                ]
            )
    return products


def generate_sales(folder: Path, rows: int, skus: int, rng: random.Random) -> Path:
    sales = folder / "sales.csv"
    days = -(-rows // skus)
    start = date(2023, 1, 1)
    with open(sales, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["date", "sku", "units", "price", "revenue", "promo"])
        written = 0
        for d in range(days):
            day = (start + timedelta(days=d)).isoformat()
            for i in range(skus):
                if written == rows:
                    break
                units = rng.randint(0, 20)
                price = round(1 + (i % 200) + rng.random(), 2)
                writer.writerow(
                    [
                        day,
                        f"SKU{i:06d}",
                        units,
                        price,
                        round(units * price, 2),
                        "true" if rng.random() < 0.05 else "false",
                    ]
                )
                written += 1
    return sales


# Competitor readings: two sellers a product a day, one in a hundred spelt otherwise (case,
# spacing: one seller to the importer, importer.upsert.one_spelling)
SELLERS = (("Rival", "rival"), ("Other Shop", "other  shop"))


def generate_readings(folder: Path, rows: int, skus: int, start=date(2023, 1, 1)) -> Path:
    rng = random.Random(1)
    folder.mkdir(exist_ok=True)
    readings = folder / "competitor_prices.csv"
    with open(readings, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sku", "competitor", "price", "observed_at"])
        written, d = 0, 0
        while written < rows:
            at = f"{(start + timedelta(days=d)).isoformat()}T09:00:00Z"
            for i in range(skus):
                for usual, other in SELLERS:
                    if written == rows:
                        break
                    name = other if rng.random() < 0.01 else usual
                    price = round(1 + (i % 200) + rng.random(), 2)
                    writer.writerow([f"SKU{i:06d}", name, price, at])
                    written += 1
            d += 1
    return readings


def merge_respelt(slug: str, psql_env: dict) -> tuple[float, str]:
    """Spell one stored reading in 100 in lower case and store one in 1,000 again in upper case
    at the same moment (as readings stored before an import read spellings as one may be),
    then time `merge_competitor_spellings` on the tenant."""
    from pricing_saas.catalog.models import CompetitorOffer
    from tenants.models import Tenant

    t, table = Tenant.objects.get(slug=slug).pk, CompetitorOffer._meta.db_table
    run_child(
        ["psql", "-v", "ON_ERROR_STOP=1", "-qc",
         f"SELECT set_config('app.tenant_id', '{t}', false); "
         f"INSERT INTO {table} (tenant_id, product_id, competitor, price, in_stock, url, "
         f"observed_at) SELECT tenant_id, product_id, upper(competitor), price, in_stock, url, "
         f"observed_at FROM {table} WHERE tenant_id = {t} AND id % 1000 = 1; "
         f"UPDATE {table} SET competitor = lower(competitor) "
         f"WHERE tenant_id = {t} AND id % 100 = 0"],
        psql_env,
    )  # fmt: skip
    took, out = run_child([sys.executable, "manage.py", "merge_competitor_spellings", slug])
    if " moved 0 readings" in out or " 0 duplicates" in out:
        raise SystemExit(f"the merge had nothing to do: {out}")
    return took, out


def run_child(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout.strip()


def max_rss_mb_of(cmd: list[str]) -> tuple[float, float, str]:
    """Run cmd in a fresh child and return (seconds, peak RSS of that child in MB, stdout)."""
    wrapper = (
        "import resource, subprocess, sys, json, time;"
        "t=time.perf_counter();p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "e=time.perf_counter()-t;"
        "print(json.dumps([e, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,"
        " p.returncode, p.stdout[-500:], p.stderr[-2000:]]))"
    )
    import json

    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], cwd=ROOT, capture_output=True, text=True
    )
    elapsed, rss, code, stdout, stderr = json.loads(out.stdout)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stdout}\n{stderr}")
    return elapsed, rss, stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--kind", choices=("sales", "competitor_prices"), default="sales")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    s = connection.settings_dict
    raw_role = settings.DATABASE_OWNER or {"USER": s["USER"], "PASSWORD": s["PASSWORD"]}
    psql_env = {
        **os.environ,
        "PGHOST": s["HOST"] or "localhost",
        "PGPORT": str(s["PORT"] or 5432),
        "PGUSER": raw_role["USER"],
        "PGDATABASE": s["NAME"],
        "PGPASSWORD": raw_role.get("PASSWORD") or "",
    }
    slug = f"bench-ingest-{os.getpid()}"
    py = sys.executable
    run_child([py, "manage.py", "create_tenant", slug, "--name", "Ingest benchmark"])
    try:
        measure(args, slug, psql_env)
    finally:
        if not args.keep:
            from tenants.models import Tenant
            from tenants.services import delete_tenant

            delete_tenant(tenant=Tenant.objects.get(slug=slug))


def measure(args: argparse.Namespace, slug: str, psql_env: dict) -> None:
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        rng = random.Random(0)  # the products' draws, then the sales'
        products = generate_products(folder, args.skus, rng)
        if args.kind == "competitor_prices":
            rows = generate_readings(folder, args.rows, args.skus)
            columns = "sku text, competitor text, price numeric(14,4), observed_at timestamptz"
        else:
            rows = generate_sales(folder, args.rows, args.skus, rng)
            columns = (
                "date date, sku text, units int, price numeric(14,4), revenue numeric(16,4), "
                "promo boolean"
            )
        size_mb = rows.stat().st_size / 1e6
        took = time.perf_counter() - t
        print(f"generated {args.rows:,} {args.kind} rows ({size_mb:.0f} MB) in {took:.1f}s")
        run_child([py, "manage.py", "import_csv", slug, "products", str(products)])

        table = f"bench_raw_{os.getpid()}"
        run_child(
            ["psql", "-v", "ON_ERROR_STOP=1", "-qc", f"CREATE TABLE {table} ({columns})"],
            psql_env,
        )
        try:
            raw_s, _ = run_child(
                [
                    "psql",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-qc",
                    f"\\copy {table} FROM '{rows}' WITH (FORMAT csv, HEADER true)",
                ],
                psql_env,
            )
            imp_s, rss_mb, out = max_rss_mb_of(
                [py, "manage.py", "import_csv", slug, args.kind, str(rows)]
            )
            again_s, _, again = max_rss_mb_of(
                [py, "manage.py", "import_csv", slug, args.kind, str(rows)]
            )
            small = merge = None
            if args.kind == "competitor_prices":  # a day's feed onto the stored readings
                day = generate_readings(
                    folder / "day", 1000, min(500, args.skus), start=date(2030, 1, 1)
                )
                small = max_rss_mb_of([py, "manage.py", "import_csv", slug, args.kind, str(day)])
                merge = merge_respelt(slug, psql_env)
            start_s, _, _ = max_rss_mb_of([py, "manage.py", "check"])
        finally:
            run_child(["psql", "-qc", f"DROP TABLE IF EXISTS {table}"], psql_env)
    print(f"raw psql \\copy into a bare table : {raw_s:7.2f} s")
    print(f"import_csv (first import)         : {imp_s:7.2f} s   -> {out}")
    print(f"  of which Django start-up        : {start_s:7.2f} s (manage.py check)")
    print(f"ratio import_csv / raw copy       : {imp_s / raw_s:7.2f} x")
    print(f"import_csv again (all unchanged)  : {again_s:7.2f} s   -> {again}")
    if small is not None:
        print(f"import_csv of 1,000 new onto them : {small[0]:7.2f} s   -> {small[2]}")
    if merge is not None:
        print(f"merge_competitor_spellings        : {merge[0]:7.2f} s   -> {merge[1]}")
    print(f"peak memory of import_csv process : {rss_mb:7.0f} MB")
    print(f"rows/s through import_csv         : {args.rows / imp_s:,.0f}")


if __name__ == "__main__":
    main()
