"""Hundreds of merchants whose nightly reprice fires at the same minute: how long each waits
before its job starts, by the size of its catalog.

    .venv/bin/python benchmarks/fairness.py [--small 199] [--small-skus 40] [--big 1]
        [--big-skus 30000] [--days 60] [--workers 2] [--baseline]
        [--partition-min-skus N] [--in-flight K]

Run it alone on the machine: it measures waiting times.

1. A throw-away database (`pricing_fair_<pid>`, migrated like production) with `--small`
   tenants of `--small-skus` products and `--big` tenants of `--big-skus`, each with `--days`
   days of sales (Poisson demand on known curves), imported through the product's importer.
2. `--workers` Celery worker processes ("worker hosts", solo pool, each with its own model
   cache; one media folder stands in for the bucket that a partitioned job's parts share) on
   the `reprice` and `ml_train` queues of a private Redis.
3. At one instant every tenant's scheduled reprice is sent, as celery beat sends the tasks of
   schedules due at the same minute: the big tenants' first (the worst order for the others).
   Each job reprices every SKU on its tenant's demand model in force (trained while seeding,
   as a nightly job finds it, through the same workers).
4. Per tenant: the start delay (the job's claim minus that instant) and its run time; per
   tenant size p50 / p95 / max. With `--baseline` the same without the big tenants, side by
   side: what the big ones cost the small ones.

Prints the tables; writes benchmarks/out/fairness.json. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from benchlib.databases import create_database, drop_database, urls  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--logfile", str(folder / "redis.log")],
    )  # fmt: skip
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise SystemExit(f"redis-server did not start: see {folder / 'redis.log'}")


def seed(small: int, small_skus: int, big: int, big_skus: int, days: int) -> list[dict]:
    """The tenants, through the services the product uses; the big ones first."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from pricing_saas.catalog.importer import import_rows
    from pricing_saas.pricing import approvals
    from tenants.context import tenant_context
    from tenants.models import User
    from tenants.services import create_tenant

    rng = np.random.default_rng(0)
    start = dt.date(2026, 1, 1)
    sizes = [("big", big_skus)] * big + [("small", small_skus)] * small
    out = []
    for t, (kind, skus) in enumerate(sizes):
        owner = User.objects.create_user(email=f"owner{t}@fair.example.com")
        tenant = create_tenant(name=f"Fair shop {t}", slug=f"fair-{t}", owner=owner)
        with tenant_context(tenant):
            base = rng.uniform(5, 50, skus).round(2)
            elasticity = -rng.uniform(0.8, 3.0, skus)
            import_rows(
                kind="products",
                rows=[
                    {"sku": f"F{i}", "title": f"Product {i}", "price": float(base[i]),
                     "cost": round(float(base[i]) * 0.55, 2), "category": f"c{i % 8}"}
                    for i in range(skus)
                ],
            )  # fmt: skip
            rows = []
            for day in range(days):
                prices = base * np.exp(rng.normal(0, 0.08, skus))
                units = rng.poisson(3 * (prices / base) ** elasticity)
                date = (start + dt.timedelta(days=day)).isoformat()
                rows += [
                    {"date": date, "sku": f"F{i}", "units": int(units[i]),
                     "price": round(float(prices[i]), 2)}
                    for i in np.flatnonzero(units)
                ]  # fmt: skip
                if len(rows) > 200_000:
                    import_rows(kind="sales", rows=rows)
                    rows = []
            if rows:
                import_rows(kind="sales", rows=rows)
            approvals.update_policy(auto_approve=False)
        out.append({"id": tenant.pk, "slug": tenant.slug, "kind": kind, "skus": skus})
        if kind == "big" or t % 50 == 0:
            print(f"seeded {tenant.slug} ({kind}, {skus} SKUs)", flush=True)
    return out


