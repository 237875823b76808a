"""REST API of the KPI facts: the daily series of the tenant, a category or a reprice job's SKUs,
with the published price changes on the same timeline (what the Performance page draws)."""

from __future__ import annotations

import django_filters
from django.db.models import Exists, OuterRef
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.response import Response

from pricing_saas.catalog.models import CompetitorOffer
from pricing_saas.catalog.spellings import CompetitorField, CompetitorFilter
from pricing_saas.web import inputs
from pricing_saas.web.base import ReadOnlyTenantViewSet, TenantAPIView, TenantScopedMixin
from pricing_saas.web.errors import ServiceError
from pricing_saas.web.filters import refuse_blank
from tenants.roles import Perm, has_perm

from . import alerts, competitors, selectors, undercuts
from .models import Alert, AlertPolicy, DailyKpi, UndercutAlert

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
    undercut_threshold = serializers.DecimalField(
        4,
        3,
        required=False,
        allow_null=True,
        help_text="Alert when a competitor's in-stock offer is below our price by more than "
        "this share (0.05 is 5 %, above 0 and at most 0.9); null: no undercut alerts.",
    )


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


# --- competitors -------------------------------------------------------------------------------


class _ComputedList(TenantScopedMixin, ListModelMixin, GenericAPIView):
    """A paginated list computed in SQL (not a model's rows): the query parameters are read by
    `query_class` (a 400 naming the parameter), no django-filter backend."""

    filter_backends: list = []
    query_class: type[serializers.Serializer]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return []
        return self.rows(self.query())

    def query(self) -> dict:
        refuse_blank(self.request.query_params, self.query_class().fields)
        data = self.query_class(data=self.request.query_params)
        data.is_valid(raise_exception=True)
        return data.validated_data

    def rows(self, query: dict):  # pragma: no cover - each view has its own
        raise NotImplementedError


class CompetitorsQuery(serializers.Serializer):
    competitor = CompetitorField(required=False)


class CompetitorOut(serializers.Serializer):
    competitor = serializers.CharField()
    skus = serializers.IntegerField(help_text="Our SKUs with an offer of theirs in force.")
    in_stock = serializers.IntegerField(help_text="Of those, the offers in stock.")
    cheaper = serializers.IntegerField(help_text="In-stock offers below our price.")
    dearer = serializers.IntegerField(help_text="In-stock offers above our price.")
    price_index = serializers.FloatField(
        allow_null=True,
        help_text="Their price / ours over their in-stock offers in force, weighted by our "
        f"revenue of each SKU over the last {competitors.WEIGHT_DAYS} days (a plain mean when "
        "none sold). 0.95: 5 % cheaper than us. Null: nothing in stock.",
    )
    price_index_words = serializers.CharField()
    last_seen = serializers.DateTimeField(help_text="Their newest observation in force.")
    moves = serializers.IntegerField(
        help_text=f"Their price moves of the last {competitors.DEFAULT_MOVE_DAYS} days."
    )
    open_undercuts = serializers.IntegerField(help_text="Open undercut alerts about them.")


@extend_schema_view(get=extend_schema(parameters=[CompetitorsQuery]))
class CompetitorListView(_ComputedList):
    """Per competitor with an offer in force: SKUs matched, in stock, cheaper and dearer than
    ours, today's price index, moves and open undercut alerts; most SKUs first."""

    serializer_class = CompetitorOut
    query_class = CompetitorsQuery

    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)

    def rows(self, query):
        return competitors.summary(query.get("competitor"))


class IndexQuery(serializers.Serializer):
    competitor = CompetitorField(required=False)
    days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=competitors.MAX_DAYS,
        default=competitors.DEFAULT_INDEX_DAYS,
        help_text="How many days back from today (the tenant's day).",
    )


class IndexPointOut(serializers.Serializer):
    date = serializers.DateField()
    index = serializers.FloatField(help_text="Their price / ours (see the competitor list).")
    skus = serializers.IntegerField(help_text="SKUs compared that day.")


class IndexSeriesOut(serializers.Serializer):
    competitor = serializers.CharField()
    points = IndexPointOut(many=True, help_text="Days with an in-stock offer in force.")


@extend_schema_view(get=extend_schema(parameters=[IndexQuery]))
class CompetitorIndexView(_ComputedList):
    """Each competitor's price index per day (their price / ours, weighted by our revenue of
    each SKU), oldest day first: the line the Competitors page draws."""

    serializer_class = IndexSeriesOut
    query_class = IndexQuery

    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)

    def rows(self, query):
        series = competitors.index_series(query["days"], query.get("competitor"))
        return [{"competitor": name, "points": points} for name, points in series.items()]


class MovesQuery(serializers.Serializer):
    competitor = CompetitorField(required=False)
    sku = serializers.CharField(required=False, max_length=64, help_text="Only this SKU.")
    days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=competitors.MAX_DAYS,
        default=competitors.DEFAULT_MOVE_DAYS,
        help_text="Moves of the last this many days.",
    )
    followed = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="true: only moves a price change of ours followed; false: only the others.",
    )


class FollowedByOut(serializers.Serializer):
    price_change = serializers.IntegerField()
    old_price = serializers.DecimalField(**MONEY)
    new_price = serializers.DecimalField(**MONEY)
    published_at = serializers.DateTimeField()
    publication = serializers.IntegerField(allow_null=True)
    job = serializers.IntegerField(allow_null=True, help_text="The reprice job behind it.")
    cites_competitor = serializers.BooleanField(
        help_text="Its recommendation named this competitor as the lowest in force."
    )


