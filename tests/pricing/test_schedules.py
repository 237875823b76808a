"""Reprice schedules (`pricing_saas/pricing/schedules.py`): cron and time zone checked,
mirrored into Celery beat, and gone with their tenant."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from pricing_saas.pricing import schedules
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_schedules_validate_and_mirror_into_celery_beat(world_a):
    with tenant_context(world_a.tenant):
        schedule = schedules.save_schedule(
            values={"cron": "30 6 * * 1-5", "timezone": "Asia/Kolkata"}
        )
        task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
        assert task.task == "pricing.scheduled_reprice" and task.queue == "reprice"
        assert task.crontab.hour == "6" and str(task.crontab.timezone) == "Asia/Kolkata"
        assert schedules.next_run(schedule).hour == 6
        for values, code in [
            ({"cron": "61 * * * *"}, "invalid_cron"),
            ({"cron": "every day"}, "invalid_cron"),
            ({"cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "invalid_timezone"),
        ]:
            with pytest.raises(ServiceError) as err:
                schedules.save_schedule(schedule=schedule, values=values)
            assert err.value.code == code
        schedule.refresh_from_db()
        assert schedule.cron == "30 6 * * 1-5"
        schedules.save_schedule(schedule=schedule, values={"enabled": False})
        assert not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
        schedules.delete_schedule(schedule=schedule)
        assert not PeriodicTask.objects.filter(
            name__startswith=f"tenant-{world_a.tenant.pk}-"
        ).exists()


def test_deleting_a_tenant_removes_its_beat_schedules(world_a, world_b):
    from tenants.services import delete_tenant

    for world in (world_a, world_b):
        with tenant_context(world.tenant):
            schedules.save_schedule(values={"cron": "0 4 * * *"})
    delete_tenant(tenant=world_a.tenant)
    names = list(PeriodicTask.objects.values_list("name", flat=True))
    assert not [n for n in names if n.startswith(f"tenant-{world_a.tenant.pk}-")]
    assert [n for n in names if n.startswith(f"tenant-{world_b.tenant.pk}-")]
