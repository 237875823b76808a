"""Row-level security for every table that has a tenant_id column.

Applied after every `migrate` (post_migrate), so a new tenant-owned table is covered without
anyone remembering: the policy set is found by introspection of the database, not by a list.
Each table gets RLS enabled *and forced* (the owner is subject to it too) and a policy that
admits a row only when its tenant_id equals the transaction-local setting app.tenant_id. Models
may add narrow SELECT-only conditions (`rls_extra_select`) for lookups before a tenant is known.
"""

from __future__ import annotations

from django.apps import apps
from django.db import connections

TENANT_CONDITION = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint"


def tenant_tables(connection) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.table_name FROM information_schema.columns c
            JOIN information_schema.tables t
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id'
              AND t.table_type = 'BASE TABLE'
            ORDER BY c.table_name
            """
        )
        return [row[0] for row in cursor.fetchall()]


def _extra_conditions() -> dict[str, tuple[str, ...]]:
    extras: dict[str, tuple[str, ...]] = {}
    for model in apps.get_models():
        conditions = getattr(model, "rls_extra_select", ())
        if conditions:
            extras[model._meta.db_table] = tuple(conditions)
    return extras


def apply_row_level_security(using: str = "default") -> list[str]:
    connection = connections[using]
    extras = _extra_conditions()
    tables = tenant_tables(connection)
    with connection.cursor() as cursor:
        for table in tables:
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY")
            cursor.execute(f"ALTER TABLE {quoted} FORCE ROW LEVEL SECURITY")
            cursor.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {quoted}")
            cursor.execute(
                f"CREATE POLICY tenant_isolation ON {quoted} "
                f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
            )
            cursor.execute(f"DROP POLICY IF EXISTS tenant_lookup ON {quoted}")
            if table in extras:
                condition = " OR ".join(f"({c})" for c in extras[table])
                cursor.execute(
                    f"CREATE POLICY tenant_lookup ON {quoted} FOR SELECT USING ({condition})"
                )
    return tables


def on_post_migrate(sender, using="default", **kwargs) -> None:
    # Connected for the tenants app only: Django sends it once all migrations have run.
    apply_row_level_security(using)
