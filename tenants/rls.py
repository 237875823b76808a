"""Row-level security for every table that has a tenant_id column.

Applied after every `migrate` (post_migrate), so a new tenant-owned table is covered without
anyone remembering: the policy set is found by introspection of the database, not by a list.
Each table gets RLS enabled *and forced* (the owner is subject to it too) and a policy that
admits a row only when its tenant_id equals the transaction-local setting app.tenant_id. Models
may add narrow SELECT-only conditions (`rls_extra_select`) for lookups before a tenant is known.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.apps import apps
from django.db import connections

from .grants import app_grants

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
    from django.conf import settings

    owner = getattr(settings, "DATABASE_OWNER", None)
    if owner and connections[using].settings_dict["USER"] != owner["USER"]:
        return  # a flush run as the application role (tests): the policies stay in place
    apply_row_level_security(using)
    grant_application_role(using)


@contextmanager
def as_owner(using: str = "default"):
    """Run the block connected as the role that owns the tables (settings.DATABASE_OWNER), then
    reconnect as the application role; without an owner, nothing changes."""
    from django.conf import settings

    owner = getattr(settings, "DATABASE_OWNER", None)
    connection = connections[using]
    if not owner or connection.settings_dict["USER"] == owner["USER"]:
        yield
        return
    saved = {key: connection.settings_dict.get(key) for key in ("USER", "PASSWORD")}
    connection.close()
    connection.settings_dict.update(owner)
    connection.settings_dict["APP_USER"] = saved["USER"]
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)
        connection.settings_dict.pop("APP_USER", None)


def grant_application_role(using: str = "default") -> None:
    """Give the application role its rights on every table and sequence (after a migrate run
    as the owner, so new tables are covered)."""
    from django.conf import settings

    connection = connections[using]
    app = connection.settings_dict.get("APP_USER")
    if not app:
        return  # migrated as the application role itself: it owns what it made
    truncate = getattr(settings, "DATABASE_APP_MAY_TRUNCATE", False)
    with connection.cursor() as cursor:
        for statement in app_grants(app, truncate=truncate):
            cursor.execute(statement.as_string(cursor.cursor))
