"""Load on many tenants at once, and what row-level security costs under it.

    .venv/bin/python benchmarks/load.py [--tenants 20] [--skus 500] [--days 90]
        [--users 10,20,40] [--seconds 60]

Run it alone on the machine: it measures throughput.

1. A throw-away database (`pricing_load_<pid>`, created by the owner role, which may create
   databases, on the configured Postgres server, migrated like production: row-level security
   on every tenant table) with `--tenants` tenants, each with `--skus` products, `--days` days
   of sales, a finished reprice job whose recommendations wait for approval, an analyst who
   logs in to the portal, an approver's API key and an analyst's (the integration that
   upserts the catalog).
2. gunicorn as the demo serves it (2 workers x 4 threads, DEBUG off) on that database, and
   locust (benchmarks/locust/merchants.py) headless at each user count for `--seconds`:
   recommendation lists, SKU pages, 1,000-row bulk upserts, approvals and exports, each user
   on one tenant.
3. At each user count the same load twice, side by side: with the row-level security policies
   (as in production), then with them switched off on every table (the owner's
   `ALTER TABLE ... NO FORCE / DISABLE ROW LEVEL SECURITY`; the application's own tenant
   filters stay). The ratio is what the policies cost.

Prints requests per second, p50 and p99 and failures of each run, the highest throughput
whose p99 stays under 500 ms, and the ratios; writes them to benchmarks/out/load.json. The
database is dropped at the end.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from benchlib.databases import connect, create_database, drop_database, urls  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")
# The queue is not under test: jobs that requests enqueue vanish with the server's memory.
os.environ["CELERY_BROKER_URL"] = "memory://"
os.environ["API_THROTTLE_RATE"] = "10000000/minute"
PASSWORD = "load-test-password-2026"  # noqa: S105 (throw-away users of a throw-away database)


def set_row_level_security(owner_url: str, on: bool) -> int:
    """Switch the policies of every tenant table on (ENABLE + FORCE, as migrated) or off."""
    conn = connect(owner_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE a.attname = 'tenant_id' AND c.relkind = 'r' AND c.relnamespace = "
            "'public'::regnamespace"
        )
        tables = [name for (name,) in cur.fetchall()]
        for table in tables:
            verbs = ("ENABLE", "FORCE") if on else ("NO FORCE", "DISABLE")
            for verb in verbs:
                cur.execute(
                    sql.SQL("ALTER TABLE {} " + verb + " ROW LEVEL SECURITY").format(
                        sql.Identifier(table)
                    )
                )
    conn.close()
    return len(tables)


def seed(tenants: int, skus: int, days: int) -> list[dict]:
    """The tenants, through the services the product uses."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from pricing_saas.catalog.importer import import_rows
    from pricing_saas.portal.services import create_api_key
    from pricing_saas.pricing import approvals, services
    from pricing_saas.pricing.models import Recommendation
    from tenants.context import tenant_context
    from tenants.models import Membership, User
    from tenants.roles import Role
    from tenants.services import create_tenant

    rng = np.random.default_rng(0)
    start = dt.date(2026, 1, 1)
    out = []
    for t in range(tenants):
        owner = User.objects.create_user(email=f"owner{t}@load.example.com", password=PASSWORD)
        tenant = create_tenant(name=f"Load shop {t}", slug=f"load-{t}", owner=owner)
        analyst = User.objects.create_user(email=f"analyst{t}@load.example.com", password=PASSWORD)
        with tenant_context(tenant):
            Membership.objects.create(tenant=tenant, user=analyst, role=Role.ANALYST)
            key, writer = (
                create_api_key(
                    tenant=tenant, actor=None, actor_role=Role.OWNER, name=role, role=role
                ).key
                for role in (Role.APPROVER, Role.ANALYST)
            )
            base = rng.uniform(5, 50, skus).round(2)
            elasticity = -rng.uniform(0.8, 3.0, skus)
            products = [
                {"sku": f"L{i}", "title": f"Load product {i}", "price": float(base[i]),
                 "cost": round(float(base[i]) * 0.55, 2), "category": f"c{i % 8}"}
                for i in range(skus)
            ]  # fmt: skip
            sales = []
            for day in range(days):
                prices = base * np.exp(rng.normal(0, 0.08, skus))
                units = rng.poisson(3 * (prices / base) ** elasticity)
                date = (start + dt.timedelta(days=day)).isoformat()
                sales += [
                    {"date": date, "sku": f"L{i}", "units": int(units[i]),
                     "price": round(float(prices[i]), 2)}
                    for i in np.flatnonzero(units)
                ]  # fmt: skip
            import_rows(kind="products", rows=products)
            import_rows(kind="sales", rows=sales)
            approvals.update_policy(auto_approve=False)
            job = services.start_reprice(enqueue=False)
            services.run_reprice(job_id=job.pk)
            recommendations = list(
                Recommendation.objects.filter(job=job).values_list("pk", "product_id")
            )
        out.append(
            {
                "slug": tenant.slug,
                "key": key,
                "writer": writer,
                "email": analyst.email,
                "password": PASSWORD,
                "skus": [p["sku"] for p in products],
                "products": [product for _, product in recommendations],
                "recommendations": [pk for pk, _ in recommendations],
            }
        )
        print(f"seeded {tenant.slug}: {skus} SKUs, {len(sales)} sales rows, "
              f"{len(recommendations)} recommendations", flush=True)  # fmt: skip
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app_url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": app_url, "DEBUG": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "pricing_saas.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4", "--timeout", "120"],
        cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not start: see {log}")


