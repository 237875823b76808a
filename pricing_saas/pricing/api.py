"""REST API of the pricing workflow: rule sets, the approval policy and kill switch, schedules,
reprice jobs, recommendations (approve, reject, edit, bulk), publications, price changes
(price history, rollback). Serializers parse and format; every write is a service call."""

from __future__ import annotations

from decimal import Decimal

import django_filters
from django.db.models import F
from django.db.models.functions import Abs
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from pricing_saas.integrations.publishers import PUBLISHERS
from pricing_saas.web import inputs
from pricing_saas.web.base import TenantAPIView, TenantViewSet
from pricing_saas.web.errors import ServiceError
from tenants.roles import Perm

from . import approvals, outcomes, publishing, rules, schedules, selectors, services
from .models import (
    PriceChange,
    PricingPolicy,
    Publication,
    Recommendation,
    RepriceJob,
    RepriceSchedule,
    RuleSet,
    RuleSetVersion,
)

# --- rule sets -------------------------------------------------------------------------------


class RuleSetOut(serializers.ModelSerializer):
    class Meta:
        model = RuleSet
        fields = ["id", *rules.EDITABLE, "version", "updated_by", "created_at", "updated_at"]


class RuleSetIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=RuleSet.Scope.choices, default="all")
    scope_values = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=10000
    )
    priority = inputs.IntegerField(required=False, min_value=-1000, max_value=1000)
    active = serializers.BooleanField(required=False)
    objective = serializers.ChoiceField(
        choices=[("", "inherit"), *RuleSet.Objective.choices], required=False, allow_blank=True
    )
    min_margin = inputs.DecimalField(12, 4, required=False, allow_null=True)
    max_step = inputs.DecimalField(12, 4, required=False, allow_null=True)
    min_price = inputs.DecimalField(18, 4, required=False, allow_null=True)
    max_price = inputs.DecimalField(18, 4, required=False, allow_null=True)
    map_price = inputs.DecimalField(18, 4, required=False, allow_null=True)
    max_above_competitor = inputs.DecimalField(12, 4, required=False, allow_null=True)
    ending = inputs.DecimalField(6, 2, required=False, allow_null=True)
    min_units_share = inputs.DecimalField(
        8, 4, required=False, allow_null=True, help_text="keep this share of today's units"
    )
    min_revenue_share = inputs.DecimalField(
        8, 4, required=False, allow_null=True, help_text="keep this share of today's revenue"
    )
    clearance_days = inputs.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=3650,
        help_text="sell today's stock within this many days",
    )
    min_gain_abs = inputs.DecimalField(
        14,
        4,
        required=False,
        allow_null=True,
        min_value=0,
        help_text="a change must gain at least this much per day (money)",
    )
    min_gain_rel = inputs.DecimalField(
        8,
        4,
        required=False,
        allow_null=True,
        min_value=0,
        max_value=1,
        help_text="... and at least this share of today's daily profit (or revenue)",
    )
    evidence_margin = inputs.DecimalField(
        8,
        4,
        required=False,
        allow_null=True,
        min_value=0,
        max_value=1,
        help_text="how far beyond the prices seen a price may go (share)",
    )
    window_change = inputs.DecimalField(
        8,
        4,
        required=False,
        allow_null=True,
        min_value=Decimal("0.001"),
        max_value=1,
        help_text="the most a price may move in total within window_days (share)",
    )
    window_days = inputs.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=365,
        help_text="the window of the cumulative change limit, in days",
    )


class RuleSetVersionOut(serializers.ModelSerializer):
    class Meta:
        model = RuleSetVersion
        fields = ["version", "data", "changed_by", "created_at"]


# What fits in a request line whatever the letters (gunicorn refuses a line over 4,094 bytes;
# a character can take 9 bytes once URL-encoded, a CJK letter): longer lists go in the body of
# POST /preview/.
PREVIEW_QUERY_MAX = 400


class ScopePreviewQuery(serializers.Serializer):
    scope = serializers.ChoiceField(choices=RuleSet.Scope.choices, default="all")
    scope_values = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=PREVIEW_QUERY_MAX,
        help_text="the categories, brands or SKUs, separated by commas (longer lists: POST)",
    )


