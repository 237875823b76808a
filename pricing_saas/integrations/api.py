"""REST API of shop connections (admins and owners only: `manage_settings`, reads included,
since a connection names the merchant's shop and its state). Credentials are write-only:
no answer ever contains them."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pricing_saas.web.base import TenantViewSet
from tenants.roles import Perm

from . import services
from .models import Connection, SyncRun


class ConnectionOut(serializers.ModelSerializer):
    api_base_url = serializers.CharField(
        read_only=True, help_text="Where the API is called; empty: the platform's own address."
    )
    has_credentials = serializers.BooleanField(read_only=True)
    has_webhook_secret = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField()

    class Meta:
        model = Connection
        fields = [
            "id",
            "platform",
            "name",
            "shop_url",
            "api_base_url",
            "currency",
            "status",
            "status_reason",
            "publishes",
            "has_credentials",
            "has_webhook_secret",
            "webhook_url",
            "last_tested_at",
            "last_products_sync_at",
            "last_orders_sync_at",
            "last_webhook_at",
            "created_by",
            "created_at",
            "updated_at",
        ]

    def get_has_webhook_secret(self, connection) -> bool:
        return bool(connection.has_credentials and connection.secrets().get("app_secret"))

    def get_webhook_url(self, connection) -> str:
        return webhook_url(connection)


def webhook_url(connection: Connection) -> str:
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return f"{base}/webhooks/{connection.platform}/{connection.tenant.slug}/{connection.pk}/"


class ConnectionIn(serializers.Serializer):
    platform = serializers.ChoiceField(choices=Connection.Platform.choices)
    shop_url = serializers.CharField(max_length=300)
    access_token = serializers.CharField(
        max_length=500,
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="Shopify: the Admin API access token",
    )
    consumer_key = serializers.CharField(
        max_length=200,
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="WooCommerce: the REST API consumer key (ck_...)",
    )
    consumer_secret = serializers.CharField(
        max_length=200,
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="WooCommerce: the REST API consumer secret (cs_...)",
    )
    app_secret = serializers.CharField(
        max_length=500,
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="the secret webhooks are signed with (Shopify: the app's client secret; "
        "WooCommerce: the webhook's secret)",
    )
    api_base_url = serializers.CharField(max_length=300, required=False, allow_blank=True)
    publishes = serializers.BooleanField(default=True)


class ConnectionPatch(serializers.Serializer):
    publishes = serializers.BooleanField(required=False)
    api_base_url = serializers.CharField(max_length=300, required=False, allow_blank=True)
    app_secret = serializers.CharField(max_length=500, required=False, write_only=True)


class WebhookSubscriptionsOut(serializers.Serializer):
    topics = serializers.DictField(
        child=serializers.CharField(),
        help_text='per topic: "created", "present" (already subscribed) or the shop\'s refusal',
    )


class SyncIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=SyncRun.Kind.choices, default=SyncRun.Kind.ALL)
    full = serializers.BooleanField(default=False)


class SyncRunOut(serializers.ModelSerializer):
    class Meta:
        model = SyncRun
        fields = [
            "id",
            "connection",
            "kind",
            "full",
            "trigger",
            "status",
            "phase",
            "message",
            "products",
            "orders",
            "sales_rows",
            "skipped",
            "report",
            "calls",
            "throttled",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]


class ConnectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Shop connections: create (the shop is asked first; refused credentials are a 400 naming
    the credential), change, test, sync now, the sync history, disconnect (deletes the
    credentials)."""

    model = Connection
    serializer_class = ConnectionOut
    input_serializer_class = ConnectionIn
    action_perms = {
        name: Perm.MANAGE_SETTINGS
        for name in (
            "list",
            "retrieve",
            "create",
            "partial_update",
            "test",
            "sync",
            "runs",
            "disconnect",
            "register_webhooks",
        )
    }
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_tenant_queryset(self):
        return Connection.objects.select_related("tenant").order_by("pk")

    @extend_schema(request=ConnectionIn, responses={201: ConnectionOut})
    def create(self, request):
        data = ConnectionIn(data=request.data)
        data.is_valid(raise_exception=True)
        connection = services.connect(**data.validated_data)
        return Response(ConnectionOut(connection).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ConnectionPatch, responses={200: ConnectionOut})
    def partial_update(self, request, pk=None):
        connection = self.get_object()
        data = ConnectionPatch(data=request.data)
        data.is_valid(raise_exception=True)
        connection = services.update_connection(connection=connection, **data.validated_data)
        return Response(ConnectionOut(connection).data)

    @extend_schema(request=None, responses={200: ConnectionOut})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        connection = services.test_connection(connection=self.get_object())
        return Response(ConnectionOut(connection).data)

    @extend_schema(request=SyncIn, responses={202: SyncRunOut})
    @action(detail=True, methods=["post"])
    def sync(self, request, pk=None):
        connection = self.get_object()
        data = SyncIn(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.start_sync(connection=connection, trigger="api", **data.validated_data)
        return Response(SyncRunOut(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: SyncRunOut(many=True)})
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        connection = self.get_object()
        runs = SyncRun.objects.filter(connection=connection).order_by("-created_at", "-pk")
        page = self.paginate_queryset(runs)  # paginated like every list (the schema says so)
        return self.get_paginated_response(SyncRunOut(page, many=True).data)

    @extend_schema(request=None, responses={200: WebhookSubscriptionsOut})
    @action(detail=True, methods=["post"], url_path="register-webhooks")
    def register_webhooks(self, request, pk=None):
        """Subscribe the shop's webhooks to this connection's `webhook_url` (the missing ones;
        idempotent). Answers what happened per topic."""
        outcome = services.register_webhooks(connection=self.get_object())
        return Response({"topics": outcome})

    @extend_schema(request=None, responses={200: ConnectionOut})
    @action(detail=True, methods=["post"])
    def disconnect(self, request, pk=None):
        connection = services.disconnect(connection=self.get_object())
        return Response(ConnectionOut(connection).data)
