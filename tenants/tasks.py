"""The Celery side of layer 2: a task decorator that sets the tenant from the id it is given."""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from celery import shared_task
from celery.utils import uuid
from django.db import connection

from .context import tenant_context
from .models import Membership, Tenant

TASK_DEFAULTS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": 3,
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
}


def tenant_task(name: str, **options):
    """Declare a task that runs for one tenant: `fn(tenant_id, ...)` runs inside tenant_context.

    The tenant is loaded by id (tasks take ids, not objects) and the context is reset afterwards,
    so a worker process never carries one tenant's context into the next task. A suspended or
    deleted tenant's task does nothing.
    """

    def decorator(fn):
        @functools.wraps(fn)
        def run(self, tenant_id: int, *args, **kwargs):
            tenant = Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.ACTIVE).first()
            if tenant is None:
                return None
            with tenant_context(tenant):
                return fn(self, tenant, *args, **kwargs)

        return shared_task(bind=True, name=name, **{**TASK_DEFAULTS, **options})(run)

    return decorator


def each_active_tenant(task) -> int:
    """Send `task(tenant_id)` once per active tenant (a nightly or hourly sweep fanned out, each
    run in its own tenant's context by tenant_task); returns how many were sent."""
    tenants = list(Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("pk", flat=True))
    for tenant_id in tenants:
        task.delay(tenant_id)
    return len(tenants)


@contextmanager
def tasks_run_here(names: frozenset[str]) -> Iterator[None]:
    """The tasks named in `names` sent inside run in this process, their errors raised (a
    command's --sync: a job split into parts, each part a task that sends the next, runs whole
    here instead of waiting for workers); any other task (a publication, a KPI refresh) goes to
    the broker as usual, with its queue, rate limit and retries. A task sent while one runs
    waits in a queue that the first send drains in a loop, so a chain of a thousand parts runs
    one after another, never a thousand calls deep. It replaces Task.apply_async for the
    process: for a management command's main thread only, never inside a task."""
    import threading

    from celery import current_task
    from celery.app.task import Task
    from celery.result import AsyncResult

    if threading.current_thread() is not threading.main_thread() or current_task:
        raise RuntimeError("tasks_run_here is for a management command's main thread")
    waiting: deque = deque()
    running = [False]
    plain = Task.apply_async

    def apply_async(self, args=None, kwargs=None, task_id=None, **options):
        if self.name not in names:
            return plain(self, args, kwargs, task_id=task_id, **options)
        task_id = task_id or uuid()
        waiting.append((self, args or (), kwargs or {}, task_id))
        if running[0]:
            return AsyncResult(task_id)
        running[0] = True
        try:
            while waiting:
                task, a, k, tid = waiting.popleft()
                task.apply(a, k, task_id=tid, throw=True)
        finally:
            running[0] = False
            waiting.clear()
        return AsyncResult(task_id)

    Task.apply_async = apply_async
    try:
        yield
    finally:
        Task.apply_async = plain


def database_label() -> str:
    """The database this process reads (host, port, name): a caller compares it with a
    worker's to know that the worker is its own, not one of another checkout on one broker."""
    db = connection.settings_dict
    return f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db['NAME']}"


@tenant_task(name="tenants.ping", queue="default")
def ping(self, tenant, echo: str = "pong") -> dict:
    """Health check through the queue: proves a worker sees only its tenant's rows."""
    return {
        "tenant": tenant.slug,
        "members": Membership.objects.count(),
        "echo": echo,
        "database": database_label(),
    }
