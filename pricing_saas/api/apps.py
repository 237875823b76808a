from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "pricing_saas.api"
    label = "api"

    def ready(self) -> None:
        from . import schema  # noqa: F401 (registers the OpenAPI auth extensions)
