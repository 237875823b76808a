from django.urls import path

from . import views

app_name = "kpi"

urlpatterns = [
    path("performance/", views.performance, name="performance"),
    path("performance/refresh/", views.refresh, name="refresh"),
    path("alerts/", views.alert_list, name="alerts"),
]
