"""What an operator reads off a running host: health, readiness, metrics, structured logs.

- `/healthz`: liveness. The process answers; nothing else is asked (a database outage must
  not make an orchestrator restart every web process).
- `/readyz`: readiness (django-health-check): the database answers, every migration is applied,
  the broker accepts a connection, the storage backend can write and delete a file. 200 when
  all pass, 500 with each failing check's reason otherwise (`Accept: application/json` or
  `?format=json` for JSON).
- `/metrics`: Prometheus (django-prometheus: requests by view, method and status, latencies,
  exceptions; plus the depth of each Celery queue, read from the broker at scrape time). With
  `METRICS_TOKEN` set it needs `Authorization: Bearer <token>`; without, it answers only
  requests from the host itself (loopback, and not forwarded by a proxy), never the public.
- Logs: `LOG_FORMAT=json` writes one JSON object a line (python-json-logger) with the tenant,
  the request id (`X-Request-ID`, taken from the proxy when it is a sane token, else made here,
  and echoed on the answer) and the Celery task id, so one request or task can be followed
  across hosts.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import re
import uuid
from contextvars import ContextVar

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)
_request_id: ContextVar[str] = ContextVar("request_id", default="")
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


# --- request ids and log context -----------------------------------------------------------


class RequestIdMiddleware:
    """Give every request an id: the proxy's `X-Request-ID` when it is a sane token (letters,
    digits, `._-`, at most 64), else a new one; echoed on the answer and put in every log line
    of the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


class ContextFilter(logging.Filter):
    """Adds `tenant`, `request_id` and `task_id` to every record (empty when there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from tenants.context import get_current_tenant

        tenant = get_current_tenant()
        record.tenant = getattr(tenant, "slug", "") if tenant is not None else ""
        record.request_id = _request_id.get()
        record.task_id = _task_id()
        return True


def _task_id() -> str:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover (celery is a dependency)
        return ""
    request = getattr(current_task, "request", None)
    return (getattr(request, "id", None) or "") if current_task else ""


# --- readiness -------------------------------------------------------------------------------


@dataclasses.dataclass
class Migrations(HealthCheck):
    """Every migration on disk is applied (a host started before `migrate` ran is not ready)."""

    alias: str = "default"

    def run(self) -> None:
        from django.db import connections
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connections[self.alias])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            raise ServiceUnavailable(f"{len(plan)} migrations not applied")


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker (Redis or RabbitMQ) accepts a connection."""

    def run(self) -> None:
        from kombu import Connection

        url = settings.CELERY_BROKER_URL
        if str(url).startswith(("memory", "filesystem")):
            return  # in-process or folder transports: nothing to reach
        try:
            with Connection(url, connect_timeout=3) as connection:
                connection.ensure_connection(max_retries=1, timeout=3)
        except Exception as exc:  # kombu raises the transport's own errors
            raise ServiceUnavailable(f"the broker refused: {type(exc).__name__}") from None

    def __repr__(self) -> str:  # never the URL (it may hold a password)
        return "Broker"


class ReadinessView(HealthCheckView):
    checks = (
        "health_check.checks.Database",
        Migrations,
        Broker,
        "health_check.checks.Storage",
    )


def liveness(request):
    return JsonResponse({"status": "ok"})


# --- metrics ---------------------------------------------------------------------------------


class QueueDepthCollector:
    """`pricing_celery_queue_depth{queue}`: messages waiting in each Celery queue, read from the
    broker when Prometheus scrapes (a broker that cannot be read gives no sample, never an
    error page)."""

    def collect(self):
        from kombu import Connection

        from pricing_saas.celery import QUEUES

        gauge = GaugeMetricFamily(
            "pricing_celery_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        url = settings.CELERY_BROKER_URL
        if str(url).startswith(("memory", "filesystem")):
            yield gauge
            return
        try:
            with Connection(url, connect_timeout=2) as connection:
                channel = connection.channel()
                for name in QUEUES:
                    try:
                        declared = channel.queue_declare(queue=name, passive=True)
                        gauge.add_metric([name], declared.message_count)
                    except Exception:  # a queue nobody declared yet: nothing waits in it
                        channel = connection.channel()
                        gauge.add_metric([name], 0)
        except Exception as exc:
            logger.warning("queue depths not read: %s", type(exc).__name__)
        yield gauge


_collector_registered = False


def register_collectors() -> None:
    global _collector_registered
    if _collector_registered:
        return
    from prometheus_client import REGISTRY

    REGISTRY.register(QueueDepthCollector())
    _collector_registered = True


def metrics(request):
    """Prometheus' text format, for the metrics token's bearer or the host itself."""
    from django_prometheus.exports import ExportToDjangoView

    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse("a valid metrics token is required", status=401)
    elif request.META.get("REMOTE_ADDR") not in ("127.0.0.1", "::1") or (
        # a proxy on this host forwards the public from loopback: what it forwarded is not
        # the host itself
        request.headers.get("X-Forwarded-For")
        or request.headers.get("Forwarded")
        or request.headers.get("X-Real-IP")
    ):
        return HttpResponse(
            "metrics are served to this host only; set METRICS_TOKEN to scrape from another",
            status=403,
        )
    return ExportToDjangoView(request)