def _number(cell: str) -> float:
    return float("nan") if cell in ("", "N/A") else float(cell)


def run_locust(host: str, tenants_file: Path, users: int, seconds: int, folder: Path) -> dict:
    prefix = folder / f"u{users}-{time.monotonic_ns()}"
    locust = Path(sys.executable).with_name("locust")
    proc = subprocess.run(
        [str(locust), "-f", str(ROOT / "benchmarks" / "locust" / "merchants.py"), "--headless",
         "-u", str(users), "-r", str(max(1, users // 2)), "-t", f"{seconds}s", "--host", host,
         "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
         # Each user logs in once as it starts (a password hash on purpose costs ~1 s): the
         # figures are the steady load after every user has started.
         "--reset-stats"],
        cwd=ROOT, env={**os.environ, "LOAD_TENANTS": str(tenants_file)},
        capture_output=True, text=True,
    )  # fmt: skip
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise SystemExit(f"locust failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    with open(stats) as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows["Aggregated"]
    failures = Path(f"{prefix}_failures.csv")
    failed = list(csv.DictReader(open(failures))) if failures.exists() else []  # noqa: SIM115
    return {
        "users": users,
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": _number(total["Requests/s"]),
        "p50_ms": _number(total["50%"]),
        "p99_ms": _number(total["99%"]),
        "failed": [
            f"{row['Method']} {row['Name']}: {row['Error']} x{row['Occurrences']}" for row in failed
        ],
        "by_name": {
            name: {"requests": int(row["Request Count"]), "p50_ms": _number(row["50%"]),
                   "p99_ms": _number(row["99%"])}
            for name, row in rows.items() if name != "Aggregated"
        },
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--skus", type=int, default=500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--users", default="10,20,40")
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    database = f"pricing_load_{os.getpid()}"
    app_url, owner_url = urls(database)
    create_database(owner_url, database)
    os.environ["DATABASE_URL"], os.environ["DATABASE_OWNER_URL"] = app_url, owner_url
    server = None
    try:
        started = time.perf_counter()
        tenants = seed(args.tenants, args.skus, args.days)
        print(f"seeded {len(tenants)} tenants in {time.perf_counter() - started:.0f} s")
        folder = Path(tempfile.mkdtemp(prefix="load-"))
        tenants_file = folder / "tenants.json"
        tenants_file.write_text(json.dumps(tenants))
        server, host = serve(app_url, folder / "gunicorn.log")
        run_locust(host, tenants_file, 2, 15, folder)  # warm-up: imports, connections, caches
        runs = []
        for users in [int(u) for u in args.users.split(",")]:
            with_rls = run_locust(host, tenants_file, users, args.seconds, folder)
            tables = set_row_level_security(owner_url, on=False)
            without = run_locust(host, tenants_file, users, args.seconds, folder)
            set_row_level_security(owner_url, on=True)
            runs.append({"users": users, "rls": with_rls, "no_rls": without, "tables": tables})
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        from django.db import connections

        connections.close_all()
        drop_database(owner_url, database)

    print()
    print("| users | RLS on: req/s | p50 ms | p99 ms | failures | RLS off: req/s | p50 ms | "
          "p99 ms | failures | req/s off / on | p50 on / off |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        on, off = run["rls"], run["no_rls"]
        print(
            f"| {run['users']} | {on['rps']:.1f} | {on['p50_ms']:.0f} | {on['p99_ms']:.0f} | "
            f"{on['failures']} / {on['requests']} | {off['rps']:.1f} | {off['p50_ms']:.0f} | "
            f"{off['p99_ms']:.0f} | {off['failures']} / {off['requests']} | "
            f"{off['rps'] / on['rps']:.2f}x | {on['p50_ms'] / max(off['p50_ms'], 1):.2f}x |"
        )
    within = [run["rls"] for run in runs if run["rls"]["p99_ms"] < 500]
    best = max(within, key=lambda r: r["rps"]) if within else None
    print()
    if best:
        print(f"highest throughput with p99 < 500 ms (RLS on): {best['rps']:.1f} req/s "
              f"at {best['users']} users")  # fmt: skip
    else:
        print("no user count kept p99 under 500 ms (RLS on)")
    failures = sum(r["rls"]["failures"] + r["no_rls"]["failures"] for r in runs)
    print(f"failures: {failures}")
    for run in runs:
        for side in ("rls", "no_rls"):
            for line in run[side]["failed"]:
                print(f"  {side} u{run['users']}: {line}")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