def train(tenants: list[dict], seconds: float) -> None:
    """A nightly reprice prices on the demand model in force (retraining is its own, gated
    job): every tenant gets one before the schedules fire, through the workers (a big tenant's
    fit runs in parts there)."""
    from ml import services as ml_services
    from ml.models import ModelVersion
    from tenants.context import tenant_context
    from tenants.models import Tenant

    for tenant in tenants:
        with tenant_context(Tenant.objects.get(pk=tenant["id"])):
            ml_services.start_training(kind=ModelVersion.Kind.DEMAND)
    deadline = time.monotonic() + seconds
    waiting = list(tenants)
    while waiting and time.monotonic() < deadline:
        still = []
        for tenant in waiting:
            with tenant_context(Tenant.objects.get(pk=tenant["id"])):
                version = (
                    ModelVersion.objects.filter(kind=ModelVersion.Kind.DEMAND).order_by("pk").last()
                )
                if version.status == ModelVersion.Status.FAILED:
                    raise SystemExit(f"{tenant['slug']}: demand training failed: {version.message}")
                if version.status != ModelVersion.Status.PROMOTED:
                    still.append(tenant)
        waiting = still
        time.sleep(1)
    if waiting:
        raise SystemExit(f"{len(waiting)} demand models not trained in {seconds:.0f} s")


def start_workers(count: int, broker: str, app_url: str, folder: Path, env: dict) -> list:
    procs = []
    for n in range(count):
        own = folder / f"worker{n}"
        own.mkdir(parents=True, exist_ok=True)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "pricing_saas", "worker", "--pool=solo",
                 "-n", f"fair{n}@%h", "-Q", "reprice,ml_train", "--without-heartbeat",
                 "--without-gossip", "--without-mingle", "-l", "WARNING"],
                cwd=ROOT,
                env={**os.environ, "DATABASE_URL": app_url, "CELERY_BROKER_URL": broker,
                     "CELERY_RESULT_BACKEND": "", "MEDIA_ROOT": str(folder / "media"),
                     "ML_MODEL_CACHE": str(own / "model-cache"), **env},
                stdout=open(own / "worker.log", "ab"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )  # fmt: skip
    return procs


