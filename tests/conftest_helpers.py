"""Helpers shared by tests that reach past Django: an admin DSN and a URL for the test DB."""

from __future__ import annotations

import os
from urllib.parse import quote

from django.db import connection


def admin_dsn() -> str:
    """A superuser connection to the same server (ADMIN_DATABASE_URL, or the embedded one)."""
    if os.environ.get("ADMIN_DATABASE_URL"):
        return os.environ["ADMIN_DATABASE_URL"]
    s = connection.settings_dict
    host = s["HOST"]
    port = f" port={s['PORT']}" if s.get("PORT") else ""
    return f"host={host}{port} user=postgres dbname=postgres"


def database_url_of_tests() -> str:
    """DATABASE_URL of the database the tests run against (for a worker subprocess)."""
    s = connection.settings_dict
    user = quote(s["USER"] or "", safe="")
    password = f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    host = s["HOST"] or "localhost"
    if host.startswith("/"):
        return f"postgres://{user}{password}@{quote(host, safe='')}/{s['NAME']}"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{s['NAME']}"
