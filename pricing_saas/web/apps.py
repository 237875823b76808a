from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "pricing_saas.web"
    label = "web"

    def ready(self) -> None:
        from . import (
            observability,
            schema,  # noqa: F401 (registers the OpenAPI auth extensions)
        )

        observability.register_collectors()
