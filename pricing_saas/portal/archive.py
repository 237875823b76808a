"""One tenant's data as one archive, and back into a fresh database.

`export_tenant` writes a .tar.gz holding:

- `manifest.json`: the format, the tenant's id and slug, the schema version (every migration
  applied, by app and name), and per table its columns, row count, the SHA-256 of its CSV file
  and a checksum of its rows (`row_checksum`, recomputed after an import);
- `tenant.csv`: the tenant's own row; `users.csv`: the users its rows point to;
- `tables/<table>.csv`: the tenant's rows of every table with a `tenant_id` column, found by
  introspecting the database (as row-level security and tenant deletion do), so a new table is
  exported without anyone adding it to a list;
- `files/<name>`: every stored file (uploads, publications, model artifacts) that a row of the
  tenant names in a FileField, read through its storage backend.

Rows travel as Postgres CSV (`COPY ... TO STDOUT`), which keeps NULL apart from an empty text
and every type's exact text form. The export reads as the application role inside the tenant's
context, in one REPEATABLE READ transaction (one consistent snapshot): row-level security is
forced on every tenant table, so even a bug in a query here could not read another tenant's row;
every query also names the tenant. The owner role would see no more (the policies are forced on
it too) but may switch them off, so it is not used.

`import_tenant` loads an archive in one transaction (nothing is half-written: any error rolls
everything back and removes the files it stored). It refuses a database whose applied
migrations differ from the archive's, a tenant whose slug or id exists, and an archive whose
files do not match their checksums. Ids are kept: every row keeps its primary key, so the
references between the tenant's rows hold as they are, and each sequence is then moved past the
largest id (never back). The primary keys are (tenant_id, id) (Citus-ready, docs/citus.md),
so the database does not refuse an id another tenant's row holds, and the application role
cannot see that row to check: load an archive into a fresh database, or one holding only
tenants of the same installation (whose ids never repeat), never into an installation that
issued ids of its own.

Global rows are handled by reference:
- users (global: one person may belong to several tenants) are matched by e-mail; a user the
  target lacks is created with the same id when it is free (a new one otherwise), with the
  password hash so members can log in, never with staff or superuser rights (those belong to the
  installation, not to a tenant); the tenant's rows are pointed at the matched users;
- a reprice schedule's django-celery-beat task is not copied but made again from the schedule.
A foreign key from a tenant table to any other global table stops the export with a clear error,
so a new kind of global reference gets a decision instead of being silently broken.
Sessions, the admin log and API rate-limit state are not exported: they belong to the
installation.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.files import File
from django.db import IntegrityError, connection, models, transaction
from psycopg2 import sql

from pricing_saas.catalog.importer import planner
from tenants.bulk import copy_out
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.rls import tenant_tables

FORMAT = "pricing-saas-tenant-archive/1"


def _signing_key() -> bytes:
    """TENANT_ARCHIVE_KEY, or one derived from SECRET_KEY: an archive imports only where it
    was exported, or where the same key is set (moving a tenant between installations)."""
    key = getattr(settings, "TENANT_ARCHIVE_KEY", "") or "tenant-archive:" + settings.SECRET_KEY
    return hashlib.sha256(key.encode()).digest()


def sign(manifest_bytes: bytes) -> str:
    return hmac.new(_signing_key(), manifest_bytes, hashlib.sha256).hexdigest()


USERS = "tenants_user"
TENANTS = "tenants_tenant"
# Foreign-key columns to global tables that are remade on import rather than copied (set NULL
# while loading, then rebuilt by `_remake`).
REMADE = {"django_celery_beat_periodictask"}
_NOT_COPIED_USER_FLAGS = ("is_staff", "is_superuser")
_CHUNK = 1 << 20
# The manifest is read before its signature is checked: its size is capped so that an archive
# nobody signed costs no more than that to refuse (a small .tar.gz can unpack to gigabytes).
MAX_MANIFEST_BYTES = 64 << 20


class ArchiveError(Exception):
    """An export or import that cannot be done, with the reason (a command error)."""


@dataclass
class Table:
    name: str
    columns: list[str]
    key: list[str]  # primary-key columns: the rows' order in the file and in the checksum
    user_columns: list[str] = field(default_factory=list)  # foreign keys to tenants_user
    remade_columns: list[str] = field(default_factory=list)  # foreign keys to REMADE tables


# --- introspection -----------------------------------------------------------------------------


def _fetch(cursor, query: str, params=()) -> list[tuple]:
    cursor.execute(query, params)
    return cursor.fetchall()


def _columns(cursor, table: str) -> list[str]:
    rows = _fetch(
        cursor,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = %s ORDER BY ordinal_position",
        [table],
    )
    return [r[0] for r in rows]


def _primary_key(cursor, table: str) -> list[str]:
    rows = _fetch(
        cursor,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)",
        [table],
    )
    return [r[0] for r in rows]


def _foreign_keys(cursor) -> list[tuple[str, str, str]]:
    """(table, column, referenced table) of every single-column foreign key in the schema."""
    return _fetch(
        cursor,
        "SELECT k.conrelid::regclass::text, a.attname, k.confrelid::regclass::text "
        "FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid "
        "AND a.attnum = k.conkey[1] WHERE k.contype = 'f' "
        "AND k.connamespace = current_schema()::regnamespace",
    )


def tenant_table_layout() -> list[Table]:
    """Every table with a tenant_id column, with its columns, key and global references;
    ArchiveError for a reference the archive cannot carry."""
    names = tenant_tables(connection)
    owned = set(names) | {TENANTS}
    with connection.cursor() as cursor:
        tables = {n: Table(n, _columns(cursor, n), _primary_key(cursor, n)) for n in names}
        for source, column, target in _foreign_keys(cursor):
            if source in tables and target not in owned:
                if target == USERS:
                    tables[source].user_columns.append(column)
                elif target in REMADE:
                    tables[source].remade_columns.append(column)
                else:
                    raise ArchiveError(
                        f"{source}.{column} refers to the global table {target}: decide how "
                        "a tenant archive carries it (pricing_saas/portal/archive.py)"
                    )
            elif source not in owned and target in owned and source != USERS:
                raise ArchiveError(
                    f"the global table {source} refers to tenant rows ({source}.{column} -> "
                    f"{target}) but has no tenant_id column, so no tenant archive would hold it"
                )
    for table in tables.values():
        if not table.key:
            raise ArchiveError(f"{table.name} has no primary key to order its rows by")
    return list(tables.values())


def file_columns(layout: list[Table]) -> dict[str, list[tuple[str, models.FileField]]]:
    """table -> [(column, FileField)] for the tenant tables' stored files."""
    by_table = {t.name for t in layout}
    found: dict[str, list[tuple[str, models.FileField]]] = {}
    for model in apps.get_models():
        if model._meta.db_table not in by_table:
            continue
        for fld in model._meta.concrete_fields:
            if isinstance(fld, models.FileField):
                found.setdefault(model._meta.db_table, []).append((fld.column, fld))
    return found


