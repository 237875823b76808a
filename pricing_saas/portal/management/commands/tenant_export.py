from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pricing_saas.portal.archive import ArchiveError, export_tenant
from tenants.management.commands import tenant_or_error


class Command(BaseCommand):
    help = (
        "Write every row a tenant owns (every table with a tenant_id column, its users by "
        "reference) and its stored files into one .tar.gz archive with a manifest of row "
        "counts and checksums; `tenant_import` loads it into a fresh database."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--out", required=True, help="the archive to write (.tar.gz)")
        parser.add_argument(
            "--without-password-hashes",
            action="store_true",
            help="leave the members' password hashes out: the users an import creates cannot "
            "log in until an administrator sets their passwords (manage.py changepassword)",
        )

    def handle(self, *args, slug, out, without_password_hashes, **options):
        tenant = tenant_or_error(slug)
        path = Path(out)
        if path.exists():
            raise CommandError(f"{out} exists; choose another --out")
        try:
            manifest = export_tenant(tenant, path, password_hashes=not without_password_hashes)
        except ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        rows = sum(t["rows"] for t in manifest["tables"].values())
        self.stdout.write(
            f"{slug}: {rows} rows in {len(manifest['tables'])} tables and "
            f"{len(manifest['files'])} files written to {out}"
        )
