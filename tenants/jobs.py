"""The one abstract job model: a tenant-owned row that a Celery task moves through its states.

Reprice jobs, training runs (`ModelVersion`), imports and publications inherit `Job` (or
`CancellableJob`). What they share lives here, once:

- the lifecycle fields: `status`, `message`, `created_at`, `started_at`, `finished_at`;
- `claim(pk)`: the task's first step. It locks the row (`select_for_update`) and moves a queued
  job to running; any other state is left alone, so a task delivered twice runs the job once;
- `is_stale()`: an active job past its task's time limit. The worker that had it is gone (a hard
  time limit, a lost machine), so it cannot still be running; `lock_active()` marks such a job
  lost instead of letting it block the tenant, and `claim(pk, reclaim_stale=True)` takes it over
  where running it again is harmless (a plain `claim` of a stale job marks it lost: its task
  was redelivered after its worker died);
- `set_progress(...)`, `finish(...)`, `fail(...)`, `cancel(...)`, `mark_lost()`, and for
  `CancellableJob` `request_cancel()` / `cancel_was_requested()`;
- `connection_lost(exc)` and `fail_once_the_database_answers(job, exc)`: a job whose run lost
  its database connection (a restart, a failover) is marked failed, saying so, as soon as the
  database answers again, instead of staying running until it is stale.

Each job model declares its task's `time_limit` once (a `TimeLimit`): the task decorator takes
`Model.time_limit.task_options` and the stale check reads `Model.time_limit.stale_after`. Its
states are `TextChoices`; where some are named otherwise (a training run is `training` while it
runs and `ready` when it succeeds), `states` says which one plays which part.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Self

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    models,
    transaction,
)
from django.utils import timezone

from . import metrics
from .models import TenantOwned

logger = logging.getLogger(__name__)

LOST_MESSAGE = "the worker running it stopped (time limit or lost); marked failed"
DATABASE_LOST_MESSAGE = "the database connection broke while it ran (a restart or failover)"
# How long a job whose database connection broke waits for the database to answer again, to
# say that it failed; past it, the job is left to the stale check.
DATABASE_WAIT_S = 300


@dataclass(frozen=True)
class TimeLimit:
    """A task's time limits, in seconds. Past the hard limit plus some slack no worker can still
    be running the job: it is stale."""

    hard_s: int
    soft_s: int
    slack_s: int = 300

    @property
    def task_options(self) -> dict[str, int]:
        """The Celery task options: `@tenant_task(..., **Model.time_limit.task_options)`."""
        return {"time_limit": self.hard_s, "soft_time_limit": self.soft_s}

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.hard_s + self.slack_s)


class JobStatus(models.TextChoices):
    """The states of a job whose states have their plain names (a reprice job's)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


@dataclass(frozen=True)
class JobStates:
    """Which of a job model's states the shared transitions use. Every other state of the model
    (a publication's `partial`, a training run's `promoted`) is a finished one, except those in
    `waiting`: states before the queue, such as an import waiting for its column mapping."""

    queued: str
    running: str
    succeeded: str
    failed: str
    cancelled: str | None = None  # None: the job cannot be cancelled
    waiting: tuple[str, ...] = ()

    @property
    def active(self) -> tuple[str, str]:
        return (self.queued, self.running)


class Job(TenantOwned):
    """Abstract base of every job row. A concrete model sets `time_limit`, and, if its states are
    not `JobStatus`, declares its own `Status`, overrides the `status` field with those choices
    and sets `states`."""

    Status: ClassVar[type[models.TextChoices]] = JobStatus
    states: ClassVar[JobStates] = JobStates(
        queued=JobStatus.QUEUED,
        running=JobStatus.RUNNING,
        succeeded=JobStatus.SUCCEEDED,
        failed=JobStatus.FAILED,
        cancelled=JobStatus.CANCELLED,
    )
    time_limit: ClassVar[TimeLimit]

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    # --- where it stands ---------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        """Queued or running."""
        return self.status in self.states.active

    @property
    def is_finished(self) -> bool:
        return not self.is_active and self.status not in self.states.waiting

    def seconds_until_stale(self, now: datetime | None = None) -> float:
        """How long until is_stale() would say yes (0 when it already does)."""
        running = self.status == self.states.running and self.started_at is not None
        since = self.started_at if running else self.created_at
        if since is None:
            return 0.0
        left = since + self.time_limit.stale_after - (now or timezone.now())
        return max(0.0, left.total_seconds())

    def is_stale(self, now: datetime | None = None) -> bool:
        """Active for longer than its task's time limit allows: counted from its start while it
        runs, from its creation while it waits in the queue."""
        if not self.is_active:
            return False
        running = self.status == self.states.running and self.started_at is not None
        since = self.started_at if running else self.created_at
        return since is not None and (now or timezone.now()) - since > self.time_limit.stale_after

    # --- claiming ------------------------------------------------------------------------------

    @classmethod
    def claim(cls, pk: int, *, reclaim_stale: bool = False) -> tuple[Self | None, bool]:
        """Lock the job and move it from queued to running (with `reclaim_stale`, also a running
        job past its time limit: for jobs that may safely run again; without it such a job is
        marked lost). Returns the job (None if the current tenant has no such job) and whether
        this caller claimed it; a job in any other state is left alone, so a second claim, or a
        task delivered twice, is refused."""
        with transaction.atomic():
            job = cls.objects.select_for_update().filter(pk=pk).first()
            if job is None:
                return None, False
            stale = job.status == cls.states.running and job.is_stale()
            if stale and not reclaim_stale:
                # Redelivered after its worker died (see is_stale): say so, never leave it
                # running until someone starts another job.
                job.mark_lost()
                return job, False
            if job.status != cls.states.queued and not stale:
                return job, False
            job.status, job.started_at = cls.states.running, timezone.now()
            job.save(update_fields=["status", "started_at", *job.on_claim()])
            transaction.on_commit(lambda: metrics.job_claimed(job))
        return job, True

    def on_claim(self) -> list[str]:
        """Changes a model makes as it is claimed (under the lock); returns the fields changed."""
        return []

    @classmethod
    def lock_active(cls, **filters) -> Self | None:
        """The active job matching `filters`, locked. One past its time limit is marked lost and
        not returned, so a dead worker's job never blocks the next one. Call inside a
        transaction."""
        active = cls.objects.select_for_update().filter(status__in=cls.states.active, **filters)
        job = active.first()
        if job is not None and job.is_stale():
            job.mark_lost()
            return None
        return job

    # --- progress and the end ------------------------------------------------------------------

    def set_progress(self, **values) -> None:
        """Store progress fields (a share done, a phase, a log, a trainer's state) with an UPDATE
        of those columns alone: a cancel request that came in meanwhile is not overwritten."""
        for name, value in values.items():
            setattr(self, name, value)
        type(self).objects.filter(pk=self.pk).update(**values)

    def finish(self, *, status: str | None = None, message: str | None = None, **fields) -> Self:
        """End the job (succeeded, or the finished state named), set its message and result
        fields, and save the row."""
        status = status or self.states.succeeded
        if status in self.states.active or status in self.states.waiting:
            raise ValueError(f"{status!r} is not a finished state of {type(self).__name__}")
        self.status, self.finished_at = status, timezone.now()
        if message is not None:
            self.message = message
        for name, value in fields.items():
            setattr(self, name, value)
        self.save()
        transaction.on_commit(lambda: metrics.job_ended(self))
        return self

    def fail(self, message: str, **fields) -> Self:
        return self.finish(status=self.states.failed, message=message, **fields)

    def cancel(self, message: str, **fields) -> Self:
        if self.states.cancelled is None:
            raise ValueError(f"a {type(self).__name__} cannot be cancelled")
        return self.finish(status=self.states.cancelled, message=message, **fields)

    def mark_lost(self, message: str = LOST_MESSAGE) -> Self:
        """The job's worker is gone (see is_stale), or its run is (`message` says why): it
        failed."""
        return self.fail(message)


class CancellableJob(Job):
    """A job a person may stop: a queued one is cancelled at once, a running one is asked to
    stop and checks `cancel_was_requested()` at each step."""

    cancel_requested = models.BooleanField(default=False)

    class Meta:
        abstract = True

    def request_cancel(self) -> bool:
        """Cancel a queued job; ask a running one to stop at its next step (one past its time
        limit is marked lost: no worker would see the request). False: it had finished, nothing
        to cancel. Call on a row locked with select_for_update."""
        if self.status == self.states.queued:
            self.cancel("cancelled before it started")
        elif self.status == self.states.running and self.is_stale():
            self.mark_lost()
        elif self.status == self.states.running:
            self.cancel_requested = True
            self.save(update_fields=["cancel_requested"])
        else:
            return False
        return True

    def cancel_was_requested(self) -> bool:
        """Whether a person asked the running job to stop (read from the row, not the instance)."""
        return type(self).objects.filter(pk=self.pk, cancel_requested=True).exists()


def retry_while_running(task, job: Job | None) -> None:
    """In a job's task, after its run_* returned: a job still running was not claimed by this
    delivery. Either another worker runs it (a duplicate delivery) or, the usual case, the
    worker child that ran it died and Celery put the task back at once
    (task_reject_on_worker_lost), long before the job is stale. Ask again once it would be
    stale: by then it has finished, or its worker is certainly gone and the claim reclaims it
    or marks it lost. Nothing to wait for when tasks run eagerly (tests, the demo)."""
    if job is None or job.status != type(job).states.running or task.request.is_eager:
        return
    raise task.retry(
        countdown=int(job.seconds_until_stale()) + 1, max_retries=task.request.retries + 1
    )


# SQLSTATEs of a server that ends or refuses the session: admin_shutdown (a fast shutdown or
# pg_terminate_backend), crash_shutdown, cannot_connect_now (starting up), idle_session_timeout,
# idle_in_transaction_session_timeout, too_many_connections (every client reconnecting at once
# after a restart); class 08 is the connection exceptions.
_SESSION_ENDED = ("57P01", "57P02", "57P03", "57P05", "25P03", "53300")


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` is the database connection breaking (the server restarted, failed over or
    cut the session; the network dropped), not an error of the statement (a constraint, a
    deadlock, a timeout), whose connection is still good."""
    if isinstance(exc, InterfaceError):  # "connection already closed"
        return True
    if not isinstance(exc, DatabaseError):
        return False
    raw = connection.connection
    if raw is not None and getattr(raw, "closed", 0):  # whatever the server said, it is gone
        return True
    code = getattr(exc.__cause__, "pgcode", None)
    if not isinstance(exc, OperationalError):  # e.g. 25P03 comes as an InternalError
        return code in _SESSION_ENDED
    # No SQLSTATE: the client found the socket closed ("server closed the connection
    # unexpectedly") or could not connect.
    return code is None or code.startswith("08") or code in _SESSION_ENDED


def fail_once_the_database_answers(
    job: Job, exc: BaseException, *, wait_s: float = DATABASE_WAIT_S
) -> bool:
    """After `exc` broke the database connection of a job this process claimed and was running:
    reconnect once the database answers again (a restart or a failover takes seconds) and mark
    the job failed with the reason, with what it ran in this process (`mark_lost`), rather than
    leave it running until stale (its task's hard time limit). Its rows were written in
    transactions that the broken connection rolled back. A job another delivery has ended
    meanwhile is left as it is. Gives up after `wait_s` seconds, and inside a caller's
    transaction (which must end first). Returns whether the job was marked. The wait is one
    per outage: a job whose inner run (a reprice training its demand model) already waited on
    the same exception waits only what is left of it."""
    if connection.in_atomic_block:
        return False
    first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    message = f"{DATABASE_LOST_MESSAGE}: {first_line}; marked failed"
    model = type(job)
    deadline = getattr(exc, "_database_deadline", None) or time.monotonic() + wait_s
    with contextlib.suppress(AttributeError):  # an exception that takes no attribute
        exc._database_deadline = deadline
    while True:
        connection.close()  # the broken one; the next statement opens a new connection
        try:
            with transaction.atomic():
                current = model.objects.select_for_update().filter(pk=job.pk).first()
                if current is None or current.status != model.states.running:
                    return False
                current.mark_lost(message)
                return True
        except DatabaseError as error:
            if not connection_lost(error) or time.monotonic() >= deadline:
                logger.warning("%s %s not marked failed: %s", model.__name__, job.pk, error)
                return False
            time.sleep(1)