def applied_migrations() -> list[str]:
    with connection.cursor() as cursor:
        rows = _fetch(cursor, "SELECT app, name FROM django_migrations ORDER BY app, name")
    return [f"{app}.{name}" for app, name in rows]


# --- checksums ---------------------------------------------------------------------------------


def _q(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def row_checksum(cursor, table: Table, tenant_id: int) -> str:
    """`<rows>:<digest>` of the tenant's rows in `table`: each row's md5 (the row as JSON), the
    two halves of every md5 summed (no row order, no string the size of the table, whatever
    the tenant's size), the sums hashed with SHA-256. A user reference is compared by the
    user's e-mail (ids may differ between databases), a remade reference only by whether it is
    set. Equal in the source and after an import when the rows are equal."""
    row = sql.SQL("to_jsonb(t)")
    for column in table.remade_columns:
        row = sql.SQL("({} - {} || jsonb_build_object({}, t.{} IS NOT NULL))").format(
            row, sql.Literal(column), sql.Literal(column), _q(column)
        )
    for column in table.user_columns:
        row = sql.SQL(
            "({} || jsonb_build_object({}, (SELECT u.email FROM {} u WHERE u.id = t.{})))"
        ).format(row, sql.Literal(column), _q(USERS), _q(column))
    half = "coalesce(sum(('x' || substr(h, {}, 16))::bit(64)::bigint::numeric), 0)::text"
    query = sql.SQL(
        "SELECT count(*), " + half.format(1) + ", " + half.format(17) + " FROM "
        "(SELECT md5(({})::text) AS h FROM {} t WHERE t.tenant_id = %s) AS hashed"
    ).format(row, _q(table.name))
    cursor.execute(query.as_string(cursor.connection), [tenant_id])
    count, first, second = cursor.fetchone()
    return f"{count}:{hashlib.sha256(f'{first} {second}'.encode()).hexdigest()}"


# --- export ------------------------------------------------------------------------------------


class _Hashing(io.RawIOBase):
    """A writable file that hashes and counts what COPY writes into it."""

    def __init__(self, target):
        self.target, self.digest, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        self.digest.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)


