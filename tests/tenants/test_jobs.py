"""The shared job model (tenants/jobs.py), on the four real job tables: claiming under a lock,
stale after the task's declared time limit, progress, finish / fail / cancel, and the time
limits the Celery tasks run under."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import IntegrityError, InterfaceError, InternalError, OperationalError
from django.utils import timezone

from ml import tasks as ml_tasks
from ml.models import ModelVersion
from pricing_saas.catalog import tasks as catalog_tasks
from pricing_saas.catalog.models import ImportJob
from pricing_saas.pricing import services as pricing_services
from pricing_saas.pricing import tasks as pricing_tasks
from pricing_saas.pricing.models import Publication, RepriceJob
from tenants.context import tenant_context
from tenants.jobs import (
    DATABASE_LOST_MESSAGE,
    LOST_MESSAGE,
    CancellableJob,
    Job,
    connection_lost,
    fail_once_the_database_answers,
    retry_while_running,
)

pytestmark = pytest.mark.django_db
TEST_SETTINGS = "pricing_saas.settings.test"

REQUIRED = {  # the fields each job table needs besides its tenant
    RepriceJob: {},
    ModelVersion: {"kind": ModelVersion.Kind.TEXT, "version": 1, "requested_trainer": "baseline"},
    ImportJob: {"kind": ImportJob.Kind.PRODUCTS},
    Publication: {"publisher": "csv"},
}
JOBS = pytest.mark.parametrize("model", list(REQUIRED), ids=lambda m: m.__name__)
CANCELLABLE = pytest.mark.parametrize("model", [RepriceJob, ModelVersion], ids=lambda m: m.__name__)


def make(model: type[Job], **fields) -> Job:
    return model.objects.create(**{**REQUIRED[model], **fields})


def set_row(job: Job, **fields) -> None:
    """Change the row behind the job's back (another process, or time passing)."""
    type(job).objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()


def ago(limit: timedelta, seconds: float = 0):
    """The moment `limit` plus `seconds` ago (negative seconds: still within the limit)."""
    return timezone.now() - limit - timedelta(seconds=seconds)


@JOBS
def test_every_job_model_states_its_parts_among_its_choices(model):
    assert issubclass(model, Job)
    assert model._meta.get_field("status").choices == model.Status.choices
    states = model.states
    parts = [states.queued, states.running, states.succeeded, states.failed, *states.waiting]
    assert set(parts) <= set(model.Status.values)
    assert states.cancelled is None or states.cancelled in model.Status.values
    assert (states.cancelled is not None) == issubclass(model, CancellableJob)


@JOBS
def test_claiming_twice_runs_the_job_once(model, world_a):
    with tenant_context(world_a.tenant):
        job = make(model)
        assert job.is_active and not job.is_finished and job.started_at is None
        claimed, ok = model.claim(job.pk)
        assert ok and claimed.status == model.states.running and claimed.started_at is not None
        again, ok_again = model.claim(job.pk)
        assert not ok_again and again.status == model.states.running
        assert again.started_at == claimed.started_at  # left alone
        assert model.objects.get(pk=job.pk).status == model.states.running


@JOBS
def test_a_finished_job_is_never_claimed_nor_stale(model, world_a):
    with tenant_context(world_a.tenant):
        job = make(model)
        job.finish(message="done")
        set_row(job, created_at=ago(model.time_limit.stale_after, 60))
        assert job.is_finished and not job.is_stale()
        assert model.claim(job.pk) == (job, False)
        assert model.claim(job.pk, reclaim_stale=True)[1] is False


def test_an_import_waiting_for_its_mapping_is_neither_active_nor_finished(world_a):
    with tenant_context(world_a.tenant):
        job = make(ImportJob, status=ImportJob.Status.NEEDS_MAPPING)
        assert not job.is_active and not job.is_finished and not job.is_stale()
        assert ImportJob.claim(job.pk) == (job, False)
        with pytest.raises(ValueError):
            job.finish(status=ImportJob.Status.NEEDS_MAPPING)


@JOBS
def test_another_tenants_job_cannot_be_claimed(model, world_a, world_b):
    with tenant_context(world_a.tenant):
        job = make(model)
    with tenant_context(world_b.tenant):
        assert model.claim(job.pk) == (None, False)
    with tenant_context(world_a.tenant):
        assert model.objects.get(pk=job.pk).status == model.states.queued


