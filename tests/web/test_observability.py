"""Liveness, readiness, metrics, request ids and the log context an operator reads."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from pricing_saas.web import observability
from tenants.context import tenant_context
from tests.test_celery_worker import broker  # noqa: F401 (a private redis-server fixture)

pytestmark = pytest.mark.django_db


def test_liveness_asks_nothing_else():
    answer = Client().get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_readiness_checks_database_migrations_broker_and_storage(settings, broker):  # noqa: F811
    settings.CELERY_BROKER_URL = broker
    answer = Client().get("/readyz?format=json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert all(value == "OK" for value in body.values())
    names = " ".join(body)
    for name in ("Database", "Migrations", "Broker", "Storage"):
        assert name in names


def test_readiness_answers_a_browser_with_its_html_page(settings, broker):  # noqa: F811
    """The page a person opens (no format asked): django-health-check's template, not a 500."""
    settings.CELERY_BROKER_URL = broker
    answer = Client().get("/readyz", HTTP_ACCEPT="text/html")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/html") and "Database" in answer.content.decode()


def test_a_missing_migration_makes_the_host_not_ready(monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [1, 2])
    answer = Client().get("/readyz?format=json")
    assert answer.status_code == 500
    assert "2 migrations not applied" in answer.content.decode()


def test_an_unreachable_broker_makes_the_host_not_ready_without_showing_its_url(settings):
    settings.CELERY_BROKER_URL = "redis://:s3cret-password@127.0.0.1:1/0"
    answer = Client().get("/readyz?format=json")
    assert answer.status_code == 500
    text = answer.content.decode()
    assert "broker refused" in text and "s3cret" not in text


def test_metrics_for_the_host_itself_only_without_a_token(settings):
    settings.METRICS_TOKEN = ""
    Client().get("/healthz")
    answer = Client().get("/metrics")  # the test client comes from 127.0.0.1
    assert answer.status_code == 200
    text = answer.content.decode()
    assert "django_http_requests_total_by_view_transport_method_total" in text
    assert "pricing_celery_queue_depth" in text
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 403
    # the public, forwarded over loopback by a proxy on the same host
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert Client().get("/metrics", HTTP_FORWARDED="for=203.0.113.9").status_code == 403


def test_metrics_need_the_token_when_one_is_set(settings):
    settings.METRICS_TOKEN = "scrape-token"
    assert Client().get("/metrics").status_code == 401
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    right = Client(REMOTE_ADDR="10.1.2.3").get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token")
    assert right.status_code == 200


def test_queue_depths_are_read_from_the_broker(settings, broker):  # noqa: F811
    import redis

    settings.CELERY_BROKER_URL = broker
    client = redis.Redis.from_url(broker)
    client.delete("reprice")
    client.rpush("reprice", "a", "b", "c")
    try:
        (family,) = list(observability.QueueDepthCollector().collect())
        depths = {sample.labels["queue"]: sample.value for sample in family.samples}
    finally:
        client.delete("reprice")
    assert depths["reprice"] == 3 and depths["publish"] == 0


def test_request_ids_are_taken_when_sane_and_made_otherwise():
    given = Client().get("/healthz", HTTP_X_REQUEST_ID="abc-123.x")
    assert given["X-Request-ID"] == "abc-123.x"
    odd = Client().get("/healthz", HTTP_X_REQUEST_ID="a b\nc" + "x" * 80)
    assert odd["X-Request-ID"] != "a b\nc" and len(odd["X-Request-ID"]) == 32


def test_json_log_lines_carry_the_tenant_and_request_id(world_a):
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(tenant)s %(request_id)s %(task_id)s"
    )
    record = logging.LogRecord("pricing", logging.INFO, __file__, 1, "priced", None, None)
    token = observability._request_id.set("req-1")
    try:
        with tenant_context(world_a.tenant):
            observability.ContextFilter().filter(record)
    finally:
        observability._request_id.reset(token)
    line = json.loads(formatter.format(record))
    assert line["tenant"] == world_a.tenant.slug and line["request_id"] == "req-1"
    assert line["message"] == "priced" and line["task_id"] == ""
