from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 (registers the system checks)
        from .rls import on_post_migrate

        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="tenants.apply_rls")
