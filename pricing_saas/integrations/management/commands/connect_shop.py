from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pricing_saas.integrations import services
from pricing_saas.web.errors import ServiceError
from tenants.context import actor_context, tenant_context
from tenants.management.commands import tenant_or_error


def _read_secret(path: str, what: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"no such file: {path} ({what})")
    return file.read_text().strip()


class Command(BaseCommand):
    help = (
        "Connect a shop to a tenant. The credentials are read from files (never from the "
        "command line, which other users and shell histories see), tested against the shop, "
        "and stored encrypted."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("platform", choices=["shopify", "woocommerce"])
        parser.add_argument("--shop-url", required=True, help="https://example.myshopify.com")
        parser.add_argument(
            "--token-file", help="shopify: a file holding the Admin API access token"
        )
        parser.add_argument("--key", default="", help="woocommerce: the consumer key (ck_...)")
        parser.add_argument(
            "--secret-file", help="woocommerce: a file holding the consumer secret (cs_...)"
        )
        parser.add_argument(
            "--webhook-secret-file",
            help="a file holding the secret webhooks are signed with (Shopify: the app's client "
            "secret; WooCommerce: the webhook's secret)",
        )
        parser.add_argument("--api-base-url", default="", help="another API address (tests)")
        parser.add_argument("--no-publish", action="store_true", help="never push prices here")

    def handle(
        self,
        *args,
        slug,
        platform,
        shop_url,
        token_file,
        key,
        secret_file,
        webhook_secret_file,
        api_base_url,
        no_publish,
        **options,
    ):
        tenant = tenant_or_error(slug)
        credentials = {}
        if platform == "shopify":
            if not token_file:
                raise CommandError("--token-file is required for shopify")
            credentials["access_token"] = _read_secret(token_file, "--token-file")
        else:
            if not key or not secret_file:
                raise CommandError("--key and --secret-file are required for woocommerce")
            credentials["consumer_key"] = key
            credentials["consumer_secret"] = _read_secret(secret_file, "--secret-file")
        secret = (
            _read_secret(webhook_secret_file, "--webhook-secret-file")
            if webhook_secret_file
            else ""
        )
        with tenant_context(tenant), actor_context(None, "command connect_shop"):
            try:
                connection = services.connect(
                    platform=platform,
                    shop_url=shop_url,
                    **credentials,
                    app_secret=secret,
                    api_base_url=api_base_url,
                    publishes=not no_publish,
                )
            except ServiceError as exc:
                raise CommandError(f"{exc.attr or 'error'}: {exc.detail}") from exc
        self.stdout.write(
            f"connection {connection.pk}: {connection.name or connection.shop_url} connected "
            f"({connection.currency or 'currency unknown'})"
        )
