"""Alerts of the KPI loop (`pricing_saas/kpi/alerts.py`): a market that stops answering as the
model forecast raises alerts (portal, e-mail, a signed webhook) and a gated retraining; a market
that answers as forecast raises none; bad policies are refused; the webhook's delivery retries
what can be retried and gives up on what cannot."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.test import Client
from pytest_httpserver import HTTPServer
from werkzeug import Response

from ml.models import ModelVersion
from ml.science.backtest import MIN_SCORED_SKUS
from pricing_saas.catalog.importer import import_rows
from pricing_saas.catalog.models import SalesRecord
from pricing_saas.kpi import alerts
from pricing_saas.kpi.models import Alert, AlertPolicy
from pricing_saas.pricing.models import PriceChange
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context
from tenants.roles import Role
from tests.pricing.test_outcomes import _published_with_sales_after

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]

LENIENT = {"min_changes": 5, "max_wape": "0.6", "min_coverage": "0.5"}


@pytest.fixture
def local_webhooks(settings):
    settings.ALERT_WEBHOOK_ALLOW_HTTP = True
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True


def _collapse_changed_skus(world, factor: float = 0.25) -> list[dict]:
    """After publication, the SKUs whose price changed sell a quarter of what they did: a
    market that punishes every move the model made. Returns the sales rows as they were."""
    with tenant_context(world.tenant):
        raised = list(
            PriceChange.objects.filter(status="published").values_list("product_id", flat=True)
        )
        first = PriceChange.objects.order_by("published_at").first().published_at.date()
        rows = [
            {"date": r.date.isoformat(), "sku": r.product.sku, "units": r.units,
             "price": str(r.price)}
            for r in SalesRecord.objects.filter(product_id__in=raised, date__gte=first)
            .select_related("product")
        ]  # fmt: skip
        import_rows(kind="sales", rows=[{**r, "units": int(r["units"] * factor)} for r in rows])
    return rows


def test_a_market_that_answers_as_forecast_raises_no_alert(world_a):
    _published_with_sales_after(world_a, seed=7)
    with tenant_context(world_a.tenant):
        alerts.save_policy(**LENIENT)
        assert alerts.evaluate() == []
        assert not Alert.objects.exists()
    assert mail.outbox == []


def test_a_market_that_stops_answering_as_forecast_alerts_everyone_and_retrains(
    world_a, world_b, httpserver: HTTPServer, local_webhooks
):
    _published_with_sales_after(world_a, seed=7)
    original = _collapse_changed_skus(world_a)
    assert len({r["sku"] for r in original}) >= 10
    received = []

    def handler(request):
        received.append((request.get_data(), dict(request.headers)))
        return Response("ok", status=200)

    httpserver.expect_request("/hooks/pricing", method="POST").respond_with_handler(handler)
    with tenant_context(world_a.tenant):
        policy = alerts.save_policy(**LENIENT, webhook_url=httpserver.url_for("/hooks/pricing"))
        key = policy.new_webhook_secret  # shown once; stored encrypted
        assert key.startswith("whsec_") and key not in policy.webhook_secret
        in_force = ModelVersion.objects.get(kind="demand", status="promoted")
        opened = alerts.evaluate()
        kinds = {a.kind for a in opened}
        assert Alert.Kind.PROFIT_SHORTFALL in kinds
        assert kinds & {Alert.Kind.FORECAST_ERROR, Alert.Kind.INTERVAL_COVERAGE}
        # one retraining for all of them, gated by the backtest against the version in force
        retrained = {a.retraining_id for a in Alert.objects.all()}
        assert len(retrained) == 1 and None not in retrained
        version = ModelVersion.objects.get(pk=retrained.pop())
        assert version.hyperparameters["gate"] == "backtest"
        verdict = version.metrics["against_in_force"]
        assert verdict["version"] == in_force.version and verdict["holdout_days"] == 14
        # promoted only when better beyond noise: the improvement's interval above 0, on at
        # least MIN_SCORED_SKUS SKUs
        assert verdict["promoted"] == (
            verdict["improvement_low"] > 0 and verdict["skus"] >= MIN_SCORED_SKUS
        )
        assert verdict["improvement_low"] <= verdict["improvement_high"]
        assert "95 % interval" in version.message
        promoted = ModelVersion.objects.get(kind="demand", status="promoted")
        assert promoted.pk == (version.pk if verdict["promoted"] else in_force.pk)
        # a second check: nothing new is opened, nobody is e-mailed twice; the alerts about a
        # version no longer in force close
        assert alerts.evaluate() == []
        still_open = set(Alert.objects.filter(status="open").values_list("kind", flat=True))
        model_kinds = {Alert.Kind.FORECAST_ERROR, Alert.Kind.INTERVAL_COVERAGE}
        closed = len(kinds & model_kinds) if verdict["promoted"] else 0
        assert len(still_open) == len(opened) - closed
    # e-mail to the owner and the admin, once per alert
    assert len(mail.outbox) == len(opened)
    to = set(mail.outbox[0].to)
    assert to == {world_a.users["owner"].email, world_a.users["admin"].email}
    assert "Pricing alert" in mail.outbox[0].subject
    assert f"(v{version.version})" in mail.outbox[0].body  # the retraining is named
    # the webhook: one signed event per alert opened (and per alert closed)
    assert len(received) == len(opened) + closed
    body, headers = received[0]
    assert alerts.verify(key, body, headers["X-Pricing-Signature"])
    assert not alerts.verify(key, body + b" ", headers["X-Pricing-Signature"])
    event = json.loads(body)
    assert event["type"] == "alert.opened" and event["tenant"] == world_a.tenant.slug
    assert headers["X-Pricing-Delivery"] == event["id"]
    with tenant_context(world_a.tenant):
        assert set(Alert.objects.values_list("webhook_status", flat=True)) == {"sent"}
    # the portal shows them to everyone of the tenant, nothing to another tenant
    page = world_a.portal(Client(), "viewer").get("/kpi/alerts/").content.decode()
    assert "Realised profit behind the forecast" in page and 'id="open-alerts"' in page
    other = world_b.portal(Client(), "owner").get("/kpi/alerts/").content.decode()
    assert "No open alerts." in other
    listed = world_a.api("viewer").get("/api/v1/alerts/?status=open").json()
    assert listed["count"] == len(opened) - closed
    assert world_b.api("viewer").get("/api/v1/alerts/").json()["count"] == 0
    one = next(a.pk for a in opened if a.kind == Alert.Kind.PROFIT_SHORTFALL)
    assert world_b.api("admin").post(f"/api/v1/alerts/{one}/acknowledge/").status_code == 404
    assert world_a.api("viewer").post(f"/api/v1/alerts/{one}/acknowledge/").status_code == 403
    seen = world_a.api("admin").post(f"/api/v1/alerts/{one}/acknowledge/")
    assert seen.status_code == 200 and seen.json()["acknowledged_at"]
    # the sales were a misreport: corrected, the next check closes what no longer holds
    with tenant_context(world_a.tenant):
        import_rows(kind="sales", rows=original)
        alerts.save_policy(max_wape="10", min_coverage="0")
        alerts.evaluate()
        assert not Alert.objects.filter(status="open").exists()
    assert json.loads(received[-1][0])["type"] == "alert.resolved"


def test_a_gated_retraining_without_new_days_leaves_the_version_in_force(world_a):
    from ml import services as ml_services

    _published_with_sales_after(world_a, seed=11)
    with tenant_context(world_a.tenant):
        # the version in force saw everything up to the last sales day: nothing to judge on
        last = max(SalesRecord.objects.values_list("date", flat=True))
        in_force = ModelVersion.objects.get(kind="demand", status="promoted")
        in_force.metrics = {**in_force.metrics, "last_day": last.isoformat()}
        in_force.save(update_fields=["metrics"])
        version = ml_services.start_training(kind="demand", gate=True, reason="test")
        version.refresh_from_db()
        assert version.status == "ready"
        assert version.metrics["against_in_force"]["promoted"] is False
        assert "needs at least 14 newer days" in version.message
        assert ModelVersion.objects.get(status="promoted", kind="demand").pk == in_force.pk


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window_days", 3),
        ("window_days", "x"),
        ("min_changes", 0),
        ("max_wape", "-0.1"),
        ("min_coverage", "1.5"),
        ("min_coverage", "NaN"),
        ("max_profit_shortfall", "Infinity"),
        ("webhook_url", "ftp://example.com/x"),
        ("webhook_url", "http://example.com/x"),  # production: https only
        ("webhook_url", "https://example.com:99999/x"),
        ("webhook_url", "https://example.com:abc/x"),
        ("webhook_url", "https://[::1"),
        ("webhook_url", "https://" + "a" * 70 + ".example.com/x"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(world_a, field, value):
    with tenant_context(world_a.tenant):
        with pytest.raises(ServiceError) as caught:
            alerts.save_policy(**{field: value})
        assert caught.value.attr == field
        assert alerts.policy().pk is None  # nothing saved
    got = world_a.api("admin").patch("/api/v1/alert-policy/", {field: value}, format="json")
    assert got.status_code == 400 and got.json()["attr"] == field


def test_a_webhook_to_a_private_address_is_refused(world_a, settings):
    settings.ALERT_WEBHOOK_ALLOW_HTTP = True
    for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://[::1]/x"):
        got = world_a.api("admin").patch(
            "/api/v1/alert-policy/", {"webhook_url": url}, format="json"
        )
        assert got.status_code == 400 and "private or local" in got.json()["detail"], url


def test_the_policy_api_shows_the_key_only_to_those_who_manage_settings(
    world_a, world_b, local_webhooks
):
    admin = world_a.api("admin")
    saved = admin.patch(
        "/api/v1/alert-policy/", {"webhook_url": "http://127.0.0.1:9/h"}, format="json"
    )
    assert saved.status_code == 200, saved.content
    secret = saved.json()["webhook_secret"]
    assert secret.startswith("whsec_")
    assert world_a.api("viewer").get("/api/v1/alert-policy/").json()["webhook_secret"] is None
    assert (
        world_a.api("approver")
        .patch("/api/v1/alert-policy/", {"retrain": False}, format="json")
        .status_code
        == 403
    )
    # shown once: a later read, even by an admin, has only whether one is set
    again = admin.get("/api/v1/alert-policy/").json()
    assert again["webhook_secret"] is None and again["has_webhook_secret"] is True
    unchanged = admin.patch("/api/v1/alert-policy/", {"retrain": False}, format="json").json()
    assert unchanged["webhook_secret"] is None
    rotated = admin.post("/api/v1/alert-policy/rotate-secret/").json()["webhook_secret"]
    assert rotated.startswith("whsec_") and rotated != secret
    assert admin.get("/api/v1/alert-policy/").json()["webhook_secret"] is None
    # tenant B sees its own defaults, not A's webhook
    other = world_b.api("admin").get("/api/v1/alert-policy/").json()
    assert other["webhook_url"] == "" and other["webhook_secret"] is None
    assert other["has_webhook_secret"] is False
    with tenant_context(world_a.tenant):
        from tenants.models import AuditEvent

        assert AuditEvent.objects.filter(action="kpi.alert_policy_changed").exists()
        assert AuditEvent.objects.filter(action="kpi.webhook_secret_rotated").exists()


def _open_alert(world) -> Alert:
    with tenant_context(world.tenant):
        return Alert.objects.create(
            kind=Alert.Kind.PROFIT_SHORTFALL, subject="test", message="profit behind"
        )


def _reload(world, alert: Alert) -> Alert:
    with tenant_context(world.tenant):
        return Alert.objects.get(pk=alert.pk)


def test_a_webhook_answering_500_is_retried_then_given_up(
    world_a, httpserver: HTTPServer, local_webhooks
):
    from pricing_saas.kpi.tasks import WEBHOOK_RETRIES, deliver_alert_webhook

    httpserver.expect_request("/h").respond_with_data("busy", status=503)
    alert = _open_alert(world_a)
    with tenant_context(world_a.tenant):
        alerts.save_policy(webhook_url=httpserver.url_for("/h"))
    waits = []
    for attempt in range(WEBHOOK_RETRIES + 1):  # what a worker does with each retry
        try:
            deliver_alert_webhook.apply(
                args=[world_a.tenant.pk, alert.pk, "alert.opened"], retries=attempt
            )
        except Retry as retry:
            waits.append(retry.when)
            alert = _reload(world_a, alert)
            assert alert.webhook_status == "retrying" and "HTTP 503" in alert.webhook_error
    alert = _reload(world_a, alert)
    assert alert.webhook_status == "failed" and "gave up" in alert.webhook_error
    assert len(httpserver.log) == WEBHOOK_RETRIES + 1
    assert waits == sorted(waits) and waits[0] == 30 and waits[-1] <= 3600


def test_a_webhook_refused_with_400_is_not_retried(world_a, httpserver: HTTPServer, local_webhooks):
    from pricing_saas.kpi.tasks import deliver_alert_webhook

    httpserver.expect_request("/h").respond_with_data("no", status=400)
    alert = _open_alert(world_a)
    with tenant_context(world_a.tenant):
        alerts.save_policy(webhook_url=httpserver.url_for("/h"))
    deliver_alert_webhook.apply(args=[world_a.tenant.pk, alert.pk, "alert.opened"])
    alert = _reload(world_a, alert)
    assert alert.webhook_status == "failed" and "HTTP 400" in alert.webhook_error
    assert len(httpserver.log) == 1


def test_a_signature_out_of_its_time_window_is_rejected():
    body = b'{"type": "alert.opened"}'
    header = alerts.sign("whsec_x", body, at=1_000_000)
    assert alerts.verify("whsec_x", body, header, now=1_000_000 + 60)
    assert not alerts.verify("whsec_x", body, header, now=1_000_000 + 3600)
    assert not alerts.verify("whsec_y", body, header, now=1_000_000)
    assert not alerts.verify("whsec_x", body, "garbage", now=1_000_000)


def test_the_portal_form_takes_percentages_and_names_a_bad_field(world_a):
    client = world_a.portal(Client(), "admin")
    got = client.post(
        "/kpi/alerts/",
        {"action": "save", "enabled": "on", "window_days": "14", "min_changes": "10",
         "max_wape": "40", "min_coverage": "75 %", "max_profit_shortfall": "30",
         "resolve_margin": "5", "cooldown_hours": "12"},
        follow=True,
    )  # fmt: skip
    assert "Alert policy saved." in got.content.decode()
    with tenant_context(world_a.tenant):
        policy = alerts.policy()
        assert (float(policy.max_wape), float(policy.min_coverage)) == (0.4, 0.75)
        assert (float(policy.resolve_margin), policy.cooldown_hours) == (0.05, 12)
        assert policy.retrain is False  # an unticked box
    bad = client.post("/kpi/alerts/", {"action": "save", "min_coverage": "lots"}, follow=True)
    assert "min_coverage" in bad.content.decode()
    viewer = world_a.portal(Client(), "viewer").post("/kpi/alerts/", {"action": "check"})
    assert viewer.status_code == 403


def test_a_huge_percentage_in_the_portal_form_is_a_message_not_a_500(world_a):
    client = world_a.portal(Client(), "admin")
    got = client.post("/kpi/alerts/", {"action": "save", "max_wape": "1e1000002"}, follow=True)
    assert got.status_code == 200 and "max_wape" in got.content.decode()


def test_switching_the_policy_off_closes_its_open_alerts(world_a):
    alert = _open_alert(world_a)
    with tenant_context(world_a.tenant):
        alerts.save_policy(enabled=False)
        assert alerts.evaluate() == []
        alert = Alert.objects.get(pk=alert.pk)
    assert alert.status == "resolved" and "switched off" in alert.figures["resolved"]


def test_a_webhook_connects_to_the_address_it_checked(world_a, settings, monkeypatch):
    """DNS rebinding: a name that resolves to a public address when checked and to a private
    one a moment later. The delivery connects to the checked address itself (the name kept in
    the Host header and the TLS server name), so a second resolution never happens."""
    import socket
    from contextlib import contextmanager

    import httpx

    from pricing_saas.kpi.tasks import deliver_alert_webhook

    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = False
    answers = iter(["93.184.216.34", "93.184.216.34"])  # then the attacker's 127.0.0.1

    def getaddrinfo(host, port, *args, **kwargs):
        address = next(answers, "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    sent = {}

    @contextmanager
    def stream(self, method, url, **kwargs):
        sent.update(url=str(url), **kwargs)
        yield httpx.Response(204)

    monkeypatch.setattr(httpx.Client, "stream", stream)
    alert = _open_alert(world_a)
    with tenant_context(world_a.tenant):
        alerts.save_policy(webhook_url="https://hooks.example.com:8443/in")  # first answer
    deliver_alert_webhook.apply(args=[world_a.tenant.pk, alert.pk, "alert.opened"])  # second
    assert sent["url"] == "https://93.184.216.34:8443/in"
    assert sent["headers"]["Host"] == "hooks.example.com:8443"
    assert sent["extensions"] == {"sni_hostname": "hooks.example.com"}
    assert _reload(world_a, alert).webhook_status == "sent"
    assert alerts.pinned("http://h.example/x", "2606:4700::1") == (
        "http://[2606:4700::1]/x",
        {"Host": "h.example"},
        {},
    )
    assert alerts.pinned("https://u:p@h.example:99/x", "93.184.216.34")[0] == (
        "https://u:p@93.184.216.34:99/x"  # the receiver's credentials kept
    )
    assert alerts.pinned("https://[2606:4700::1]/x", "2606:4700::1") == (
        "https://[2606:4700::1]/x",  # an address already: left as it is
        {},
        {},
    )


@pytest.mark.django_db(transaction=True)
def test_check_now_while_a_check_runs_is_a_409_not_a_wait(world_a):
    import threading

    from django.db import connection as db
    from django.db import transaction as tx

    from pricing_saas.kpi.alerts import LOCK_CLASS

    held, release = threading.Event(), threading.Event()

    def running_check():  # another check of the same tenant, holding its lock
        try:
            with tx.atomic(), db.cursor() as cur:
                cur.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s::int)", [LOCK_CLASS, world_a.tenant.pk]
                )
                held.set()
                release.wait(10)
        finally:
            db.close()

    thread = threading.Thread(target=running_check)
    thread.start()
    try:
        assert held.wait(10)
        answer = world_a.api("admin").post("/api/v1/alerts/check/", format="json")
        assert answer.status_code == 409 and answer.json()["code"] == "check_running"
    finally:
        release.set()
        thread.join(10)
    assert world_a.api("admin").post("/api/v1/alerts/check/", format="json").status_code == 200


def test_an_alert_is_emailed_once_even_if_the_task_runs_twice(world_a):
    from django.core import mail

    from pricing_saas.kpi.tasks import email_alert

    alert = _open_alert(world_a)
    email_alert.apply(args=[world_a.tenant.pk, alert.pk])
    email_alert.apply(args=[world_a.tenant.pk, alert.pk])  # a redelivery
    assert len(mail.outbox) == 1
    assert _reload(world_a, alert).emailed_at is not None


# --- hysteresis, cooldown, and no retraining the backtest could not judge ----------------------


@pytest.fixture
def wape_of(world_a, monkeypatch):
    """A demand version in force whose forecast error the test sets (`wape_of["wape"]`), with
    plenty of measured changes; the profit check has no changes to judge."""
    from tests.factories import ModelVersionFactory

    version = ModelVersionFactory(
        tenant=world_a.tenant, kind="demand", status="promoted",
        metrics={"last_day": "2024-03-01"},
    )  # fmt: skip
    state = {"wape": 0.0, "version": version}

    def accuracy(window_days):
        row = {"model_version": state["version"].pk, "changes": 50, "wape": state["wape"],
               "bias": 0.0}  # fmt: skip
        return [{**row, "coverage": 0.95, "intervals": 50}]

    monkeypatch.setattr(alerts, "accuracy", accuracy)
    return state


def _kinds_open(world) -> list[str]:
    with tenant_context(world.tenant):
        return sorted(Alert.objects.filter(status="open").values_list("kind", flat=True))


def test_a_figure_hovering_at_the_limit_does_not_open_and_close_the_alert(
    world_a, wape_of, monkeypatch
):
    """Limit 50 %, margin 10 % of it: an open alert closes only at 45 % or less; once closed,
    the same kind does not open again within the cooldown (24 h), then it may."""
    from django.utils import timezone as tz

    now = {"at": tz.now()}
    monkeypatch.setattr(tz, "now", lambda: now["at"])
    with tenant_context(world_a.tenant):
        alerts.save_policy(max_wape="0.5", retrain=False)
        opened = 0
        for wape in (0.51, 0.49, 0.52, 0.47):  # around the limit, never 45 % or less
            wape_of["wape"] = wape
            opened += len(alerts.evaluate())
        assert opened == 1 and Alert.objects.count() == 1
        assert _kinds_open(world_a) == ["forecast_error"]
        wape_of["wape"] = 0.44  # past the limit by the margin: closes
        alerts.evaluate()
        assert _kinds_open(world_a) == []
        wape_of["wape"] = 0.6  # back above within the cooldown: nothing opens, nobody told
        now["at"] += dt.timedelta(hours=23)
        assert alerts.evaluate() == [] and Alert.objects.count() == 1
        now["at"] += dt.timedelta(hours=2)  # the cooldown is over
        assert len(alerts.evaluate()) == 1 and Alert.objects.count() == 2
    assert len(mail.outbox) == 2  # one per alert opened, not one per crossing


def test_the_cooldown_holds_back_the_same_alert_not_another_subject_of_its_kind(world_a, wape_of):
    """The forecast error of demand v1 closed a moment ago: v1 crossing again waits out the
    cooldown, but a newer version in force that misses is another alert and opens."""
    from tests.factories import ModelVersionFactory

    with tenant_context(world_a.tenant):
        alerts.save_policy(max_wape="0.5", retrain=False)
        wape_of["wape"] = 0.6
        first = alerts.evaluate()
        wape_of["wape"] = 0.4
        alerts.evaluate()
        wape_of["wape"] = 0.6
        assert alerts.evaluate() == []  # the same subject, within the cooldown
        old = wape_of["version"]
        old.status = "ready"
        old.save(update_fields=["status"])
        wape_of["version"] = ModelVersionFactory(
            tenant=world_a.tenant, kind="demand", status="promoted", version=old.version + 1,
            metrics={"last_day": "2024-03-01"},
        )  # fmt: skip
        second = alerts.evaluate()
        assert [a.subject for a in first] == [f"demand v{old.version}"]
        assert [a.subject for a in second] == [f"demand v{old.version + 1}"]


def test_without_margin_and_cooldown_the_alert_follows_the_limit(world_a, wape_of):
    with tenant_context(world_a.tenant):
        alerts.save_policy(max_wape="0.5", resolve_margin="0", cooldown_hours=0, retrain=False)
        for wape, expected in ((0.51, ["forecast_error"]), (0.49, []), (0.51, ["forecast_error"])):
            wape_of["wape"] = wape
            alerts.evaluate()
            assert _kinds_open(world_a) == expected
        assert Alert.objects.count() == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resolve_margin", "-0.1"),
        ("resolve_margin", "NaN"),
        ("resolve_margin", "1.5"),
        ("cooldown_hours", -1),
        ("cooldown_hours", "nan"),
        ("cooldown_hours", 721),
    ],
)
def test_a_bad_margin_or_cooldown_is_refused_naming_the_field(world_a, field, value):
    with tenant_context(world_a.tenant):
        with pytest.raises(ServiceError) as caught:
            alerts.save_policy(**{field: value})
        assert caught.value.attr == field
        assert alerts.policy().pk is None  # nothing saved
    got = world_a.api("admin").patch("/api/v1/alert-policy/", {field: value}, format="json")
    assert got.status_code == 400 and field in got.content.decode()


def test_the_policy_api_reads_and_sets_margin_and_cooldown(world_a, world_b):
    got = world_a.api("admin").patch(
        "/api/v1/alert-policy/", {"resolve_margin": "0.2", "cooldown_hours": 6}, format="json"
    )
    assert got.status_code == 200
    assert (got.json()["resolve_margin"], got.json()["cooldown_hours"]) == ("0.200", 6)
    other = world_b.api("admin").get("/api/v1/alert-policy/").json()
    assert (other["resolve_margin"], other["cooldown_hours"]) == ("0.100", 24)


def test_no_gated_retraining_while_the_version_in_force_saw_recent_sales(world_a, wape_of):
    """The version in force saw the sales up to 2024-03-01; the newest are of 2024-03-10: a
    retrained version could not be judged on 14 unseen days, so none is started."""
    from tests.factories import SalesRecordFactory

    with tenant_context(world_a.tenant):
        SalesRecordFactory(tenant=world_a.tenant, date=dt.date(2024, 3, 10))
        alerts.save_policy(max_wape="0.5", retrain=True)
        wape_of["wape"] = 0.9
        (alert,) = alerts.evaluate()
        assert alert.retraining is None
        assert "2024-03-01" in alert.figures["retraining_skipped"]
        assert ModelVersion.objects.filter(kind="demand").count() == 1
        # 14 days later there is enough to judge: the next alert retrains
        SalesRecordFactory(tenant=world_a.tenant, date=dt.date(2024, 3, 15))
        assert alerts._too_soon_to_retrain() == ""


def test_the_webhook_key_is_stored_encrypted_and_old_plain_keys_are_encrypted_by_the_migration(
    world_a, world_b, local_webhooks
):
    """The key is a Fernet token in the database, as the shops' credentials are; the migration
    encrypts a key an earlier version stored in plain text, for every tenant; rotate_credentials
    re-encrypts it under the first key."""
    import importlib
    import io

    from django.core.management import call_command
    from django.db import connection

    from pricing_saas.kpi.models import AlertPolicy

    migration = importlib.import_module("pricing_saas.kpi.migrations.0004_encrypt_webhook_secret")
    with tenant_context(world_a.tenant):
        key = alerts.save_policy(webhook_url="http://127.0.0.1:9/h").new_webhook_secret
        stored = AlertPolicy.objects.get().webhook_secret
        assert key not in stored and AlertPolicy.objects.get().signing_key() == key
        assert key not in repr(AlertPolicy.objects.get())
    for world, plain in ((world_a, "whsec_plain_alpha"), (world_b, "whsec_plain_bravo")):
        with tenant_context(world.tenant):
            AlertPolicy.objects.update_or_create(
                tenant=world.tenant, defaults={"webhook_secret": plain}
            )  # as an earlier version stored it
    from django.apps import apps

    migration.encrypt_keys(apps, type("Editor", (), {"connection": connection})())
    for world, plain in ((world_a, "whsec_plain_alpha"), (world_b, "whsec_plain_bravo")):
        with tenant_context(world.tenant):
            policy = AlertPolicy.objects.get()
            assert policy.webhook_secret != plain and policy.signing_key() == plain
            before = policy.webhook_secret
    call_command("rotate_credentials", stdout=io.StringIO())
    with tenant_context(world_b.tenant):
        policy = AlertPolicy.objects.get()
        assert policy.webhook_secret != before and policy.signing_key() == "whsec_plain_bravo"


def test_the_portal_shows_a_new_webhook_key_once(world_a, local_webhooks):
    client = world_a.portal(Client(), "admin")
    saved = client.post(
        "/kpi/alerts/", {"action": "save", "webhook_url": "http://127.0.0.1:9/h"}, follow=True
    ).content.decode()
    assert "New webhook signing key: whsec_" in saved
    key = saved.split("New webhook signing key: ", 1)[1].split(" ", 1)[0]
    assert key not in client.get("/kpi/alerts/").content.decode()  # never again
    rotated = client.post("/kpi/alerts/", {"action": "rotate"}, follow=True).content.decode()
    assert "New webhook signing key: whsec_" in rotated and key not in rotated


def test_a_webhook_without_encryption_keys_is_a_clear_400_not_a_500(
    world_a, settings, local_webhooks
):
    """Production without FIELD_ENCRYPTION_KEYS (and no derivation from SECRET_KEY): the
    signing key cannot be stored encrypted, so the webhook is refused with the reason."""
    settings.FIELD_ENCRYPTION_KEYS = []
    settings.FIELD_ENCRYPTION_DERIVE_FROM_SECRET = False
    answer = world_a.api(Role.ADMIN).patch(
        "/api/v1/alert-policy/", {"webhook_url": "http://127.0.0.1:9/hook"}, format="json"
    )
    assert answer.status_code == 400, answer.content
    body = answer.json()
    assert body["attr"] == "webhook_url" and "FIELD_ENCRYPTION_KEYS" in body["detail"]
    with tenant_context(world_a.tenant):
        assert not AlertPolicy.objects.filter(webhook_url="http://127.0.0.1:9/hook").exists()


def test_the_coverage_is_judged_on_the_forecasts_that_state_an_interval(
    world_a, wape_of, monkeypatch
):
    """A forecast on a slope of unknown error states no interval (0 to infinity): of 50 measured
    changes only the 3 that state one count for the coverage alert, too few to judge; with 40
    the same coverage is judged (and breaches the floor)."""
    row = {"model_version": wape_of["version"].pk, "changes": 50, "wape": 0.0, "bias": 0.0,
           "coverage": 0.2}  # fmt: skip
    stated = {"intervals": 3}
    monkeypatch.setattr(alerts, "accuracy", lambda window_days: [{**row, **stated}])
    with tenant_context(world_a.tenant):
        policy = alerts.save_policy(min_changes=5, min_coverage="0.8")

        def coverage_check():
            return next(c for c in alerts.checks(policy) if c.kind == Alert.Kind.INTERVAL_COVERAGE)

        few = coverage_check()
        assert few.breached is None and "of 3 measured changes" in few.message
        stated["intervals"] = 40
        assert coverage_check().breached is True
