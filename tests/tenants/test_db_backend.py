"""The database backend (`tenants/db_backend/`): every statement carries the tenant
setting, transaction-local; savepoints still roll back; a superuser or BYPASSRLS
connection is refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants.context import tenant_context
from tenants.db_backend.base import DatabaseWrapper
from tenants.models import Membership

pytestmark = pytest.mark.django_db


def test_every_statement_carries_the_tenant_setting(world_a):
    with tenant_context(world_a.tenant), CaptureQueriesContext(connection) as queries:
        Membership.objects.count()
    assert f"set_config('app.tenant_id', '{world_a.tenant.pk}', true)" in queries[0]["sql"]


@pytest.mark.django_db(transaction=True)
def test_set_local_statements_do_the_same_for_citus(world_a, world_b, settings):
    """DATABASE_RLS_SET_LOCAL (docs/citus.md): `SET LOCAL` statements instead of set_config(),
    with the same effect: each tenant sees its own rows, in and out of a transaction, and the
    setting dies with the transaction."""
    from django.db import transaction

    settings.DATABASE_RLS_SET_LOCAL = True
    with tenant_context(world_a.tenant), CaptureQueriesContext(connection) as queries:
        assert Membership.objects.count() == 5
        assert Membership.unscoped.count() == 5  # no tenant filter: the policy alone
    assert queries[0]["sql"].startswith(f"SET LOCAL app.tenant_id = '{world_a.tenant.pk}'; ")
    assert "set_config" not in queries[0]["sql"]
    with tenant_context(world_b.tenant), transaction.atomic():
        assert {m.tenant_id for m in Membership.unscoped.all()} == {world_b.tenant.pk}
    with connection.connection.cursor() as raw:  # the same connection, no wrapper
        raw.execute("SELECT current_setting('app.tenant_id', true)")
        assert raw.fetchone()[0] in ("", None)
    assert Membership.unscoped.count() == 0  # no tenant: no row


@pytest.mark.django_db(transaction=True)
def test_tenant_setting_is_transaction_local(world_a):
    """In autocommit the setting dies with its statement: a pooled connection never leaks it."""
    with tenant_context(world_a.tenant), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tenants_membership")
        assert cursor.fetchone()[0] == 5
    with connection.connection.cursor() as raw:  # the same connection, no wrapper
        raw.execute("SELECT current_setting('app.tenant_id', true)")
        assert raw.fetchone()[0] in ("", None)
        raw.execute("SELECT count(*) FROM tenants_membership")
        assert raw.fetchone()[0] == 0


def test_backend_refuses_a_superuser_connection():
    params = dict(connection.settings_dict)
    params["USER"] = "postgres"
    params["PASSWORD"] = ""
    wrapper = DatabaseWrapper(params, alias="superuser-check")
    with pytest.raises(ImproperlyConfigured, match="superuser or has BYPASSRLS"):
        wrapper.ensure_connection()
    wrapper.close()


def test_a_failed_savepoint_rolls_back_and_the_transaction_goes_on(world_a, user):
    """After an error inside a nested atomic block the outer transaction stays usable
    (the backend sends ROLLBACK TO SAVEPOINT without the tenant prefix)."""
    from django.db import IntegrityError, transaction

    from tenants.models import Membership

    with tenant_context(world_a.tenant), transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic():
            Membership.objects.create(user=world_a.users["viewer"], role="viewer")  # duplicate
        Membership.objects.create(user=user, role="viewer")
        assert Membership.objects.count() == 6


def test_a_tenant_model_grouped_by_its_id_groups_by_every_column(world_a):
    """Its primary key in the database is (tenant_id, id) (docs/citus.md), so `GROUP BY id`
    alone would not cover its other columns: Django is told to group by all of them."""
    from django.db.models import Count

    from pricing_saas.pricing.models import RuleSet
    from tests.factories import RuleSetFactory, RuleSetVersionFactory

    rule_set = RuleSetFactory(tenant=world_a.tenant)
    RuleSetVersionFactory(tenant=world_a.tenant, rule_set=rule_set)
    with tenant_context(world_a.tenant), CaptureQueriesContext(connection) as queries:
        annotated = RuleSet.objects.annotate(n=Count("versions")).get(pk=rule_set.pk)
    assert annotated.n == 1 and annotated.name == rule_set.name
    grouped = queries[-1]["sql"].split("GROUP BY")[1]
    assert '"pricing_ruleset"."name"' in grouped and '"pricing_ruleset"."tenant_id"' in grouped
