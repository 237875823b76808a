"""Per-tenant reprice schedules: a cron expression and a timezone, stored with
django-celery-beat (one PeriodicTask per schedule, task `pricing.scheduled_reprice`)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import crontab
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from pricing_saas.web.errors import ServiceError
from tenants import audit
from tenants.context import get_current_actor, require_current_tenant

from .models import RepriceSchedule

FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
TASK = "pricing.scheduled_reprice"


def parse_cron(expression: str) -> dict[str, str]:
    """'30 6 * * 1-5' -> crontab fields; a clear error for anything that does not parse."""
    parts = (expression or "").split()
    if len(parts) != 5:
        raise ServiceError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"e.g. '30 6 * * 1-5'; got {len(parts)} in {expression!r}",
            code="invalid_cron",
            attr="cron",
        )
    fields = dict(zip(FIELDS, parts, strict=True))
    try:
        crontab(**fields)
    except (ValueError, TypeError) as exc:
        raise ServiceError(
            f"the cron expression {expression!r} does not parse: {exc}",
            code="invalid_cron",
            attr="cron",
        ) from None
    return fields


def check_timezone(name: str) -> str:
    try:
        if name not in available_timezones():
            raise ZoneInfoNotFoundError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ServiceError(
            f"unknown timezone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'",
            code="invalid_timezone",
            attr="timezone",
        ) from None
    return name


def next_run(schedule: RepriceSchedule, now: datetime | None = None) -> datetime | None:
    if not schedule.enabled:
        return None
    fields = parse_cron(schedule.cron)
    tz = ZoneInfo(schedule.timezone)
    local_now = (now or timezone.now()).astimezone(tz)
    spec = crontab(**fields, nowfun=lambda: local_now)
    return local_now + spec.remaining_estimate(local_now)


def _sync(schedule: RepriceSchedule) -> None:
    fields = parse_cron(schedule.cron)
    cron, _ = CrontabSchedule.objects.get_or_create(**fields, timezone=schedule.timezone)
    task_name = f"tenant-{schedule.tenant_id}-reprice-{schedule.pk}"
    periodic, _ = PeriodicTask.objects.update_or_create(
        name=task_name,
        defaults={
            "task": TASK,
            "crontab": cron,
            "interval": None,
            "args": json.dumps([schedule.tenant_id]),
            "kwargs": json.dumps({"schedule_id": schedule.pk}),
            "queue": "reprice",
            "enabled": schedule.enabled,
            "description": f"{schedule.tenant.slug}: {schedule}",
        },
    )
    if schedule.periodic_task_id != periodic.pk:
        schedule.periodic_task = periodic
        schedule.save(update_fields=["periodic_task"])


def sync_periodic_task(schedule: RepriceSchedule) -> None:
    """Make (or update) the schedule's django-celery-beat task from the schedule: e.g. after a
    tenant archive is imported, which carries schedules but not the installation's tasks."""
    _sync(schedule)


def _state(schedule: RepriceSchedule) -> dict:
    return audit.snapshot(schedule, ["name", "cron", "timezone", "enabled"])


@transaction.atomic
def save_schedule(*, schedule: RepriceSchedule | None = None, values: dict) -> RepriceSchedule:
    before = _state(schedule) if schedule else None
    merged = {**(before or {"name": "Reprice", "enabled": True, "timezone": "UTC"}), **values}
    cron = " ".join(str(merged.get("cron", "")).split())
    parse_cron(cron)
    tz = check_timezone(str(merged.get("timezone") or "UTC"))
    name = str(merged.get("name") or "Reprice").strip()[:100]
    if schedule is None:
        schedule = RepriceSchedule(tenant=require_current_tenant())
    schedule.name, schedule.cron, schedule.timezone = name, cron, tz
    schedule.enabled = bool(merged.get("enabled", True))
    schedule.updated_by = get_current_actor()[1]
    schedule.save()
    _sync(schedule)
    audit.record(
        "schedule.create" if before is None else "schedule.update",
        target=schedule,
        summary=str(schedule),
        before=before,
        after=_state(schedule),
    )
    return schedule


@transaction.atomic
def delete_schedule(*, schedule: RepriceSchedule) -> None:
    audit.record("schedule.delete", target=schedule, summary=str(schedule), before=_state(schedule))
    if schedule.periodic_task_id:
        PeriodicTask.objects.filter(pk=schedule.periodic_task_id).delete()
    schedule.delete()
