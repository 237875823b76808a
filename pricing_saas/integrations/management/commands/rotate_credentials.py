from django.core.management.base import BaseCommand

from pricing_saas.integrations import crypto
from pricing_saas.integrations.models import Connection


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored shop credential and alert webhook key under the first key of "
        "FIELD_ENCRYPTION_KEYS (after putting a new key first). Then the old keys can be removed."
    )

    def handle(self, *args, **options):
        from tenants.context import tenant_context
        from tenants.models import Tenant

        done = 0
        for tenant in Tenant.objects.order_by("pk"):
            with tenant_context(tenant):
                for connection in Connection.objects.exclude(credentials=""):
                    rotated = crypto.rotate(connection.credentials)
                    Connection.objects.filter(pk=connection.pk).update(credentials=rotated)
                    done += 1
                for rotate in crypto.ROTATIONS:  # the other apps' secrets (alert webhook keys)
                    done += rotate()
        self.stdout.write(f"{done} credentials re-encrypted under the first key")
