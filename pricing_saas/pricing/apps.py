from django.apps import AppConfig


class PricingConfig(AppConfig):
    name = "pricing_saas.pricing"
    label = "pricing"
    default_auto_field = "django.db.models.BigAutoField"