def _copy_out(cursor, query: sql.Composable, path: Path) -> str:
    """COPY the query's rows as CSV with a header into `path`; returns their SHA-256."""
    with path.open("wb") as handle:
        sink = _Hashing(handle)
        copy_out(cursor, query.as_string(cursor.connection), sink, "FORMAT csv, HEADER true")
    return sink.digest.hexdigest()


def _sha256_file(handle) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _snapshot() -> Iterator[None]:
    """One transaction; REPEATABLE READ, READ ONLY when this opens it (inside a caller's
    transaction, e.g. a test, that transaction's snapshot is used)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            with connection.connection.cursor() as raw:  # the first statement: no RLS prefix
                raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def export_tenant(tenant: Tenant, out: str | Path, *, password_hashes: bool = True) -> dict:
    """Write the tenant's archive to `out` (a .tar.gz, readable by its owner only); returns its
    manifest. With `password_hashes=False` the members' password hashes stay behind: the users
    the import creates cannot log in until an administrator sets their passwords."""
    out = Path(out)
    connection.ensure_connection()
    work = Path(tempfile.mkdtemp(prefix="tenant-export-"))
    try:
        with _snapshot(), tenant_context(tenant), connection.cursor() as cursor:
            layout = tenant_table_layout()
            manifest = {
                "format": FORMAT,
                "exported_at": dt.datetime.now(dt.UTC).isoformat(),
                "tenant": {"id": tenant.pk, "slug": tenant.slug},
                "password_hashes": password_hashes,
                "migrations": applied_migrations(),
                "tables": {},
                "files": {},
            }
            (work / "tables").mkdir()
            manifest["tenant"]["sha256"] = _copy_out(
                cursor,
                sql.SQL("SELECT * FROM {} WHERE id = {}").format(
                    _q(TENANTS), sql.Literal(tenant.pk)
                ),
                work / "tenant.csv",
            )
            user_ids = sql.SQL(" UNION ").join(
                [
                    sql.SQL("SELECT {} FROM {} WHERE tenant_id = {}").format(
                        _q(c), _q(t.name), sql.Literal(tenant.pk)
                    )
                    for t in layout
                    for c in t.user_columns
                ]
                or [sql.SQL("SELECT NULL::bigint")]
            )
            user_columns = sql.SQL(", ").join(
                # Django's mark of an unusable password ("!" and random text)
                sql.SQL("'!' || md5(random()::text) AS password")
                if c == "password" and not password_hashes
                else _q(c)
                for c in _columns(cursor, USERS)
            )
            users_query = sql.SQL("SELECT {} FROM {} WHERE id IN ({}) ORDER BY id").format(
                user_columns, _q(USERS), user_ids
            )
            manifest["users"] = {"sha256": _copy_out(cursor, users_query, work / "users.csv")}
            for table in layout:
                columns = sql.SQL(", ").join(_q(c) for c in table.columns)
                order = sql.SQL(", ").join(_q(c) for c in table.key)
                query = sql.SQL("SELECT {} FROM {} WHERE tenant_id = {} ORDER BY {}").format(
                    columns, _q(table.name), sql.Literal(tenant.pk), order
                )
                digest = _copy_out(cursor, query, work / "tables" / f"{table.name}.csv")
                count, _, checksum = row_checksum(cursor, table, tenant.pk).partition(":")
                manifest["tables"][table.name] = {
                    "columns": table.columns,
                    "rows": int(count),
                    "sha256": digest,
                    "checksum": checksum,
                }
            manifest["files"] = _export_files(cursor, layout, tenant, work)
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        (work / "manifest.json").write_bytes(body)
        # The manifest holds every member's checksum; its signature makes the whole archive
        # one this deployment wrote: rows, files and model artifacts (which a worker unpacks)
        # are never taken from an archive someone else could have edited.
        (work / "manifest.sig").write_text(sign(body))
        partial = out.with_name(out.name + ".partial")
        # Rows, members' e-mails (and password hashes, unless left out): for its owner only.
        partial.touch(mode=0o600)
        partial.chmod(0o600)
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(work / "manifest.json", "manifest.json")
            archive.add(work / "manifest.sig", "manifest.sig")
            for member in sorted(p for p in work.rglob("*") if p.is_file()):
                name = member.relative_to(work).as_posix()
                if name not in ("manifest.json", "manifest.sig"):
                    archive.add(member, name)
        partial.replace(out)  # a failed export leaves no archive that looks whole
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def _export_files(cursor, layout, tenant, work: Path) -> dict:
    files: dict[str, dict] = {}
    for table, columns in file_columns(layout).items():
        for column, fld in columns:
            cursor.execute(
                sql.SQL("SELECT DISTINCT {} FROM {} WHERE tenant_id = %s AND {} <> '' ORDER BY 1")
                .format(_q(column), _q(table), _q(column))
                .as_string(cursor.connection),
                [tenant.pk],
            )
            for (name,) in cursor.fetchall():
                entry = {"table": table, "column": column}
                try:
                    found = fld.storage.exists(name)
                except SuspiciousOperation:
                    raise ArchiveError(
                        f"{table}.{column} names the file {name!r}, which is outside the "
                        "storage: correct that row before exporting"
                    ) from None
                if not found:
                    entry["missing"] = True  # the row names a file its storage lost
                else:
                    target = work / "files" / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with fld.storage.open(name, "rb") as source, target.open("wb") as copy:
                        shutil.copyfileobj(source, copy, _CHUNK)
                    with target.open("rb") as handle:
                        entry["sha256"] = _sha256_file(handle)
                files[name] = entry
    return files


# --- import ------------------------------------------------------------------------------------


def _first_members(archive: tarfile.TarFile) -> dict[str, bytes]:
    """manifest.json and manifest.sig, the first two members an export writes, read without
    unpacking anything behind them and refused above MAX_MANIFEST_BYTES."""
    found: dict[str, bytes] = {}
    for _ in range(2):
        member = archive.next()
        if member is None or member.name not in ("manifest.json", "manifest.sig"):
            break
        if not member.isfile() or member.size > MAX_MANIFEST_BYTES:
            raise ArchiveError(
                f"not a tenant archive: its {member.name} is not a file of at most "
                f"{MAX_MANIFEST_BYTES} bytes"
            )
        found[member.name] = archive.extractfile(member).read(MAX_MANIFEST_BYTES + 1)
    return found


def read_manifest(archive: tarfile.TarFile) -> dict:
    first = _first_members(archive)
    try:
        body = first["manifest.json"]
        manifest = json.loads(body)
    except (KeyError, ValueError, TypeError) as exc:
        raise ArchiveError(
            f"not a tenant archive: no readable manifest.json first ({exc})"
        ) from None
    try:
        signature = first.get("manifest.sig", b"").decode().strip()
    except UnicodeDecodeError:
        signature = ""
    if not hmac.compare_digest(signature, sign(body)):
        raise ArchiveError(
            "the archive's signature does not match: it was not exported by this deployment "
            "(set the exporting deployment's TENANT_ARCHIVE_KEY here) or it was changed since"
        )
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"unknown archive format {manifest.get('format')!r}; want {FORMAT}")
    return manifest


def _member(archive: tarfile.TarFile, name: str, sha256: str | None):
    """A member's bytes as a file, checked against its manifest checksum."""
    try:
        handle = archive.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise ArchiveError(f"the archive lacks {name}, which its manifest lists")
    copy = tempfile.TemporaryFile()  # noqa: SIM115 (returned open: the caller closes it)
    shutil.copyfileobj(handle, copy, _CHUNK)
    copy.seek(0)
    if sha256 is not None and _sha256_file(copy) != sha256:
        raise ArchiveError(f"{name} does not match its checksum in the manifest (damaged?)")
    copy.seek(0)
    return copy


