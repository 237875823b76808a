from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tenants.models import Tenant, User
from tenants.services import create_tenant


class Command(BaseCommand):
    help = "Create a tenant (merchant), optionally with an owner (created when new)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner", help="owner's e-mail; the user is created if new")
        parser.add_argument("--password", help="password for a newly created owner")
        parser.add_argument("--currency", default="USD")
        parser.add_argument("--timezone", default="UTC")

    def handle(self, *args, slug, name, owner, password, currency, timezone, **options):
        if Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"tenant {slug!r} already exists")
        with transaction.atomic():
            user = None
            if owner:
                user = User.objects.filter(email__iexact=owner).first()
                if user is None:
                    user = User.objects.create_user(email=owner, password=password)
                    if not password:
                        self.stderr.write(
                            f"{owner} has no password yet: use the password reset page."
                        )
            try:
                tenant = create_tenant(
                    name=name,
                    slug=slug,
                    owner=user,
                    default_currency=currency,
                    timezone_name=timezone,
                )
            except ValidationError as exc:
                raise CommandError(
                    "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
                ) from exc
        self.stdout.write(
            f"created tenant {tenant.slug} (id {tenant.pk})"
            + (f", owner {user.email}" if user else "")
        )
