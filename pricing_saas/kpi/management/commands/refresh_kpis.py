from datetime import date

from django.core.management.base import BaseCommand, CommandError

from pricing_saas.kpi.services import refresh_kpis
from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = (
        "Recompute a tenant's daily KPI facts from its sales, costs and competitor prices: "
        "every day, or the days from --since (and up to --until). Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--since", type=_day, help="first day to recompute (YYYY-MM-DD)")
        parser.add_argument("--until", type=_day, help="last day to recompute (YYYY-MM-DD)")

    def handle(self, *args, slug, since, until, **options):
        tenant = tenant_or_error(slug)
        if since and until and since > until:
            raise CommandError("--since is after --until")
        with tenant_context(tenant):
            done = refresh_kpis(since=since, until=until)
        self.stdout.write(
            f"{tenant.slug}: {done.inserted} facts inserted, {done.updated} updated, "
            f"{done.deleted} deleted in {done.seconds:.2f} s"
        )
