from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "pricing_saas.portal"
    label = "portal"
