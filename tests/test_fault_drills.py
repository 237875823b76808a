"""Fault drills on real workers, a real Redis and a real gunicorn: a worker killed with SIGKILL in
the middle of a reprice, of a demand training and of the text model's fine-tune on their own
`ml_train` queue, of an import and of a publication; the broker restarted with tasks in its queue; the database restarted during a
reprice; a web process killed while it receives an upload.

What makes them come out right (docs/architecture.md, "Celery"): tasks acknowledge late
(`task_acks_late`, `task_reject_on_worker_lost`), so a task whose worker died is redelivered;
Redis redelivers it after the visibility timeout, which is longer than any task's hard time
limit plus slack (`tenants.jobs.TimeLimit`), so the redelivered task always finds its job
stale and its first worker certainly gone; `Job.claim` then runs it again where that is
harmless (a publication: changes already sent are confirmed, never sent twice) or marks it
failed with the reason (a reprice, a training run: the next job starts clean, the model in
force stays). A job's rows are written in one transaction, so a killed job leaves none
half-written. A job whose database connection breaks is failed with that reason once the
database answers (`tenants.jobs.fail_once_the_database_answers`). A web process spools a large
upload in a folder of its own, swept once the process is gone (`pricing_saas.web.uploads`).

A drill cannot wait hours: the first worker runs with the production timeout; once it is
killed, the test moves the job's start back past its stale limit (the time that the production
timeout lets pass) and starts a second worker whose visibility timeout is two seconds. A kill
waits for a state the job reaches in the database (or a file the upload reaches on disk), never
a fixed time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from celery import Celery
from django.utils import timezone

from ml.models import ModelVersion
from pricing_saas.catalog.importer import import_rows
from pricing_saas.catalog.models import Product
from pricing_saas.pricing import approvals, services
from pricing_saas.pricing.models import PriceChange, Publication, Recommendation, RepriceJob
from tenants.context import tenant_context
from tenants.jobs import DATABASE_LOST_MESSAGE, LOST_MESSAGE

from .factories import TenantFactory
from .test_celery_worker import _free_port, process_env, redis_server_or_fail

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


class Redis:
    """A private redis-server that keeps its data on disk (append-only file, as a production
    broker must) and can be restarted on the same port."""

    def __init__(self, folder: Path):
        self.server, self.folder, self.port = redis_server_or_fail(), folder, _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder),
             "--logfile", str(self.folder / "redis.log")],
        )  # fmt: skip
        _wait(lambda: self._answers(), 15, "redis-server to start")

    def _answers(self) -> bool:
        import socket

        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: Redis writes its append-only file and exits
            self.proc.wait(15)
            self.proc = None


@pytest.fixture
def redis(tmp_path):
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop()


def _wait(condition: Callable[[], object], seconds: float, what: str, logs=None):
    """Poll `condition` until it holds; on time out fail, with the tails of `logs` (the
    workers') so that a drill failing in CI says what the workers did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {seconds} s waiting for {what}" + (logs.tails() if logs else ""))


class Workers:
    """Celery workers in subprocesses (solo pool: the process that runs the task, so SIGKILL
    kills the task where it stands, as a lost machine would)."""

    def __init__(self, broker: str, folder: Path):
        self.broker, self.folder, self.procs, self.logs = broker, folder, [], []

    def tails(self, chars: int = 3000) -> str:
        """The end of each worker's output (a file: a pipe nobody reads would block a worker
        that writes more than its buffer)."""
        return "".join(
            f"\n--- worker {i} ---\n{log.read_text(errors='replace')[-chars:]}"
            for i, log in enumerate(self.logs)
        )

    def start(self, queues: str, **env) -> subprocess.Popen:
        log = self.folder / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "pricing_saas", "worker", "--pool=solo",
                 "-Q", queues, "--without-heartbeat", "--without-gossip", "--without-mingle",
                 "-l", "WARNING"],
                cwd=ROOT,
                env=process_env(self.broker, **env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def workers(redis, tmp_path):
    pool = Workers(redis.url, tmp_path)
    yield pool
    pool.stop()


@pytest.fixture
def client(redis):
    """A Celery client of the drill's Redis, closed before the Redis stops (`reconnect()` after
    a restart)."""

    class Client:
        app: Celery

        def reconnect(self):
            self.close()
            self.app = Celery(broker=redis.url, backend=redis.url, set_as_current=False)
            return self.app

        def close(self):
            if getattr(self, "app", None) is not None:
                self.app.close()
                self.app = None
                gc.collect()

    handle = Client()
    handle.reconnect()
    yield handle
    handle.close()


def _shop(tenant, skus: int = 300, days: int = 120) -> None:
    """A catalog with a price history whose demand responds to price (a few seconds of work
    for a reprice)."""
    import numpy as np

    rng = np.random.default_rng(7)
    products = [
        {"sku": f"D{i}", "title": f"Drill product {i}", "price": 20, "cost": 9 + i % 4,
         "category": f"c{i % 5}"}
        for i in range(skus)
    ]  # fmt: skip
    sales = []
    for i in range(skus):
        for day in range(days):
            price = 20 * float(np.exp(rng.normal(0, 0.1)))
            units = int(rng.poisson(5 * (price / 20) ** -2.0))
            if units:
                date = (dt.date(2025, 1, 1) + dt.timedelta(days=day)).isoformat()
                sales.append(
                    {"date": date, "sku": f"D{i}", "units": units, "price": round(price, 2)}
                )
    with tenant_context(tenant):
        import_rows(kind="products", rows=products)
        import_rows(kind="sales", rows=sales)


def _queued_reprice(client) -> tuple:
    """A tenant with a shop (approvals by hand) and its reprice job, sent to the `reprice`
    queue; returns both."""
    tenant = TenantFactory()
    _shop(tenant)
    with tenant_context(tenant):
        approvals.update_policy(auto_approve=False)
        job = services.start_reprice(enqueue=False)
    client.app.send_task("pricing.reprice", args=[tenant.pk, job.pk], queue="reprice")
    return tenant, job


def _backdate(tenant, model, pk: int) -> None:
    """Let the time pass that the production visibility timeout waits (past the stale limit)."""
    started = timezone.now() - model.time_limit.stale_after - dt.timedelta(seconds=5)
    with tenant_context(tenant):
        assert model.objects.filter(pk=pk).update(started_at=started) == 1


def _job(tenant, model, pk: int):
    with tenant_context(tenant):
        return model.objects.get(pk=pk)


def _training_demand(job) -> bool:
    """The reprice job is training the demand model it needs (its longest step)."""
    return (
        job.demand_version_id is not None
        and ModelVersion.objects.filter(
            pk=job.demand_version_id, status=ModelVersion.Status.TRAINING
        ).exists()
    )


def _kill_while_running(
    workers, tenant, model, pk: int, queue: str, into: float = 0, when=None
) -> None:
    """A worker on `queue` takes the job; once it runs (and `when(job)` holds, and `into`
    seconds later), SIGKILL."""
    first = workers.start(queue)
    running = model.states.running

    def ready():
        with tenant_context(tenant):
            job = model.objects.get(pk=pk)
            return job.status == running and (when is None or when(job))

    _wait(ready, 120, f"a worker to start {model}", workers)
    time.sleep(into)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert _job(tenant, model, pk).status == running  # nobody has said otherwise yet


REDELIVER_AFTER_S = 2  # the second worker's visibility timeout


def _unacknowledged_for(broker: str) -> float:
    """How long ago the oldest unacknowledged delivery was made (0: there is none)."""
    import redis

    client = redis.Redis.from_url(broker)
    try:
        scores = [score for _tag, score in client.zrange("unacked_index", 0, -1, withscores=True)]
    finally:
        client.close()
    return time.time() - min(scores) if scores else 0.0


def _redeliver(workers, tenant, model, pk: int, queue: str, seconds: float) -> object:
    """Let the production timeout's time pass, start a second worker that takes the
    unacknowledged task back, and wait until the job has finished; returns the job.

    Kombu's Redis transport gives unacknowledged deliveries back when a worker starts polling
    and then only every 100 s: the second worker starts once the killed delivery is older than
    its visibility timeout, or a worker that boots fast finds it too young and waits 100 s."""
    _backdate(tenant, model, pk)
    _wait(
        lambda: _unacknowledged_for(workers.broker) > REDELIVER_AFTER_S + 0.5,
        30,
        "the killed delivery, unacknowledged, to pass the visibility timeout",
        workers,
    )
    workers.start(queue, CELERY_VISIBILITY_TIMEOUT=str(REDELIVER_AFTER_S))
    _wait(lambda: _job(tenant, model, pk).is_finished, seconds, f"the redelivered {model}", workers)
    return _job(tenant, model, pk)


def test_a_reprice_whose_worker_is_killed_is_failed_with_the_reason_and_leaves_no_rows(
    redis, workers, client
):
    tenant, job = _queued_reprice(client)
    # killed in the demand fit it runs first (a point every machine reaches, however fast)
    _kill_while_running(workers, tenant, RepriceJob, job.pk, "reprice", when=_training_demand)
    with tenant_context(tenant):
        rows = Recommendation.objects.filter(job=job.pk).count()
        assert rows in (0, Product.objects.count())  # all or nothing, never half
    lost = _redeliver(workers, tenant, RepriceJob, job.pk, "reprice", 90)
    with tenant_context(tenant):
        assert lost.status == RepriceJob.Status.FAILED and lost.message == LOST_MESSAGE
        assert Recommendation.objects.filter(job=lost).count() == rows  # nothing added
        # The demand run it was training in the dead worker is not left blocking the next.
        assert not ModelVersion.objects.filter(status__in=ModelVersion.states.active).exists()
        again = services.start_reprice(enqueue=False)  # the dead job blocks nothing
        assert again.pk != job.pk
    client.app.send_task("pricing.reprice", args=[tenant.pk, again.pk], queue="reprice")
    _wait(lambda: _job(tenant, RepriceJob, again.pk).is_finished, 180, "the next reprice", workers)
    with tenant_context(tenant):
        done = RepriceJob.objects.get(pk=again.pk)
        assert done.status == RepriceJob.Status.SUCCEEDED, done.message
        per_product = Recommendation.objects.filter(job=done).values("product").distinct()
        assert Recommendation.objects.filter(job=done).count() == per_product.count()
        assert per_product.count() == Product.objects.count()


def test_a_publication_whose_worker_is_killed_is_finished_by_the_next_and_nothing_twice(
    redis, workers, client
):
    tenant = TenantFactory()
    count = 4000  # enough to be killed in the middle of
    rows = [
        {"sku": f"P{i}", "title": f"Published {i}", "price": "10.00", "cost": "4"}
        for i in range(count)
    ]
    with tenant_context(tenant):
        import_rows(kind="products", rows=rows)
        publication = Publication.objects.create(tenant=tenant, publisher="csv", changes=count)
        PriceChange.objects.bulk_create(
            PriceChange(
                tenant=tenant,
                product=product,
                old_price=product.price,
                new_price=Decimal("11.00") + Decimal(product.pk % 7),
                publication=publication,
            )
            for product in Product.objects.all()
        )
    client.app.send_task("pricing.publish", args=[tenant.pk, publication.pk], queue="publish")
    _kill_while_running(workers, tenant, Publication, publication.pk, "publish")
    done = _redeliver(workers, tenant, Publication, publication.pk, "publish", 120)
    with tenant_context(tenant):
        assert done.status == Publication.Status.SUCCEEDED, done.message
        assert done.attempts == 2  # the killed run and the one that finished it
        changes = PriceChange.objects.filter(publication=done)
        assert changes.count() == count  # none lost, none added
        assert not changes.exclude(status=PriceChange.Status.PUBLISHED).exists()
        assert PriceChange.objects.count() == count  # no second change for any product
        for change in changes.select_related("product"):
            assert change.product.price == change.new_price


def test_an_import_whose_worker_is_killed_wrote_nothing_and_is_run_again_by_the_next(
    redis, workers, client, monkeypatch
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from pricing_saas.catalog import services as catalog_services
    from pricing_saas.catalog.models import ImportJob

    monkeypatch.setattr(catalog_services, "_enqueue", lambda job: None)  # sent below, to Redis
    tenant = TenantFactory()
    count = 100_000
    body = "sku,title,price,cost\n" + "".join(
        f"K{i},Imported product {i},{10 + i % 50}.50,{4 + i % 7}\n" for i in range(count)
    )
    upload = SimpleUploadedFile("catalog.csv", body.encode(), content_type="text/csv")
    with tenant_context(tenant):
        job = catalog_services.create_import_job(
            kind="products", upload=upload, options=catalog_services.options_from({})
        )
        assert job.status == ImportJob.Status.QUEUED
    client.app.send_task("catalog.run_import", args=[tenant.pk, job.pk], queue="ingest")
    # killed inside the import's transaction (its statement on the stage table in flight: a
    # fixed delay after the job shows running let a loaded machine see it commit first)
    _kill_while_running(workers, tenant, ImportJob, job.pk, "ingest", when=_importing)
    with tenant_context(tenant):
        assert Product.objects.count() == 0  # one transaction: nothing half-written
    done = _redeliver(workers, tenant, ImportJob, job.pk, "ingest", 240)
    with tenant_context(tenant):
        assert done.status == ImportJob.Status.SUCCEEDED, done.message
        assert Product.objects.count() == count  # each row once
        assert Product.objects.get(sku="K77").price == Decimal("37.50")


def _importing(job) -> bool:
    """Whether another session is inside an import's transaction, on its stage or clean
    table."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname ="
            " current_database() AND state IN ('active', 'idle in transaction') AND (query LIKE"
            " %s OR query LIKE %s)",
            ["%import_stage_%", "%import_clean_%"],
        )
        return cur.fetchone()[0] > 0


def _stored_models() -> set[Path]:
    """The model artifacts in the media storage (the folder outlives a test: compare sets)."""
    from django.conf import settings

    return set(Path(settings.MEDIA_ROOT).glob("models/**/*.*"))


def test_a_training_killed_on_its_queue_is_failed_and_the_model_in_force_stays(
    redis, workers, client
):
    from ml import services as ml_services
    from ml.models import Elasticity
    from ml.tasks import train_model_version

    tenant = TenantFactory()
    _shop(tenant)
    demand = ModelVersion.Kind.DEMAND
    with tenant_context(tenant):
        in_force = ml_services.start_training(kind=demand, enqueue=False)
        in_force = ml_services.run_training(version_id=in_force.pk)  # in this process
        assert in_force.status == ModelVersion.Status.PROMOTED, in_force.message
        estimates = Elasticity.objects.filter(model_version=in_force).count()
        assert estimates == Product.objects.count()
        killed = ml_services.start_training(kind=demand, enqueue=False)
    stored = _stored_models()
    client.app.send_task(train_model_version.name, args=[tenant.pk, killed.pk], queue="ml_train")
    # killed in the fit: `training` is committed when the worker claims the run, and the fit
    # that follows lasts seconds
    _kill_while_running(workers, tenant, ModelVersion, killed.pk, "ml_train")
    lost = _redeliver(workers, tenant, ModelVersion, killed.pk, "ml_train", 60)
    with tenant_context(tenant):
        assert lost.status == ModelVersion.Status.FAILED and lost.message == LOST_MESSAGE
        assert not lost.artifact and _stored_models() == stored
        assert not Elasticity.objects.filter(model_version=lost).exists()  # nothing half-written
        current = ModelVersion.objects.get(kind=demand, status=ModelVersion.Status.PROMOTED)
        assert current.pk == in_force.pk  # the model in force stays in force
        assert Elasticity.objects.filter(model_version=in_force).count() == estimates
        after = ml_services.start_training(kind=demand, enqueue=False)  # the dead run blocks none
        assert after.pk != lost.pk and after.version == lost.version + 1
    client.app.send_task(train_model_version.name, args=[tenant.pk, after.pk], queue="ml_train")
    _wait(
        lambda: _job(tenant, ModelVersion, after.pk).is_finished, 60, "the next training", workers
    )
    with tenant_context(tenant):
        done = ModelVersion.objects.get(pk=after.pk)
        assert done.status == ModelVersion.Status.PROMOTED, done.message
        rows = Elasticity.objects.filter(model_version=done)
        assert rows.count() == rows.values("product").distinct().count() == estimates
        assert _stored_models() - stored == {Path(done.artifact.path)}
        assert ModelVersion.objects.get(pk=in_force.pk).status == ModelVersion.Status.READY


def test_a_text_model_fine_tune_killed_on_its_queue_is_failed_and_the_model_in_force_stays(
    redis, workers, client
):
    """The BERT-family fine-tune (MiniLM) killed between its training steps: the run is failed
    on redelivery, no artifact and no reference price of it exist, and the text model in force
    (the TF-IDF baseline here) stays in force with its reference prices."""
    from ml import services as ml_services
    from ml.models import ReferencePrice
    from ml.tasks import train_model_version

    tenant = TenantFactory()
    kinds = ("wool scarf", "steel kettle", "oak shelf", "silk tie", "glass vase", "leather belt")
    rows = [
        {"sku": f"T{i}", "title": f"{kinds[i % 6]} model {i} size {1 + i % 5}",
         "price": f"{(10 + 7 * (i % 6)) * (1 + 0.1 * (i % 5)):.2f}", "category": kinds[i % 6]}
        for i in range(240)
    ]  # fmt: skip
    text = ModelVersion.Kind.TEXT
    with tenant_context(tenant):
        import_rows(kind="products", rows=rows)
        in_force = ml_services.start_training(kind=text, trainer="baseline", enqueue=False)
        in_force = ml_services.run_training(version_id=in_force.pk, sync=True)
        assert in_force.status == ModelVersion.Status.PROMOTED, in_force.message
        references = set(
            ReferencePrice.objects.filter(model_version=in_force).values_list("product", "price")
        )
        assert len(references) == len(rows)
        killed = ml_services.start_training(kind=text, trainer="finetune", epochs=3, enqueue=False)
    stored = _stored_models()
    client.app.send_task(train_model_version.name, args=[tenant.pk, killed.pk], queue="ml_train")
    # killed between fine-tuning steps: the run reports every fifth step
    _kill_while_running(
        workers, tenant, ModelVersion, killed.pk, "ml_train",
        when=lambda v: 0 < (v.progress or {}).get("step", 0) < (v.progress or {}).get(
            "total_steps", 0
        ),
    )  # fmt: skip
    lost = _redeliver(workers, tenant, ModelVersion, killed.pk, "ml_train", 60)
    with tenant_context(tenant):
        assert lost.status == ModelVersion.Status.FAILED and lost.message == LOST_MESSAGE
        assert not lost.artifact and _stored_models() == stored  # nothing half-written
        assert not ReferencePrice.objects.filter(model_version=lost).exists()
        current = ModelVersion.objects.get(kind=text, status=ModelVersion.Status.PROMOTED)
        assert current.pk == in_force.pk  # the model in force stays in force
        assert (
            set(
                ReferencePrice.objects.filter(model_version=in_force).values_list(
                    "product", "price"
                )
            )
            == references
        )
        after = ml_services.start_training(kind=text, trainer="baseline", enqueue=False)
        assert after.pk != lost.pk  # the dead run blocks nothing
    client.app.send_task(train_model_version.name, args=[tenant.pk, after.pk], queue="ml_train")
    _wait(
        lambda: _job(tenant, ModelVersion, after.pk).is_finished, 60, "the next training", workers
    )
    with tenant_context(tenant):
        done = ModelVersion.objects.get(pk=after.pk)
        assert done.status in (ModelVersion.Status.READY, ModelVersion.Status.PROMOTED), (
            done.message
        )
        assert done.artifact


def _restart_database(seconds: float) -> int:
    """What a Postgres restart is to every client of the test database: each of its connections
    but this test's own is cut (`pg_terminate_backend`) and new ones are refused (`ALLOW
    CONNECTIONS false`) for `seconds`, then allowed again. Returns how many were cut."""
    import psycopg2
    from django.db import connection
    from psycopg2 import sql

    from .test_dbsetup import admin_dsn

    name = connection.settings_dict["NAME"]
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        own = cur.fetchone()[0]
    admin = psycopg2.connect(admin_dsn())
    admin.autocommit = True
    database = sql.Identifier(name)
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database))
            try:
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> %s",
                    [name, own],
                )
                cut = cur.fetchone()[0]
                time.sleep(seconds)  # the length of the outage, not a wait for the worker
            finally:
                cur.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database))
    finally:
        admin.close()
    return cut


def test_a_reprice_through_a_database_restart_fails_naming_the_database_and_writes_nothing(
    redis, workers, client
):
    """On the suite's own test database, through a superuser connection (ADMIN_DATABASE_URL in
    CI, the embedded server's `postgres` locally): a private cluster restarted with pg_ctl would
    need its own roles, schema and data for the worker, where cutting every connection of the
    test database and refusing new ones is, to the worker, the same restart."""
    tenant, job = _queued_reprice(client)
    worker = workers.start("reprice")

    def training():
        with tenant_context(tenant):
            job = RepriceJob.objects.get(pk=job_pk)
            return job.status == RepriceJob.Status.RUNNING and _training_demand(job)

    job_pk = job.pk
    _wait(training, 120, "the reprice to train its demand model", workers)
    assert _restart_database(seconds=3) >= 1  # the worker's connection among them
    _wait(lambda: _job(tenant, RepriceJob, job.pk).is_finished, 60, "the reprice to end", workers)
    with tenant_context(tenant):
        failed = RepriceJob.objects.get(pk=job.pk)
        assert failed.status == RepriceJob.Status.FAILED, failed.message
        assert failed.message.startswith(DATABASE_LOST_MESSAGE), failed.message
        assert not Recommendation.objects.filter(job=failed).exists()  # none half-written
        run = ModelVersion.objects.get(pk=failed.demand_version_id)
        assert run.status == ModelVersion.Status.FAILED
        assert run.message.startswith(DATABASE_LOST_MESSAGE), run.message
        assert not run.artifact
        assert not ModelVersion.objects.filter(status__in=ModelVersion.states.active).exists()
        again = services.start_reprice(enqueue=False)
        assert again.pk != job.pk
    assert worker.poll() is None  # the worker lives on and takes the next reprice
    client.app.send_task("pricing.reprice", args=[tenant.pk, again.pk], queue="reprice")
    _wait(lambda: _job(tenant, RepriceJob, again.pk).is_finished, 120, "the next reprice", workers)
    with tenant_context(tenant):
        done = RepriceJob.objects.get(pk=again.pk)
        assert done.status == RepriceJob.Status.SUCCEEDED, done.message
        rows = Recommendation.objects.filter(job=done)
        assert rows.count() == rows.values("product").distinct().count()
        assert rows.count() == Product.objects.count()


class Gunicorn:
    """The web server as production runs it (one sync worker), on a free port."""

    def __init__(self, folder: Path, broker: str, **env):
        self.port, self.folder = _free_port(), folder
        self.log = open(folder / "gunicorn.log", "ab")  # noqa: SIM115 (closed by stop)
        self.master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "pricing_saas.wsgi:application",
             "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--timeout", "60"],
            cwd=ROOT,
            env=process_env(broker, **env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def worker(self, other_than: int | None = None) -> int:
        """The pid of the worker process (gunicorn starts a new one once it has reaped one that
        died)."""

        def one():
            children = _children(self.master.pid)
            return children[0] if len(children) == 1 and children != [other_than] else None

        return _wait(one, 30, "a gunicorn worker")

    def stop(self) -> None:
        self.master.terminate()
        try:
            self.master.wait(20)
        except subprocess.TimeoutExpired:
            self.master.kill()
        self.log.close()


def _children(pid: int) -> list[int]:
    """The live (not zombie) child processes of `pid`, from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(parent) == pid and state != "Z":
            children.append(int(stat.parent.name))
    return children


def _stored_uploads() -> set[Path]:
    """The uploads in the media storage (the folder outlives a test: compare sets)."""
    from django.conf import settings

    return set(Path(settings.MEDIA_ROOT).glob("imports/**/*.*"))


def _multipart(fields: dict[str, str], name: str, content: bytes) -> tuple[str, bytes]:
    boundary = "drill-boundary-7f3a"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        for key, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    body = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def test_a_web_process_killed_during_an_upload_leaves_no_job_no_rows_and_no_file(
    redis, workers, world_a, tmp_path, settings
):
    """gunicorn as production runs it receives half of a 4 MB CSV through the API, spooling it
    to disk, and its worker is killed; gunicorn starts another."""
    import socket

    import httpx

    from pricing_saas.catalog import tasks as catalog_tasks
    from pricing_saas.catalog.models import ImportJob

    count = 100_000  # about 4 MB: more than Django keeps in memory, so it goes to a file
    content = "sku,title,price,cost\n" + "".join(
        f"W{i},Uploaded product {i},{10 + i % 50}.50,{4 + i % 7}\n" for i in range(count)
    )
    content_type, body = _multipart({"kind": "products"}, "catalog.csv", content.encode())
    settings.UPLOAD_TEMP_DIR = str(tmp_path / "spool")
    spooled = lambda: [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]  # noqa: E731
    key = world_a.keys["admin"]
    stored = _stored_uploads()
    server = Gunicorn(tmp_path, redis.url, UPLOAD_TEMP_DIR=settings.UPLOAD_TEMP_DIR)
    try:
        killed = server.worker()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                f"POST /api/v1/imports/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"Authorization: Api-Key {key}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[: len(body) // 2]
            )
            # killed once it writes the file's part of the body to disk
            _wait(lambda: [p for p in spooled() if p.stat().st_size], 30, "the upload spooled")
            os.kill(killed, signal.SIGKILL)
            with contextlib.suppress(ConnectionResetError):  # reset: bytes left unread
                assert sock.recv(1024) == b""  # closed with no answer
        assert server.worker(other_than=killed)  # gunicorn's next worker
        (partial,) = spooled()  # what the dead worker was receiving, in its own folder
        assert partial.parent.name.endswith(f"-{killed}")
        with tenant_context(world_a.tenant):
            assert not ImportJob.objects.exists()  # no job queued or running forever
            assert not Product.objects.exists()
        assert _stored_uploads() == stored  # nothing reached the media storage
        catalog_tasks.sweep_orphan_uploads_all()  # the hourly sweep
        assert not partial.parent.exists()
        workers.start("ingest")
        answer = httpx.post(
            f"http://127.0.0.1:{server.port}/api/v1/imports/",
            headers={"Authorization": f"Api-Key {key}", "Content-Type": content_type},
            content=body,
            timeout=60,
        )
        assert answer.status_code == 202, answer.text
        assert not spooled()  # deleted when its request ended
    finally:
        server.stop()
    job = answer.json()["id"]
    _wait(lambda: _job(world_a.tenant, ImportJob, job).is_finished, 60, "the next import")
    with tenant_context(world_a.tenant):
        done = ImportJob.objects.get(pk=job)
        assert done.status == ImportJob.Status.SUCCEEDED, done.message
        assert ImportJob.objects.count() == 1
        assert Product.objects.count() == count  # each row once
        assert Product.objects.get(sku="W77").price == Decimal("37.50")


def test_tasks_queued_before_a_broker_restart_run_once_after_it(redis, workers, client):
    tenant = TenantFactory()
    sent = [
        client.app.send_task(
            "tenants.ping", args=[tenant.pk], kwargs={"echo": f"m{i}"}, queue="default"
        )
        for i in range(5)
    ]
    ids = [result.id for result in sent]
    del sent
    client.close()
    redis.stop()  # with five tasks waiting and no worker
    redis.start()
    client.reconnect()
    workers.start("default")
    echoes = sorted(client.app.AsyncResult(i).get(timeout=90)["echo"] for i in ids)
    assert echoes == [f"m{i}" for i in range(5)]
    time.sleep(1)
    with client.app.connection_for_read() as conn:
        left = conn.default_channel.client.llen("default")
    assert left == 0  # nothing left to run a second time
