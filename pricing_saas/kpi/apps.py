from django.apps import AppConfig


class KpiConfig(AppConfig):
    name = "pricing_saas.kpi"
    label = "kpi"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The catalog may not import this app (it sits below it), so the refresh after an
        # import hangs on the ImportJob's own save signals.
        from django.db.models.signals import post_init, post_save

        from pricing_saas.catalog.models import ImportJob
        from pricing_saas.catalog.signals import rows_upserted

        from . import signals

        post_init.connect(signals.remember_status, sender=ImportJob, dispatch_uid="kpi_status")
        post_save.connect(signals.import_saved, sender=ImportJob, dispatch_uid="kpi_import_saved")
        rows_upserted.connect(signals.rows_upserted, dispatch_uid="kpi_rows_upserted")

        from pricing_saas.integrations import crypto

        from .alerts import rotate_stored_keys

        if rotate_stored_keys not in crypto.ROTATIONS:
            crypto.ROTATIONS.append(rotate_stored_keys)