def _csv_header(handle) -> list[str]:
    first = handle.readline().decode("utf-8")
    handle.seek(0)
    return next(csv.reader([first]), [])


def _check_schema(manifest: dict) -> None:
    here, there = set(applied_migrations()), set(manifest["migrations"])
    if here != there:
        missing, extra = sorted(there - here), sorted(here - there)
        parts = []
        if missing:
            parts.append(f"not applied here: {', '.join(missing[:5])}")
        if extra:
            parts.append(f"applied here only: {', '.join(extra[:5])}")
        raise ArchiveError(
            "the database's migrations differ from the archive's (" + "; ".join(parts) + "); "
            "migrate both to the same release first"
        )


def _load_temp(raw, name: str, like: str, columns: list[str], handle) -> None:
    raw.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP")
        .format(_q(name), _q(like))
        .as_string(raw.connection)
    )
    copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(
        _q(name), sql.SQL(", ").join(_q(c) for c in columns)
    )
    raw.copy_expert(copy.as_string(raw.connection), handle, size=_CHUNK)


def _move_sequence(cursor, table: str, column: str) -> None:
    """Move the column's sequence past the largest id (only ever forward)."""
    cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
    sequence = cursor.fetchone()[0]
    if not sequence:
        return
    cursor.execute(
        sql.SQL(
            "SELECT setval(%s, GREATEST((SELECT max({}) FROM {}), (SELECT last_value FROM {}), 1))"
        )
        .format(_q(column), _q(table), sql.SQL(sequence))
        .as_string(cursor.connection),
        [sequence],
    )


