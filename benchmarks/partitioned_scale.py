"""The partitioned demand fit and reprice of one large tenant on one and on two worker hosts.

    .venv/bin/python benchmarks/partitioned_scale.py [--skus 20000] [--days 365] [--workers 1,2]
        [--block 5000] [--sample 10000] [--reprice-block 20000]

Generates a tenant with COPY (products with costs in 50 categories; a daily sales row per SKU
and day, prices moving weekly, demand from known constant-elasticity curves; a weekly
competitor reading on a tenth of the SKUs), then, for each worker count, starts that many
`celery worker` processes (the "hosts": one process each, --pool solo, each its own empty
MEDIA_ROOT; the parts meet only through an S3 bucket, moto's server on 127.0.0.1, and a private
Redis broker), runs the partitioned demand fit (ml.partitioned) and then the partitioned
reprice (pricing.partitioned), and reports the wall time of each, the peak resident memory of
each worker process (sampled every 0.2 s with psutil) and, from the measured time per
product-day, the projection to 1,000,000 SKUs x 730 days. Needs redis-server.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")
KEYS = {"AWS_ACCESS_KEY_ID": "bench-key", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
BUCKET = "partitioned-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.1)


def generate(tenant, n: int, days: int, seed: int = 0) -> int:
    """Products, sales and competitor readings straight into the tables with COPY."""
    from pricing_saas.catalog.importer import planner
    from pricing_saas.catalog.models import CompetitorOffer, Product, SalesRecord
    from tenants.bulk import copy_insert
    from tenants.context import tenant_context

    rng = np.random.default_rng(seed)
    price0 = rng.uniform(2, 200, n).round(2)
    cost = (price0 * rng.uniform(0.4, 0.8, n)).round(2)
    elasticity = -rng.uniform(0.5, 3.5, n)
    rate = rng.gamma(1.5, 1.5, n)
    first = date.today() - timedelta(days=days)
    rows = 0
    with tenant_context(tenant):
        copy_insert(
            Product,
            [
                {"tenant_id": tenant.pk, "sku": f"S{i:07d}", "title": f"Item {i}",
                 "category": f"c{i % 50}", "cost": cost[i], "price": price0[i], "currency": "EUR"}
                for i in range(n)
            ],
        )  # fmt: skip
        ids = np.array(Product.objects.order_by("sku").values_list("pk", flat=True))
        weeks = (days + 6) // 7
        chunk = max(1, 2_000_000 // n)  # days per COPY
        for start in range(0, days, chunk):
            span = range(start, min(days, start + chunk))
            moves = rng.normal(0, 0.08, (weeks, n))
            lines = []
            for d in span:
                p = (price0 * np.exp(moves[d // 7])).round(2)
                units = rng.poisson(rate * (p / price0) ** elasticity)
                day = (first + timedelta(days=d)).isoformat()
                block = np.column_stack([ids, units, p, (units * p).round(2)])
                text = io.StringIO()
                np.savetxt(text, block, fmt=f'{tenant.pk},%d,{day},"",%d,%.2f,%.2f,f')
                lines.append(text.getvalue())
                rows += n
            copy(SalesRecord, "tenant_id, product_id, date, channel, units, price, revenue, promo",
                 "".join(lines))  # fmt: skip
        watched = ids[::10]
        for d in range(0, days, 7):
            at = (first + timedelta(days=d)).isoformat() + "T08:00:00Z"
            rival = (price0[::10] * rng.uniform(0.85, 1.2, len(watched))).round(2)
            text = io.StringIO()
            np.savetxt(text, np.column_stack([watched, rival]),
                       fmt=f"{tenant.pk},%d,Rival,%.2f,{at},t,\"\"")  # fmt: skip
            copy(CompetitorOffer, "tenant_id, product_id, competitor, price, observed_at, "
                 "in_stock, url", text.getvalue())  # fmt: skip
        planner.refresh(SalesRecord._meta.db_table)  # as the owner: a plain ANALYZE is skipped
    return rows


def copy(model, columns: str, csv_text: str) -> None:
    """Rows into a table under row-level security: COPY into a temporary table, then INSERT
    (a COPY FROM straight into a table with row-level security is refused)."""
    from django.db import connection, transaction

    table = model._meta.db_table
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE _bench ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"
        )
        cur.cursor.copy_expert(
            f"COPY _bench ({columns}) FROM STDIN WITH (FORMAT csv)", io.StringIO(csv_text)
        )
        cur.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _bench")


class Peak(threading.Thread):
    """The peak resident memory of each process, sampled."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        import psutil

        self.procs = [psutil.Process(pid) for pid in pids]
        self.peak = [0] * len(pids)
        self.running = True

    def run(self):
        import psutil

        while self.running:
            for i, proc in enumerate(self.procs):
                with contextlib.suppress(psutil.Error):  # a worker that has just stopped
                    self.peak[i] = max(self.peak[i], proc.memory_info().rss)
            time.sleep(0.2)


