import tarfile

from django.core.management.base import BaseCommand, CommandError

from pricing_saas.portal.archive import ArchiveError, import_tenant


class Command(BaseCommand):
    help = (
        "Load a tenant archive written by `tenant_export` into this database, in one "
        "transaction: ids are kept, so load it into a fresh database migrated to the same "
        "release. Refuses a tenant whose slug or id exists, other migrations, a damaged file."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive")

    def handle(self, *args, archive, **options):
        try:
            manifest = import_tenant(archive)
        except (ArchiveError, tarfile.TarError, OSError, EOFError) as exc:
            raise CommandError(f"{archive}: nothing imported: {exc}") from exc
        rows = sum(t["rows"] for t in manifest["tables"].values())
        self.stdout.write(
            f"{manifest['tenant']['slug']}: {rows} rows in {len(manifest['tables'])} tables and "
            f"{len(manifest['files'])} files imported; checksums match"
        )