def wait_for_workers(app, count: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= count:
            return
    raise SystemExit(f"fewer than {count} workers answered within {seconds:.0f} s")


def fire(app, tenants: list[dict]) -> float:
    """Every tenant's scheduled reprice at one instant, in the given order; returns it."""
    now = time.time()
    for tenant in tenants:
        app.send_task("pricing.scheduled_reprice", args=[tenant["id"]], queue="reprice")
    return now


def wait_for_jobs(tenants: list[dict], since: float, seconds: float) -> list[dict]:
    """Each tenant's job started after `since`: (start delay, run time, status)."""
    from pricing_saas.pricing.models import RepriceJob
    from tenants.context import tenant_context
    from tenants.models import Tenant

    start = dt.datetime.fromtimestamp(since, dt.UTC)
    deadline = time.monotonic() + seconds
    done: dict[int, dict] = {}
    while time.monotonic() < deadline and len(done) < len(tenants):
        for tenant in tenants:
            if tenant["id"] in done:
                continue
            with tenant_context(Tenant.objects.get(pk=tenant["id"])):
                job = (
                    RepriceJob.objects.filter(created_at__gte=start, finished_at__isnull=False)
                    .order_by("-pk")
                    .first()
                )
            if job is not None:
                done[tenant["id"]] = {
                    **tenant,
                    "delay_s": (job.started_at - start).total_seconds(),
                    "run_s": (job.finished_at - job.started_at).total_seconds(),
                    "status": job.status,
                    "parts": (job.parts or {}).get("parts", 1),
                }
        time.sleep(1)
    missing = [t["slug"] for t in tenants if t["id"] not in done]
    if missing:
        raise SystemExit(f"{len(missing)} jobs did not finish in {seconds:.0f} s: {missing[:5]}")
    return [done[t["id"]] for t in tenants]


def summary(jobs: list[dict]) -> list[dict]:
    rows = []
    for kind in ("big", "small"):
        mine = [j for j in jobs if j["kind"] == kind]
        if not mine:
            continue
        delay = np.array([j["delay_s"] for j in mine])
        run = np.array([j["run_s"] for j in mine])
        rows.append(
            {"kind": kind, "tenants": len(mine), "skus": mine[0]["skus"],
             "p50": float(np.percentile(delay, 50)), "p95": float(np.percentile(delay, 95)),
             "max": float(delay.max()), "run_p50": float(np.median(run)),
             "run_max": float(run.max()),
             "failed": sum(j["status"] != "succeeded" for j in mine),
             "parts": max(j["parts"] for j in mine)}
        )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=199)
    parser.add_argument("--small-skus", type=int, default=40)
    parser.add_argument("--big", type=int, default=1)
    parser.add_argument("--big-skus", type=int, default=30000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", action="store_true", help="also without the big tenants")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument(
        "--partition-min-skus",
        type=int,
        default=None,
        help="REPRICE_/DEMAND_PARTITION_MIN_SKUS of the workers (default: the settings')",
    )
    parser.add_argument("--in-flight", type=int, default=None, help="PARTITION_IN_FLIGHT")
    parser.add_argument(
        "--block-skus",
        type=int,
        default=None,
        help="REPRICE_/DEMAND_PARTITION_BLOCK_SKUS of the workers (default: the settings')",
    )
    args = parser.parse_args()

    database = f"pricing_fair_{os.getpid()}"
    app_url, owner_url = urls(database)
    create_database(owner_url, database)
    os.environ["DATABASE_URL"], os.environ["DATABASE_OWNER_URL"] = app_url, owner_url
    folder = Path(tempfile.mkdtemp(prefix="fairness-"))
    redis, broker = start_redis(folder)
    os.environ["CELERY_BROKER_URL"] = broker
    workers, runs = [], []
    try:
        started = time.perf_counter()
        tenants = seed(args.small, args.small_skus, args.big, args.big_skus, args.days)
        print(f"seeded {len(tenants)} tenants in {time.perf_counter() - started:.0f} s", flush=True)
        from pricing_saas.celery import app

        env = {}
        if args.partition_min_skus is not None:
            env["REPRICE_PARTITION_MIN_SKUS"] = str(args.partition_min_skus)
            env["DEMAND_PARTITION_MIN_SKUS"] = str(args.partition_min_skus)
        if args.block_skus is not None:
            env["REPRICE_PARTITION_BLOCK_SKUS"] = str(args.block_skus)
            env["DEMAND_PARTITION_BLOCK_SKUS"] = str(args.block_skus)
        if args.in_flight is not None:
            env["PARTITION_IN_FLIGHT"] = str(args.in_flight)
        workers = start_workers(args.workers, broker, app_url, folder, env)
        wait_for_workers(app, args.workers)
        started = time.perf_counter()
        train(tenants, args.timeout)
        print(f"demand models trained in {time.perf_counter() - started:.0f} s", flush=True)
        rounds = [("all tenants", tenants)]
        if args.baseline and args.big:
            rounds.append(("small tenants alone", [t for t in tenants if t["kind"] == "small"]))
        for label, group in rounds:
            at = fire(app, group)
            jobs = wait_for_jobs(group, at, args.timeout)
            runs.append({"round": label, "jobs": jobs, "summary": summary(jobs)})
            print(f"{label}: done in {max(j['delay_s'] + j['run_s'] for j in jobs):.0f} s",
                  flush=True)  # fmt: skip
    finally:
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        redis.terminate()
        redis.wait(10)
        from django.db import connections

        connections.close_all()
        drop_database(owner_url, database)

    print()
    print(f"{args.workers} worker processes (solo pool), every schedule fired at one instant, "
          "big tenants first")  # fmt: skip
    print()
    print("| round | tenants | SKUs each | parts of a job | start delay p50 s | p95 s | max s | "
          "run p50 s | run max s | failed |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        for row in run["summary"]:
            print(f"| {run['round']} | {row['tenants']} {row['kind']} | {row['skus']} | "
                  f"{row['parts']} | "
                  f"{row['p50']:.1f} | {row['p95']:.1f} | {row['max']:.1f} | "
                  f"{row['run_p50']:.1f} | {row['run_max']:.1f} | {row['failed']} |")  # fmt: skip
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "fairness.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