class MoveOut(serializers.Serializer):
    offer = serializers.IntegerField(help_text="The observation with the new price.")
    product = serializers.IntegerField()
    sku = serializers.CharField()
    title = serializers.CharField()
    competitor = serializers.CharField()
    old_price = serializers.DecimalField(**MONEY)
    new_price = serializers.DecimalField(**MONEY)
    change = serializers.FloatField(help_text="new / old - 1: -0.1 is a 10 % cut.")
    in_stock = serializers.BooleanField()
    observed_at = serializers.DateTimeField()
    url = serializers.CharField(allow_null=True)
    our_price = serializers.DecimalField(**MONEY, help_text="Our price today.")
    gap_words = serializers.CharField(help_text="Their new price against ours, in words.")
    followed_by = FollowedByOut(
        allow_null=True,
        help_text=f"Our price change of the SKU published within {competitors.FOLLOW_DAYS} "
        "days after the move (one citing this competitor first); null: none.",
    )


@extend_schema_view(get=extend_schema(parameters=[MovesQuery]))
class CompetitorMoveListView(_ComputedList):
    """The competitors' price moves (an observation whose price differs from that competitor's
    previous one of the SKU), newest first, with the change of ours that followed."""

    serializer_class = MoveOut
    query_class = MovesQuery

    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)

    def rows(self, query):
        return competitors.Moves(
            competitors.MoveFilters(
                days=query["days"],
                competitor=query.get("competitor") or None,
                sku=query.get("sku") or None,
                followed=query.get("followed"),
            )
        )


class OfferInForceOut(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku")
    title = serializers.CharField(source="product.title")
    our_price = serializers.DecimalField(source="product.price", **MONEY)
    last_seen = serializers.DateTimeField(source="observed_at")
    url = serializers.SerializerMethodField()
    gap = serializers.SerializerMethodField(
        help_text="1 - their price / ours: 0.08 is 8 % below our price; negative: above."
    )
    gap_words = serializers.SerializerMethodField()
    undercut = serializers.BooleanField(help_text="An undercut alert about it is open.")
    same_item = serializers.SerializerMethodField(
        help_text="False where their price is under a third of ours or over three times it: "
        "most likely another item (a wrong match in the feed), left out of the reprice, the "
        "demand fit, the price index and the undercut alerts."
    )

    class Meta:
        model = CompetitorOffer
        fields = ["id", "product", "sku", "title", "competitor", "price", "our_price", "gap",
                  "gap_words", "same_item", "in_stock", "url", "last_seen",
                  "undercut"]  # fmt: skip

    def get_url(self, offer) -> str | None:
        return offer.url or None

    def get_gap(self, offer) -> float | None:
        return competitors.gap(offer.product.price, offer.price)

    def get_gap_words(self, offer) -> str:
        return competitors.gap_words(offer.product.price, offer.price)

    def get_same_item(self, offer) -> bool:
        return competitors.same_item(offer.product.price, offer.price)


class OfferInForceFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(field_name="product__sku")
    competitor = CompetitorFilter()
    undercut = django_filters.BooleanFilter()

    class Meta:
        model = CompetitorOffer
        fields = ["product", "competitor", "in_stock"]


class OfferInForceViewSet(ReadOnlyTenantViewSet):
    """The competitor offers in force: each competitor's latest observation of each SKU of the
    last 14 days (in or out of stock), with the gap to our price and whether an undercut
    alert about it is open; SKU then competitor order."""

    model = CompetitorOffer
    serializer_class = OfferInForceOut
    filterset_class = OfferInForceFilter

    def get_tenant_queryset(self):
        open_alert = UndercutAlert.objects.filter(
            status=UndercutAlert.Status.OPEN,
            product_id=OuterRef("product_id"),
            competitor=OuterRef("competitor"),
        )
        return competitors.offers_in_force().annotate(undercut=Exists(open_alert))


class UndercutOut(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku")
    title = serializers.CharField(source="product.title")
    gap_words = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = UndercutAlert
        fields = ["id", "product", "sku", "title", "competitor", "status", "our_price",
                  "their_price", "gap", "gap_words", "threshold", "url", "observed_at",
                  "opened_at", "checked_at", "resolved_at", "resolution", "emailed_at",
                  "webhook_status", "webhook_error"]  # fmt: skip
        extra_kwargs = {
            "gap": {"help_text": "1 - their price / ours when last checked (0.08: 8 % below)."},
            "threshold": {"help_text": "The policy's threshold when last checked."},
        }

    def get_gap_words(self, alert) -> str:
        return competitors.gap_words(alert.our_price, alert.their_price)

    def get_url(self, alert) -> str | None:
        return alert.url or None


class UndercutFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(field_name="product__sku")
    competitor = CompetitorFilter()
    opened_from = inputs.IsoDateTimeFilter(field_name="opened_at", lookup_expr="gte")

    class Meta:
        model = UndercutAlert
        fields = ["status", "competitor", "product"]


class UndercutCheckOut(serializers.Serializer):
    opened = serializers.IntegerField()
    still_open = serializers.IntegerField()
    cleared = serializers.IntegerField()


class UndercutAlertViewSet(ReadOnlyTenantViewSet):
    """Competitor undercut alerts (an in-stock offer in force below our price by more than the
    alert policy's `undercut_threshold`), newest first: one open per SKU and competitor until it
    clears. POST /check/ checks the offers in force now."""

    model = UndercutAlert
    serializer_class = UndercutOut
    filterset_class = UndercutFilter
    action_perms = {"check": Perm.MANAGE_SETTINGS}

    def get_tenant_queryset(self):
        return UndercutAlert.objects.select_related("product").order_by("-opened_at", "-pk")

    @extend_schema(request=None, responses=UndercutCheckOut)
    @action(detail=False, methods=["post"], filter_backends=[])
    def check(self, request):
        """Compare the offers in force with our prices now; answers what changed."""
        return Response(UndercutCheckOut(undercuts.evaluate().as_dict()).data)
