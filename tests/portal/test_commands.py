"""The `demo` command (`pricing_saas/portal/management/commands/demo.py`): its set-up path
(without serving): a real grocer imported, both models trained, rules, policy and schedule
created, a reprice job run and auto-approved; running it again changes nothing. And the
fine-tune it queues."""

from __future__ import annotations

import io

import pytest

from ml.models import ModelVersion
from pricing_saas.catalog.models import CompetitorOffer, Product
from pricing_saas.portal.management.commands.demo import Command
from pricing_saas.pricing.models import Recommendation, RepriceJob, RepriceSchedule, RuleSet
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_demo_sets_up_the_whole_path_once():
    command = Command(stdout=io.StringIO())
    tenant = command._demo_tenant("a-long-demo-password")
    for _ in range(2):  # idempotent
        command._demo_data(tenant, 80)
        command._demo_pricing(tenant)
    out = command.stdout.getvalue()
    assert "demo data already imported" in out
    with tenant_context(tenant):
        assert Product.objects.count() == 80
        assert (
            CompetitorOffer.objects.filter(competitor="Derived market index (not observed)").count()
            == 80 * 4
        )
        assert Product.objects.filter(attributes__cost_source__startswith="derived").count() == 80
        assert RuleSet.objects.count() == 2 and RepriceSchedule.objects.count() == 1
        job = RepriceJob.objects.get()
        assert job.status == "succeeded" and job.skus == 80
        recs = Recommendation.objects.filter(job=job)
        assert recs.count() == 80
        assert job.auto_approved == recs.filter(auto_approved=True).count()
        assert recs.exclude(competitor_name="").exists()


def test_the_demo_queues_the_fine_tune_once_and_again_after_an_interrupted_run(stocked):
    from pricing_saas.portal.management.commands.demo import Command

    sent = []
    command = Command(stdout=io.StringIO())
    command._queue_central_model(stocked.tenant, {}, send=sent.append)
    assert [v.requested_trainer for v in sent] == ["finetune"] and sent[0].status == "queued"
    # A later demo finds it still queued: its worker went with the earlier demo.
    command._queue_central_model(stocked.tenant, {}, send=sent.append)
    with tenant_context(stocked.tenant):
        first = ModelVersion.objects.get(pk=sent[0].pk)
        assert first.status == "failed" and "interrupted" in first.message
        assert len(sent) == 2 and ModelVersion.objects.get(pk=sent[1].pk).status == "queued"
        ModelVersion.objects.filter(pk=sent[1].pk).update(status="ready", message="done")
    command._queue_central_model(stocked.tenant, {}, send=sent.append)  # finished: kept
    assert len(sent) == 2 and "fine-tuned reference-price model" in command.stdout.getvalue()


def test_the_demo_lab_shows_a_finished_price_test_and_what_its_prices_did(world_a):
    from pricing_saas.experiments.models import Experiment
    from pricing_saas.portal.demo_lab import TEST_DAYS, build_lab
    from pricing_saas.pricing import outcomes
    from pricing_saas.pricing.models import PriceChange
    from tenants.context import tenant_context

    with tenant_context(world_a.tenant):
        made = build_lab(world_a.tenant, skus=60, seed=1)
        experiment = Experiment.objects.get(pk=made["experiment"])
        assert experiment.status == Experiment.Status.FINISHED and experiment.recorded
        assert "Simulated" in experiment.name
        assert experiment.result["days_observed"] == TEST_DAYS
        assert made["published"] > 0
        result = outcomes.outcome(PriceChange.objects.filter(job=made["job"]), window=TEST_DAYS)
    assert len(result.changes) == made["published"] and result.total_low <= result.total_high


def test_the_demo_computes_its_tenants_kpi_facts_and_checks_their_alerts(db):
    from io import StringIO

    from pricing_saas.kpi.models import DailyKpi
    from pricing_saas.portal.demo_lab import LAB_SLUG, build_lab
    from pricing_saas.portal.management.commands.demo import Command
    from tenants.context import tenant_context
    from tenants.services import create_tenant

    lab = create_tenant(name="Lab", slug=LAB_SLUG)
    with tenant_context(lab):
        build_lab(lab, skus=40, seed=2)
        assert not DailyKpi.objects.exists()  # its rows came without import jobs
    command = Command(stdout=StringIO())
    command._demo_kpis()
    with tenant_context(lab):
        assert DailyKpi.objects.count() > 40 * 28
    out = command.stdout.getvalue()
    assert f"KPI facts of {LAB_SLUG}:" in out and "alert(s) opened" in out
    command._demo_kpis()  # again: nothing to rewrite
    assert "0 new, 0 changed" in command.stdout.getvalue().splitlines()[-1]


