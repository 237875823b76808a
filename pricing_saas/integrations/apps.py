from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "pricing_saas.integrations"
    label = "integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The shop connectors join the publisher registry that publishing reads
        # (pricing_saas.pricing never imports them: it looks publishers up by name).
        from .publishers import register
        from .shopify.publisher import ShopifyPublisher
        from .woocommerce.publisher import WooCommercePublisher

        register(ShopifyPublisher())
        register(WooCommercePublisher())
