"""The application role's rights on the schema (pure psycopg2: the database bootstrap
`pricing_saas.dbsetup` runs it before Django is set up, `tenants.rls` after each migrate)."""

from __future__ import annotations

import re

from psycopg2 import sql

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# The owner's SECURITY DEFINER functions the application role may call (revoked from PUBLIC by
# the migration that makes each): ANALYZE of an import's table after a large import.
APP_FUNCTIONS = ("public.catalog_refresh_statistics(text, timestamptz)",)


def app_grants(role: str, *, truncate: bool = False) -> list:
    """What the application role may do on every table and sequence (run by the owner after
    each migrate, so new tables are covered). TRUNCATE ignores row-level security, so it is
    granted only where asked (the test suite's flush between transactional tests)."""
    if not _IDENT.match(role):
        raise ValueError(f"unsafe SQL identifier: {role!r}")
    rights = "SELECT, INSERT, UPDATE, DELETE" + (", TRUNCATE" if truncate else "")
    return [
        sql.SQL(f"GRANT {rights} ON ALL TABLES IN SCHEMA public TO {{}}").format(
            sql.Identifier(role)
        ),
        sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {}").format(
            sql.Identifier(role)
        ),
    ] + [
        # each where a migration has made it (the bootstrap runs before the migrations)
        sql.SQL(
            "DO $$ BEGIN IF to_regprocedure({name}) IS NOT NULL THEN "
            "GRANT EXECUTE ON FUNCTION {function} TO {role}; END IF; END $$"
        ).format(name=sql.Literal(function), function=sql.SQL(function), role=sql.Identifier(role))
        for function in APP_FUNCTIONS
    ]
