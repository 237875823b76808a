"""A real Celery worker on the real broker runs a tenant task with that tenant's context only.

The broker is CELERY_TEST_BROKER_URL when set (`.ci/run` sets the Redis it started), else a
Redis of the test run's own that the `broker` fixture starts on a free port (the fixed 6379 of
before needed a Redis running there, and two checkouts testing at once took each other's tasks).
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from celery import Celery
from django.db import connection

from tenants.tasks import database_label

from .factories import MembershipFactory, TenantFactory
from .ml.test_partitioned import market  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parent.parent
MISSING_REDIS = (
    "the worker test needs a Redis broker and this machine has no redis-server: install it "
    "(Debian/Ubuntu: sudo apt-get install redis-server; the test starts its own on a free "
    "port) or set CELERY_TEST_BROKER_URL=redis://HOST:PORT/15 to a running one"
)

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


def redis_server_or_fail() -> str:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(MISSING_REDIS, pytrace=False)
    return server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """The broker URL: CELERY_TEST_BROKER_URL, else a private redis-server for this run."""
    if os.environ.get("CELERY_TEST_BROKER_URL"):
        yield os.environ["CELERY_TEST_BROKER_URL"]
        return
    server = redis_server_or_fail()
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--logfile", str(folder / "redis.log")],
    )  # fmt: skip
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"redis-server did not start on port {port}: see {folder / 'redis.log'}")
    yield f"redis://127.0.0.1:{port}/15"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def worker(broker):
    yield from _worker(broker, "default")


def process_env(broker: str, **settings) -> dict:
    """The environment of a worker or web process a test starts: the test settings, the test
    database, `broker` as broker and result backend, tasks sent (never run eagerly)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pricing_saas.settings.test",
        "DATABASE_URL": database_url_of_tests(),
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        **settings,
    }


def _worker(broker, queues, **settings):
    env = process_env(broker, **settings)
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
            queues,
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


def test_worker_runs_tenant_task_in_that_tenant_only(broker, worker):
    a, b = TenantFactory(), TenantFactory()
    for _ in range(3):
        MembershipFactory(tenant=a)
    MembershipFactory(tenant=b)
    client = Celery(broker=broker, backend=broker, set_as_current=False)
    started = time.monotonic()
    try:
        result_a = client.send_task(
            "tenants.ping", args=[a.pk], kwargs={"echo": "a"}, queue="default"
        )
        result_b = client.send_task("tenants.ping", args=[b.pk], queue="default")
        assert result_a.get(timeout=90) == {
            "tenant": a.slug,
            "members": 3,
            "echo": "a",
            "database": database_label(),  # the worker reads the tests' database
        }
        assert result_b.get(timeout=30)["members"] == 1
    except Exception:
        worker.terminate()
        print(worker.stdout.read())
        raise
    assert time.monotonic() - started < 90
    # A result unsubscribes when collected: now, while the broker this module started is up.
    del result_a, result_b
    gc.collect()


@pytest.fixture
def parts_worker(broker):
    """A worker that fits every tenant's demand model in parts of 4 products."""
    yield from _worker(
        broker,
        "ml_train",
        DEMAND_PARTITION_MIN_SKUS="0",
        DEMAND_PARTITION_BLOCK_SKUS="4",
        PARTITION_IN_FLIGHT="2",
    )


def test_a_worker_fits_a_demand_model_in_parts(broker, parts_worker, market):  # noqa: F811
    """The partitioned fit through a real worker and broker: the pooled stage, 8 parts (each
    queueing the next) and the reduce, ending in one promoted version in the tenant."""
    from ml import services as ml_services
    from ml.models import Elasticity, ModelVersion
    from tenants.context import tenant_context

    from .ml.test_partitioned import PRODUCTS

    with tenant_context(market.tenant):
        version = ml_services.start_training(kind="demand", enqueue=False)
    client = Celery(broker=broker, backend=broker, set_as_current=False)
    client.send_task(
        "ml.train_model_version", args=[market.tenant.pk, version.pk], queue="ml_train"
    )
    deadline = time.monotonic() + 240
    with tenant_context(market.tenant):
        while time.monotonic() < deadline:
            version.refresh_from_db()
            if version.status not in ("queued", "training"):
                break
            time.sleep(0.5)
        if version.status != "promoted":
            parts_worker.terminate()
            print(parts_worker.stdout.read())
        assert version.status == "promoted", version.message
        assert version.metrics["partitioned"]["parts"] == 8 and version.progress == {}
        assert Elasticity.objects.filter(model_version=version).count() == PRODUCTS
        assert ModelVersion.objects.filter(status="promoted").count() == 1


@pytest.mark.django_db(transaction=False)
def test_without_redis_server_the_worker_test_says_what_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"sudo apt-get install redis-server"):
        redis_server_or_fail()
