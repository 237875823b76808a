"""REST API of the tenants app: the current tenant, members, invitations and API keys."""

from __future__ import annotations

import csv
import io

import django_filters
from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pricing_saas.web import inputs
from pricing_saas.web.base import TenantAPIView, TenantViewSet
from tenants.emails import send_invitation
from tenants.models import ApiKey, AuditEvent, Invitation, Membership
from tenants.roles import API_KEY_ROLE_CHOICES, Perm, Role

from . import services
from .selectors import export_rows


class TenantOut(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.CharField()
    default_currency = serializers.CharField()
    timezone = serializers.CharField()
    status = serializers.CharField()
    role = serializers.CharField()


class CurrentTenantView(TenantAPIView):
    """The tenant this request acts for, and the caller's role in it."""

    @extend_schema(responses=TenantOut)
    def get(self, request):
        tenant = self.tenant
        data = {
            "name": tenant.name,
            "slug": tenant.slug,
            "default_currency": tenant.default_currency,
            "timezone": tenant.timezone,
            "status": tenant.status,
            "role": self.role,
        }
        return Response(TenantOut(data).data)


class MemberOut(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email")
    full_name = serializers.CharField(source="user.full_name")

    class Meta:
        model = Membership
        fields = ["id", "email", "full_name", "role", "created_at"]


class MemberIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MemberViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    model = Membership
    serializer_class = MemberOut
    input_serializer_class = MemberIn
    write_perm = Perm.MANAGE_MEMBERS
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_tenant_queryset(self):
        return Membership.objects.select_related("user").order_by("id")

    @extend_schema(request=MemberIn, responses=MemberOut)
    def partial_update(self, request, *args, **kwargs):
        membership = self.get_object()
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.change_role(
            actor_role=self.role, membership=membership, role=data.validated_data["role"]
        )
        return Response(MemberOut(membership).data)

    def perform_destroy(self, instance):
        services.remove_member(actor_role=self.role, membership=instance)


class InvitationOut(serializers.ModelSerializer):
    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]


class InvitationIn(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationCreatedOut(InvitationOut):
    token = serializers.CharField(help_text="The invitation token, shown once.")

    class Meta(InvitationOut.Meta):
        fields = [*InvitationOut.Meta.fields, "token"]


class InvitationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    model = Invitation
    serializer_class = InvitationOut
    input_serializer_class = InvitationIn
    write_perm = Perm.MANAGE_MEMBERS
    action_perms = {"list": Perm.MANAGE_MEMBERS, "retrieve": Perm.MANAGE_MEMBERS}

    def get_tenant_queryset(self):
        return Invitation.objects.order_by("-created_at")

    @extend_schema(request=InvitationIn, responses={201: InvitationCreatedOut})
    def create(self, request, *args, **kwargs):
        data = InvitationIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user if request.user.is_authenticated else None
        issued = services.invite_member(
            tenant=self.tenant, actor=user, actor_role=self.role, **data.validated_data
        )
        transaction.on_commit(lambda: send_invitation(issued))
        body = {**InvitationOut(issued.invitation).data, "token": issued.token}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.revoke_invitation(actor_role=self.role, invitation=instance)


class ApiKeyOut(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "role", "created_at", "last_used_at", "revoked_at"]


class ApiKeyIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=API_KEY_ROLE_CHOICES)


class ApiKeyCreatedOut(ApiKeyOut):
    key = serializers.CharField(help_text="The full key, shown once; store it now.")

    class Meta(ApiKeyOut.Meta):
        fields = [*ApiKeyOut.Meta.fields, "key"]


class ApiKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    """API keys. DELETE revokes a key (kept for the audit trail, never usable again)."""

    model = ApiKey
    serializer_class = ApiKeyOut
    input_serializer_class = ApiKeyIn
    write_perm = Perm.MANAGE_KEYS
    action_perms = {"list": Perm.MANAGE_KEYS, "retrieve": Perm.MANAGE_KEYS}

    def get_tenant_queryset(self):
        return ApiKey.objects.order_by("-created_at")

    @extend_schema(request=ApiKeyIn, responses={201: ApiKeyCreatedOut})
    def create(self, request, *args, **kwargs):
        data = ApiKeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user if request.user.is_authenticated else None
        issued = services.create_api_key(
            tenant=self.tenant, actor=user, actor_role=self.role, **data.validated_data
        )
        body = {**ApiKeyOut(issued.api_key).data, "key": issued.key}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.revoke_api_key(actor_role=self.role, api_key=instance)


# --- audit log ---------------------------------------------------------------------------------


class AuditEventOut(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id", "created_at", "actor", "action", "target_type", "target_id", "summary",
            "before", "after",
        ]  # fmt: skip


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(field_name="action", lookup_expr="startswith")
    since = inputs.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = inputs.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["target_type", "target_id", "actor"]


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The audit log (owners): every change to rules, approvals, publications, rollbacks, the
    kill switch, members and API keys. GET /export/ streams it as CSV (same filters)."""

    model = AuditEvent
    serializer_class = AuditEventOut
    filterset_class = AuditEventFilter
    action_perms = {"list": Perm.VIEW_AUDIT, "retrieve": Perm.VIEW_AUDIT, "export": Perm.VIEW_AUDIT}

    def get_tenant_queryset(self):
        return AuditEvent.objects.order_by("-created_at", "-pk")

    @extend_schema(filters=True, responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=False, methods=["get"])
    def export(self, request):
        buffer = io.StringIO()
        csv.writer(buffer).writerows(export_rows(self.filter_queryset(self.get_queryset())))
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{self.tenant.slug}.csv"'
        return response
