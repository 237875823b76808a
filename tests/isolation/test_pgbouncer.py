"""Layer 4 of tenant isolation behind PgBouncer in transaction mode (the production pooler).

In transaction mode PgBouncer hands a server connection to a client for one transaction and
then to the next client. Row-level security reads `app.tenant_id`; the backend sets it with
`set_config(..., true)` in the same simple query as each statement (tenants/db_backend), so
it lives exactly as long as the transaction that PgBouncer pins to one server connection and
can never reach the next client. These tests run a real PgBouncer (Debian package) with ONE
server connection shared by every client, so that each query of every client demonstrably
runs on the same Postgres backend, and check:

- a client that sends no tenant setting sees none and reads no row, on the very backend that
  just served a tenant (and, as a control that the set-up can see a leak at all, a session
  level `SET` does reach the next client: the reason the product never uses one);
- two tenants querying in parallel through the pool, each through the product's own database
  backend, each read only their own rows, also inside explicit transactions.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from django.db import connection, connections

from pricing_saas.catalog.models import Product
from tenants.context import tenant_context

from ..factories import ProductFactory, TenantFactory

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
ENTRYPOINT = Path(__file__).resolve().parents[2] / "docker" / "pgbouncer" / "entrypoint.sh"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(PGBOUNCER),
        reason="PgBouncer is not installed (Debian: apt-get install pgbouncer; .ci/run does)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SECRET = "pooled-test-secret"


@pytest.fixture
def pgbouncer():
    """The production pooler: docker/pgbouncer/entrypoint.sh (transaction mode, SCRAM) in front
    of the test database, with one server connection for all its clients; yields (host, port)."""
    settings = connection.settings_dict
    host = settings["HOST"] or "127.0.0.1"
    listen = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    env = {
        **os.environ,
        "DB_HOST": host,
        "DB_PORT": str(settings["PORT"] or 5432),
        "DB_NAME": settings["NAME"],
        "APP_DB_USER": settings["USER"],
        # The server trusts this machine's clients, or checks the role's own password.
        "APP_DB_PASSWORD": settings["PASSWORD"] or SECRET,
        "PGBOUNCER_CONF_DIR": str(folder),
        "PGBOUNCER_LISTEN_ADDR": "127.0.0.1",
        "PGBOUNCER_PORT": str(listen),
        "PGBOUNCER_POOL_SIZE": "1",
        "PGBOUNCER_RESERVE_POOL_SIZE": "0",
    }
    if os.geteuid() == 0:  # CI runs as root: run as the owner of the server's socket folder
        owner = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "root"
        env["PGBOUNCER_USER"] = owner if owner != "root" else "postgres"
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen), 0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"PgBouncer did not start: {process.communicate()[0]!r}")
                time.sleep(0.1)
        yield "127.0.0.1", listen
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _raw(pool) -> psycopg2.extensions.connection:
    """A plain client of the pool: it sends no tenant setting of its own."""
    host, port = pool
    settings = connection.settings_dict
    raw = psycopg2.connect(
        host=host,
        port=port,
        user=settings["USER"],
        password=settings["PASSWORD"] or SECRET,
        dbname=settings["NAME"],
    )
    raw.autocommit = True
    return raw


def _pooled_backend(pool, alias: str):
    """The product's own database backend (tenants.db_backend), connected through the pool."""
    host, port = pool
    settings = {
        **connection.settings_dict,
        "HOST": host,
        "PORT": str(port),
        "PASSWORD": connection.settings_dict["PASSWORD"] or SECRET,
        "CONN_MAX_AGE": 0,
    }
    return type(connections["default"])(settings, alias=alias)


def _probe(cursor) -> tuple[int, str | None, int]:
    cursor.execute(
        "SELECT pg_backend_pid(), current_setting('app.tenant_id', true), "
        "(SELECT count(*) FROM catalog_product)"
    )
    return cursor.fetchone()


def test_a_tenants_setting_never_reaches_the_next_client_of_the_same_server_connection(
    pgbouncer,
):
    tenant = TenantFactory()
    with tenant_context(tenant):
        ProductFactory.create_batch(3, tenant=tenant)

    product_backend = _pooled_backend(pgbouncer, "pooled_tenant")
    stranger = _raw(pgbouncer)
    try:
        with tenant_context(tenant), product_backend.cursor() as cursor:
            served, setting, rows = _probe(cursor)
        assert (setting, rows) == (str(tenant.pk), 3)

        with stranger.cursor() as cursor:
            backend, setting, rows = _probe(cursor)
        assert backend == served, "one server connection: both clients ran on it"
        assert setting in (None, "") and rows == 0
    finally:
        product_backend.close()
        stranger.close()


def test_a_session_level_setting_would_leak_through_the_pool(pgbouncer):
    """The control: the set-up above can see a leak. A session-level SET (which the product
    never sends) survives the transaction and reaches a different client."""
    tenant = TenantFactory()
    with tenant_context(tenant):
        ProductFactory.create_batch(2, tenant=tenant)
    careless, stranger = _raw(pgbouncer), _raw(pgbouncer)
    try:
        with careless.cursor() as cursor:
            cursor.execute("SET app.tenant_id = %s", [str(tenant.pk)])
        with stranger.cursor() as cursor:
            _, setting, rows = _probe(cursor)
            assert (setting, rows) == (str(tenant.pk), 2)
            cursor.execute("RESET app.tenant_id")
    finally:
        careless.close()
        stranger.close()


def test_tenants_in_parallel_through_one_pooled_connection_each_read_only_their_own(pgbouncer):
    tenants = [TenantFactory(), TenantFactory()]
    for count, tenant in zip((4, 7), tenants, strict=True):
        with tenant_context(tenant):
            ProductFactory.create_batch(count, tenant=tenant)
    seen: dict[int, set] = {tenant.pk: set() for tenant in tenants}
    backends: set[int] = set()
    errors: list[BaseException] = []

    def work(tenant, index):
        backend = _pooled_backend(pgbouncer, f"pooled_{index}")
        try:
            for round_ in range(40):
                with tenant_context(tenant):
                    if round_ % 2:
                        with backend.cursor() as cursor:
                            _, setting, rows = _probe(cursor)
                    else:  # an explicit transaction: two statements pinned together
                        backend.set_autocommit(False)
                        with backend.cursor() as cursor:
                            cursor.execute("SELECT count(*) FROM catalog_product")
                            (first,) = cursor.fetchone()
                            pid, setting, rows = _probe(cursor)
                            assert first == rows
                        backend.commit()
                        backend.set_autocommit(True)
                        backends.add(pid)
                seen[tenant.pk].add((setting, rows))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            backend.close()

    threads = [threading.Thread(target=work, args=(t, i)) for i, t in enumerate(tenants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(backends) == 1, "every transaction ran on the pool's single server connection"
    assert seen == {
        tenants[0].pk: {(str(tenants[0].pk), 4)},
        tenants[1].pk: {(str(tenants[1].pk), 7)},
    }
    with tenant_context(tenants[0]):
        assert Product.objects.count() == 4
