from django.core.management.base import BaseCommand, CommandError

from pricing_saas.integrations import services
from pricing_saas.integrations.models import Connection, SyncRun
from pricing_saas.web.errors import ServiceError
from tenants.context import actor_context, tenant_context
from tenants.management.commands import tenant_or_error


class Command(BaseCommand):
    help = (
        "Pull products and orders from a tenant's connected shops, now, in this process "
        "(incremental from the last sync; --full reads everything again)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--connection", type=int, help="one connection's id (default: all)")
        parser.add_argument("--kind", choices=SyncRun.Kind.values, default=SyncRun.Kind.ALL)
        parser.add_argument("--full", action="store_true")

    def handle(self, *args, slug, connection, kind, full, **options):
        tenant = tenant_or_error(slug)
        failed = False
        with tenant_context(tenant), actor_context(None, "command sync_shop"):
            connections = Connection.objects.exclude(status=Connection.Status.DISCONNECTED)
            if connection is not None:
                connections = connections.filter(pk=connection)
            connections = list(connections.order_by("pk"))
            if not connections:
                raise CommandError(
                    f"no connection {connection} to sync" if connection else "no connected shop"
                )
            for conn in connections:
                try:
                    run = services.start_sync(
                        connection=conn, kind=kind, full=full, trigger="command", enqueue=False
                    )
                    run = services.run_sync(run_id=run.pk)
                except ServiceError as exc:
                    raise CommandError(exc.detail) from exc
                for item in run.report[:50]:
                    self.stderr.write(f"skipped {item['item']}: {item['reason']}")
                self.stdout.write(f"{conn.shop_url}: {run.status}: {run.message}")
                failed |= run.status != SyncRun.Status.SUCCEEDED
        if failed:
            raise CommandError("a sync did not succeed")