def import_tenant(path: str | Path) -> dict:
    """Load an archive into this database in one transaction; returns its manifest."""
    with tarfile.open(path, "r:gz") as archive:
        manifest = read_manifest(archive)
        tenant_id, slug = int(manifest["tenant"]["id"]), manifest["tenant"]["slug"]
        _check_schema(manifest)
        if Tenant.objects.filter(slug=slug).exists():
            raise ArchiveError(f"a tenant with the slug {slug!r} exists in this database")
        if Tenant.objects.filter(pk=tenant_id).exists():
            raise ArchiveError(
                f"tenant id {tenant_id} is taken in this database by another tenant; the "
                "import keeps ids: load the archive into a fresh database"
            )
        layout = {t.name: t for t in tenant_table_layout()}
        if set(layout) != set(manifest["tables"]):
            raise ArchiveError(
                f"the archive's tables differ from this database's: "
                f"{sorted(set(layout) ^ set(manifest['tables']))}"
            )
        stored: list[tuple] = []
        try:
            with transaction.atomic():
                _import_rows(archive, manifest, layout)
                with tenant_context(Tenant(pk=tenant_id, slug=slug)):
                    _remake()
                    with connection.cursor() as cursor:
                        for table in layout.values():
                            want = manifest["tables"][table.name]
                            got = row_checksum(cursor, table, tenant_id)
                            if got != f"{want['rows']}:{want['checksum']}":
                                raise ArchiveError(
                                    f"{table.name}: the imported rows differ from the "
                                    f"exported ones (checksum {got}, archive "
                                    f"{want['rows']}:{want['checksum']})"
                                )
                    _import_files(archive, manifest, layout, stored)
        except BaseException:
            for storage, name in stored:  # the rows are rolled back: so are their files
                storage.delete(name)
            raise
        # A whole history loaded at once: the planner's statistics of the import tables would
        # say the tenant has no rows (and its first training pick nested loops over millions),
        # as after a large CSV import (pricing_saas.catalog.importer.planner).
        with tenant_context(Tenant(pk=tenant_id, slug=slug)):
            for table in planner.TABLES:
                planner.refresh_after_commit(table, tenant_id, manifest["tables"][table]["rows"])
    return manifest


