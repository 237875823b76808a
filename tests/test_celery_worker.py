"""A real Celery worker on the real broker runs a tenant task with that tenant's context only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from celery import Celery
from django.db import connection

from .factories import MembershipFactory, TenantFactory

ROOT = Path(__file__).resolve().parent.parent
BROKER = os.environ.get("CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def database_url_of_tests() -> str:
    """DATABASE_URL of the database the tests run against (for a worker subprocess)."""
    s = connection.settings_dict
    user = quote(s["USER"] or "", safe="")
    password = f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    host = s["HOST"] or "localhost"
    if host.startswith("/"):
        return f"postgres://{user}{password}@{quote(host, safe='')}/{s['NAME']}"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{s['NAME']}"


@pytest.fixture
def worker():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pricing_saas.settings.test",
        "DATABASE_URL": database_url_of_tests(),
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "pricing_saas",
            "worker",
            "--pool=solo",
            "-Q",
            "default",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_worker_runs_tenant_task_in_that_tenant_only(worker):
    a, b = TenantFactory(), TenantFactory()
    for _ in range(3):
        MembershipFactory(tenant=a)
    MembershipFactory(tenant=b)
    client = Celery(broker=BROKER, backend=BROKER)
    started = time.monotonic()
    try:
        result_a = client.send_task(
            "tenants.ping", args=[a.pk], kwargs={"echo": "a"}, queue="default"
        )
        result_b = client.send_task("tenants.ping", args=[b.pk], queue="default")
        assert result_a.get(timeout=90) == {"tenant": a.slug, "members": 3, "echo": "a"}
        assert result_b.get(timeout=30)["members"] == 1
    except Exception:
        worker.terminate()
        print(worker.stdout.read())
        raise
    assert time.monotonic() - started < 90
