from django.core.management.base import BaseCommand, CommandError

from pricing_saas.integrations.publishers import TransientPublishError
from pricing_saas.pricing import publishing
from pricing_saas.pricing.models import Recommendation
from pricing_saas.web.errors import ServiceError
from tenants.context import actor_context, tenant_context
from tenants.management.commands import tenant_or_error


class Command(BaseCommand):
    help = (
        "Publish every approved, unpublished price change of a tenant (or of one reprice job) "
        "through the tenant's publisher, now. Only approved recommendations go; the kill "
        "switch, price locks and a price that moved since stop a change as in the portal."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--job", type=int, help="only this reprice job's approved changes")

    def handle(self, *args, slug, job, **options):
        tenant = tenant_or_error(slug)
        with tenant_context(tenant), actor_context(None, "command publish"):
            ids = None
            if job is not None:
                ids = list(
                    Recommendation.objects.filter(
                        job_id=job, status=Recommendation.Status.APPROVED
                    ).values_list("pk", flat=True)
                )
                if not ids:
                    raise CommandError(f"reprice job {job} has no approved change to publish")
                ids = sorted(set(ids) - publishing.in_flight_recommendations())
                if not ids:
                    raise CommandError(
                        f"reprice job {job}'s approved changes are already on their way"
                    )
            try:
                publication = publishing.publish(recommendation_ids=ids, enqueue=False)
            except ServiceError as exc:
                raise CommandError(exc.detail) from exc
            try:
                publication = publishing.run_publication(publication_id=publication.pk)
            except TransientPublishError as exc:
                publishing._enqueue(publication)
                self.stdout.write(
                    f"{publication}: the shop is not answering ({exc}); queued "
                    "for a retry on the publish queue"
                )
                return
        self.stdout.write(f"{publication}: {publication.message}")
        if publication.status == publication.Status.FAILED:
            raise CommandError("no change was published")
