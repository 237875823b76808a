"""Deleting a tenant removes every row it owns, in every table: the tables are found by
introspecting the database (every table with a `tenant_id` column), not from a list, so a new
table cannot be forgotten."""

from __future__ import annotations

import pytest
from django.db import connection

from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.services import delete_tenant

from .test_cross_tenant import object_of, tenant_models

pytestmark = pytest.mark.django_db


def tables_with_a_tenant() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.table_name FROM information_schema.columns AS c
               JOIN information_schema.tables AS t
                 ON t.table_schema = c.table_schema AND t.table_name = c.table_name
               WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id'
                 AND t.table_type = 'BASE TABLE'
               ORDER BY 1"""
        )
        return [row[0] for row in cursor.fetchall()]


def rows_of(tenant: Tenant, tables: list[str]) -> dict[str, int]:
    """Rows of `tenant` in each table, read under its own row-level security."""
    counts = {}
    with tenant_context(tenant), connection.cursor() as cursor:
        for table in tables:
            cursor.execute(
                f"SELECT count(*) FROM {connection.ops.quote_name(table)} WHERE tenant_id = %s",
                [tenant.pk],
            )
            counts[table] = cursor.fetchone()[0]
    return counts


def test_deleting_a_tenant_removes_its_rows_in_every_table_and_keeps_the_others(world_a, world_b):
    for world in (world_a, world_b):
        for model in tenant_models():
            object_of(world, model)
    tables = tables_with_a_tenant()
    modelled = {m._meta.db_table for m in tenant_models()}
    assert modelled <= set(tables)
    before_a, before_b = rows_of(world_a.tenant, tables), rows_of(world_b.tenant, tables)
    empty = sorted(t for t in modelled if not before_a[t])
    assert not empty, f"the test made no row of tenant A in {empty}: extend object_of()"
    delete_tenant(tenant=world_a.tenant)
    left = {t: n for t, n in rows_of(world_a.tenant, tables).items() if n}
    assert not left, f"rows of the deleted tenant left behind: {left}"
    assert rows_of(world_b.tenant, tables) == before_b
    assert not Tenant.objects.filter(pk=world_a.tenant.pk).exists()
