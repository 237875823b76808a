from django.urls import path

from . import views

app_name = "portal"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("switch/", views.switch_tenant, name="switch_tenant"),
    path("team/", views.team, name="team"),
    path("team/invite/", views.invite, name="invite"),
    path("team/<int:pk>/role/", views.change_role, name="change_role"),
    path("team/<int:pk>/remove/", views.remove_member, name="remove_member"),
    path("team/invitations/<int:pk>/revoke/", views.revoke_invitation, name="revoke_invitation"),
    path("audit/", views.audit, name="audit"),
    path("audit/export/", views.audit_export, name="audit_export"),
    path("keys/", views.api_keys, name="api_keys"),
    path("keys/<int:pk>/revoke/", views.revoke_api_key, name="revoke_api_key"),
]
