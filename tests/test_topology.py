"""The production topology across hosts: a web host and two worker hosts, each in its own
network namespace (deploy/netns.py), with the production settings configured by environment
variables only, run a reprice and a publication over the API.

The hosts reach this run's services over a private bridge only (they cannot see the machine's
127.0.0.1): the test database through a relay on the bridge's gateway address, a Redis and an
S3-compatible server (moto) that listen on that address. Each host has its own MEDIA_ROOT and
model cache, which must stay empty: the publication file a worker host writes is downloaded
from the web host through the shared bucket. Skipped, with the reason, only where this machine
does not allow network namespaces.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from tenants.roles import Role

from .test_celery_worker import redis_server_or_fail

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy"))
import netns  # noqa: E402  (deploy/ is scripts, not a package)

WHY_NOT = netns.namespaces_allowed()
pytestmark = [
    pytest.mark.broker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(WHY_NOT is not None, reason=f"network namespaces: {WHY_NOT}"),
]


class Relay:
    """A TCP relay on the bridge to the test database (a TCP address or a Unix socket)."""

    def __init__(self, listen: str, target_host: str, target_port: int):
        self.listen, self.target = listen, (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("the relay did not start")

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer) -> None:
        host, port = self.target
        if host.startswith("/"):
            up_reader, up_writer = await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        else:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, self.listen, 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def network():
    tag = os.getpid() % 200 + 20
    net = netns.Network(prefix=f"pt{tag}", bridge=f"ptbr{tag}", subnet=f"10.232.{tag}")
    net.remove()
    net.create_bridge()
    for host in ("web", "worker1", "worker2"):
        net.add_host(host)
    yield net
    net.remove()


@pytest.fixture
def services(network, tmp_path):
    """The database relay, a Redis and an S3 server, all on the bridge's gateway address."""
    gateway = network.gateway
    settings = connection.settings_dict
    relay = Relay(gateway, settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    redis_port, s3_port = _free_port(gateway), _free_port(gateway)
    redis = subprocess.Popen(
        [redis_server_or_fail(), "--bind", gateway, "--port", str(redis_port), "--save", "",
         "--protected-mode", "no",
         "--appendonly", "no", "--dir", str(tmp_path), "--logfile", str(tmp_path / "redis.log")]
    )  # fmt: skip
    s3 = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", gateway, "-p", str(s3_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        netns.wait_for_port(gateway, redis_port, 30, redis)
        netns.wait_for_port(gateway, s3_port, 60, s3)
        endpoint = f"http://{gateway}:{s3_port}"
        netns.create_bucket(endpoint, "topology-test")
        password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
        yield {
            "database_url": f"postgres://{settings['USER']}{password}@{gateway}:{relay.port}/"
            f"{settings['NAME']}",
            "broker_url": f"redis://{gateway}:{redis_port}/0",
            "storage": netns.s3_env(endpoint, "topology-test"),
        }
    finally:
        for proc in (redis, s3):
            proc.terminate()
            proc.wait(10)
        relay.stop()


def _free_port(address: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@pytest.fixture
def hosts(network, services, tmp_path, monkeypatch):
    """The web host and two worker hosts; yields the web host's base URL."""
    monkeypatch.setattr(netns, "STATE", tmp_path / "topology")
    web_address = network.address("web")
    common = {
        "database_url": services["database_url"],
        "broker_url": services["broker_url"],
        "storage": services["storage"],
        "allowed_hosts": web_address,
        "secret_key": secrets.token_urlsafe(50),
    }
    logs = tmp_path / "logs"
    procs = {
        "web": network.spawn(
            "web", netns.web_command(web_address), netns.app_env(host="web", **common),
            logs / "web.log",
        ),
        **{
            name: network.spawn(
                name, netns.worker_command(name, netns.WORKER_QUEUES + ",ml_train"),
                netns.app_env(host=name, **common)
                | netns.worker_metrics_env(name, network.address(name)),
                logs / f"{name}.log",
            )
            for name in ("worker1", "worker2")
        },
    }  # fmt: skip
    try:
        netns.wait_for_port(web_address, 8000, 120, procs["web"])
        yield f"http://{web_address}:8000", procs, logs, tmp_path / "topology" / "hosts"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)


def _until(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


def test_a_reprice_and_a_publication_run_across_a_web_host_and_two_worker_hosts(
    shop, hosts, network
):
    base, procs, logs, host_folders = hosts
    analyst = httpx.Client(
        base_url=base, headers={"Authorization": f"Api-Key {shop.keys[Role.ANALYST]}"}, timeout=60
    )
    approver = httpx.Client(
        base_url=base, headers={"Authorization": f"Api-Key {shop.keys[Role.APPROVER]}"}, timeout=60
    )
    admin = httpx.Client(
        base_url=base, headers={"Authorization": f"Api-Key {shop.keys[Role.ADMIN]}"}, timeout=60
    )
    try:
        assert admin.get("/readyz").status_code == 200, admin.get("/readyz").text
        policy = admin.patch("/api/v1/pricing-policy/", json={"auto_approve": False})
        assert policy.status_code == 200, policy.text
        run = analyst.post("/api/v1/reprice-jobs/run/")
        assert run.status_code == 202, run.text

        def reprice_done():
            job = analyst.get(f"/api/v1/reprice-jobs/{run.json()['id']}/").json()
            return job if job["status"] in ("succeeded", "failed") else None

        job = _until(reprice_done, 240, "the reprice on a worker host")
        assert job["status"] == "succeeded", job
        pending = approver.get(f"/api/v1/recommendations/?job={job['id']}&status=pending").json()
        ids = [r["id"] for r in pending["results"]]
        assert ids
        bulk = approver.post(
            "/api/v1/recommendations/bulk/", json={"action": "approve", "ids": ids}
        )
        assert bulk.status_code == 200, bulk.text
        published = approver.post("/api/v1/publications/", json={})
        assert published.status_code == 202, published.text

        def publication_done():
            pub = approver.get(f"/api/v1/publications/{published.json()['id']}/").json()
            return pub if pub["status"] not in ("queued", "running") else None

        pub = _until(publication_done, 120, "the publication on a worker host")
        assert pub["status"] == "succeeded" and pub["published"] == len(ids), pub
        download = approver.get(pub["download"])
        assert download.status_code == 200
        rows = list(csv.DictReader(io.StringIO(download.text)))
        assert len(rows) == len(ids)
    except BaseException:
        for log in sorted(logs.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for client in (analyst, approver, admin):
            client.close()
    worked = {
        name: "pricing.reprice" in (logs / f"{name}.log").read_text(errors="replace")
        or "pricing.publish" in (logs / f"{name}.log").read_text(errors="replace")
        for name in ("worker1", "worker2")
    }
    assert any(worked.values()), worked  # the tasks ran on worker hosts ...
    # ... and each worker host's own /metrics counts what it ran: one reprice job and one
    # publication over the two hosts, each job's wait for a worker observed
    ran = {}
    for name in ("worker1", "worker2"):
        text = httpx.get(f"http://{network.address(name)}:{netns.WORKER_METRICS_PORT}/metrics")
        for family in text_string_to_metric_families(text.text):
            for sample in family.samples:
                if sample.name in ("pricing_job_seconds_count", "pricing_job_wait_seconds_count"):
                    key = (sample.name, sample.labels["kind"], sample.labels.get("status"))
                    ran[key] = ran.get(key, 0) + sample.value
    assert ran[("pricing_job_seconds_count", "pricing.repricejob", "succeeded")] == 1, ran
    assert ran[("pricing_job_wait_seconds_count", "pricing.repricejob", None)] == 1, ran
    assert ran[("pricing_job_seconds_count", "pricing.publication", "succeeded")] == 1, ran
    web_log = (logs / "web.log").read_text(errors="replace")
    assert "Task pricing." not in web_log  # ... never on the web host
    stored = [p for p in host_folders.rglob("*") if p.is_file() and "model-cache" not in p.parts]
    assert stored == []  # no host kept a file another host needs: all went to the bucket
    if shutil.which("ip"):
        assert all(proc.poll() is None for proc in procs.values())  # every host still up
