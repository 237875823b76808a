"""`tenant_task` (`tenants/tasks.py`): a task runs in its tenant's context and leaves none
behind (eager here; `tests/test_celery_worker.py` runs a real worker)."""

from __future__ import annotations

import pytest

from tenants.context import get_current_tenant
from tenants.tasks import database_label, ping

pytestmark = pytest.mark.django_db


def test_task_decorator_sets_and_resets_tenant(world_a, world_b):
    result = ping.delay(world_a.tenant.pk, echo="hi").get()
    assert result == {
        "tenant": world_a.tenant.slug,
        "members": 5,
        "echo": "hi",
        "database": database_label(),  # whose database: the demo tells its own worker by it
    }
    assert get_current_tenant() is None
    assert ping.delay(world_b.tenant.pk).get()["tenant"] == world_b.tenant.slug


def test_task_for_unknown_tenant_does_nothing(db):
    assert ping.delay(999_999).get() is None