def _import_rows(archive, manifest: dict, layout: dict[str, Table]) -> None:
    tenant_id = int(manifest["tenant"]["id"])
    with tenant_context(Tenant(pk=tenant_id)), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])
        raw = cursor.cursor
        with _member(archive, "tenant.csv", manifest["tenant"].get("sha256")) as tenant_file:
            columns = _csv_header(tenant_file)
            _load_temp(raw, "import_tenant", TENANTS, columns, tenant_file)
        cursor.execute("SELECT count(*), min(id), max(id) FROM import_tenant")
        if cursor.fetchone() != (1, tenant_id, tenant_id):
            raise ArchiveError("tenant.csv must hold exactly the tenant the manifest names")
        names = sql.SQL(", ").join(_q(c) for c in columns)
        cursor.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM import_tenant")
            .format(_q(TENANTS), names, names)
            .as_string(raw.connection)
        )
        _import_users(cursor, archive, manifest)
        for number, table in enumerate(layout.values()):
            entry = manifest["tables"][table.name]
            temp = f"import_rows_{number}"
            with _member(archive, f"tables/{table.name}.csv", entry["sha256"]) as handle:
                header = _csv_header(handle)
                if header != table.columns:
                    raise ArchiveError(
                        f"{table.name}: the archive's columns {header} are not this "
                        f"database's {table.columns}"
                    )
                _load_temp(raw, temp, table.name, header, handle)
            cursor.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE tenant_id IS DISTINCT FROM %s")
                .format(_q(temp))
                .as_string(raw.connection),
                [tenant_id],
            )
            if cursor.fetchone()[0]:
                raise ArchiveError(f"{table.name}: the archive holds rows of another tenant")
            for column in table.user_columns:
                cursor.execute(
                    sql.SQL("UPDATE {} t SET {} = u.new_id FROM import_users u WHERE t.{} = u.id")
                    .format(_q(temp), _q(column), _q(column))
                    .as_string(raw.connection)
                )
            for column in table.remade_columns:
                cursor.execute(
                    sql.SQL("UPDATE {} SET {} = NULL")
                    .format(_q(temp), _q(column))
                    .as_string(raw.connection)
                )
            names = sql.SQL(", ").join(_q(c) for c in table.columns)
            try:
                with transaction.atomic():
                    cursor.execute(
                        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}")
                        .format(_q(table.name), names, names, _q(temp))
                        .as_string(raw.connection)
                    )
            except IntegrityError as exc:
                raise ArchiveError(
                    f"{table.name}: a row of the archive collides with one in this database "
                    f"({str(exc).strip().splitlines()[-1]}); the import keeps ids: load the "
                    "archive into a fresh database"
                ) from None
            if cursor.rowcount != entry["rows"]:
                raise ArchiveError(
                    f"{table.name}: {cursor.rowcount} rows loaded, the manifest says "
                    f"{entry['rows']}"
                )
            if "id" in table.key:  # (tenant_id, id): the id still comes from one sequence
                _move_sequence(cursor, table.name, "id")
            cursor.execute(sql.SQL("DROP TABLE {}").format(_q(temp)).as_string(raw.connection))
        _move_sequence(cursor, TENANTS, "id")
        try:  # the deferred foreign keys, checked now rather than at commit
            with transaction.atomic():
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        except IntegrityError as exc:
            raise ArchiveError(
                f"the archive's rows refer to rows it does not hold ({str(exc).strip()})"
            ) from None


