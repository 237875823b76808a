"""Layer 4 of tenant isolation: Postgres row-level security, fed by the tenant context.

A thin subclass of Django's PostgreSQL backend. Every statement is sent as one simple query
prefixed with `SELECT set_config('app.tenant_id', ..., true)`: Postgres runs a multi-statement
simple query as one implicit transaction, so the setting is transaction-local and can never
leak to the next request on a pooled connection, whether or not the statement runs inside an
explicit transaction. The policies (tenants/rls.py) compare each row's tenant_id with it.
With DATABASE_RLS_SET_LOCAL the prefix is `SET LOCAL app.tenant_id = '...';` instead, the same
on Postgres, and what Citus carries to its workers (docs/citus.md).

The backend also refuses a connection as a superuser or BYPASSRLS role (row-level security
would silently not apply) unless REQUIRE_RLS_SAFE_DB_ROLE is off.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base, features

from tenants.context import rls_settings


def _prefix() -> str:
    # Values are ints or [A-Za-z0-9_-] identifiers (validated in tenants.context), so quoting
    # them as literals is safe; '%' never appears, so psycopg2's parameter formatting is unaffected.
    values = rls_settings().items()
    if getattr(settings, "DATABASE_RLS_SET_LOCAL", False):
        # The same transaction-local settings as statements, which Citus propagates to the
        # workers that scan the shards (docs/citus.md); set_config() it does not.
        return "".join(f"SET LOCAL {name} = '{value}'; " for name, value in values)
    parts = ", ".join(f"set_config('{name}', '{value}', true)" for name, value in values)
    return f"SELECT {parts}; "


# No prefix for statements that Postgres refuses inside a transaction block, nor for transaction
# control: after an error, "ROLLBACK TO SAVEPOINT" must be the only statement sent (a prefixed
# SELECT would fail in the aborted transaction and the savepoint could never be rolled back).
# None of them reads rows.
_NO_PREFIX = re.compile(
    r"^\s*((CREATE|DROP)\s+DATABASE|VACUUM|ALTER\s+SYSTEM|SAVEPOINT|RELEASE|ROLLBACK|BEGIN"
    r"|COMMIT|START\s+TRANSACTION)|\bCONCURRENTLY\b",
    re.IGNORECASE,
)


def rls_execute_wrapper(execute, sql, params, many, context):
    if isinstance(sql, str) and not _NO_PREFIX.search(sql):
        sql = _prefix() + sql
    return execute(sql, params, many, context)


class DatabaseFeatures(features.DatabaseFeatures):
    def allows_group_by_selected_pks_on_model(self, model) -> bool:
        # A tenant-owned table's primary key is (tenant_id, id) in the database while Django's is
        # `id` (docs/citus.md): grouping by id alone would not make the other columns
        # functionally dependent, so Django groups by every selected column of such a model.
        opts = model._meta
        tenant_owned = any(f.column == "tenant_id" for f in opts.concrete_fields)
        if tenant_owned and opts.pk is not None and opts.pk.column == "id":
            return False
        return super().allows_group_by_selected_pks_on_model(model)


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.execute_wrappers.append(rls_execute_wrapper)

    def init_connection_state(self):
        super().init_connection_state()
        if getattr(settings, "REQUIRE_RLS_SAFE_DB_ROLE", True):
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
                    "WHERE rolname = current_user"
                )
                user, superuser, bypass = cursor.fetchone()
            if superuser or bypass:
                raise ImproperlyConfigured(
                    f"The database role {user!r} is a superuser or has BYPASSRLS, so Postgres "
                    "row-level security would not isolate tenants. Connect as a role created "
                    "by `python -m pricing_saas.dbsetup` (NOSUPERUSER NOBYPASSRLS)."
                )
