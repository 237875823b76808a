from django.core.management.base import BaseCommand, CommandError

from pricing_saas.pricing import services
from pricing_saas.pricing.tasks import PART_TASKS
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error
from tenants.tasks import tasks_run_here


class Command(BaseCommand):
    help = (
        "Recommend prices for every active SKU of a tenant (queued on reprice, or --sync: here, "
        "a large tenant's parts one after another)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--sync", action="store_true")

    def handle(self, *args, slug, sync, **options):
        tenant = tenant_or_error(slug)
        with tenant_context(tenant):
            job = services.start_reprice(trigger="command", enqueue=not sync)
            if not sync:
                self.stdout.write(f"queued {job}")
                return
            try:
                with tasks_run_here(PART_TASKS):  # a job in parts (and its model's fit) runs here
                    job = services.run_reprice(job_id=job.pk)
            except ServiceError as exc:
                raise CommandError(exc.detail) from exc
            job.refresh_from_db()
        for line in job.log:
            self.stderr.write(line)
        self.stdout.write(f"{job}: {job.message}")
        if job.status != job.Status.SUCCEEDED:
            raise CommandError(f"reprice ended {job.status}")