def _import_users(cursor, archive, manifest: dict) -> None:
    """Create the users the target lacks (matched by e-mail) and note, in the temp table
    import_users, each archived id's id here (new_id)."""
    raw = cursor.cursor
    with _member(archive, "users.csv", manifest["users"]["sha256"]) as handle:
        columns = _csv_header(handle)
        _load_temp(raw, "import_users", USERS, columns, handle)
    cursor.execute("ALTER TABLE import_users ADD COLUMN new_id bigint, ADD COLUMN fresh boolean")
    cursor.execute(
        f"UPDATE import_users i SET new_id = u.id, fresh = false FROM {USERS} u "
        "WHERE lower(u.email) = lower(i.email)"
    )
    cursor.execute(
        f"UPDATE import_users i SET new_id = nextval(pg_get_serial_sequence('{USERS}', 'id')), "
        f"fresh = true WHERE new_id IS NULL AND EXISTS (SELECT 1 FROM {USERS} u "
        "WHERE u.id = i.id)"
    )
    cursor.execute("UPDATE import_users SET new_id = id, fresh = true WHERE new_id IS NULL")
    select = sql.SQL(", ").join(
        sql.SQL("new_id")
        if c == "id"
        else sql.SQL("false")
        if c in _NOT_COPIED_USER_FLAGS
        else _q(c)
        for c in columns
    )
    cursor.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM import_users WHERE fresh")
        .format(_q(USERS), sql.SQL(", ").join(_q(c) for c in columns), select)
        .as_string(raw.connection)
    )
    _move_sequence(cursor, USERS, "id")


def _remake() -> None:
    """Rebuild what the archive does not copy: the schedules' periodic tasks."""
    from pricing_saas.pricing.models import RepriceSchedule
    from pricing_saas.pricing.schedules import sync_periodic_task

    for schedule in RepriceSchedule.objects.all():
        sync_periodic_task(schedule)


def _import_files(archive, manifest: dict, layout: dict[str, Table], stored: list) -> None:
    """Store the files the imported rows name, each under its own name, in its field's
    storage; any other file in the archive is refused (a tampered archive could otherwise
    write where it liked)."""
    tenant_id = int(manifest["tenant"]["id"])
    wanted: dict[str, object] = {}
    with connection.cursor() as cursor:
        for table, columns in file_columns(list(layout.values())).items():
            for column, fld in columns:
                cursor.execute(
                    sql.SQL("SELECT DISTINCT {} FROM {} WHERE tenant_id = %s AND {} <> ''")
                    .format(_q(column), _q(table), _q(column))
                    .as_string(cursor.connection),
                    [tenant_id],
                )
                wanted.update((name, fld.storage) for (name,) in cursor.fetchall())
    if unknown := sorted(set(manifest["files"]) - set(wanted)):
        raise ArchiveError(f"the archive holds files no row names: {unknown[:5]}")
    if absent := sorted(set(wanted) - set(manifest["files"])):
        raise ArchiveError(f"the archive lacks files its rows name: {absent[:5]}")
    for name, entry in manifest["files"].items():
        try:
            _import_file(archive, name, entry, wanted[name], stored)
        except SuspiciousOperation as exc:
            raise ArchiveError(f"refused file name {name!r}: {exc}") from None


def _import_file(archive, name: str, entry: dict, storage, stored: list) -> None:
    if entry.get("missing"):
        if storage.exists(name):  # never let a row adopt a file stored by someone else
            raise ArchiveError(f"{name} is marked missing but a file of that name exists")
        return  # lost before the export: the row keeps naming it, as it did
    if storage.exists(name):
        with storage.open(name, "rb") as existing:
            if _sha256_file(existing) == entry["sha256"]:
                return  # the same file (a shared storage): nothing to write
        raise ArchiveError(f"a different file named {name} exists in the storage")
    with _member(archive, f"files/{name}", entry["sha256"]) as handle:
        saved = storage.save(name, File(handle, name=name))
    stored.append((storage, saved))
    if saved != name:
        raise ArchiveError(f"the storage stored {name} as {saved}")
