"""Layer 4: Postgres row-level security (`tenants/rls.py`), checked below the ORM with raw
SQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.utils import ProgrammingError

from tenants.context import tenant_context
from tenants.rls import tenant_tables

pytestmark = pytest.mark.django_db


def test_every_tenant_table_has_forced_rls_and_a_policy():
    tables = tenant_tables(connection)
    assert {"tenants_membership", "tenants_apikey", "tenants_invitation"} <= set(tables)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = ANY(%s) AND relkind = 'r'",
            [tables],
        )
        rows = cursor.fetchall()
        cursor.execute(
            "SELECT DISTINCT tablename FROM pg_policies WHERE policyname = 'tenant_isolation'"
        )
        with_policy = {r[0] for r in cursor.fetchall()}
    assert len(rows) == len(tables)
    for name, enabled, forced in rows:
        assert enabled and forced, f"{name}: RLS enabled={enabled} forced={forced}"
    assert set(tables) <= with_policy


def test_application_role_cannot_bypass_rls():
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE catalog_product NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE catalog_product DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON catalog_product",
        "CREATE POLICY open_door ON catalog_product USING (true)",
        "CREATE TABLE stray (id int)",
    ],
)
def test_the_application_role_owns_nothing_so_it_cannot_switch_rls_off(statement):
    """Layer 4 holds even if the application's own SQL were subverted: the tables belong to the
    owner role that runs migrations, and the application role only reads and writes rows."""
    from django.conf import settings
    from django.db import ProgrammingError, transaction

    assert settings.DATABASE_OWNER, "the suite runs with an owner role (DATABASE_OWNER_URL)"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableowner <> current_user FROM pg_tables WHERE tablename = %s",
            ["catalog_product"],
        )
        assert cursor.fetchone() == (True,)
        with (
            pytest.raises(ProgrammingError, match=r"must be owner|permission denied"),
            transaction.atomic(),
        ):
            cursor.execute(statement)


def _raw_count(sql: str, tenant_id: str = "") -> int:
    """Count through the raw psycopg2 connection: no Django wrapper, only our own setting."""
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [tenant_id])
        cursor.execute(sql)
        return cursor.fetchone()[0]


def test_raw_select_without_tenant_sees_no_rows(world_a, world_b):
    assert _raw_count("SELECT count(*) FROM tenants_membership") == 0
    assert _raw_count("SELECT count(*) FROM tenants_apikey") == 0
    # ... also through Django's cursor (the backend writes an empty tenant setting).
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tenants_membership")
        assert cursor.fetchone()[0] == 0


def test_raw_select_with_tenant_a_sees_only_a(world_a, world_b):
    a, b = world_a.tenant.pk, world_b.tenant.pk
    assert _raw_count(f"SELECT count(*) FROM tenants_membership WHERE tenant_id = {b}", str(a)) == 0
    assert _raw_count("SELECT count(*) FROM tenants_membership", str(a)) == 5
    with tenant_context(world_a.tenant), connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT tenant_id FROM tenants_membership")
        assert [r[0] for r in cursor.fetchall()] == [a]


def test_raw_insert_for_another_tenant_is_refused(world_a, world_b):
    user_id = world_b.users["viewer"].pk
    with (
        tenant_context(world_a.tenant),
        pytest.raises(ProgrammingError, match="row-level security"),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO tenants_membership (tenant_id, user_id, role, created_at) "
            "VALUES (%s, %s, 'owner', now())",
            [world_b.tenant.pk, user_id],
        )


def test_raw_update_and_delete_of_another_tenant_touch_nothing(world_a, world_b):
    with tenant_context(world_a.tenant), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tenants_membership SET role = 'viewer' WHERE tenant_id = %s",
            [world_b.tenant.pk],
        )
        assert cursor.rowcount == 0
        cursor.execute("DELETE FROM tenants_apikey WHERE tenant_id = %s", [world_b.tenant.pk])
        assert cursor.rowcount == 0
