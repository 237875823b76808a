"""A tenant's archive (`tenant_export`) loaded into a fresh database (`tenant_import`)
reproduces the tenant exactly: every table with a tenant_id column (found by introspection, so
a new table cannot be forgotten) has the same rows, compared per table by count and an md5 of
the rows; its stored files come back; another tenant's rows are neither in the archive nor in
the new database; a refused import writes nothing."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import connection

from pricing_saas.pricing.schedules import sync_periodic_task
from tenants.context import tenant_context
from tenants.models import Membership, Tenant, User
from tenants.rls import apply_row_level_security, as_owner, grant_application_role, tenant_tables
from tenants.roles import Role

from .test_cross_tenant import object_of, tenant_models

# The fresh database is made by another connection and the source rows must be committed for
# it: a transactional test (the test database is emptied afterwards).
pytestmark = pytest.mark.django_db(transaction=True)

# Remade on import (a django-celery-beat task of the new installation): compared as set or not.
REMADE = {"pricing_repriceschedule": "periodic_task_id"}


@contextmanager
def on_database(name: str):
    """The default connection, pointed at another database of the same server."""
    saved = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = name
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["NAME"] = saved


def _drop(name: str) -> None:
    with as_owner(), connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def fresh_database():
    """A throw-away database on the same server, migrated by the owner role like production."""
    name = f"{connection.settings_dict['NAME']}_archive"
    _drop(name)
    with as_owner(), connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        with on_database(name):
            call_command("migrate", verbosity=0)
        yield name
    finally:
        _drop(name)


def rows_by_table(tenant_id: int) -> dict[str, tuple[int, str]]:
    """(row count, md5 of the rows in a fixed order) per table with a tenant_id column, read
    under the tenant's own row-level security; a remade reference counts as set or not."""
    found = {}
    with tenant_context(Tenant(pk=tenant_id)), connection.cursor() as cursor:
        for table in tenant_tables(connection):
            row = "to_jsonb(t)"
            if table in REMADE:
                column = REMADE[table]
                row = (
                    f"(to_jsonb(t) - '{column}' || jsonb_build_object('{column}', t.{column} > 0))"
                )
            cursor.execute(
                f"SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM "
                f"(SELECT md5(({row})::text) AS h FROM {table} t WHERE tenant_id = %s) rows",
                [tenant_id],
            )
            found[table] = cursor.fetchone()
    return found


def members(tenant_id: int) -> list[tuple[str, str]]:
    with tenant_context(Tenant(pk=tenant_id)):
        return sorted(
            (m.user.email, m.role) for m in Membership.objects.select_related("user").all()
        )


def fill(world, label: str) -> dict[str, bytes]:
    """A row in every tenant-owned table, stored files, a user reference and a schedule's
    periodic task; returns the stored files' contents by name."""
    for model in tenant_models():
        object_of(world, model)
    files = {}
    with tenant_context(world.tenant):
        from ml.models import ModelVersion
        from pricing_saas.catalog.models import ImportJob
        from pricing_saas.pricing.models import Publication, RepriceSchedule

        job = ImportJob.objects.first()
        job.created_by = world.users[Role.ANALYST]
        job.file.save(f"{label}-upload.csv", ContentFile(f"sku\n{label}\n".encode()), save=False)
        job.save()
        publication = Publication.objects.first()
        publication.file.save(f"{label}-prices.csv", ContentFile(b"sku,price\nA,1\n"))
        version = ModelVersion.objects.first()
        version.artifact.save(f"{label}-model.npz", ContentFile(bytes(range(256)) * 4))
        sync_periodic_task(RepriceSchedule.objects.first())
        for obj, attr in ((job, "file"), (publication, "file"), (version, "artifact")):
            stored = getattr(obj, attr)
            files[stored.name] = stored.storage.open(stored.name).read()
    return files


