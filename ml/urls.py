from django.urls import path

from . import views

app_name = "ml"

urlpatterns = [
    path("", views.models_page, name="models"),
    path("train/", views.train, name="train"),
    path("rollback/", views.rollback, name="rollback"),
    path("mispricing/", views.mispricing, name="mispricing"),
    path("<int:pk>/progress/", views.training_progress, name="progress"),
    path("<int:pk>/promote/", views.promote, name="promote"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
]
