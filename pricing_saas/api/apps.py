from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "pricing_saas.api"
    label = "api"
