"""The set-up creates the application role: NOSUPERUSER, NOBYPASSRLS, and repairs it if not."""

from __future__ import annotations

import os

import psycopg2
import pytest
from django.db import connection

from pricing_saas.dbsetup import ensure_role_and_database

pytestmark = pytest.mark.django_db

ROLE, DB = "pricing_setup_probe", "pricing_setup_probe_db"


def admin_dsn() -> str:
    """A superuser connection to the same server (ADMIN_DATABASE_URL, or the embedded one)."""
    if os.environ.get("ADMIN_DATABASE_URL"):
        return os.environ["ADMIN_DATABASE_URL"]
    s = connection.settings_dict
    host = s["HOST"]
    port = f" port={s['PORT']}" if s.get("PORT") else ""
    return f"host={host}{port} user=postgres dbname=postgres"


def _query(sql: str, params=()):
    conn = psycopg2.connect(admin_dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@pytest.fixture
def cleanup():
    yield
    _query(f"DROP DATABASE IF EXISTS {DB}")
    _query(f"DROP ROLE IF EXISTS {ROLE}")


def test_role_is_created_safe_and_repaired(cleanup):
    ensure_role_and_database(admin_dsn(), role=ROLE, database=DB)
    assert _query(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s", [ROLE]
    ) == [(False, False, True)]
    assert _query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [DB]) == [
        (ROLE,)
    ]
    _query(f"ALTER ROLE {ROLE} BYPASSRLS")
    ensure_role_and_database(admin_dsn(), role=ROLE, database=DB)  # idempotent, and repairs
    assert _query("SELECT rolbypassrls FROM pg_roles WHERE rolname = %s", [ROLE]) == [(False,)]


def test_unsafe_identifiers_are_refused():
    with pytest.raises(ValueError, match="unsafe"):
        ensure_role_and_database(admin_dsn(), role="x; DROP ROLE postgres", database=DB)


OWNER = "pricing_setup_probe_owner"


@pytest.fixture
def cleanup_owner():
    yield
    _query(f"DROP DATABASE IF EXISTS {DB}")
    for role in (OWNER, ROLE):
        if _query("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]):
            _query(f"DROP OWNED BY {role}")
        _query(f"DROP ROLE IF EXISTS {role}")


def _as(role: str, sql: str):
    dsn = admin_dsn().replace("user=postgres", f"user={role}").replace("dbname=postgres", "")
    if dsn.startswith("postgres"):
        from urllib.parse import urlparse

        parsed = urlparse(admin_dsn())
        dsn = parsed._replace(
            netloc=f"{role}@{parsed.hostname}:{parsed.port or 5432}", path=f"/{DB}"
        ).geturl()
    else:
        dsn += f" dbname={DB}"
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def test_an_owner_role_takes_over_the_tables_and_the_app_role_only_reads_and_writes(
    cleanup_owner,
):
    # An install from before owners existed: the application role owns a table.
    ensure_role_and_database(admin_dsn(), role=ROLE, database=DB)
    _as(ROLE, "CREATE TABLE legacy (id int); INSERT INTO legacy VALUES (1)")
    ensure_role_and_database(admin_dsn(), role=ROLE, database=DB, owner=OWNER)
    assert _query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [DB]) == [
        (OWNER,)
    ]
    assert _as(OWNER, "SELECT tableowner FROM pg_tables WHERE tablename = 'legacy'") == [(OWNER,)]
    _as(OWNER, "CREATE TABLE fresh (id int)")  # a table a later migration makes
    _as(ROLE, "INSERT INTO legacy VALUES (2); INSERT INTO fresh VALUES (1)")
    assert _as(ROLE, "SELECT count(*) FROM legacy") == [(2,)]
    for statement in (
        "ALTER TABLE legacy ENABLE ROW LEVEL SECURITY",
        "DROP TABLE fresh",
        "CREATE TABLE stray (id int)",
        "TRUNCATE legacy",
    ):
        with pytest.raises(psycopg2.Error, match=r"must be owner|permission denied"):
            _as(ROLE, statement)
    ensure_role_and_database(admin_dsn(), role=ROLE, database=DB, owner=OWNER)  # idempotent
    assert _as(ROLE, "SELECT count(*) FROM fresh") == [(1,)]
