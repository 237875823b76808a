"""The one place that wires every app's API and pages together."""

from django.contrib import admin
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
from pricing_saas.experiments.api import ExperimentViewSet
from pricing_saas.integrations.api import ConnectionViewSet
from pricing_saas.kpi.api import (
    AlertPolicyView,
    AlertViewSet,
    AlertWebhookSecretView,
    CompetitorIndexView,
    CompetitorListView,
    CompetitorMoveListView,
    DailyKpiView,
    OfferInForceViewSet,
    UndercutAlertViewSet,
)
from pricing_saas.portal import views as portal_views
from pricing_saas.portal.api import (
    ApiKeyViewSet,
    AuditEventViewSet,
    CurrentTenantView,
    InvitationViewSet,
    MemberViewSet,
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
from pricing_saas.web import observability

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
router.register("experiments", ExperimentViewSet, basename="experiment")
router.register("alerts", AlertViewSet, basename="alert")
router.register("connections", ConnectionViewSet, basename="connection")
router.register("competitors/offers", OfferInForceViewSet, basename="offer-in-force")
router.register("undercut-alerts", UndercutAlertViewSet, basename="undercut-alert")

api_patterns = [
    path("tenant/", CurrentTenantView.as_view(), name="current-tenant"),
    path("exports/<str:kind>/", ExportView.as_view(), name="export"),
    path(
        "predictions/reference-prices/",
        ReferencePricePredictView.as_view(),
        name="reference-price-predictions",
    ),
    path("pricing-policy/", PolicyView.as_view(), name="pricing-policy"),
    path("kill-switch/", KillSwitchView.as_view(), name="kill-switch"),
    path("kpis/daily/", DailyKpiView.as_view(), name="kpi-daily"),
    path("alert-policy/", AlertPolicyView.as_view(), name="alert-policy"),
    path(
        "alert-policy/rotate-secret/",
        AlertWebhookSecretView.as_view(),
        name="alert-policy-rotate-secret",
    ),
    path("competitors/", CompetitorListView.as_view(), name="competitor-list"),
    path("competitors/index/", CompetitorIndexView.as_view(), name="competitor-index"),
    path("competitors/moves/", CompetitorMoveListView.as_view(), name="competitor-move-list"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("", include(router.urls)),
]

urlpatterns = [
    path("healthz", observability.liveness, name="healthz"),
    path("readyz", observability.ReadinessView.as_view(), name="readyz"),
    path("metrics", observability.metrics, name="metrics"),
    path("api/v1/", include((api_patterns, "api"))),
    path("accounts/signup/", portal_views.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("invite/<str:token>/", portal_views.accept_invitation, name="accept_invitation"),
    path("admin/", admin.site.urls),
    path("catalog/", include("pricing_saas.catalog.urls")),
    path("models/", include("ml.urls")),
    path("pricing/", include("pricing_saas.pricing.urls")),
    path("kpi/", include("pricing_saas.kpi.urls")),
    path("experiments/", include("pricing_saas.experiments.urls")),
    path("connections/", include("pricing_saas.integrations.portal_urls")),
    path("webhooks/", include("pricing_saas.integrations.urls")),
    path("", include("pricing_saas.portal.urls")),
]


def handler404(request, exception=None):
    from django.views.defaults import page_not_found

    from pricing_saas.web.errors import json_not_found

    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return page_not_found(request, exception)


def handler500(request):
    from django.views.defaults import server_error

    from pricing_saas.web.errors import json_server_error

    if request.path.startswith("/api/"):
        return json_server_error(request)
    return server_error(request)
