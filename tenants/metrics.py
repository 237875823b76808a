"""Prometheus metrics of the work done off the request path: Celery tasks and jobs.

- `pricing_celery_tasks_total{task, state}`: tasks ended, by name and state (`SUCCESS`,
  `FAILURE`, `RETRY`, ...: Celery's own state names; `TIME_LIMIT` for one killed at its hard
  time limit, `REVOKED` for one revoked or terminated). A task whose process died otherwise
  (SIGKILL, out of memory) is redelivered and counted when a worker ends it.
- `pricing_celery_task_seconds{task}`: how long each task ran (its body, in the worker).
- `pricing_job_wait_seconds{kind}`: from a job's creation to a worker claiming it, by kind
  (`pricing.repricejob`, `catalog.importjob`, ...): what a merchant waits before anything runs,
  the figure that shows one tenant's work holding others back.
- `pricing_job_seconds{kind, status}`: from claim to end, by kind and final status.

A job is observed when its state change commits (a rolled-back claim or end counts nothing).
Every label is a task name, a job kind or a state: never a tenant (hundreds of tenants would
make hundreds of series per metric; the logs carry the tenant).

The worker host exports them itself: with `WORKER_METRICS_PORT` set, a worker serves
`/metrics` on that port (`WORKER_METRICS_ADDR`, default 127.0.0.1) from its main process. A
prefork worker's tasks run in child processes, so it needs Prometheus' multiprocess mode:
`PROMETHEUS_MULTIPROC_DIR`, a folder of its own per worker (cleared when the worker starts).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

# Seconds: a ping takes milliseconds, a nightly reprice of a big catalog an hour or more.
_BUCKETS = (0.05, 0.25, 1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, float("inf"))

TASKS = Counter("pricing_celery_tasks", "Celery tasks ended", ["task", "state"])
TASK_SECONDS = Histogram(
    "pricing_celery_task_seconds", "Celery task run time", ["task"], buckets=_BUCKETS
)
JOB_WAIT_SECONDS = Histogram(
    "pricing_job_wait_seconds", "From a job's creation to its claim", ["kind"], buckets=_BUCKETS
)
JOB_SECONDS = Histogram(
    "pricing_job_seconds", "From a job's claim to its end", ["kind", "status"], buckets=_BUCKETS
)

_started: dict[str, float] = {}


def task_started(task_id: str) -> None:
    _started[task_id] = time.monotonic()


def is_running_here(task_id: str | None) -> bool:
    """Whether this process started the task (its body runs here)."""
    return task_id in _started


def task_ended(
    task_id: str | None, name: str, state: str | None, seconds: float | None = None
) -> None:
    """Count a task's end; its run time is measured here where it started, else `seconds`
    (a task killed at its hard time limit ran for the limit)."""
    started = _started.pop(task_id, None) if task_id else None
    TASKS.labels(task=name, state=state or "UNKNOWN").inc()
    if started is not None:
        TASK_SECONDS.labels(task=name).observe(time.monotonic() - started)
    elif seconds is not None:
        TASK_SECONDS.labels(task=name).observe(float(seconds))


def job_claimed(job) -> None:
    if job.created_at and job.started_at:
        wait = (job.started_at - job.created_at).total_seconds()
        JOB_WAIT_SECONDS.labels(kind=job._meta.label_lower).observe(max(wait, 0.0))


def job_ended(job) -> None:
    if job.started_at and job.finished_at:
        took = (job.finished_at - job.started_at).total_seconds()
        JOB_SECONDS.labels(kind=job._meta.label_lower, status=job.status).observe(max(took, 0.0))
