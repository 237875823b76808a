import sys

from django.core.management.base import BaseCommand, CommandError

from pricing_saas.catalog.formats import FORMATS
from pricing_saas.catalog.importer import ImportOptions, RowError
from pricing_saas.catalog.services import import_local_file
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error


class Command(BaseCommand):
    help = (
        "Import a CSV or XLSX file (products, sales or competitor_prices) for a tenant, now, "
        "as an import job (listed with the portal's and the API's). All or nothing: on any "
        "invalid row, prints the errors, writes nothing, exits 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("kind", help=" | ".join(FORMATS))
        parser.add_argument("file")
        parser.add_argument(
            "--decimal-comma", action="store_true", help='numbers like "1.299,00 €"'
        )
        parser.add_argument(
            "--create-missing-products",
            action="store_true",
            help="sales/offers for unknown SKUs create stub products instead of failing",
        )
        parser.add_argument(
            "--skip-invalid", action="store_true", help="land the valid rows, report the rest"
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="HEADER=COLUMN",
            help="map a file header to a canonical column (or to __ignore__); repeatable",
        )

    def handle(
        self,
        *args,
        slug,
        kind,
        file,
        decimal_comma,
        create_missing_products,
        skip_invalid,
        map,
        **options,
    ):
        tenant = tenant_or_error(slug)
        if kind not in FORMATS:
            raise CommandError(f"unknown kind {kind!r}: use one of {', '.join(FORMATS)}")
        column_map = {}
        for item in map:
            header, sep, column = item.partition("=")
            if not sep:
                raise CommandError(f"--map expects HEADER=COLUMN, got {item!r}")
            column_map[header] = column
        opts = ImportOptions(
            decimal_comma=decimal_comma,
            create_missing_products=create_missing_products,
            skip_invalid=skip_invalid,
            column_map=column_map,
        )
        try:
            with tenant_context(tenant):
                job = import_local_file(kind=kind, path=file, options=opts)
        except ServiceError as exc:
            raise CommandError(exc.detail) from exc
        # What the job's history row says is what is printed.
        errors = [RowError(**error) for error in job.errors]
        if job.status == job.Status.FAILED:
            for error in errors:
                self.stderr.write(str(error))
            if job.error_count > len(errors):
                self.stderr.write(f"... and {job.error_count - len(errors)} more")
            self.stderr.write(job.message)
            sys.exit(1)
        for error in errors:
            self.stderr.write(f"skipped: {error}")
        self.stdout.write(
            f"created {job.created}, updated {job.updated}, unchanged {job.unchanged}"
            + (f", skipped {job.skipped}" if job.skipped else "")
        )
