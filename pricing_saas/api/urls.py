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
from pricing_saas.pricing.api import (
    KillSwitchView,
    PolicyView,
    PriceChangeViewSet,
    PublicationViewSet,
    RecommendationViewSet,
    RepriceJobViewSet,
    RuleSetViewSet,
    ScheduleViewSet,
)
from tenants.api import (
    ApiKeyViewSet,
    AuditEventViewSet,
    CurrentTenantView,
    InvitationViewSet,
    MemberViewSet,
)

router = SimpleRouter(use_regex_path=False)
router.register("members", MemberViewSet, basename="member")
router.register("invitations", InvitationViewSet, basename="invitation")
router.register("api-keys", ApiKeyViewSet, basename="api-key")
router.register("products", ProductViewSet, basename="product")
router.register("sales", SalesViewSet, basename="sales")
router.register("competitor-offers", CompetitorOfferViewSet, basename="competitor-offer")
router.register("imports", ImportJobViewSet, basename="import")
router.register("model-versions", ModelVersionViewSet, basename="model-version")
router.register("rule-sets", RuleSetViewSet, basename="rule-set")
router.register("schedules", ScheduleViewSet, basename="schedule")
router.register("reprice-jobs", RepriceJobViewSet, basename="reprice-job")
router.register("recommendations", RecommendationViewSet, basename="recommendation")
router.register("publications", PublicationViewSet, basename="publication")
router.register("price-changes", PriceChangeViewSet, basename="price-change")
router.register("audit-events", AuditEventViewSet, basename="audit-event")

app_name = "api"

urlpatterns = [
    path("tenant/", CurrentTenantView.as_view(), name="current-tenant"),
    path("exports/<str:kind>/", ExportView.as_view(), name="export"),
    path(
        "predictions/reference-prices/",
        ReferencePricePredictView.as_view(),
        name="reference-price-predictions",
    ),
    path("pricing-policy/", PolicyView.as_view(), name="pricing-policy"),
    path("kill-switch/", KillSwitchView.as_view(), name="kill-switch"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("", include(router.urls)),
]
