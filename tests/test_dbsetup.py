"""The set-up creates the application role: NOSUPERUSER, NOBYPASSRLS, and repairs it if not."""

from __future__ import annotations

import psycopg2
import pytest

from pricing_saas.dbsetup import ensure_role_and_database

from .conftest_helpers import admin_dsn

pytestmark = pytest.mark.django_db

ROLE, DB = "pricing_setup_probe", "pricing_setup_probe_db"


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