def test_the_demo_broker_port_is_this_checkouts_own(tmp_path, monkeypatch):
    from pricing_saas.portal.management.commands.demo import REDIS_PORTS, redis_port

    monkeypatch.delenv("DEMO_REDIS_PORT", raising=False)
    ports = {redis_port(tmp_path / name) for name in ("main", "wt-rel", "wt-schema", "wt-trust")}
    assert len(ports) == 4, "two checkouts shared a broker port"
    assert all(REDIS_PORTS[0] <= p < sum(REDIS_PORTS) for p in ports)
    assert redis_port(tmp_path / "main") == redis_port(tmp_path / "main")  # stable across runs
    monkeypatch.setenv("DEMO_REDIS_PORT", "7001")
    assert redis_port(tmp_path / "main") == 7001


def test_the_demo_refuses_a_port_held_by_something_not_its_own_redis(tmp_path, monkeypatch):
    """A port already answering, but not with this checkout's Redis: a clear message, no
    broker shared with another checkout's workers."""
    import socket
    import threading

    from django.core.management.base import CommandError

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def answer_nonsense():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"-ERR not the redis you are looking for\r\n")

    threading.Thread(target=answer_nonsense, daemon=True).start()
    monkeypatch.setenv("DEMO_REDIS_PORT", str(port))
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    try:
        with pytest.raises(CommandError, match=f"port {port} is taken.*DEMO_REDIS_PORT"):
            Command(stdout=io.StringIO())._broker(tmp_path, {})
    finally:
        listener.close()


class _Sent:
    def __init__(self, reply=None, error=None):
        self.reply, self.error = reply, error

    def get(self, timeout):
        if self.error:
            raise self.error
        return self.reply


@pytest.mark.parametrize(
    "reply",
    [
        None,  # the other checkout's database has no such tenant: was a TypeError traceback
        {"tenant": "demo", "members": 1, "echo": "pong", "database": "elsewhere:5432/x"},
        "pong",
    ],
)
def test_the_worker_check_names_a_worker_of_another_checkout_clearly(world_a, monkeypatch, reply):
    from celery import Celery
    from django.core.management.base import CommandError

    monkeypatch.setattr(Celery, "send_task", lambda self, *a, **k: _Sent(reply))
    env = {"CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "CELERY_RESULT_BACKEND": "redis://x"}
    with pytest.raises(CommandError, match="another checkout's worker uses the same broker"):
        Command(stdout=io.StringIO())._check_worker(world_a.tenant, env)


def test_the_worker_check_says_when_no_worker_answers(world_a, monkeypatch):
    from celery import Celery
    from celery.exceptions import TimeoutError as CeleryTimeout
    from django.core.management.base import CommandError

    monkeypatch.setattr(
        Celery, "send_task", lambda self, *a, **k: _Sent(error=CeleryTimeout("no reply"))
    )
    env = {"CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "CELERY_RESULT_BACKEND": "redis://x"}
    with pytest.raises(CommandError, match=r"did not answer .* within 120 s.*worker\.log"):
        Command(stdout=io.StringIO())._check_worker(world_a.tenant, env)


def test_the_worker_check_accepts_its_own_worker(world_a, monkeypatch):
    from celery import Celery

    from tenants.tasks import database_label

    own = {"tenant": world_a.tenant.slug, "members": 5, "echo": "pong"}
    own["database"] = database_label()
    monkeypatch.setattr(Celery, "send_task", lambda self, *a, **k: _Sent(own))
    command = Command(stdout=io.StringIO())
    env = {"CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "CELERY_RESULT_BACKEND": "redis://x"}
    command._check_worker(world_a.tenant, env)
    assert f"worker answered for tenant {world_a.tenant.slug}" in command.stdout.getvalue()


def test_the_demo_serves_through_gunicorn_with_debug_off_whatever_the_shell_says():
    """The development server with DEBUG showed tracebacks and, for an unknown address, every
    URL of the project."""
    from django.conf import settings

    command = Command(stdout=io.StringIO())
    cmd = command._server_cmd(8123)
    assert cmd[1:4] == ["-m", "gunicorn", "pricing_saas.wsgi:application"]
    assert "127.0.0.1:8123" in cmd and "runserver" not in cmd
    assert command._server_env({"DEBUG": "true", "X": "1"}) == {"DEBUG": "false", "X": "1"}
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in settings.MIDDLEWARE


def test_the_local_settings_let_whitenoise_serve_static_files_without_collectstatic():
    import importlib

    local = importlib.import_module("pricing_saas.settings.local")
    assert local.WHITENOISE_USE_FINDERS is True