def wait_for(read, done, limit_s: float, phase=None, seen=None):
    """Poll `read()` until `done`; `seen` gets the time each `phase(value)` was first seen."""
    started = time.perf_counter()
    while True:
        value = read()
        if phase is not None:
            seen.setdefault(phase(value), time.perf_counter() - started)
        if done(value):
            return value, time.perf_counter() - started
        if time.perf_counter() - started > limit_s:
            raise SystemExit(f"gave up after {limit_s:.0f} s: {value}")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--block", type=int, default=5_000)
    parser.add_argument("--sample", type=int, default=5_000)
    parser.add_argument("--reprice-block", type=int, default=20_000)
    parser.add_argument("--limit-s", type=float, default=3 * 3600)
    args = parser.parse_args()
    redis = shutil.which("redis-server")
    if redis is None:
        raise SystemExit("needs redis-server (apt-get install redis-server)")
    counts = [int(w) for w in args.workers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="partitioned-bench-"))
    broker_port, s3_port = free_port(), free_port()
    services = [
        subprocess.Popen([redis, "--port", str(broker_port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                          str(s3_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]  # fmt: skip
    wait_port(broker_port, services[0], "redis-server")
    wait_port(s3_port, services[1], "moto S3 server")
    env = {
        **os.environ,
        **KEYS,
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{broker_port}/0",
        "MEDIA_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "AWS_S3_REGION_NAME": "us-east-1",
        "DEMAND_PARTITION_MIN_SKUS": "0",
        "REPRICE_PARTITION_MIN_SKUS": "0",
        "DEMAND_PARTITION_BLOCK_SKUS": str(args.block),
        "DEMAND_PARTITION_SAMPLE_SKUS": str(args.sample),
        "REPRICE_PARTITION_BLOCK_SKUS": str(args.reprice_block),
        "PARTITION_IN_FLIGHT": str(max(counts)),
        "LOG_LEVEL": "WARNING",
        "CELERY_TASK_ALWAYS_EAGER": "false",  # the workers run the tasks (also under test settings)
    }
    os.environ.update({k: v for k, v in env.items() if k not in os.environ or k in KEYS})
    for key in ("CELERY_BROKER_URL", "MEDIA_STORAGE", "AWS_STORAGE_BUCKET_NAME",
                "AWS_S3_ENDPOINT_URL", "AWS_S3_REGION_NAME", "DEMAND_PARTITION_MIN_SKUS",
                "REPRICE_PARTITION_MIN_SKUS", "DEMAND_PARTITION_BLOCK_SKUS",
                "DEMAND_PARTITION_SAMPLE_SKUS", "REPRICE_PARTITION_BLOCK_SKUS",
                "PARTITION_IN_FLIGHT", "CELERY_TASK_ALWAYS_EAGER"):  # fmt: skip
        os.environ[key] = env[key]
    import boto3
    import django

    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=BUCKET)
    django.setup()
    from ml import services as ml_services
    from ml.models import ModelVersion
    from pricing_saas.pricing import approvals
    from pricing_saas.pricing import services as pricing_services
    from pricing_saas.pricing.models import RepriceJob
    from tenants.context import tenant_context
    from tenants.models import Tenant
    from tenants.services import delete_tenant

    # The workers connect to this database as this process does (never each setting up the
    # embedded server's roles at once: two at a time collide on the role's catalog row).
    env["DATABASE_URL"] = database_url()
    slug = f"bench-partitioned-{os.getpid()}"
    subprocess.run([sys.executable, "manage.py", "create_tenant", slug, "--name", "Partitioned"],
                   cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    tenant = Tenant.objects.get(slug=slug)
    results = []
    logs = contextlib.ExitStack()
    try:
        started = time.perf_counter()
        rows = generate(tenant, args.skus, args.days)
        print(f"generated {args.skus:,} SKUs x {args.days} days: {rows:,} sales rows in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        with tenant_context(tenant):
            approvals.update_policy(auto_approve=False)
        for workers in counts:
            hosts = []
            for h in range(workers):
                media = tmp / f"host-{workers}-{h}"
                media.mkdir()
                hosts.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "pricing_saas", "worker", "--pool",
                     "solo", "-Q", "ml_train,reprice", "-n", f"host{h}@bench", "--loglevel",
                     "WARNING"],
                    cwd=ROOT, env={**env, "MEDIA_ROOT": str(media)},
                    stdout=logs.enter_context(open(tmp / f"host-{workers}-{h}.log", "w")),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                ))  # fmt: skip
                time.sleep(8)  # the worker connects
                if hosts[-1].poll() is not None:
                    raise SystemExit(f"worker host {h} stopped: see {tmp}/host-{workers}-{h}.log")
            peak = Peak([p.pid for p in hosts])
            peak.start()
            try:
                with tenant_context(tenant):
                    version = ml_services.start_training(kind="demand")
                fit_phases: dict = {}
                version, fit_s = wait_for(
                    lambda pk=version.pk: _refresh(tenant, ModelVersion, pk),
                    lambda v: v.status not in ("queued", "training"),
                    args.limit_s,
                    phase=lambda v: (v.progress or {}).get("phase", v.status),
                    seen=fit_phases,
                )
                if version.status != "promoted":
                    raise SystemExit(f"the fit ended {version.status}: {version.message}")
                fit_peak = list(peak.peak)
                peak.peak = [0] * workers
                with tenant_context(tenant):
                    job = pricing_services.start_reprice()
                job, reprice_s = wait_for(
                    lambda pk=job.pk: _refresh(tenant, RepriceJob, pk),
                    lambda j: j.status not in ("queued", "running"),
                    args.limit_s,
                )
                if job.status != "succeeded":
                    raise SystemExit(f"the reprice ended {job.status}: {job.message}")
            finally:
                peak.running = False
                for p in hosts:
                    p.terminate()
                for p in hosts:
                    p.wait(60)
            blocks_at = fit_phases.get("fitting blocks", 0.0)
            merge_at = fit_phases.get("merging", blocks_at)
            results.append({
                "workers": workers, "fit_s": fit_s, "reprice_s": reprice_s,
                "pooled_s": blocks_at, "parts_s": merge_at - blocks_at,
                "reduce_s": fit_s - merge_at,
                "fit_peak": max(fit_peak), "reprice_peak": max(peak.peak),
                "parts": version.metrics["partitioned"]["parts"], "skus": job.skus,
            })  # fmt: skip
            print(
                f"{workers} worker host(s): fit {fit_s:.0f} s ({results[-1]['parts']} parts, "
                f"peak RSS {max(fit_peak) / 2**30:.2f} GiB), reprice {reprice_s:.0f} s "
                f"(peak RSS {max(peak.peak) / 2**30:.2f} GiB), {job.skus:,} SKUs repriced"
            )
    finally:
        logs.close()
        delete_tenant(tenant=Tenant.objects.get(pk=tenant.pk))
        for proc in services:
            proc.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    report(args, rows, results)


def database_url() -> str:
    """DATABASE_URL of the database this process uses (the embedded server's socket too)."""
    from urllib.parse import quote

    from django.db import connection

    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    auth += f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    host = s["HOST"] or "localhost"
    if host.startswith("/"):
        return f"postgres://{auth}@{quote(host, safe='')}/{s['NAME']}"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{s['NAME']}"


def _refresh(tenant, model, pk):
    from tenants.context import tenant_context

    with tenant_context(tenant):
        return model.objects.get(pk=pk)


def report(args, rows: int, results: list[dict]) -> None:
    print()
    print("| worker hosts | demand fit (s) | of which pooled / parts / reduce (s) | reprice (s) | "
          "fit peak RSS per worker (GiB) | reprice peak RSS per worker (GiB) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['workers']} | {r['fit_s']:.0f} | {r['pooled_s']:.0f} / {r['parts_s']:.0f} / "
              f"{r['reduce_s']:.0f} | {r['reprice_s']:.0f} | {r['fit_peak'] / 2**30:.2f} | "
              f"{r['reprice_peak'] / 2**30:.2f} |")  # fmt: skip
    base = results[0]
    for r in results[1:]:
        fit, reprice = base["fit_s"] / r["fit_s"], base["reprice_s"] / r["reprice_s"]
        parts = base["parts_s"] / max(r["parts_s"], 1e-9)
        print(
            f"wall-time ratio {base['workers']} -> {r['workers']} hosts: fit {fit:.2f}x "
            f"(its parts {parts:.2f}x), reprice {reprice:.2f}x"
        )
    # The pooled stage reads a sample of at most DEMAND_PARTITION_SAMPLE_SKUS products (its
    # cost grows with the days only); the parts are linear in product-days (each block's rows);
    # the reduce and the reprice in SKUs.
    scale = (1_000_000 * 730) / rows
    sampled = min(args.skus, args.sample)
    for r in results:
        fit_h = (
            r["pooled_s"] * 730 / args.days * (min(1_000_000, args.sample) / sampled)
            + r["parts_s"] * scale
            + r["reduce_s"] * 1_000_000 / r["skus"]
        ) / 3600
        reprice_h = r["reprice_s"] * 1_000_000 / r["skus"] / 3600
        print(
            f"projection to 1,000,000 SKUs x 730 days on {r['workers']} host(s): fit "
            f"{fit_h:.1f} h, reprice {reprice_h:.2f} h (pooled stage x{730 / args.days:.1f} the "
            f"days, parts x{scale:.0f} the product-days, reduce and reprice x the SKUs)"
        )


if __name__ == "__main__":
    main()
