"""When the alert check runs (`alerts.request_evaluation`, `alerts.evaluate_if_due`, the
`kpi.evaluate_when_due` task): once per burst of KPI refreshes, after they have been quiet for
KPI_ALERT_QUIET_S, never on half an upload."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pricing_saas.kpi import alerts, tasks
from pricing_saas.kpi.models import AlertCheckDue
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]

T0 = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock(monkeypatch):
    """timezone.now() under the test's control."""
    now = {"at": T0}
    monkeypatch.setattr(timezone, "now", lambda: now["at"])
    return now


@pytest.fixture
def sent(monkeypatch):
    """The scheduled checks sent (not run) and the checks actually run."""
    calls = {"sent": [], "checked": 0}
    monkeypatch.setattr(
        tasks.evaluate_when_due, "apply_async", lambda *a, **k: calls["sent"].append((a, k))
    )
    real = alerts.evaluate

    def counted(**kwargs):
        calls["checked"] += 1
        return real(**kwargs)

    monkeypatch.setattr(alerts, "evaluate", counted)
    return calls


def test_an_upload_in_many_batches_is_checked_once_after_the_last_batch(
    refreshed, world_b, clock, sent, settings
):
    settings.KPI_ALERT_QUIET_S = 300
    api = refreshed.api("analyst")
    for minute in range(5):  # five batches of the same upload, a minute apart
        clock["at"] = T0 + dt.timedelta(minutes=minute)
        rows = [{"date": f"2024-03-0{1 + minute % 3}", "sku": "TEA-A", "units": minute,
                 "price": "10", "channel": f"batch{minute}"}]  # fmt: skip
        assert api.post("/api/v1/sales/bulk/", rows, format="json").status_code == 200
    # one check waits, none ran on a part of the upload
    assert sent["checked"] == 0
    assert sent["sent"] == [(((refreshed.tenant.pk,),), {"countdown": 300})]
    with tenant_context(refreshed.tenant):
        due = AlertCheckDue.objects.get()
        assert due.due_at == T0 + dt.timedelta(minutes=4, seconds=300)
        # the task wakes 300 s after the first batch: refreshes came since, it waits the rest
        wait = alerts.evaluate_if_due(now=T0 + dt.timedelta(seconds=300))
        assert wait == pytest.approx(240) and sent["checked"] == 0
        # quiet at last: the check runs once, and a duplicate task finds nothing due
        assert alerts.evaluate_if_due(now=due.due_at) == []
        assert sent["checked"] == 1 and not AlertCheckDue.objects.exists()
        assert alerts.evaluate_if_due(now=due.due_at) is None and sent["checked"] == 1
    with tenant_context(world_b.tenant):  # the other tenant has nothing scheduled
        assert not AlertCheckDue.objects.exists()
        assert alerts.evaluate_if_due() is None


def test_a_lost_scheduled_check_is_sent_again(refreshed, clock, sent):
    with tenant_context(refreshed.tenant):
        assert alerts.request_evaluation() is True
        assert alerts.request_evaluation() is False  # one waits already
        clock["at"] = T0 + alerts.STALE_CHECK + dt.timedelta(seconds=1)  # its worker died
        assert alerts.request_evaluation() is True
    assert len(sent["sent"]) == 2


def test_the_eager_task_checks_at_once(refreshed):
    """Eager (tests, the demo) there is no later: the task checks and clears the schedule."""
    with tenant_context(refreshed.tenant):
        AlertCheckDue.objects.create(due_at=T0, scheduled_at=T0)
    assert tasks.evaluate_when_due.apply(args=[refreshed.tenant.pk]).get() == []
    with tenant_context(refreshed.tenant):
        assert not AlertCheckDue.objects.exists()


def test_the_worker_task_waits_again_while_refreshes_keep_coming(refreshed, clock, sent):
    """Run by a worker (not eagerly): a check still not due sends itself again for the rest of
    the quiet period (a new task: no retry limit to run out), and checks once it is due."""
    with tenant_context(refreshed.tenant):
        AlertCheckDue.objects.create(due_at=T0 + dt.timedelta(seconds=120), scheduled_at=T0)
    assert tasks.evaluate_when_due.run(refreshed.tenant.pk) is None
    assert sent["sent"] == [(((refreshed.tenant.pk,),), {"countdown": 120})]
    assert sent["checked"] == 0
    clock["at"] = T0 + dt.timedelta(seconds=121)
    assert tasks.evaluate_when_due.run(refreshed.tenant.pk) == []
    assert sent["checked"] == 1 and len(sent["sent"]) == 1


def test_refreshes_that_never_stop_still_get_a_check_at_most_six_quiet_periods_late(
    refreshed, clock, sent, settings
):
    settings.KPI_ALERT_QUIET_S = 300
    with tenant_context(refreshed.tenant):
        for minute in range(0, 120, 2):  # a refresh every 2 minutes for two hours
            clock["at"] = T0 + dt.timedelta(minutes=minute)
            alerts.request_evaluation()
            due = AlertCheckDue.objects.get().due_at
            assert due <= T0 + dt.timedelta(seconds=alerts.QUIET_AT_MOST * 300)
            if clock["at"] >= due:  # the waiting task checks, and the next burst starts anew
                alerts.evaluate_if_due(now=clock["at"])
                break
        assert sent["checked"] == 1
