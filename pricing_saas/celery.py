"""The Celery app: queues by kind of work, safe task defaults, beat from the database."""

from __future__ import annotations

import os

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")

QUEUES = ("default", "ingest", "reprice", "ml_train", "publish")

app = Celery("pricing_saas")
app.config_from_object("django.conf:settings", namespace="CELERY")


def _ensure_filesystem_transport_folders() -> None:
    """The fallback transport needs its folders before the first message is sent."""
    from django.conf import settings

    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    if str(getattr(settings, "CELERY_BROKER_URL", "")).startswith("filesystem"):
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            if options.get(key):
                os.makedirs(options[key], exist_ok=True)


@app.on_after_configure.connect
def _on_configured(sender, **kwargs) -> None:
    _ensure_filesystem_transport_folders()


app.conf.update(
    task_queues=[Queue(name) for name in QUEUES],
    task_default_queue="default",
    task_routes={
        "catalog.*": {"queue": "ingest"},
        "pricing.reprice*": {"queue": "reprice"},
        "ml.train*": {"queue": "ml_train"},
        "integrations.publish*": {"queue": "publish"},
    },
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_time_limit=60 * 60,
    task_soft_time_limit=55 * 60,
    task_serializer="json",
    accept_content=["json"],
    result_expires=24 * 3600,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    # Installed into django-celery-beat's tables by the DatabaseScheduler when beat starts.
    beat_schedule={
        "sweep-orphan-uploads": {"task": "catalog.sweep_orphan_uploads_all", "schedule": 3600.0},
        "sweep-orphan-artifacts": {
            "task": "ml.sweep_orphan_artifacts_all",
            "schedule": 24 * 3600.0,
        },
    },
)


@signals.task_prerun.connect
def _task_started(task_id=None, **kwargs) -> None:
    from tenants import metrics

    metrics.task_started(task_id)


@signals.task_postrun.connect
def _task_ended(task_id=None, task=None, state=None, **kwargs) -> None:
    from tenants import metrics

    if state is None:  # the body was cut off (the pool killing it): the main process counts it
        return
    metrics.task_ended(task_id, getattr(task, "name", "unknown"), state)


@signals.task_failure.connect
def _task_killed(sender=None, task_id=None, exception=None, **kwargs) -> None:
    """A task past its hard time limit is killed with its pool process, which never reaches
    its postrun: the worker's main process sees the end and counts it (`TIME_LIMIT`)."""
    from billiard.exceptions import TimeLimitExceeded

    from tenants import metrics

    # A task that raised TimeLimitExceeded itself (a sub-task's result re-raised in its body)
    # ran here and its postrun counts it.
    if isinstance(exception, TimeLimitExceeded) and not metrics.is_running_here(task_id):
        limit = exception.args[0] if exception.args else None
        metrics.task_ended(task_id, getattr(sender, "name", "unknown"), "TIME_LIMIT", limit)


@signals.task_revoked.connect
def _task_revoked(sender=None, request=None, **kwargs) -> None:
    """A task revoked (before it ran, or terminated while running) ends in the main process."""
    from tenants import metrics

    name = getattr(sender, "name", None) or getattr(request, "task_name", None) or "unknown"
    metrics.task_ended(getattr(request, "id", None), name, "REVOKED")


@signals.worker_init.connect
def _serve_worker_metrics(**kwargs) -> None:
    """`WORKER_METRICS_PORT`: this worker host's /metrics (tenants/metrics.py), from the main
    process; with `PROMETHEUS_MULTIPROC_DIR` (a prefork pool) it sums the children's files."""
    port = os.environ.get("WORKER_METRICS_PORT", "").strip()
    if not port:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

    registry = REGISTRY
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if folder:
        from prometheus_client import multiprocess

        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):  # a previous run's counts are not this run's
            if name.endswith(".db"):
                os.remove(os.path.join(folder, name))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    start_http_server(int(port), addr=os.environ.get("WORKER_METRICS_ADDR", "127.0.0.1"),
                      registry=registry)  # fmt: skip


app.autodiscover_tasks()