class ScopePreviewIn(ScopePreviewQuery):
    scope_values = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200_000,
        help_text="the categories, brands or SKUs, separated by commas",
    )


class ScopePreviewOut(serializers.Serializer):
    skus = serializers.IntegerField(help_text="active SKUs the scope takes in")
    unmatched = serializers.ListField(
        child=serializers.CharField(), help_text="values that match no active SKU"
    )
    suggestions = serializers.ListField(
        child=serializers.CharField(), help_text="existing values close to the unmatched ones"
    )


class RuleSetViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantViewSet
):
    """Rule sets with scopes and precedence (analyst and above edit). Every change is a new
    version (GET /{id}/versions/) and an audit event; GET or POST /preview/ counts the SKUs a
    scope takes in before it is saved."""

    model = RuleSet
    serializer_class = RuleSetOut
    write_perm = Perm.EDIT_RULES
    action_perms = {"preview": Perm.VIEW}  # a POST that only reads

    def get_tenant_queryset(self):
        return RuleSet.objects.order_by("-priority", "name")

    def _save(self, request, rule_set=None, partial=False):
        data = RuleSetIn(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        saved = rules.save_rule_set(rule_set=rule_set, values=dict(data.validated_data))
        return RuleSetOut(saved).data

    @extend_schema(request=RuleSetIn, responses={201: RuleSetOut})
    def create(self, request):
        return Response(self._save(request), status=status.HTTP_201_CREATED)

    @extend_schema(request=RuleSetIn, responses=RuleSetOut)
    def update(self, request, pk=None):
        return Response(self._save(request, self.get_object()))

    @extend_schema(request=RuleSetIn, responses=RuleSetOut)
    def partial_update(self, request, pk=None):
        return Response(self._save(request, self.get_object(), partial=True))

    def perform_destroy(self, instance):
        rules.delete_rule_set(rule_set=instance)

    @extend_schema(methods=["GET"], parameters=[ScopePreviewQuery], responses=ScopePreviewOut)
    @extend_schema(methods=["POST"], request=ScopePreviewIn, responses=ScopePreviewOut)
    @action(detail=False, methods=["get", "post"])
    def preview(self, request):
        """How many active SKUs a scope takes in, before a rule set with it is saved:
        categories and brands match whatever their case, SKUs exactly; `unmatched` names the
        values that match none (0 SKUs: the rule set would do nothing). GET takes up to 400
        characters of values in the query; POST the same fields as JSON, for long lists. It
        saves nothing either way."""
        if request.method == "POST":
            body = ScopePreviewIn(data=request.data)
            body.is_valid(raise_exception=True)
            query = body.validated_data
        else:
            query = query_of(ScopePreviewQuery, request)
        scope, values = query["scope"], rules.scope_values_of(query.get("scope_values", ""))
        if scope != RuleSet.Scope.ALL and not values:
            raise ServiceError(f"a {scope} scope needs at least one value", attr="scope_values")
        return Response(ScopePreviewOut(rules.scope_preview(scope, values)).data)

    @extend_schema(responses=RuleSetVersionOut(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        """The rule set's versions, newest first; paginated like every list."""
        page = self.paginate_queryset(self.get_object().versions.order_by("-version"))
        return self.get_paginated_response(RuleSetVersionOut(page, many=True).data)


# --- policy and kill switch -------------------------------------------------------------------


class PolicyOut(serializers.ModelSerializer):
    class Meta:
        model = PricingPolicy
        fields = [*approvals.POLICY_FIELDS, "kill_switch", "kill_switch_changed_by",
                  "kill_switch_changed_at", "updated_at"]  # fmt: skip


class PolicyIn(serializers.Serializer):
    auto_approve = serializers.BooleanField(required=False)
    auto_approve_max_change = inputs.DecimalField(6, 4, min_value=0, max_value=1, required=False)
    auto_approve_max_relative_se = inputs.DecimalField(
        6, 4, min_value=0, max_value=10, required=False
    )
    auto_publish = serializers.BooleanField(required=False)
    publisher = serializers.ChoiceField(choices=sorted(PUBLISHERS), required=False)
    price_war_window_days = inputs.IntegerField(min_value=1, max_value=365, required=False)
    price_war_max_cuts = inputs.IntegerField(min_value=2, max_value=100, required=False)
    no_cost_fallback = serializers.ChoiceField(
        choices=PricingPolicy._meta.get_field("no_cost_fallback").choices, required=False
    )
    loss_budget = inputs.DecimalField(
        6, 4, min_value=0, max_value=approvals.MAX_LOSS_BUDGET, required=False,
        help_text="expected share of a run's products whose change loses money (0.01: 1 in 100)",
    )  # fmt: skip
    max_loss_chance = inputs.DecimalField(
        6, 4, min_value=Decimal("0.0001"), max_value=approvals.MAX_LOSS_CHANCE, required=False,
        help_text="the highest chance any one change may carry of losing money (0.1: 1 in 10)",
    )  # fmt: skip


class PolicyView(TenantAPIView):
    """The approval policy: auto-approve within a change threshold when the estimate is
    confident; auto-publish; the publisher; the price-war guard; the risk a run may take of
    changes that lose money. PATCH needs manage_settings."""

    write_perm = Perm.MANAGE_SETTINGS

    @extend_schema(responses=PolicyOut)
    def get(self, request):
        return Response(PolicyOut(approvals.policy()).data)

    @extend_schema(request=PolicyIn, responses=PolicyOut)
    def patch(self, request):
        data = PolicyIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(PolicyOut(approvals.update_policy(**data.validated_data)).data)


class KillSwitchIn(serializers.Serializer):
    on = serializers.BooleanField()
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class KillSwitchView(TenantAPIView):
    """One tenant-wide toggle that stops all automatic approval and publishing at once."""

    write_perm = Perm.PUBLISH

    @extend_schema(request=KillSwitchIn, responses=PolicyOut)
    def post(self, request):
        data = KillSwitchIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(PolicyOut(approvals.set_kill_switch(**data.validated_data)).data)


# --- schedules --------------------------------------------------------------------------------


class ScheduleOut(serializers.ModelSerializer):
    next_run = serializers.SerializerMethodField()

    class Meta:
        model = RepriceSchedule
        fields = ["id", "name", "cron", "timezone", "enabled", "next_run", "updated_by",
                  "created_at"]  # fmt: skip

    @extend_schema_field(
        serializers.DateTimeField(allow_null=True, help_text="null while the schedule is off")
    )
    def get_next_run(self, schedule):
        return schedules.next_run(schedule)


class ScheduleIn(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    cron = serializers.CharField(max_length=120, help_text="e.g. '30 6 * * 1-5'")
    timezone = serializers.CharField(max_length=64, required=False, help_text="IANA name")
    enabled = serializers.BooleanField(required=False)


class ScheduleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantViewSet
):
    """Reprice schedules: a cron expression in a timezone (stored with django-celery-beat)."""

    model = RepriceSchedule
    serializer_class = ScheduleOut
    write_perm = Perm.EDIT_RULES

    def get_tenant_queryset(self):
        return RepriceSchedule.objects.order_by("pk")

    def _save(self, request, schedule=None, partial=False):
        data = ScheduleIn(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        saved = schedules.save_schedule(schedule=schedule, values=dict(data.validated_data))
        return ScheduleOut(saved).data

    @extend_schema(request=ScheduleIn, responses={201: ScheduleOut})
    def create(self, request):
        return Response(self._save(request), status=status.HTTP_201_CREATED)

    @extend_schema(request=ScheduleIn, responses=ScheduleOut)
    def partial_update(self, request, pk=None):
        return Response(self._save(request, self.get_object(), partial=True))

    def perform_destroy(self, instance):
        schedules.delete_schedule(schedule=instance)


# --- reprice jobs -----------------------------------------------------------------------------


class RepriceJobOut(serializers.ModelSerializer):
    class Meta:
        model = RepriceJob
        fields = [
            "id", "status", "trigger", "started_by", "progress", "phase", "skus", "changed",
            "conflicts", "auto_approved", "expected_profit_now", "expected_profit_new",
            "demand_version", "message", "log", "created_at", "started_at", "finished_at",
        ]  # fmt: skip


class CommentIn(serializers.Serializer):
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True)


CONFIRM_HELP = (
    "the `confirm` token of the preview a person (or a program) checked: act only if what "
    "would be acted on is still exactly what was previewed, else 409 (code `changed`) and "
    "nothing is done; without it, act on what there is now"
)


class ImpactOut(serializers.Serializer):
    """What a bulk decision, a publish or a rollback would do, before it is done."""

    count = serializers.IntegerField(help_text="prices it acts on")
    up = serializers.IntegerField(help_text="prices that go up")
    down = serializers.IntegerField(help_text="prices that go down")
    same = serializers.IntegerField(help_text="prices that stay")
    average_change = serializers.FloatField(help_text="mean relative change: 0.05 = +5 %")
    profit_per_day = serializers.FloatField(help_text="expected profit change per day, summed")
    revenue_per_day = serializers.FloatField(help_text="expected revenue change per day, summed")
    without_profit = serializers.IntegerField(help_text="rows without a cost: no profit figure")
    confirm = serializers.CharField(
        source="token", help_text="send it back as `confirm` to act on exactly these"
    )


class BulkPreviewOut(ImpactOut):
    action = serializers.CharField()


class PublishPreviewOut(ImpactOut):
    edited = serializers.IntegerField(help_text="approved at an edited price: no forecast")
    moved = serializers.IntegerField(
        help_text="made against a price that moved since: they fail instead of being sent"
    )
    publisher = serializers.CharField(source="publisher.name")
    publisher_label = serializers.CharField(source="publisher.label")


class RollbackSampleOut(serializers.Serializer):
    product_id = serializers.IntegerField()
    sku = serializers.CharField()
    now = serializers.DecimalField(18, 4)
    back_to = serializers.DecimalField(18, 4)


class RollbackPreviewOut(ImpactOut):
    without_forecast = serializers.IntegerField(help_text="changes published without a forecast")
    sample = RollbackSampleOut(many=True, help_text="the first 50 changes, by id")
    publisher = serializers.CharField(source="publisher.name")


class JobRollbackIn(CommentIn):
    confirm = serializers.CharField(max_length=128, required=False, help_text=CONFIRM_HELP)


class OutcomeQuery(serializers.Serializer):
    window = inputs.IntegerField(min_value=7, max_value=365, default=14)


class AccuracyQuery(serializers.Serializer):
    window = serializers.IntegerField(min_value=7, max_value=365, default=28)


def query_of(serializer_class, request) -> dict:
    """The validated query parameters (a plain dict: an empty `?window=` is invalid, not the
    default, as it would be read from a QueryDict)."""
    query = serializer_class(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return query.validated_data


class ChangeOutcomeOut(serializers.Serializer):
    change_id = serializers.IntegerField()
    sku = serializers.CharField()
    category = serializers.CharField()
    old_price = serializers.FloatField()
    new_price = serializers.FloatField()
    published_on = serializers.DateField()
    days_observed = serializers.IntegerField()
    units_actual = serializers.FloatField(help_text="units per day after the change")
    units_counterfactual = serializers.FloatField(
        help_text="units per day at the old price: the SKU's level before, moved as the "
        "unchanged SKUs moved"
    )
    units_forecast = serializers.FloatField(allow_null=True)
    profit_lift = serializers.FloatField(help_text="realised, per day (revenue without a cost)")
    profit_low = serializers.FloatField(help_text="95 % interval")
    profit_high = serializers.FloatField()
    forecast_profit_lift = serializers.FloatField(allow_null=True)
    by_revenue = serializers.BooleanField()
    market_drift = serializers.FloatField(
        help_text="the unchanged SKUs' units after / before, behind the counterfactual"
    )
    drift_scope = serializers.CharField(
        help_text="category: the SKU's category's own unchanged SKUs; tenant: all of them "
        "(the category has too few, see drift_note)"
    )
    drift_note = serializers.CharField(
        help_text="how the drift was formed: the category's own and its weight against the "
        "tenant's, or why the tenant's was used"
    )


MAX_CHANGES_LISTED = 1000  # per response; the totals and categories count every change


class OutcomeOut(serializers.Serializer):
    window = serializers.IntegerField()
    measured = serializers.SerializerMethodField()
    waiting = serializers.IntegerField(help_text="published too recently to be measured")
    profit_lift = serializers.FloatField(source="total", help_text="per day, all measured")
    profit_low = serializers.FloatField(source="total_low")
    profit_high = serializers.FloatField(source="total_high")
    forecast_profit_lift = serializers.FloatField(source="forecast_total")
    controls = serializers.IntegerField(help_text="unchanged SKUs behind the market's drift")
    by_category = serializers.SerializerMethodField()
    changes = serializers.SerializerMethodField(help_text=f"the first {MAX_CHANGES_LISTED}")

    def get_measured(self, obj) -> int:
        return len(obj.changes)

    @extend_schema_field(ChangeOutcomeOut(many=True))
    def get_changes(self, obj) -> list:
        return ChangeOutcomeOut(obj.changes[:MAX_CHANGES_LISTED], many=True).data

    def get_by_category(self, obj) -> dict:
        return obj.by_category()


class AccuracyOut(serializers.Serializer):
    model_version = serializers.IntegerField()
    window = serializers.IntegerField()
    changes = serializers.IntegerField()
    wape = serializers.FloatField(allow_null=True)
    bias = serializers.FloatField(allow_null=True)
    coverage = serializers.FloatField(allow_null=True)
    intervals = serializers.IntegerField(
        help_text="The changes whose forecast states a 95 % interval (the coverage's count): "
        "a forecast on a slope of unknown error has none"
    )


def _outcome_response(request, changes):
    window = query_of(OutcomeQuery, request)["window"]
    return Response(OutcomeOut(outcomes.outcome(changes, window)).data)


class RepriceJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Reprice jobs. POST /run/ queues one (never two at once per tenant: the active one is
    returned); /{id}/cancel/ stops it; /{id}/rollback/ reverts its published prices."""

    model = RepriceJob
    serializer_class = RepriceJobOut
    filterset_fields = ["status", "trigger"]
    action_perms = {
        "run": Perm.RUN_JOBS,
        "cancel": Perm.RUN_JOBS,
        "rollback": Perm.PUBLISH,
        "rollback_preview": Perm.PUBLISH,
    }

    def get_tenant_queryset(self):
        return RepriceJob.objects.order_by("-created_at")

    @extend_schema(request=None, responses={202: RepriceJobOut})
    @action(detail=False, methods=["post"])
    def run(self, request):
        job = services.start_reprice(trigger="api")
        return Response(RepriceJobOut(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=RepriceJobOut)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(RepriceJobOut(services.cancel_reprice(job=self.get_object())).data)

    @extend_schema(request=JobRollbackIn, responses={202: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """Revert the job's published prices. Preview first (POST rollback/preview/) and send
        its `confirm` token to roll back exactly what was previewed."""
        data = JobRollbackIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        publication = publishing.rollback(
            job=self.get_object(), comment=values.get("comment", ""), expect=values.get("confirm")
        )
        return Response(PublicationOut(publication).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=RollbackPreviewOut)
    @action(detail=True, methods=["post"], url_path="rollback/preview")
    def rollback_preview(self, request, pk=None):
        """What rolling back the job would do, changing nothing: how many prices return to
        the previous one, up and down, the expected profit and revenue change per day, the
        first changes, and the `confirm` token for POST rollback/. Refused (404 / 409) as the
        rollback itself would be."""
        return Response(RollbackPreviewOut(selectors.rollback_preview(self.get_object())).data)

    @extend_schema(parameters=[OutcomeQuery], responses=OutcomeOut)
    @action(detail=True, methods=["get"])
    def outcome(self, request, pk=None):
        """What the job's published prices did: the realised lift per day against the
        counterfactual (the SKUs' levels before, moved as unchanged SKUs moved), with a 95 %
        interval, beside the forecast each change went out with; over `window` days."""
        return _outcome_response(request, PriceChange.objects.filter(job=self.get_object()))


# --- recommendations --------------------------------------------------------------------------


class RecommendationOut(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku")
    title = serializers.CharField(source="product.title")
    category = serializers.CharField(source="product.category")

    class Meta:
        model = Recommendation
        fields = [
            "id", "job", "sku", "title", "category", "status", "current_price",
            "recommended_price", "approved_price", "change", "elasticity", "elasticity_low",
            "elasticity_high", "expected_units_now", "expected_units", "expected_revenue_now",
            "expected_revenue", "expected_profit_now", "expected_profit", "profit_delta",
            "promo_lift", "level_carried", "position_then", "position_now", "loss_chance",
            "competitor_price", "competitor_name", "reference_price",
            "price_floor", "price_ceiling", "binding_rules", "rule_sets", "explanation",
            "confident", "flag", "auto_approved",
            "decided_by", "decided_at", "comment", "created_at",
        ]  # fmt: skip


class RecommendationFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(field_name="product__sku")
    category = django_filters.CharFilter(field_name="product__category")
    min_change = inputs.NumberFilter(method="_min_change", label="|change| at least")
    max_change = inputs.NumberFilter(method="_max_change", label="|change| at most")
    min_profit_delta = inputs.NumberFilter(field_name="profit_delta", lookup_expr="gte")
    flagged = django_filters.BooleanFilter(method="_flagged")

    class Meta:
        model = Recommendation
        fields = ["status", "job", "auto_approved"]

    def _min_change(self, queryset, name, value):
        return queryset.annotate(size=Abs(F("change"))).filter(size__gte=value)

    def _max_change(self, queryset, name, value):
        return queryset.annotate(size=Abs(F("change"))).filter(size__lte=value)

    def _flagged(self, queryset, name, value):
        return queryset.exclude(flag="") if value else queryset.filter(flag="")


class DecideIn(CommentIn):
    price = inputs.DecimalField(
        14, 4, required=False, allow_null=True, help_text="edit and approve: the price to use"
    )  # the price columns' precision: a larger price could not be stored


class BulkFilterIn(serializers.Serializer):
    category = serializers.CharField(max_length=200, required=False, allow_blank=True)
    min_change = inputs.FloatField(required=False, min_value=0)
    max_change = inputs.FloatField(required=False, min_value=0)
    min_profit_delta = inputs.FloatField(required=False)
    job_id = inputs.IntegerField(required=False)
    flagged = serializers.BooleanField(required=False, allow_null=True, default=None)


class BulkIn(CommentIn):
    action = serializers.ChoiceField(choices=["approve", "reject"])
    ids = serializers.ListField(
        child=inputs.IntegerField(min_value=1),
        required=False,
        max_length=100_000,
        allow_empty=False,
    )
    filters = BulkFilterIn(required=False)

    def validate(self, attrs):
        if ("ids" in attrs) == ("filters" in attrs):
            raise serializers.ValidationError("give either ids or filters")
        return attrs


class BulkDecideIn(BulkIn):
    confirm = serializers.CharField(max_length=128, required=False, help_text=CONFIRM_HELP)


class BulkResultOut(serializers.Serializer):
    action = serializers.CharField()
    count = serializers.IntegerField()


class RecommendationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Price recommendations with their explanations. Approvers approve (optionally at an
    edited price inside the rules), reject, or do either in bulk by ids or by filters."""

    model = Recommendation
    serializer_class = RecommendationOut
    filterset_class = RecommendationFilter
    write_perm = Perm.APPROVE

    def get_tenant_queryset(self):
        return Recommendation.objects.select_related("product").order_by("-created_at", "pk")

    def filter_queryset(self, queryset):
        """The list without `job` or `status` is the newest reprice job's rows, superseded ones
        left out (what the portal's "any status" shows): every job's rows mixed counted each SKU
        once per reprice. Either filter named keeps its meaning: `status` over every job,
        `job` in every status."""
        queryset = super().filter_queryset(queryset)
        params = self.request.query_params
        if self.action == "list" and "job" not in params and "status" not in params:
            queryset = queryset.filter(job_id=selectors.latest_recommended_job()).exclude(
                status=Recommendation.Status.SUPERSEDED
            )
        return queryset

    @extend_schema(
        description="Recommendations with their explanations. Without `job` or `status`: the "
        "newest reprice job's recommendations, superseded ones left out; name `status` for that "
        "status over every job, or `job` for all of one job's."
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def _decide(self, request, approve: bool):
        data = DecideIn(data=request.data)
        data.is_valid(raise_exception=True)
        rec = approvals.decide(
            recommendation=self.get_object(), approve=approve, **data.validated_data
        )
        return Response(RecommendationOut(rec).data)

    @extend_schema(request=DecideIn, responses=RecommendationOut)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, True)

    @extend_schema(request=CommentIn, responses=RecommendationOut)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, False)

    @extend_schema(request=BulkDecideIn, responses=BulkResultOut)
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        """Approve or reject by ids or by filters. Preview first (POST bulk/preview/) and send
        its `confirm` token to decide exactly the rows previewed."""
        data = BulkDecideIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        where = approvals.BulkFilter(**values["filters"]) if "filters" in values else None
        count = approvals.bulk_decide(
            approve=values["action"] == "approve",
            ids=values.get("ids"),
            where=where,
            comment=values.get("comment", ""),
            expect=values.get("confirm"),
        )
        return Response({"action": values["action"], "count": count})

    @extend_schema(request=BulkIn, responses=BulkPreviewOut)
    @action(detail=False, methods=["post"], url_path="bulk/preview")
    def bulk_preview(self, request):
        """What a bulk decision would do, deciding nothing: how many, up and down, the
        expected profit and revenue change per day, and the `confirm` token for POST bulk/.
        Ids that are not this tenant's or not pending are refused as the decision would
        refuse them."""
        data = BulkIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        where = approvals.BulkFilter(**values["filters"]) if "filters" in values else None
        preview = selectors.bulk_preview(
            approve=values["action"] == "approve", where=where, ids=values.get("ids")
        )
        return Response(BulkPreviewOut({**preview, "action": values["action"]}).data)


# --- publications and price changes -----------------------------------------------------------


class PublicationOut(serializers.ModelSerializer):
    download = serializers.SerializerMethodField()
    retry_of = serializers.IntegerField(
        source="retry_of_id",
        read_only=True,
        allow_null=True,
        help_text="the publication whose failed changes this one sent again; null if none",
    )

    class Meta:
        model = Publication
        fields = [
            "id",
            "publisher",
            "kind",
            "status",
            "changes",
            "published",
            "failed",
            "attempts",
            "message",
            "created_by",
            "created_at",
            "finished_at",
            "download",
            "retry_of",
        ]

    @extend_schema_field(
        serializers.CharField(
            allow_null=True, help_text="the path of the file to download; null without a file"
        )
    )
    def get_download(self, publication):
        return f"/api/v1/publications/{publication.pk}/download/" if publication.file else None


# The media type of a publication's file, by its extension (the file publishers' CSV and XLSX;
# a publisher added through `register` may write another kind: octet-stream).
DOWNLOAD_TYPES = {
    "text/csv": ".csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/octet-stream": "",
}


def download_type(name: str) -> str:
    return next(
        (media for media, ext in DOWNLOAD_TYPES.items() if ext and name.lower().endswith(ext)),
        "application/octet-stream",
    )


class PublishIn(serializers.Serializer):
    recommendation_ids = serializers.ListField(
        child=inputs.IntegerField(min_value=1),
        required=False,
        max_length=100_000,
        help_text="default: every approved recommendation not yet published",
    )


class PublishConfirmIn(PublishIn):
    confirm = serializers.CharField(max_length=128, required=False, help_text=CONFIRM_HELP)


class PublicationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Publications: POST publishes approved prices through the tenant's publisher (refused
    while the kill switch is on); /{id}/retry/ sends failed changes again; /{id}/download/
    returns a file publisher's CSV or XLSX."""

    model = Publication
    serializer_class = PublicationOut
    write_perm = Perm.PUBLISH
    filterset_fields = ["status", "kind"]

    def get_tenant_queryset(self):
        return Publication.objects.order_by("-created_at")

    @extend_schema(request=PublishConfirmIn, responses={202: PublicationOut})
    def create(self, request):
        """Publish approved prices. Preview first (POST preview/) and send its `confirm`
        token to publish exactly what was previewed."""
        data = PublishConfirmIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        publication = publishing.publish(
            recommendation_ids=values.get("recommendation_ids"), expect=values.get("confirm")
        )
        return Response(PublicationOut(publication).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=PublishIn, responses=PublishPreviewOut)
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """What publishing would send, publishing nothing: how many prices, up and down, the
        expected profit and revenue change per day, the publisher, and the `confirm` token
        for POST publications/."""
        data = PublishIn(data=request.data)
        data.is_valid(raise_exception=True)
        ids = data.validated_data.get("recommendation_ids")
        return Response(PublishPreviewOut(selectors.publish_preview(ids)).data)

    @extend_schema(request=None, responses={202: PublicationOut})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        publication = publishing.retry_publication(publication=self.get_object())
        return Response(PublicationOut(publication).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        responses={(200, media_type): OpenApiTypes.BINARY for media_type in DOWNLOAD_TYPES}
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        publication = self.get_object()
        if not publication.file:
            raise NotFound("this publication has no file")
        name = publication.file.name.rsplit("/", 1)[-1]
        return FileResponse(
            publication.file.open("rb"),
            as_attachment=True,
            filename=name,
            content_type=download_type(name),
        )


class PriceChangeOut(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku")

    class Meta:
        model = PriceChange
        fields = ["id", "sku", "kind", "status", "old_price", "new_price", "recommendation",
                  "job", "publication", "reverts", "reverted", "error", "created_by",
                  "created_at", "published_at"]  # fmt: skip


class PriceChangeFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(field_name="product__sku")

    class Meta:
        model = PriceChange
        fields = ["status", "kind", "job", "publication"]


class PriceRollbackIn(CommentIn):
    ids = serializers.ListField(
        child=inputs.IntegerField(min_value=1),
        max_length=100_000,
        allow_empty=False,
        required=False,
        help_text="price change ids",
    )
    skus = serializers.ListField(
        child=serializers.CharField(max_length=64),
        max_length=100_000,
        allow_empty=False,
        required=False,
        help_text="SKUs: each one's latest published change is rolled back",
    )

    def validate(self, attrs):
        if ("ids" in attrs) == ("skus" in attrs):
            raise serializers.ValidationError("give either ids or skus")
        return attrs


class PriceChangeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Price changes; the published ones are each SKU's price history (?sku=...&status=
    published). POST /rollback/ reverts the named changes to their previous prices."""

    model = PriceChange
    serializer_class = PriceChangeOut
    filterset_class = PriceChangeFilter
    write_perm = Perm.PUBLISH

    def get_tenant_queryset(self):
        return PriceChange.objects.select_related("product").order_by("-created_at", "-pk")

    @extend_schema(request=PriceRollbackIn, responses={202: PublicationOut})
    @action(detail=False, methods=["post"])
    def rollback(self, request):
        data = PriceRollbackIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        ids = values.get("ids") or publishing.latest_changes_of(values["skus"])
        publication = publishing.rollback(change_ids=ids, comment=values.get("comment", ""))
        return Response(PublicationOut(publication).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[AccuracyQuery], responses=AccuracyOut(many=True))
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def accuracy(self, request):
        """Forecast against actual per demand-model version, over the published changes it
        forecast: WAPE and bias of the predicted units after a change (its price effect on
        the counterfactual) and the coverage of the 95 % predictive interval. One row per
        version: neither paginated nor filtered."""
        rows = outcomes.accuracy(query_of(AccuracyQuery, request)["window"])
        return Response(AccuracyOut(rows, many=True).data)

    @extend_schema(parameters=[OutcomeQuery], responses=OutcomeOut)
    @action(detail=True, methods=["get"])
    def outcome(self, request, pk=None):
        """What this change did (see the reprice job's outcome)."""
        return _outcome_response(request, PriceChange.objects.filter(pk=self.get_object().pk))
