"""REST API of the KPI facts: the daily series of the tenant, a category or a reprice job's SKUs,
with the published price changes on the same timeline (what the Performance page draws)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from pricing_saas.web.base import ReadOnlyTenantViewSet, TenantAPIView
from pricing_saas.web.errors import ServiceError
from pricing_saas.web.filters import refuse_blank
from tenants.roles import Perm, has_perm

from . import alerts, selectors
from .models import Alert, AlertPolicy, DailyKpi

MONEY = {"max_digits": 20, "decimal_places": 2}


class PointOut(serializers.Serializer):
    date = serializers.DateField()
    units = serializers.IntegerField()
    revenue = serializers.DecimalField(**MONEY)
    profit = serializers.DecimalField(
        **MONEY, allow_null=True, help_text="Gross profit of the sales whose product has a cost."
    )
    revenue_with_cost = serializers.DecimalField(
        **MONEY, allow_null=True, help_text="Revenue of the sales whose product has a cost."
    )
    margin = serializers.FloatField(allow_null=True, help_text="profit / revenue_with_cost")
    profit_derived = serializers.DecimalField(
        **MONEY,
        allow_null=True,
        help_text="The part of `profit` computed with derived (estimated) costs.",
    )
    price_index = serializers.FloatField(
        allow_null=True,
        help_text="Own average price / lowest competitor price in force, weighted by units "
        "(1.0: level; above 1: dearer). Null without competitor prices.",
    )


class TotalsOut(PointOut):
    date = None
    cost_coverage = serializers.FloatField(allow_null=True, help_text="revenue_with_cost / revenue")
    derived_share = serializers.FloatField(
        allow_null=True,
        help_text="Share of revenue_with_cost whose cost is derived (an estimate): profit and "
        "margin rest on it to that extent.",
    )
    days = serializers.IntegerField()


class ChangeMarkerOut(serializers.Serializer):
    date = serializers.DateField(help_text="The tenant's local day the changes went live.")
    job = serializers.IntegerField(allow_null=True, help_text="The reprice job (null: none).")
    kind = serializers.CharField(help_text="recommendation | rollback")
    count = serializers.IntegerField()
    rises = serializers.IntegerField()
    cuts = serializers.IntegerField()
    mean_change = serializers.FloatField(allow_null=True, help_text="Mean relative change.")


class FiltersOut(serializers.Serializer):
    """The filters the figures are for (the defaults filled in)."""

    category = serializers.CharField(allow_null=True)
    job = serializers.IntegerField(allow_null=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField()  # keywords: declared here, not as attributes
        fields["to"] = serializers.DateField()
        return fields


class PerformanceOut(serializers.Serializer):
    filters = FiltersOut(source="filters.as_params")
    currency = serializers.CharField()
    series = PointOut(many=True, help_text="One point per day with sales, oldest first.")
    totals = TotalsOut()
    changes = ChangeMarkerOut(many=True, help_text="Published price changes per day and job.")


class DailyKpiView(TenantAPIView):
    """Daily revenue, gross profit, units, margin and price index, summed over the tenant, a
    category or the SKUs of a reprice job, with the published price changes as markers."""

    model = DailyKpi

    @extend_schema(
        parameters=[
            OpenApiParameter("category", str, description="Only the products of this category."),
            OpenApiParameter(
                "job",
                int,
                description="Only the SKUs of this reprice job (those of its published changes).",
            ),
            OpenApiParameter(
                "from",
                OpenApiTypes.DATE,
                description=f"First day (default: {selectors.DEFAULT_DAYS} days before `to`).",
            ),
            OpenApiParameter(
                "to", OpenApiTypes.DATE, description="Last day (default: the latest fact)."
            ),
        ],
        responses=PerformanceOut,
    )
    def get(self, request):
        refuse_blank(request.query_params, ("job", "from", "to"))
        filters = selectors.filters_from(request.query_params)
        data = selectors.performance(filters)
        return Response(PerformanceOut(data).data)


# --- alerts ------------------------------------------------------------------------------------


class AlertOut(serializers.ModelSerializer):
    retraining = serializers.SerializerMethodField(
        help_text="The demand-model version the alert started retraining (null: none)."
    )

    class Meta:
        model = Alert
        fields = [
            "id", "kind", "subject", "status", "message", "figures", "opened_at", "checked_at",
            "resolved_at", "acknowledged_at", "acknowledged_by", "retraining", "emailed_at",
            "webhook_status", "webhook_attempts", "webhook_error",
        ]  # fmt: skip

    def get_retraining(self, alert) -> int | None:
        return alert.retraining.version if alert.retraining_id else None


class AlertCheckOut(serializers.Serializer):
    opened = AlertOut(many=True, help_text="The alerts this check opened (none: nothing new).")


class AlertViewSet(ReadOnlyTenantViewSet):
    """Alerts of the KPI loop (forecast error, interval coverage, profit behind the forecast),
    newest first; `?status=open` for those still in force. POST /{id}/acknowledge/ marks one
    seen; POST /check/ runs the policy's checks now."""

    model = Alert
    serializer_class = AlertOut
    action_perms = {"acknowledge": Perm.MANAGE_SETTINGS, "check": Perm.MANAGE_SETTINGS}

    status_filter: str | None = None

    def get_tenant_queryset(self):
        rows = Alert.objects.select_related("retraining")
        if self.status_filter:
            rows = rows.filter(status=self.status_filter)
        return rows.order_by("-opened_at", "-pk")

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=Alert.Status.values, required=False)]
    )
    def list(self, request, *args, **kwargs):
        wanted = request.query_params.get("status")
        if wanted and wanted not in Alert.Status.values:
            raise ServiceError(
                f"status must be one of {', '.join(Alert.Status.values)}",
                code="invalid_choice",
                attr="status",
            )
        self.status_filter = wanted or None
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses=AlertOut)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = alerts.acknowledge(
            alert_id=self.get_object().pk,
            user=request.user if request.user.is_authenticated else None,
        )
        return Response(AlertOut(alert).data)

    @extend_schema(request=None, responses=AlertCheckOut)
    @action(detail=False, methods=["post"])
    def check(self, request):
        """Run the alert policy's checks now; answers the alerts this opened."""
        return Response(AlertCheckOut({"opened": alerts.evaluate(wait=False)}).data)


