"""REST API of the KPI facts: the daily series of the tenant, a category or a reprice job's SKUs,
with the published price changes on the same timeline (what the Performance page draws)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from pricing_saas.web.base import TenantAPIView
from pricing_saas.web.filters import refuse_blank

from . import selectors
from .models import DailyKpi

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
