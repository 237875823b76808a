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

from tenants.grants import app_grants

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PGDATA = BASE_DIR / ".pgdata"
APP_ROLE = "pricing_app"
OWNER_ROLE = "pricing_owner"  # owns the schema and runs migrations; the app role only reads/writes
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


def _ensure_role(cur, role: str, password: str | None) -> None:
    """A LOGIN role that is neither superuser nor BYPASSRLS (a leftover with dangerous
    attributes is corrected, never trusted). CREATEDB lets the test runner create its
    throw-away database; it grants no way around row-level security."""
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    verb = "ALTER" if cur.fetchone() else "CREATE"
    cur.execute(
        sql.SQL(verb + " ROLE {} LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS NOCREATEROLE").format(
            sql.Identifier(role)
        )
    )
    if password:
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role)), [password])


def ensure_role_and_database(
    admin_dsn: str,
    *,
    role: str,
    database: str,
    password: str | None = None,
    owner: str | None = None,
    owner_password: str | None = None,
) -> None:
    """Create the application role (LOGIN, NOSUPERUSER, NOBYPASSRLS) and its database.

    With `owner`, a second such role owns the database, its schema and every table (and runs
    the migrations); the application role only gets SELECT, INSERT, UPDATE and DELETE, so it
    can never switch row-level security off or alter a table (an owner can). Without it, the
    application role owns everything (the layout before owners existed). Idempotent; an
    existing database owned by the application role is handed over to the owner.
    """
    for name in (role, database, owner or role):
        if not _IDENT.match(name):
            raise ValueError(f"unsafe SQL identifier: {name!r}")
    owner_role = owner or role
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            _ensure_role(cur, role, password)
            if owner:
                _ensure_role(cur, owner, owner_password)
            cur.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [database]
            )
            found = cur.fetchone()
            if found is None or found[0] != owner_role:
                verb = "ALTER DATABASE {} OWNER TO {}" if found else "CREATE DATABASE {} OWNER {}"
                cur.execute(
                    sql.SQL(verb).format(sql.Identifier(database), sql.Identifier(owner_role))
                )
    finally:
        conn.close()
    # Postgres 15+ no longer lets every role create in `public`; the owner owns the schema
    # here so migrations can create tables.
    conn = psycopg2.connect(_with_database(admin_dsn, database))
    conn.autocommit = True
    if owner and _owned_by(conn, owner):
        conn.close()
        return  # done before: settings call this on every start, let concurrent starts be
    try:
        with conn.cursor() as cur:
            ident = sql.Identifier(owner_role)
            cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(ident))
            if owner:
                app = sql.Identifier(role)
                # Tables made before owners existed belong to the application role: hand over.
                cur.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(app, ident))
                cur.execute(
                    sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                        sql.Identifier(database), app
                    )
                )
                cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(app))
                cur.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(app))
                for statement in app_grants(role):
                    cur.execute(statement)
                default = "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT "
                for rights in (
                    "SELECT, INSERT, UPDATE, DELETE ON TABLES",
                    "USAGE, SELECT, UPDATE ON SEQUENCES",
                ):
                    cur.execute(sql.SQL(default + rights + " TO {}").format(ident, app))
    finally:
        conn.close()


def _owned_by(conn, owner: str) -> bool:
    """Whether the schema and every table and sequence in it already belong to `owner`."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_get_userbyid(n.nspowner) = %s AND NOT EXISTS (SELECT 1 FROM pg_class c "
            "WHERE c.relnamespace = n.oid AND pg_get_userbyid(c.relowner) <> %s) "
            "FROM pg_namespace n WHERE n.nspname = 'public'",
            [owner, owner],
        )
        row = cur.fetchone()
    return bool(row and row[0])


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
        owner=OWNER_ROLE,
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
    owner_url = urlparse(os.environ.get("DATABASE_OWNER_URL", ""))
    owner = unquote(owner_url.username or "") or None
    ensure_role_and_database(
        admin_url,
        role=role,
        database=database,
        password=unquote(parsed.password) if parsed.password else None,
        owner=owner,
        owner_password=unquote(owner_url.password) if owner_url.password else None,
    )
    print(f"role {role} and database {database} ready" + (f" (owner {owner})" if owner else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