def archive_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def test_an_exported_tenant_imports_into_a_fresh_database_exactly(
    world_a, world_b, tmp_path, fresh_database, settings, monkeypatch
):
    from pricing_saas.catalog.importer import planner

    refreshed = []  # the import tables' statistics, refreshed as after a large CSV import
    monkeypatch.setattr(planner, "MIN_ROWS", 1)
    monkeypatch.setattr(planner, "planned_rows", lambda table, tenant_id: 0.0)  # a fresh database
    monkeypatch.setattr(planner, "refresh", lambda table, since: refreshed.append(table) or True)
    files_a, files_b = fill(world_a, "alpha"), fill(world_b, "bravo")
    a, b = world_a.tenant, world_b.tenant
    source = rows_by_table(a.pk)
    empty = sorted(t for t, (count, _) in source.items() if not count)
    assert not empty, f"the test made no row of tenant A in {empty}: extend object_of()"
    modelled = {m._meta.db_table for m in tenant_models()}
    assert modelled <= set(source)
    users_a = {u.pk: u.email for u in world_a.users.values()}
    users = dict(User.objects.values_list("pk", "email"))
    secrets_b = [b.slug, b.name, *(u.email for u in world_b.users.values()), *files_b]
    members_a = members(a.pk)

    out = tmp_path / "alpha.tar.gz"
    call_command("tenant_export", a.slug, out=str(out), stdout=io.StringIO())
    content = archive_members(out)
    manifest = json.loads(content["manifest.json"])
    assert set(manifest["tables"]) == set(source)  # every tenant table, by introspection
    for table, (count, _) in source.items():
        assert manifest["tables"][table]["rows"] == count, table
    assert {f"files/{n}" for n in files_a} <= set(content)

    # Nothing of tenant B: no row with its id, none of its users, files or secrets.
    for name, data in content.items():
        if name.startswith("tables/"):
            rows = list(csv.DictReader(io.StringIO(data.decode())))
            assert {r["tenant_id"] for r in rows} <= {str(a.pk)}, name
        for secret in secrets_b:
            assert secret.encode() not in data, f"{name} holds {secret!r} of tenant B"

    media = tmp_path / "media"
    settings.MEDIA_ROOT = str(media)  # the new installation's own storage
    with on_database(fresh_database):
        call_command("tenant_import", str(out), stdout=io.StringIO())
        assert rows_by_table(a.pk) == source
        assert sorted(refreshed) == sorted(planner.TABLES)
        assert members(a.pk) == members_a
        imported = dict(User.objects.values_list("pk", "email"))
        assert users_a.items() <= imported.items() <= users.items()  # ids kept, none of B
        assert not Tenant.objects.filter(pk=b.pk).exists()
        assert Tenant.objects.get(pk=a.pk).slug == a.slug
        assert not any(count for count, _ in rows_by_table(b.pk).values())
        from django_celery_beat.models import PeriodicTask

        assert PeriodicTask.objects.filter(name__startswith=f"tenant-{a.pk}-").count() == 1
        for name, data in files_a.items():
            assert (media / name).read_bytes() == data
        # New rows after the import get fresh ids (the sequences were moved past the kept ones).
        with tenant_context(Tenant.objects.get(pk=a.pk)):
            from pricing_saas.catalog.models import Product

            kept = max(Product.objects.values_list("pk", flat=True))
            assert Product.objects.create(sku="NEW", title="New", price=1).pk > kept
        assert User.objects.create_user("late@example.com").pk > max(users_a)

        # Again: the slug exists. Refused, and nothing changes.
        before = rows_by_table(a.pk)
        with pytest.raises(CommandError, match="slug 'alpha-store' exists"):
            call_command("tenant_import", str(out))
        assert rows_by_table(a.pk) == before
    # The source is untouched by all of this.
    assert rows_by_table(a.pk) == source


