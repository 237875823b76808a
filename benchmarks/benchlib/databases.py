"""A throw-away database on the configured Postgres server, for benchmarks that must not touch
the development data: created by the owner role (which may create databases), dropped after."""

from __future__ import annotations

import os
from urllib.parse import quote, unquote, urlparse

import psycopg2
from psycopg2 import sql


def urls(database: str) -> tuple[str, str]:
    """(application URL, owner URL) of `database` on the configured server."""
    app, owner = os.environ.get("DATABASE_URL"), os.environ.get("DATABASE_OWNER_URL")
    if app:
        if not owner:
            raise SystemExit("DATABASE_URL is set: set DATABASE_OWNER_URL too (the owner role)")
        return (
            urlparse(app)._replace(path="/" + database).geturl(),
            urlparse(owner)._replace(path="/" + database).geturl(),
        )
    from pricing_saas.dbsetup import APP_ROLE, OWNER_ROLE, start_embedded_postgres

    host = quote(start_embedded_postgres(), safe="")
    return f"postgres://{APP_ROLE}@{host}/{database}", f"postgres://{OWNER_ROLE}@{host}/{database}"


def connect(url: str, database: str | None = None):
    parsed = urlparse(url)
    where = parsed.netloc.rsplit("@", 1)[-1]
    socket_folder = where.lower().startswith("%2f")  # postgres://role@%2Fpath%2Fto/db
    return psycopg2.connect(
        host=unquote(where) if socket_folder else parsed.hostname,
        port=None if socket_folder else parsed.port,
        user=unquote(parsed.username or ""),
        password=unquote(parsed.password) if parsed.password else None,
        dbname=database or parsed.path.lstrip("/"),
    )


def create_database(owner_url: str, database: str) -> None:
    conn = connect(owner_url, "postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    conn.close()


def drop_database(owner_url: str, database: str, wait_s: float = 60.0) -> None:
    """Drop it, ending its sessions; a session of another role (a server's worker still exiting
    on a loaded machine) cannot be ended by the owner: wait for it to go, `wait_s` at most."""
    import time

    from psycopg2 import errors

    conn = connect(owner_url, "postgres")
    conn.autocommit = True
    deadline = time.monotonic() + wait_s
    try:
        with conn.cursor() as cur:
            while True:
                try:
                    cur.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(database)
                        )
                    )
                    return
                except errors.InsufficientPrivilege:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
    finally:
        conn.close()
