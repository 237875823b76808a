from django.urls import path

from . import views

app_name = "kpi"

urlpatterns = [
    path("performance/", views.performance, name="performance"),
    path("performance/refresh/", views.refresh, name="refresh"),
    path("alerts/", views.alert_list, name="alerts"),
    path("competitors/", views.competitor_view, name="competitors"),
    path("competitors/undercuts/", views.undercut_list, name="undercuts"),
    path("competitors/sku/<int:pk>/", views.sku_competitors, name="sku_competitors"),
]
