from django.apps import AppConfig
from django.db.models.signals import pre_delete


def _drop_schedules(sender, instance, **kwargs):
    """A deleted tenant's beat entries go with it (they live outside the tenant's tables)."""
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(name__startswith=f"tenant-{instance.pk}-").delete()


class PricingConfig(AppConfig):
    name = "pricing_saas.pricing"
    label = "pricing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from pricing_saas.catalog.signals import shop_prices_changed
        from tenants.models import Tenant

        from . import signals

        pre_delete.connect(_drop_schedules, sender=Tenant, dispatch_uid="pricing_drop_schedules")
        shop_prices_changed.connect(
            signals.shop_prices_changed, dispatch_uid="pricing_shop_prices_changed"
        )
