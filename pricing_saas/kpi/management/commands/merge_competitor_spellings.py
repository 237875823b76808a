from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from pricing_saas.kpi.spellings import merge_competitor_spellings
from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Store each competitor's readings, undercut alerts and cited names under the tenant's "
        "one spelling of it (names that differ only in case or white space are one "
        "competitor): the named tenants, else every tenant, each in one transaction. Where a "
        "reading is stored under two spellings, the one under the tenant's spelling stays. "
        "Idempotent; run it once after upgrading, while no competitor import runs (one that "
        "writes a clashing reading meanwhile fails that tenant's merge, which changes nothing; "
        "the others go on, and the command names the ones to run again)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", metavar="slug")
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would change; change nothing"
        )

    def handle(self, *args, slugs, dry_run, **options):
        tenants = (
            [tenant_or_error(slug) for slug in slugs]
            if slugs
            else list(Tenant.objects.order_by("pk"))
        )
        failed = []
        for tenant in tenants:
            try:
                with tenant_context(tenant):
                    done = merge_competitor_spellings(dry_run=dry_run)
            except DatabaseError as exc:  # (its transaction rolled back: nothing changed)
                failed.append(tenant.slug)
                self.stderr.write(f"{tenant.slug}: not merged, nothing changed: {exc}".strip())
                continue
            verb = "would move" if dry_run else "moved"
            self.stdout.write(
                f"{tenant.slug}: {done['spellings']} spellings; {verb} {done['readings']} "
                f"readings, {done['duplicates']} duplicates removed, "
                f"{done['registered']} competitors registered, {done['alerts']} alerts "
                f"renamed ({done['alerts_resolved']} resolved as duplicates), "
                f"{done['recommendations']} recommendations"
            )
        if failed:
            raise CommandError(
                f"{len(failed)} tenant(s) not merged ({', '.join(failed)}): run it again for them"
            )
