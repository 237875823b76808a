"""The Celery side of layer 2: a task decorator that sets the tenant from the id it is given."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from celery import current_app, shared_task
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


@contextmanager
def tasks_run_here() -> Iterator[None]:
    """The tasks queued inside run in this process, one after another, their errors raised
    (a command's --sync: a job split into parts, each part a task, runs whole here instead of
    waiting for workers)."""
    conf = current_app.conf
    keys = [celery_key(name) for name in ("task_always_eager", "task_eager_propagates")]
    before = {key: conf.get(key) for key in keys}
    conf.update({key: True for key in keys})
    try:
        yield
    finally:
        conf.update(before)


def celery_key(name: str) -> str:
    """A Celery setting's key in this app's configuration (CELERY_TASK_ALWAYS_EAGER under the
    Django settings' CELERY namespace: setting the plain name has no effect there)."""
    namespace = current_app.namespace
    return f"{namespace}_{name.upper()}" if namespace else name


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
