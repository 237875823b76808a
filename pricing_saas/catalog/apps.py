from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "pricing_saas.catalog"
    label = "catalog"
    default_auto_field = "django.db.models.BigAutoField"
