from django.core.management.base import CommandError

from tenants.models import Tenant


def tenant_or_error(slug: str) -> Tenant:
    """The tenant a management command names, or a CommandError that says which slug is unknown."""
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"unknown tenant {slug!r}")
    return tenant
