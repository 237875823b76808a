"""The Celery app: queues by kind of work, safe task defaults, beat from the database."""

from __future__ import annotations

import os

from celery import Celery
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
    },
)


app.autodiscover_tasks()
