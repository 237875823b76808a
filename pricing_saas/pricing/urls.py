from django.urls import path

from . import views

app_name = "pricing"

urlpatterns = [
    path("recommendations/", views.recommendations, name="recommendations"),
    path(
        "recommendations/export.<str:fmt>",
        views.recommendations_export,
        name="recommendations_export",
    ),
    path("recommendations/<int:pk>/decide/", views.decide, name="decide"),
    path("sku/<int:pk>/", views.sku, name="sku"),
    path("rules/", views.rule_list, name="rules"),
    path("rules/new/", views.rule_edit, name="rule_new"),
    path("rules/preview/", views.rule_preview, name="rule_preview"),
    path("rules/<int:pk>/", views.rule_edit, name="rule_edit"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail, name="job_detail"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:pk>/rollback/", views.job_rollback, name="job_rollback"),
    path("schedules/", views.schedule_save, name="schedule_new"),
    path("schedules/<int:pk>/", views.schedule_save, name="schedule_edit"),
    path("schedules/<int:pk>/delete/", views.schedule_delete, name="schedule_delete"),
    path("publications/", views.publications, name="publications"),
    path("publications/<int:pk>/", views.publication_detail, name="publication_detail"),
    path(
        "publications/<int:pk>/download/", views.publication_download, name="publication_download"
    ),
    path("publications/<int:pk>/retry/", views.publication_retry, name="publication_retry"),
    path("changes/<int:pk>/rollback/", views.change_rollback, name="change_rollback"),
    path("settings/", views.policy_settings, name="settings"),
    path("kill-switch/", views.kill_switch, name="kill_switch"),
]