def test_a_claim_makes_the_models_own_changes_under_the_lock(world_a):
    with tenant_context(world_a.tenant):
        publication, _ok = Publication.claim(make(Publication).pk)
        imported, _ok = ImportJob.claim(make(ImportJob).pk)
        assert Publication.objects.get(pk=publication.pk).attempts == 1
        assert ImportJob.objects.get(pk=imported.pk).phase == "reading"


@JOBS
def test_a_running_job_is_stale_after_its_declared_time_limit_and_then_reclaimable(model, world_a):
    limit = model.time_limit.stale_after
    assert limit == timedelta(seconds=model.time_limit.hard_s + model.time_limit.slack_s)
    with tenant_context(world_a.tenant):
        job, _ok = model.claim(make(model).pk)
        set_row(job, started_at=ago(limit, -60))  # a minute short of the limit
        assert not job.is_stale()
        assert model.claim(job.pk, reclaim_stale=True)[1] is False
        set_row(job, started_at=ago(limit, 1))
        assert job.is_stale()
        again, ok = model.claim(job.pk, reclaim_stale=True)
        assert ok and again.status == model.states.running and not again.is_stale()


@JOBS
def test_a_task_redelivered_after_its_worker_died_marks_the_stale_job_lost(model, world_a):
    """Without reclaim_stale (running again is not known to be harmless), the redelivered task
    fails the job with the reason at once instead of leaving it running."""
    with tenant_context(world_a.tenant):
        job, _ok = model.claim(make(model).pk)
        set_row(job, started_at=ago(model.time_limit.stale_after, 1))
        again, ok = model.claim(job.pk)
        assert not ok and again.status == model.states.failed and again.message == LOST_MESSAGE
        assert model.objects.get(pk=job.pk).status == model.states.failed
        assert model.claim(job.pk, reclaim_stale=True)[1] is False  # finished: never again


