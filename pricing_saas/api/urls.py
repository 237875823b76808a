from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from ml.api import ModelVersionViewSet, ReferencePricePredictView
from pricing_saas.catalog.api import (
    CompetitorOfferViewSet,
    ExportView,
    ImportJobViewSet,
    ProductViewSet,
    SalesViewSet,
)
from tenants.api import ApiKeyViewSet, CurrentTenantView, InvitationViewSet, MemberViewSet

router = SimpleRouter(use_regex_path=False)
router.register("members", MemberViewSet, basename="member")
router.register("invitations", InvitationViewSet, basename="invitation")
router.register("api-keys", ApiKeyViewSet, basename="api-key")
router.register("products", ProductViewSet, basename="product")
router.register("sales", SalesViewSet, basename="sales")
router.register("competitor-offers", CompetitorOfferViewSet, basename="competitor-offer")
router.register("imports", ImportJobViewSet, basename="import")
router.register("model-versions", ModelVersionViewSet, basename="model-version")

app_name = "api"

urlpatterns = [
    path("tenant/", CurrentTenantView.as_view(), name="current-tenant"),
    path("exports/<str:kind>/", ExportView.as_view(), name="export"),
    path(
        "predictions/reference-prices/",
        ReferencePricePredictView.as_view(),
        name="reference-price-predictions",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("", include(router.urls)),
]
