"""The production topology on one Linux machine: each host in its own network namespace.

    sudo .venv/bin/python deploy/netns.py up     # database, broker, storage, web, workers, beat
    sudo .venv/bin/python deploy/netns.py down

Every host is a network namespace joined by a veth pair to one private bridge (`pricingbr0`,
10.231.0.0/24; the machine itself is 10.231.0.1 on it). A host sees only the bridge and its
own loopback, never the machine's 127.0.0.1, so every connection between hosts goes over the
bridge as it would between machines. Each host is configured by environment variables only
(the same variables as `docker/compose.yaml`, whose services these are):

| host | address | runs |
| --- | --- | --- |
| db | 10.231.0.10 | Postgres (a cluster of its own under `.topology/db`) |
| broker | 10.231.0.11 | Redis (append-only file) |
| storage | 10.231.0.12 | an S3-compatible server (moto) for `MEDIA_STORAGE=s3` |
| pool | 10.231.0.13 | PgBouncer in transaction mode (`docker/pgbouncer/entrypoint.sh`), port 6432 |
| web | 10.231.0.20 | gunicorn, port 8000 |
| worker1, worker2 | 10.231.0.21-22 | Celery on default, ingest, reprice, publish |
| train | 10.231.0.23 | Celery on ml_train |
| beat | 10.231.0.24 | Celery beat |

`up` prints the portal's address (http://10.231.0.20:8000/, reachable from the machine) and
leaves the hosts running; `down` stops them and removes the namespaces. Logs are under
`.topology/logs/`. `tests/test_topology.py` starts the web host and two worker hosts with these
functions against the test run's own database and broker, and runs a reprice and a
publication across them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".topology"
BRIDGE = "pricingbr0"
SUBNET = "10.231.0"
GATEWAY = f"{SUBNET}.1"
HOSTS = {
    "db": 10,
    "broker": 11,
    "storage": 12,
    "pool": 13,
    "web": 20,
    "worker1": 21,
    "worker2": 22,
    "train": 23,
    "beat": 24,
}
WORKER_QUEUES = "default,ingest,reprice,publish"
WORKER_METRICS_PORT = 9100


class TopologyError(RuntimeError):
    pass


def _ip(*args: str, namespace: str | None = None, check: bool = True) -> None:
    command = (
        ["ip", *args] if namespace is None else ["ip", "netns", "exec", namespace, "ip", *args]
    )
    done = subprocess.run(command, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise TopologyError(f"{' '.join(command)}: {done.stderr.strip()}")


def namespaces_allowed() -> str | None:
    """None when this machine lets us make namespaces and bridges, else why not."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"pricing-probe-{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"ip netns add refused: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass
class Network:
    """The bridge and the namespaces of one topology; `prefix` keeps two apart (a test's)."""

    prefix: str = "pricing"
    bridge: str = BRIDGE
    subnet: str = SUBNET

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    def address(self, host: str) -> str:
        return f"{self.subnet}.{HOSTS[host]}"

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def create_bridge(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, host: str) -> str:
        """A namespace joined to the bridge at the host's address; returns the namespace."""
        ns, number = self.namespace(host), HOSTS[host]
        outside, inside = f"{self.prefix[:6]}{number}o", f"{self.prefix[:6]}{number}i"
        _ip("netns", "add", ns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", ns)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        _ip("addr", "add", f"{self.address(host)}/24", "dev", inside, namespace=ns)
        _ip("link", "set", inside, "up", namespace=ns)
        _ip("link", "set", "lo", "up", namespace=ns)
        return ns

    def remove(self) -> None:
        for host in HOSTS:
            _ip("netns", "del", self.namespace(host), check=False)
            _ip("link", "del", f"{self.prefix[:6]}{HOSTS[host]}o", check=False)
        _ip("link", "del", self.bridge, check=False)

    def spawn(self, host: str, command: list[str], env: dict, log: Path) -> subprocess.Popen:
        """Run `command` on `host` with exactly `env` (plus PATH and HOME): nothing else of this
        machine's environment reaches a host."""
        log.parent.mkdir(parents=True, exist_ok=True)
        STATE.mkdir(parents=True, exist_ok=True)
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(STATE),
            "LANG": "C.UTF-8",
        }
        return subprocess.Popen(
            ["ip", "netns", "exec", self.namespace(host), *command],
            cwd=ROOT,
            env={**base, **env},
            stdout=open(log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_port(
    address: str, port: int, seconds: float, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((address, port)) == 0:
                return
        if proc is not None and proc.poll() is not None:
            raise TopologyError(f"the process for {address}:{port} exited ({proc.returncode})")
        time.sleep(0.2)
    raise TopologyError(f"nothing answered on {address}:{port} within {seconds} s")


def app_env(
    *,
    database_url: str,
    broker_url: str,
    storage: dict,
    host: str,
    allowed_hosts: str,
    secret_key: str,
    owner_url: str = "",
) -> dict:
    """The environment of an application host (web, worker, beat): the variables of
    docker/compose.yaml, and its own MEDIA_ROOT and model cache (which must stay unused for
    files every host needs: those go to the storage)."""
    own = STATE / "hosts" / host
    return {
        "DJANGO_SETTINGS_MODULE": "pricing_saas.settings.production",
        "SECRET_KEY": secret_key,
        "DATABASE_URL": database_url,
        **({"DATABASE_OWNER_URL": owner_url} if owner_url else {}),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": broker_url,
        "CACHE_URL": broker_url.rsplit("/", 1)[0] + "/2",
        "ALLOWED_HOSTS": allowed_hosts,
        "CSRF_TRUSTED_ORIGINS": f"http://{allowed_hosts.split(',')[0]}:8000",
        "PUBLIC_BASE_URL": f"http://{allowed_hosts.split(',')[0]}:8000",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "EMAIL_URL": "consolemail://",
        "MEDIA_ROOT": str(own / "media"),
        "ML_MODEL_CACHE": str(own / "model-cache"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **storage,
    }


def s3_env(endpoint: str, bucket: str) -> dict:
    return {
        "MEDIA_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "topology",
        "AWS_SECRET_ACCESS_KEY": "topology-secret",
    }


def create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="topology",
        aws_secret_access_key="topology-secret",  # noqa: S106 (moto's local server)
    ).create_bucket(Bucket=bucket)


def web_command(address: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "pricing_saas.wsgi:application",
            "--bind", f"{address}:8000", "--workers", "2", "--threads", "4",
            "--timeout", "120"]  # fmt: skip


def worker_command(name: str, queues: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "pricing_saas", "worker", "-n", f"{name}@%h",
            "-Q", queues, "--concurrency", "1", "--without-gossip", "--without-mingle",
            "-l", "INFO"]  # fmt: skip


# --- the whole topology (the command) -------------------------------------------------------


def _postgres_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in versions:
        if (folder / name).exists():
            return str(folder / name)
    raise TopologyError(f"{name} not found (Debian: apt-get install postgresql)")


def up() -> None:
    why = namespaces_allowed()
    if why:
        raise SystemExit(f"cannot build the topology here: {why}")
    net = Network()
    net.remove()
    net.create_bridge()
    for host in HOSTS:
        net.add_host(host)
    logs, pids = STATE / "logs", {}
    secret = secrets.token_urlsafe(50)
    # db: a Postgres cluster of its own, listening on the db host's address only.
    data = STATE / "db"
    if not data.exists():
        data.mkdir(parents=True)
        shutil.chown(data, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", _postgres_binary("initdb"), "-D",
                        str(data), "-A", "trust", "-U", "postgres"], check=True,
                       capture_output=True)  # fmt: skip
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n")
    db = net.spawn("db", ["runuser", "-u", "postgres", "--", _postgres_binary("postgres"), "-D",
                          str(data), "-c", f"listen_addresses={net.address('db')}",
                          "-c", "unix_socket_directories="], {}, logs / "db.log")  # fmt: skip
    pids["db"] = db.pid
    wait_for_port(net.address("db"), 5432, 60, db)
    # Protected mode off: the broker listens on the private bridge, for the app hosts.
    broker_command = ["redis-server", "--bind", net.address("broker"), "--port", "6379",
                      "--protected-mode", "no", "--appendonly", "yes",
                      "--dir", str(STATE)]  # fmt: skip
    broker = net.spawn("broker", broker_command, {}, logs / "broker.log")
    pids["broker"] = broker.pid
    storage_command = [sys.executable, "-m", "moto.server", "-H", net.address("storage"),
                       "-p", "9000"]  # fmt: skip
    storage = net.spawn("storage", storage_command, {}, logs / "storage.log")
    pids["storage"] = storage.pid
    wait_for_port(net.address("broker"), 6379, 30, broker)
    wait_for_port(net.address("storage"), 9000, 60, storage)
    endpoint = f"http://{net.address('storage')}:9000"
    create_bucket(endpoint, "pricing-media")
    password = secrets.token_urlsafe(24)
    database = f"postgres://pricing_app:{password}@{net.address('db')}:5432/pricing_saas"
    pooled = f"postgres://pricing_app:{password}@{net.address('pool')}:6432/pricing_saas"
    owner = f"postgres://pricing_owner@{net.address('db')}:5432/pricing_saas"
    env = app_env(
        database_url=database,
        owner_url=owner,
        broker_url=f"redis://{net.address('broker')}:6379/0",
        storage=s3_env(endpoint, "pricing-media"),
        host="setup",
        allowed_hosts=f"{net.address('web')},localhost",
        secret_key=secret,
    )
    # The roles, the database and the migrations, run from the web host.
    admin = f"postgres://postgres@{net.address('db')}:5432/postgres"
    for step in ([sys.executable, "-m", "pricing_saas.dbsetup"],
                 [sys.executable, "manage.py", "migrate", "--noinput"]):  # fmt: skip
        done = net.spawn("web", step, {**env, "ADMIN_DATABASE_URL": admin}, logs / "setup.log")
        if done.wait(600) != 0:
            raise SystemExit(f"{' '.join(step)} failed: see {logs / 'setup.log'}")
    # The application hosts reach Postgres through the pool; migrations went directly.
    pool = net.spawn(
        "pool",
        ["sh", str(ROOT / "docker" / "pgbouncer" / "entrypoint.sh")],
        {"DB_HOST": net.address("db"), "APP_DB_PASSWORD": password,
         "PGBOUNCER_CONF_DIR": str(STATE / "pool"), "PGBOUNCER_USER": "postgres"},
        logs / "pool.log",
    )  # fmt: skip
    pids["pool"] = pool.pid
    wait_for_port(net.address("pool"), 6432, 30, pool)
    env = {**env, "DATABASE_URL": pooled}
    hosts = {
        "web": web_command(net.address("web")),
        "worker1": worker_command("worker1", WORKER_QUEUES),
        "worker2": worker_command("worker2", WORKER_QUEUES),
        "train": worker_command("train", "ml_train"),
        "beat": [sys.executable, "-m", "celery", "-A", "pricing_saas", "beat", "--scheduler",
                 "django_celery_beat.schedulers:DatabaseScheduler", "-l", "INFO",
                 "--schedule", str(STATE / "celerybeat-schedule")],
    }  # fmt: skip
    for host, command in hosts.items():
        own = _own(host)
        if "worker" in command:
            own |= worker_metrics_env(host, net.address(host))
        pids[host] = net.spawn(host, command, {**env, **own}, logs / f"{host}.log").pid
    wait_for_port(net.address("web"), 8000, 120)
    (STATE / "pids.json").write_text(json.dumps(pids))
    print(f"portal: http://{net.address('web')}:8000/  (logs: {logs})")
    print(
        "a tenant and its owner: ip netns exec pricing-web <the web host's environment> "
        ".venv/bin/python manage.py create_tenant SLUG --owner you@example.com"
    )


def worker_metrics_env(host: str, address: str) -> dict:
    """A worker host serves its task and job metrics on address:9100 (tenants/metrics.py),
    its prefork children's counts kept in a folder of its own."""
    return {
        "WORKER_METRICS_PORT": str(WORKER_METRICS_PORT),
        "WORKER_METRICS_ADDR": address,
        "PROMETHEUS_MULTIPROC_DIR": str(STATE / "metrics" / host),
    }


def _own(host: str) -> dict:
    own = STATE / "hosts" / host
    return {"MEDIA_ROOT": str(own / "media"), "ML_MODEL_CACHE": str(own / "model-cache")}


def down() -> None:
    pids = json.loads((STATE / "pids.json").read_text()) if (STATE / "pids.json").exists() else {}
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    time.sleep(2)
    Network().remove()
    (STATE / "pids.json").unlink(missing_ok=True)
    print("topology down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down"])
    args = parser.parse_args()
    up() if args.action == "up" else down()


if __name__ == "__main__":
    main()
