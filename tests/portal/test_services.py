"""Team management services (`pricing_saas/portal/services.py`) under concurrency."""

from __future__ import annotations

import contextlib
import threading

import pytest
from django.db import connection

from pricing_saas.portal import services
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context
from tenants.models import Membership
from tenants.roles import Role

from ..factories import MembershipFactory, TenantFactory

RACE_WAIT_S = 3


def _race(monkeypatch, tenant, actions):
    """Run each action in its own thread (its own connection and transaction), all started at
    once. Each waits, just before writing its audit event (so after it has counted the owners),
    until all have got that far or RACE_WAIT_S passed: without a lock that serialises them,
    every action counts the owners before any commits. Returns each action's outcome."""
    barrier = threading.Barrier(len(actions))
    record = services.audit.record

    def record_after_all_counted(*args, **kwargs):
        # Broken after the wait: the others are blocked on a lock, so go on alone.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=RACE_WAIT_S)
        return record(*args, **kwargs)

    monkeypatch.setattr(services.audit, "record", record_after_all_counted)
    outcomes: list = [None] * len(actions)
    start = threading.Barrier(len(actions))

    def run(index, action):
        try:
            with tenant_context(tenant):
                start.wait(timeout=RACE_WAIT_S)
                action()
            outcomes[index] = "ok"
        except ServiceError as exc:
            outcomes[index] = exc.code
        except Exception as exc:
            outcomes[index] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.fixture
def two_owners(transactional_db):
    tenant = TenantFactory()
    first = MembershipFactory(tenant=tenant, role=Role.OWNER)
    second = MembershipFactory(tenant=tenant, role=Role.OWNER)
    return tenant, first, second


def _owners(tenant) -> int:
    with tenant_context(tenant):
        return Membership.objects.filter(role=Role.OWNER).count()


def test_two_owners_demoting_each_other_leave_one_owner(monkeypatch, two_owners):
    tenant, first, second = two_owners
    outcomes = _race(
        monkeypatch,
        tenant,
        [
            lambda: services.change_role(
                actor_role=Role.OWNER, membership=second, role=Role.APPROVER
            ),
            lambda: services.change_role(
                actor_role=Role.OWNER, membership=first, role=Role.APPROVER
            ),
        ],
    )
    assert sorted(outcomes) == ["last_owner", "ok"], outcomes
    assert _owners(tenant) == 1


def test_two_owners_removing_each_other_leave_one_owner(monkeypatch, two_owners):
    tenant, first, second = two_owners
    outcomes = _race(
        monkeypatch,
        tenant,
        [
            lambda: services.remove_member(actor_role=Role.OWNER, membership=second),
            lambda: services.remove_member(actor_role=Role.OWNER, membership=first),
        ],
    )
    assert sorted(outcomes) == ["last_owner", "ok"], outcomes
    assert _owners(tenant) == 1


def test_an_owner_demoted_while_the_other_is_removed_leaves_one_owner(monkeypatch, two_owners):
    tenant, first, second = two_owners
    outcomes = _race(
        monkeypatch,
        tenant,
        [
            lambda: services.change_role(actor_role=Role.OWNER, membership=second, role="viewer"),
            lambda: services.remove_member(actor_role=Role.OWNER, membership=first),
        ],
    )
    assert sorted(outcomes) == ["last_owner", "ok"], outcomes
    assert _owners(tenant) == 1


def test_an_invitation_is_found_by_its_token_when_another_tenant_has_its_lookup_id(db):
    """lookup_id is unique per tenant only (docs/citus.md): the token's secret picks the row."""
    import datetime as dt

    from django.utils import timezone

    from tenants.models import Invitation
    from tenants.services import secret_digest

    a, b = TenantFactory(), TenantFactory()
    with tenant_context(a):
        issued = services.invite_member(
            tenant=a, actor=None, actor_role=Role.OWNER, email="new@example.com", role="viewer"
        )
    lookup_id = issued.token.split(".")[0]
    with tenant_context(b):
        Invitation.objects.create(
            email="other@example.com",
            lookup_id=lookup_id,
            token_hash=secret_digest("B" * 43),
            expires_at=timezone.now() + dt.timedelta(days=1),
        )
    assert services.find_invitation(issued.token).tenant_id == a.pk
    assert services.find_invitation(f"{lookup_id}.{'B' * 43}").tenant_id == b.pk
    with pytest.raises(services.NotFoundError):
        services.find_invitation(f"{lookup_id}.{'C' * 43}")
