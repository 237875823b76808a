"""The Connections pages (`pricing_saas/integrations/portal.py`), under /connections/."""

from django.urls import path

from . import portal

app_name = "connections"

urlpatterns = [
    path("", portal.connection_list, name="list"),
    path("<int:pk>/", portal.connection_detail, name="detail"),
    path("<int:pk>/test/", portal.connection_test, name="test"),
    path("<int:pk>/sync/", portal.connection_sync, name="sync"),
    path("<int:pk>/publishes/", portal.connection_publishes, name="publishes"),
    path("<int:pk>/webhook-secret/", portal.connection_secret, name="webhook_secret"),
    path("<int:pk>/webhooks/", portal.connection_webhooks, name="webhooks"),
    path("<int:pk>/disconnect/", portal.connection_disconnect, name="disconnect"),
]