class AlertPolicyOut(serializers.ModelSerializer):
    webhook_url = serializers.CharField(help_text="The webhook's address; empty: no webhook.")
    updated_at = serializers.DateTimeField(
        allow_null=True, read_only=True, help_text="Null: the defaults, never saved."
    )
    webhook_secret = serializers.SerializerMethodField(
        help_text="The key of the webhook's signature: only in the answer that made it (the "
        "PATCH that first set a webhook_url, or rotate-secret), to the admin who made it; null "
        "otherwise (it is stored encrypted and never shown again: replace it if lost)."
    )
    has_webhook_secret = serializers.SerializerMethodField(
        help_text="A signing key is set (the webhook's requests are signed with it)."
    )

    class Meta:
        model = AlertPolicy
        fields = [*alerts.POLICY_FIELDS, "webhook_secret", "has_webhook_secret", "updated_at"]

    def get_webhook_secret(self, obj) -> str | None:
        role = self.context.get("role")
        made_now = getattr(obj, "new_webhook_secret", None)
        return made_now if made_now and has_perm(role, Perm.MANAGE_SETTINGS) else None

    def get_has_webhook_secret(self, obj) -> bool:
        return obj.has_signing_key


class AlertPolicyIn(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    window_days = serializers.IntegerField(required=False)
    min_changes = serializers.IntegerField(required=False)
    max_wape = serializers.DecimalField(6, 3, required=False)
    min_coverage = serializers.DecimalField(6, 3, required=False)
    max_profit_shortfall = serializers.DecimalField(6, 3, required=False)
    resolve_margin = serializers.DecimalField(
        6,
        3,
        required=False,
        help_text="Share of the limit an open alert's figure must be back "
        "past before the alert closes (0-1; 0.1 by default).",
    )
    cooldown_hours = serializers.IntegerField(
        required=False,
        help_text="Hours after an alert closes before one of its kind opens "
        "again (0-720; 24 by default).",
    )
    retrain = serializers.BooleanField(required=False)
    email_admins = serializers.BooleanField(required=False)
    webhook_url = serializers.CharField(max_length=500, required=False, allow_blank=True)


class AlertPolicyView(TenantAPIView):
    """When alerts are raised and what follows (e-mail to admins, the signed webhook, a gated
    retraining). PATCH needs manage_settings; the shares are fractions (0.5 is 50 %)."""

    write_perm = Perm.MANAGE_SETTINGS

    def _out(self, policy):
        return AlertPolicyOut(policy, context={"role": self.role}).data

    @extend_schema(responses=AlertPolicyOut)
    def get(self, request):
        return Response(self._out(alerts.policy()))

    @extend_schema(request=AlertPolicyIn, responses=AlertPolicyOut)
    def patch(self, request):
        data = AlertPolicyIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(self._out(alerts.save_policy(**data.validated_data)))


class AlertWebhookSecretView(TenantAPIView):
    """Replace the webhook's signing key (the old one stops working at once)."""

    write_perm = Perm.MANAGE_SETTINGS

    @extend_schema(request=None, responses=AlertPolicyOut)
    def post(self, request):
        policy = alerts.rotate_webhook_secret()
        return Response(AlertPolicyOut(policy, context={"role": self.role}).data)