def _rewrite(path: Path, out: Path, change, resign: bool = True) -> None:
    """A copy of the archive with `change(members)` applied (manifest as a dict), signed again
    with this deployment's key (someone holding the key: the checks behind the signature) or,
    with `resign=False`, keeping the old signature."""
    from pricing_saas.portal.archive import sign

    content = archive_members(path)
    manifest = json.loads(content.pop("manifest.json"))
    change(manifest, content)
    body = json.dumps(manifest).encode()
    if resign:
        content["manifest.sig"] = sign(body).encode()
    with tarfile.open(out, "w:gz") as archive:
        for name, data in [("manifest.json", body), *content.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_a_refused_import_writes_nothing(world_a, world_b, tmp_path, fresh_database, settings):
    import hashlib

    fill(world_a, "alpha")
    out = tmp_path / "alpha.tar.gz"
    call_command("tenant_export", world_a.tenant.slug, out=str(out), stdout=io.StringIO())
    last = sorted(json.loads(archive_members(out)["manifest.json"])["tables"])[-1]

    def other_migrations(manifest, content):
        manifest["migrations"].append("catalog.9999_from_the_future")

    def damaged(manifest, content):
        content["users.csv"] = content["users.csv"].replace(b"@", b"#")

    def another_tenants_row(manifest, content):
        # The last table loaded holds a row of tenant B (its checksum updated to match): the
        # tenant and every earlier table were already inserted when this is found.
        name = f"tables/{last}.csv"
        data = content[name].decode()
        header, first = data.splitlines()[:2]
        index = next(csv.reader([header])).index("tenant_id")
        cells = next(csv.reader([first]))
        cells[index] = str(world_b.tenant.pk)
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow(cells)
        content[name] = (data + line.getvalue()).encode()
        manifest["tables"][last]["sha256"] = hashlib.sha256(content[name]).hexdigest()

    def a_file_no_row_names(manifest, content):
        data = b"written where the archive likes"
        name = "../outside.txt"
        content[f"files/{name}"] = data
        digest = hashlib.sha256(data).hexdigest()
        manifest["files"][name] = {"table": "catalog_importjob", "column": "file", "sha256": digest}

    def a_damaged_last_file(manifest, content):
        # The files before it are stored by then: they must go with the rolled-back rows.
        assert len(manifest["files"]) == 3
        last = f"files/{list(manifest['files'])[-1]}"
        content[last] = content[last] + b"!"

    cases = [
        (a_damaged_last_file, "files/.* does not match its checksum"),
        (other_migrations, "migrations differ.*9999_from_the_future"),
        (a_file_no_row_names, r"files no row names: \['../outside.txt'\]"),
        (damaged, "users.csv does not match its checksum"),
        (another_tenants_row, f"{last}: the archive holds rows of another tenant"),
    ]
    settings.MEDIA_ROOT = str(tmp_path / "media")
    with on_database(fresh_database):
        for change, reason in cases:
            bad = tmp_path / f"{change.__name__}.tar.gz"
            _rewrite(out, bad, change)
            with pytest.raises(CommandError, match=reason):
                call_command("tenant_import", str(bad))
            assert not Tenant.objects.exists() and not User.objects.exists(), change.__name__
            assert not (tmp_path / "outside.txt").exists()
            assert not list((tmp_path / "media").rglob("*.*")), "a refused import left files"
        unsigned = tmp_path / "unsigned.tar.gz"  # edited without the key: refused first
        _rewrite(out, unsigned, other_migrations, resign=False)
        with pytest.raises(CommandError, match="signature does not match"):
            call_command("tenant_import", str(unsigned))
        settings.TENANT_ARCHIVE_KEY = "another-installation"  # exported elsewhere
        with pytest.raises(CommandError, match="signature does not match"):
            call_command("tenant_import", str(out))
        settings.TENANT_ARCHIVE_KEY = ""
        assert not Tenant.objects.exists()
        with pytest.raises(CommandError, match=r"junk.tar.gz: nothing imported"):
            (tmp_path / "junk.tar.gz").write_bytes(b"not gzip")
            call_command("tenant_import", str(tmp_path / "junk.tar.gz"))


def test_a_new_table_with_a_tenant_id_is_exported_without_being_listed(world_a, tmp_path):
    """A table that no model and no list knows of: found because it has a tenant_id column."""
    with as_owner(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE archive_test_notes (id bigint GENERATED BY DEFAULT AS IDENTITY "
            "PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants_tenant (id), note text)"
        )
        apply_row_level_security()
        grant_application_role()
    try:
        with tenant_context(world_a.tenant), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO archive_test_notes (tenant_id, note) VALUES (%s, 'hello')",
                [world_a.tenant.pk],
            )
        out = tmp_path / "alpha.tar.gz"
        call_command("tenant_export", world_a.tenant.slug, out=str(out), stdout=io.StringIO())
        content = archive_members(out)
        assert json.loads(content["manifest.json"])["tables"]["archive_test_notes"]["rows"] == 1
        assert b"hello" in content["tables/archive_test_notes.csv"]
    finally:
        with as_owner(), connection.cursor() as cursor:
            cursor.execute("DROP TABLE archive_test_notes")


def test_an_archive_is_its_owners_only_and_can_leave_the_password_hashes_behind(
    world_a, tmp_path, fresh_database, settings
):
    fill(world_a, "alpha")
    hashes = [u.password for u in User.objects.all() if u.has_usable_password()]
    assert hashes, "the test's members need passwords"
    kept, left = tmp_path / "kept.tar.gz", tmp_path / "left.tar.gz"
    call_command("tenant_export", world_a.tenant.slug, out=str(kept), stdout=io.StringIO())
    call_command(
        "tenant_export",
        world_a.tenant.slug,
        out=str(left),
        without_password_hashes=True,
        stdout=io.StringIO(),
    )
    for path in (kept, left):
        assert path.stat().st_mode & 0o777 == 0o600, path.name
    assert any(h.encode() in archive_members(kept)["users.csv"] for h in hashes)
    users_csv = archive_members(left)["users.csv"]
    assert not any(h.encode() in users_csv for h in hashes)
    assert json.loads(archive_members(left)["manifest.json"])["password_hashes"] is False

    settings.MEDIA_ROOT = str(tmp_path / "media")
    with on_database(fresh_database):
        call_command("tenant_import", str(left), stdout=io.StringIO())
        imported = list(User.objects.all())
        assert imported and not any(u.has_usable_password() for u in imported)
        assert members(world_a.tenant.pk)  # the members are there, waiting for passwords


def test_a_row_naming_a_file_outside_the_storage_stops_the_export(world_a, tmp_path):
    from pricing_saas.catalog.models import ImportJob

    fill(world_a, "alpha")
    with tenant_context(world_a.tenant):
        ImportJob.objects.filter(pk=ImportJob.objects.first().pk).update(file="../outside.csv")
    out = tmp_path / "alpha.tar.gz"
    with pytest.raises(CommandError, match=r"catalog_importjob.file names the file '../outside"):
        call_command("tenant_export", world_a.tenant.slug, out=str(out))
    assert not list(tmp_path.glob("alpha.tar.gz*")), "a refused export left an archive"


def test_an_unsigned_archive_is_refused_before_anything_behind_its_manifest_is_unpacked(
    world_a, tmp_path, monkeypatch
):
    from pricing_saas.portal import archive as archive_module

    fill(world_a, "alpha")
    out = tmp_path / "alpha.tar.gz"
    call_command("tenant_export", world_a.tenant.slug, out=str(out), stdout=io.StringIO())
    tenants = Tenant.objects.count()

    reordered = tmp_path / "reordered.tar.gz"
    content = archive_members(out)
    with tarfile.open(reordered, "w:gz") as archive:
        for name in sorted(content, key=lambda n: not n.startswith("tables/")):
            info = tarfile.TarInfo(name)
            info.size = len(content[name])
            archive.addfile(info, io.BytesIO(content[name]))
    with pytest.raises(CommandError, match=r"no readable manifest\.json first"):
        call_command("tenant_import", str(reordered))

    monkeypatch.setattr(archive_module, "MAX_MANIFEST_BYTES", 100)  # an oversized manifest
    with pytest.raises(CommandError, match=r"manifest\.json is not a file of at most 100 bytes"):
        call_command("tenant_import", str(out))
    assert Tenant.objects.count() == tenants
