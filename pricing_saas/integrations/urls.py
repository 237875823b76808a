from django.urls import path

from . import views

app_name = "integrations"

urlpatterns = [
    path("shopify/<slug:slug>/<int:pk>/", views.shopify_webhook, name="shopify_webhook"),
    path(
        "woocommerce/<slug:slug>/<int:pk>/",
        views.woocommerce_webhook,
        name="woocommerce_webhook",
    ),
]
