"""A worker host's own /metrics (WORKER_METRICS_PORT): tasks by name and state, their run time,
and each job's wait for a worker and its run time by kind, summed over a prefork pool's child
processes (Prometheus' multiprocess mode). Labels never name a tenant."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from tenants.context import tenant_context

from .factories import TenantFactory
from .test_celery_worker import _free_port, broker, process_env  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def _samples(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _prefork_worker(url: str, folder: Path, port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "pricing_saas", "worker", "--pool=prefork",
         "--concurrency=2", "-Q", "default,ingest", "--without-heartbeat", "--without-gossip",
         "--without-mingle", "-l", "WARNING", *extra],
        cwd=ROOT,
        env=process_env(
            url, WORKER_METRICS_PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(folder)
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _poll(port: int, want: dict, seconds: float = 30) -> dict:
    """The worker's samples once `want` is among them (or the deadline passed)."""
    deadline = time.monotonic() + seconds
    while True:
        samples = _samples(port)
        if {key: samples.get(key) for key in want} == want or time.monotonic() > deadline:
            return samples
        time.sleep(0.3)


def test_a_prefork_worker_serves_its_task_and_job_metrics(broker, tmp_path, monkeypatch):  # noqa: F811
    from django.core.files.uploadedfile import SimpleUploadedFile

    from pricing_saas.catalog import services as catalog_services
    from pricing_saas.catalog.models import ImportJob

    port = _free_port()
    proc = _prefork_worker(broker, tmp_path / "metrics", port)
    client = Celery(broker=broker, backend=broker, set_as_current=False)
    pings = []
    try:
        tenant = TenantFactory()
        monkeypatch.setattr(catalog_services, "_enqueue", lambda job: None)  # sent below
        upload = SimpleUploadedFile("c.csv", b"sku,title,price\nM1,Metered,9.50\n", "text/csv")
        with tenant_context(tenant):
            job = catalog_services.create_import_job(
                kind="products", upload=upload, options=catalog_services.options_from({})
            )
        pings = [
            client.send_task("tenants.ping", args=[tenant.pk], queue="default") for _ in range(3)
        ]
        client.send_task("catalog.run_import", args=[tenant.pk, job.pk], queue="ingest")
        assert [r.get(timeout=120)["tenant"] for r in pings] == [tenant.slug] * 3
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with tenant_context(tenant):
                job.refresh_from_db()
            if job.is_finished:
                break
            time.sleep(0.2)
        assert job.status == ImportJob.Status.SUCCEEDED, job.message

        # The counts land once each task's postrun has run: poll briefly.
        want = {
            ("pricing_celery_tasks_total", (("state", "SUCCESS"), ("task", "tenants.ping"))): 3.0,
            ("pricing_celery_task_seconds_count", (("task", "tenants.ping"),)): 3.0,
            ("pricing_job_wait_seconds_count", (("kind", "catalog.importjob"),)): 1.0,
            (
                "pricing_job_seconds_count",
                (("kind", "catalog.importjob"), ("status", "succeeded")),
            ): 1.0,
        }
        samples = _poll(port, want)
        got = {key: samples.get(key) for key in want}
        assert got == want, {k: v for k, v in samples.items() if k[0].startswith("pricing_")}
        assert samples[("pricing_celery_task_seconds_sum", (("task", "tenants.ping"),))] > 0
        # the job's run time fits inside the time between its creation and now
        took = samples[
            ("pricing_job_seconds_sum", (("kind", "catalog.importjob"), ("status", "succeeded")))
        ]
        assert 0 < took < 120
        labels = {v for key in samples for _, v in key[1]}
        assert tenant.slug not in labels and str(tenant.pk) not in labels
    finally:
        del pings  # a result unsubscribes when collected: now, while the broker is up
        gc.collect()
        client.close()
        _stop(proc)


def test_a_task_killed_at_its_hard_time_limit_or_terminated_is_counted_once(broker, tmp_path):  # noqa: F811
    """The pool kills such a task's process before its postrun: the main process counts it."""
    port = _free_port()
    proc = _prefork_worker(broker, tmp_path / "metrics", port, "--include", "tests.worker_tasks")
    client = Celery(broker=broker, backend=broker, set_as_current=False)
    results, killed, running = [], None, None
    try:
        killed = client.send_task(
            "tests.overrun", args=[60], queue="default", time_limit=2, soft_time_limit=1
        )
        results.append(killed)
        with pytest.raises(Exception, match="TimeLimitExceeded"):
            killed.get(timeout=60)
        running = client.send_task("tests.overrun", args=[60], queue="default")
        results.append(running)
        deadline, active = time.monotonic() + 60, False
        while not active and time.monotonic() < deadline:
            now = client.control.inspect(timeout=1).active() or {}
            active = any(t["id"] == running.id for tasks in now.values() for t in tasks)
        assert active, "the second task never started"
        client.control.revoke(running.id, terminate=True, signal="SIGKILL")
        ended = lambda state: (  # noqa: E731
            "pricing_celery_tasks_total",
            (("state", state), ("task", "tests.overrun")),
        )
        want = {
            ended("TIME_LIMIT"): 1.0,
            ended("REVOKED"): 1.0,
            ("pricing_celery_task_seconds_count", (("task", "tests.overrun"),)): 1.0,
            ("pricing_celery_task_seconds_sum", (("task", "tests.overrun"),)): 2.0,
        }
        samples = _poll(port, want, 60)
        overrun = {k: v for k, v in samples.items() if ("task", "tests.overrun") in k[1]}
        assert {key: samples.get(key) for key in want} == want, overrun
        # nothing else counted for it: no UNKNOWN state from a postrun that was cut off; the
        # killed one ran for its limit
        counted = {k for k in overrun if k[0] == "pricing_celery_tasks_total"}
        assert counted == {ended("TIME_LIMIT"), ended("REVOKED")}
    finally:
        del results, killed, running  # unsubscribed now, while the broker is up
        gc.collect()
        client.close()
        _stop(proc)
