import sys

from django.core.management.base import BaseCommand, CommandError

from pricing_saas.catalog.exporter import export_csv
from pricing_saas.catalog.formats import FORMATS
from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error


class Command(BaseCommand):
    help = "Write a tenant's products, sales or competitor prices as canonical CSV to stdout."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("kind", help=" | ".join(FORMATS))

    def handle(self, *args, slug, kind, **options):
        tenant = tenant_or_error(slug)
        if kind not in FORMATS:
            raise CommandError(f"unknown kind {kind!r}: use one of {', '.join(FORMATS)}")
        out = getattr(self.stdout, "_out", sys.stdout)
        target = getattr(out, "buffer", None)
        with tenant_context(tenant):
            if target is not None:
                out.flush()
                export_csv(kind, target)
                target.flush()
            else:  # a text stream (tests, call_command with StringIO)
                import io

                buffer = io.BytesIO()
                export_csv(kind, buffer)
                out.write(buffer.getvalue().decode())
