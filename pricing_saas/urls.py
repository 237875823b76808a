from django.contrib import admin
from django.urls import include, path

from pricing_saas.portal import views as portal_views

urlpatterns = [
    path("api/v1/", include("pricing_saas.api.urls")),
    path("accounts/signup/", portal_views.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("invite/<str:token>/", portal_views.accept_invitation, name="accept_invitation"),
    path("admin/", admin.site.urls),
    path("catalog/", include("pricing_saas.catalog.urls")),
    path("models/", include("ml.urls")),
    path("pricing/", include("pricing_saas.pricing.urls")),
    path("", include("pricing_saas.portal.urls")),
]


def handler404(request, exception=None):
    from django.views.defaults import page_not_found

    from pricing_saas.api.errors import json_not_found

    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return page_not_found(request, exception)


def handler500(request):
    from django.views.defaults import server_error

    from pricing_saas.api.errors import json_server_error

    if request.path.startswith("/api/"):
        return json_server_error(request)
    return server_error(request)