@pytest.mark.parametrize("train_limit_s", [None, 8 * 3600])
def test_the_brokers_visibility_timeout_outlasts_every_jobs_time_limit(train_limit_s):
    """Redis redelivers an unacknowledged task after the visibility timeout: only past every
    job's stale limit is its worker certainly gone (no task runs twice at once), also when an
    operator lets training run longer. The settings as a worker on Redis reads them (the tests
    themselves run on the filesystem transport)."""
    from django.apps import apps

    jobs = [m for m in apps.get_models() if issubclass(m, Job)]
    assert {RepriceJob, ModelVersion, ImportJob, Publication} <= set(jobs)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CELERY_VISIBILITY_TIMEOUT", "ML_TRAIN_TIME_LIMIT_S")
    }
    env |= {"CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "DJANGO_SETTINGS_MODULE": TEST_SETTINGS}
    if train_limit_s:
        env["ML_TRAIN_TIME_LIMIT_S"] = str(train_limit_s)
    code = (
        "import django; django.setup(); from django.apps import apps; "
        "from django.conf import settings; from tenants.jobs import Job; "
        "print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'], max("
        "m.time_limit.stale_after.total_seconds() for m in apps.get_models() "
        "if issubclass(m, Job)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    timeout, longest = map(float, out.stdout.strip().splitlines()[-1].split())
    assert timeout > longest


@JOBS
def test_a_queued_job_is_stale_counted_from_its_creation(model, world_a):
    with tenant_context(world_a.tenant):
        job = make(model)
        set_row(job, created_at=ago(model.time_limit.stale_after, -60))
        assert not job.is_stale()
        set_row(job, created_at=ago(model.time_limit.stale_after, 1))
        assert job.is_stale()


@JOBS
def test_lock_active_marks_a_stale_job_lost_and_returns_a_live_one(model, world_a):
    with tenant_context(world_a.tenant):
        job, _ok = model.claim(make(model).pk)
        assert model.lock_active() == job
        set_row(job, started_at=ago(model.time_limit.stale_after, 1))
        assert model.lock_active() is None
        job.refresh_from_db()
        assert job.status == model.states.failed and job.message == LOST_MESSAGE
        assert job.finished_at is not None and job.is_finished


@JOBS
def test_finish_and_fail_end_the_job_with_its_message_and_results(model, world_a):
    with tenant_context(world_a.tenant):
        done, _ok = model.claim(make(model).pk)
        done.finish(message="all good")
        failed, _ok = model.claim(make(model, **_next_version(model)).pk)
        failed.fail("it broke")
    assert (done.status, done.message) == (model.states.succeeded, "all good")
    assert (failed.status, failed.message) == (model.states.failed, "it broke")
    for job in (done, failed):
        assert job.finished_at >= job.started_at and job.is_finished and not job.is_active
        with pytest.raises(ValueError):
            job.finish(status=model.states.running)


def _next_version(model) -> dict:
    return {"version": 2} if model is ModelVersion else {}


def test_finish_takes_other_finished_states_and_result_fields(world_a):
    with tenant_context(world_a.tenant):
        publication, _ok = Publication.claim(make(Publication, changes=3).pk)
        publication.finish(status=Publication.Status.PARTIAL, published=2, failed=1)
        row = Publication.objects.get(pk=publication.pk)
    assert (row.status, row.published, row.failed) == (Publication.Status.PARTIAL, 2, 1)
    with pytest.raises(ValueError):
        publication.cancel("publications cannot be cancelled")


def test_progress_is_written_alone_and_keeps_a_concurrent_cancel_request(world_a):
    with tenant_context(world_a.tenant):
        job, _ok = RepriceJob.claim(make(RepriceJob).pk)
        other = RepriceJob.objects.get(pk=job.pk)  # a person pressing Cancel meanwhile
        assert other.request_cancel() and other.status == RepriceJob.Status.RUNNING
        job.set_progress(progress=0.5, phase="optimising")
        row = RepriceJob.objects.get(pk=job.pk)
        assert (row.progress, row.phase, row.cancel_requested) == (0.5, "optimising", True)
        assert job.progress == 0.5 and job.cancel_was_requested()
        version, _ok = ModelVersion.claim(make(ModelVersion).pk)
        version.set_progress(progress={"step": 3, "total_steps": 10})
        assert ModelVersion.objects.get(pk=version.pk).progress == {"step": 3, "total_steps": 10}


@CANCELLABLE
def test_request_cancel_by_state(model, world_a):
    with tenant_context(world_a.tenant):
        queued = make(model)
        assert queued.request_cancel()
        assert (queued.status, queued.message) == (
            model.states.cancelled,
            "cancelled before it started",
        )
        assert not queued.request_cancel()  # finished: nothing to cancel
        running, _ok = model.claim(make(model, **_next_version(model)).pk)
        assert running.request_cancel() and running.status == model.states.running
        assert running.cancel_was_requested()
        set_row(running, started_at=ago(model.time_limit.stale_after, 1))
        assert running.request_cancel()  # no worker would see the request: marked lost
        assert (running.status, running.message) == (model.states.failed, LOST_MESSAGE)


@pytest.mark.parametrize(
    "task, model",
    [
        (pricing_tasks.reprice, RepriceJob),
        (pricing_tasks.scheduled_reprice, RepriceJob),
        (pricing_tasks.publish, Publication),
        (catalog_tasks.run_import, ImportJob),
        (ml_tasks.train_model_version, ModelVersion),
    ],
    ids=lambda x: getattr(x, "name", None) or x.__name__,
)
def test_each_task_runs_under_the_time_limit_its_job_model_declares(task, model):
    assert (task.time_limit, task.soft_time_limit) == (
        model.time_limit.hard_s,
        model.time_limit.soft_s,
    )
    assert model.time_limit.soft_s < model.time_limit.hard_s


def test_a_running_reprice_asked_to_stop_ends_cancelled(world_a, monkeypatch):
    def reprice_until_cancelled(job):
        RepriceJob.objects.filter(pk=job.pk).update(cancel_requested=True)
        pricing_services._log(job, "optimising", 0.6)  # a step checks for the request
        raise AssertionError("the step did not stop the job")

    monkeypatch.setattr(pricing_services, "_reprice", reprice_until_cancelled)
    with tenant_context(world_a.tenant):
        job = pricing_services.start_reprice(enqueue=False)
        job = pricing_services.run_reprice(job_id=job.pk)
        row = RepriceJob.objects.get(pk=job.pk)
    assert (row.status, row.message) == (RepriceJob.Status.CANCELLED, "cancelled by a user")
    assert row.finished_at is not None and row.log[-1].endswith("cancelled")
    assert row.progress == 0.6 and row.phase == "optimising"


class _RetryAsked(Exception):
    def __init__(self, countdown, max_retries):
        self.countdown, self.max_retries = countdown, max_retries


class _Task:
    """What retry_while_running reads of a bound Celery task."""

    def __init__(self, eager=False, retries=0):
        self.request = SimpleNamespace(is_eager=eager, retries=retries)

    def retry(self, countdown, max_retries):
        return _RetryAsked(countdown, max_retries)


@JOBS
def test_a_delivery_that_finds_its_job_running_asks_again_once_it_would_be_stale(model, world_a):
    """A prefork child killed mid-task: Celery puts the task back at once, long before the job
    is stale. The delivery that finds it running asks again when it would be stale (then it is
    reclaimed or marked lost), never acknowledges it into oblivion."""
    with tenant_context(world_a.tenant):
        job, _ok = model.claim(make(model).pk)
        set_row(job, started_at=ago(model.time_limit.stale_after, -600))  # 10 min to go
        with pytest.raises(_RetryAsked) as asked:
            retry_while_running(_Task(retries=2), job)
        assert 595 <= asked.value.countdown <= 602 and asked.value.max_retries == 3
        retry_while_running(_Task(eager=True), job)  # eager (tests, demo): nothing to wait for
        job.finish(status=model.states.failed, message="done")
        retry_while_running(_Task(), job)  # finished: nothing to do
        retry_while_running(_Task(), None)


class _DriverError(Exception):
    """The driver's exception under Django's: its SQLSTATE (None: no answer from the server)."""

    def __init__(self, pgcode):
        super().__init__(pgcode)
        self.pgcode = pgcode


def _wrapped(cls, pgcode):
    exc = cls("from the driver")
    exc.__cause__ = _DriverError(pgcode)
    return exc


@pytest.mark.parametrize(
    ("exc", "lost"),
    [
        (_wrapped(OperationalError, None), True),  # server closed the connection unexpectedly
        (_wrapped(OperationalError, "57P01"), True),  # terminated, or a fast shutdown
        (_wrapped(OperationalError, "57P03"), True),  # the server is starting up
        (_wrapped(OperationalError, "08006"), True),  # connection failure
        (_wrapped(OperationalError, "57P05"), True),  # idle_session_timeout ended it
        (_wrapped(InternalError, "25P03"), True),  # idle_in_transaction_session_timeout
        (_wrapped(OperationalError, "53300"), True),  # too many connections, after a restart
        (_wrapped(InternalError, "25P02"), False),  # a failed transaction: the session lives
        (InterfaceError("connection already closed"), True),
        (_wrapped(OperationalError, "57014"), False),  # statement timeout: the connection is good
        (_wrapped(OperationalError, "40P01"), False),  # deadlock
        (_wrapped(IntegrityError, "23505"), False),
        (ValueError("not the database"), False),
    ],
    ids=lambda value: str(value),
)
def test_connection_lost_tells_a_broken_connection_from_an_error_of_the_statement(exc, lost):
    assert connection_lost(exc) is lost


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_database_connection_broke_is_failed_with_the_reason_and_its_demand_run(
    world_a,
):
    """Once the database answers (at once here), never left running until stale; a job that
    has ended meanwhile is left as it is."""
    broke = InterfaceError("connection already closed")
    with tenant_context(world_a.tenant):
        version = make(ModelVersion, kind=ModelVersion.Kind.DEMAND)
        job, _ok = RepriceJob.claim(make(RepriceJob, demand_version=version).pk)
        set_row(version, status=ModelVersion.Status.TRAINING)
        assert fail_once_the_database_answers(job, broke)
        for row in (RepriceJob.objects.get(pk=job.pk), ModelVersion.objects.get(pk=version.pk)):
            assert row.status == type(row).states.failed
            assert (
                row.message == f"{DATABASE_LOST_MESSAGE}: connection already closed; marked failed"
            )
        done, _ok = RepriceJob.claim(make(RepriceJob).pk)
        done.finish(message="finished by another delivery")
        assert not fail_once_the_database_answers(done, broke)
        assert RepriceJob.objects.get(pk=done.pk).status == RepriceJob.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_the_wait_for_the_database_is_one_per_outage_not_one_per_nested_run(monkeypatch):
    """A reprice that trains its demand model in its own process handles one broken connection
    twice (the training run, then the job): the second waits only what is left of the first's
    wait, never another full one."""
    import contextlib
    import time as clock

    from tenants import jobs

    down = _wrapped(OperationalError, "57P03")  # the server is starting up: refused

    @contextlib.contextmanager
    def refused():
        raise down
        yield  # pragma: no cover

    monkeypatch.setattr(jobs.transaction, "atomic", refused)
    monkeypatch.setattr(jobs.connection, "close", lambda: None)
    broke = InterfaceError("connection already closed")
    inner, outer = RepriceJob(pk=1), RepriceJob(pk=2)
    started = clock.monotonic()
    assert not fail_once_the_database_answers(inner, broke, wait_s=1.0)
    first = clock.monotonic() - started
    assert not fail_once_the_database_answers(outer, broke, wait_s=1.0)
    second = clock.monotonic() - started - first
    assert 1.0 <= first < 3.0 and second < 0.5
