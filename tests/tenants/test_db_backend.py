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
