from django.urls import path

from . import views

app_name = "experiments"

urlpatterns = [
    path("", views.experiment_list, name="list"),
    path("<int:pk>/", views.experiment_detail, name="detail"),
    path("<int:pk>/report/", views.experiment_report, name="report"),
    path("<int:pk>/stop/", views.experiment_stop, name="stop"),
    path("<int:pk>/roll-out/", views.experiment_roll_out, name="roll_out"),
    path("<int:pk>/roll-back/", views.experiment_roll_back, name="roll_back"),
]
