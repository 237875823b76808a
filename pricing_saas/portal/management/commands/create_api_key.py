from django.core.management.base import BaseCommand, CommandError

from pricing_saas.portal.services import create_api_key
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error
from tenants.roles import Role


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once (it is stored hashed)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--role", required=True, choices=[r for r in Role.values if r != Role.OWNER]
        )
        parser.add_argument("--name", default="integration")

    def handle(self, *args, slug, role, name, **options):
        tenant = tenant_or_error(slug)
        with tenant_context(tenant):
            try:
                issued = create_api_key(
                    tenant=tenant, actor=None, actor_role=Role.OWNER, name=name, role=role
                )
            except ServiceError as exc:
                raise CommandError(exc.detail) from exc
        self.stderr.write(f"API key {issued.api_key.prefix} ({role}) for {slug}; shown once:")
        self.stdout.write(issued.key)
