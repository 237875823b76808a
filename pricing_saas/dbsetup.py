"""Database bootstrap: the embedded quick-start Postgres and the application role.

The application always connects as a role that is neither superuser nor BYPASSRLS, so that
Postgres row-level security (layer 4 of tenant isolation) applies to it. This module creates that
role and its database through an administrator connection. It imports no Django, so settings can
call it before Django is set up.

Usage as a script (what `make setup` and `.ci/run` do)::

    python -m pricing_saas.dbsetup            # ADMIN_DATABASE_URL + DATABASE_URL, or pgserver
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import psycopg2
from psycopg2 import sql

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PGDATA = BASE_DIR / ".pgdata"
APP_ROLE = "pricing_app"
APP_DATABASE = "pricing_saas"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def start_embedded_postgres(pgdata: Path = DEFAULT_PGDATA) -> str:
    """Start (or reuse) the embedded Postgres under `pgdata` and return its socket folder.

    pgserver runs the server as its own system user when we are root and leaves it running
    between commands (cleanup_mode=None), so the second start is a cheap liveness check.
    """
    import pgserver  # imported lazily: production never needs it

    # pgserver logs every handle it releases at exit, after logging has shut down.
    logging.getLogger("pgserver").setLevel(logging.WARNING)

    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return str(server.pgdata)


def ensure_role_and_database(
    admin_dsn: str, *, role: str, database: str, password: str | None = None
) -> None:
    """Create the application role (LOGIN, CREATEDB, NOSUPERUSER, NOBYPASSRLS) and its database.

    Idempotent. CREATEDB lets the test runner create its throw-away database; it grants no way
    around row-level security.
    """
    for name in (role, database):
        if not _IDENT.match(name):
            raise ValueError(f"unsafe SQL identifier: {name!r}")
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL(
                        "CREATE ROLE {} LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS NOCREATEROLE"
                    ).format(sql.Identifier(role))
                )
            else:
                # A role left over with dangerous attributes is corrected, never trusted.
                cur.execute(
                    sql.SQL("ALTER ROLE {} LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS").format(
                        sql.Identifier(role)
                    )
                )
            if password:
                cur.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role)), [password]
                )
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(role)
                    )
                )
    finally:
        conn.close()
    # Postgres 15+ no longer lets every role create in `public`; the owner of the database
    # owns its own schema here so migrations can create tables.
    conn = psycopg2.connect(_with_database(admin_dsn, database))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
    finally:
        conn.close()


def _with_database(dsn: str, database: str) -> str:
    if dsn.startswith(("postgres://", "postgresql://")):
        parsed = urlparse(dsn)
        return parsed._replace(path="/" + database).geturl()
    return f"{dsn} dbname={database}"


def embedded_database_settings(pgdata: Path = DEFAULT_PGDATA) -> dict:
    """Django DATABASES entry for the embedded Postgres, as the non-superuser app role."""
    socket_dir = start_embedded_postgres(pgdata)
    ensure_role_and_database(
        f"host={socket_dir} user=postgres dbname=postgres",
        role=APP_ROLE,
        database=APP_DATABASE,
    )
    return {
        "ENGINE": "tenants.db_backend",
        "NAME": APP_DATABASE,
        "USER": APP_ROLE,
        "PASSWORD": "",
        "HOST": socket_dir,
        "PORT": "",
    }


def main() -> int:
    """Create the app role and database named by DATABASE_URL, using ADMIN_DATABASE_URL."""
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        settings = embedded_database_settings()
        print(f"embedded Postgres ready at {settings['HOST']} (role {APP_ROLE})")
        return 0
    admin_url = os.environ.get("ADMIN_DATABASE_URL")
    if not admin_url:
        print(
            "DATABASE_URL is set but ADMIN_DATABASE_URL is not: nothing to create; "
            "make sure the role in DATABASE_URL exists and is not superuser or BYPASSRLS.",
            file=sys.stderr,
        )
        return 0
    parsed = urlparse(database_url)
    role = unquote(parsed.username or "")
    database = parsed.path.lstrip("/")
    ensure_role_and_database(
        admin_url,
        role=role,
        database=database,
        password=unquote(parsed.password) if parsed.password else None,
    )
    print(f"role {role} and database {database} ready")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
