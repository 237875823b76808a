"""REST API of the merchant's data: read products, sales and offers; bulk upserts; file imports
whose status and report can be polled; exports in the canonical CSV format."""

from __future__ import annotations

import tempfile

import django_filters
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from pricing_saas.web import inputs
from pricing_saas.web.base import TenantAPIView, TenantViewSet
from pricing_saas.web.filters import query_bool
from pricing_saas.web.parsers import JSONParser
from tenants.roles import Perm

from . import services
from .exporter import export_csv
from .formats import FORMATS
from .importer import ImportFailed, ImportResult
from .models import CompetitorOffer, ImportJob, Product, SalesRecord
from .spellings import CompetitorFilter

BULK_FLAGS = [
    OpenApiParameter(name, OpenApiTypes.BOOL, description=text)
    for name, text in (
        ("decimal_comma", 'numbers like "1.299,00"'),
        ("create_missing_products", "unknown SKUs create stub products instead of failing"),
        ("skip_invalid", "land the valid rows and report the others"),
    )
]

BulkResult = inline_serializer(
    "BulkResult",
    {
        "rows": serializers.IntegerField(),
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(),
        "skipped": serializers.IntegerField(),
        "errors": serializers.ListField(child=serializers.DictField()),
    },
)


def result_body(result: ImportResult) -> dict:
    return {
        "rows": result.rows,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "skipped": result.skipped,
        "errors": [e.as_dict() for e in result.errors],
    }


def invalid_rows_response(result: ImportResult) -> Response:
    first = result.errors[0] if result.errors else None
    attr = None
    if first is not None and first.row is not None:
        attr = f"{first.row}.{first.column}" if first.column else str(first.row)
    elif first is not None:
        attr = first.column
    return Response(
        {
            "type": "validation_error",
            "code": "invalid_rows",
            "detail": f"{result.error_count} error(s), nothing was written; first: {first}",
            "attr": attr,
            "error_count": result.error_count,
            "errors": [e.as_dict() for e in result.errors],
        },
        status=status.HTTP_400_BAD_REQUEST,
    )


class BulkMixin:
    """POST <collection>/bulk/ with a JSON array of up to 10,000 rows: upsert by key."""

    kind: str = ""

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        parameters=BULK_FLAGS,
        responses={200: BulkResult},
    )
    @action(detail=False, methods=["post"], parser_classes=[JSONParser])
    def bulk(self, request):
        flags = {p.name: query_bool(request.query_params, p.name) for p in BULK_FLAGS}
        try:
            result = services.bulk_upsert(
                kind=self.kind, rows=request.data, options=services.options_from(flags)
            )
        except ImportFailed as exc:
            return invalid_rows_response(exc.result)
        return Response(result_body(result))


class ProductOut(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = [
            "id", "sku", "title", "description", "category", "brand", "attributes", "cost",
            "price", "currency", "stock", "min_price", "max_price", "map_price", "active",
            "created_at", "updated_at",
        ]  # fmt: skip


class ProductFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(field_name="title", lookup_expr="icontains")

    class Meta:
        model = Product
        fields = ["sku", "category", "brand", "active"]


class ProductViewSet(BulkMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    model = Product
    kind = "products"
    serializer_class = ProductOut
    filterset_class = ProductFilter
    write_perm = Perm.IMPORT_DATA

    def get_tenant_queryset(self):
        return Product.objects.order_by("sku")


class SalesOut(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku")

    class Meta:
        model = SalesRecord
        fields = ["date", "sku", "channel", "units", "price", "revenue", "promo"]


class SalesFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(field_name="product__sku")
    date_from = django_filters.DateFilter(field_name="date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="date", lookup_expr="lte")

    class Meta:
        model = SalesRecord
        fields = ["channel", "promo"]


class SalesViewSet(BulkMixin, mixins.ListModelMixin, TenantViewSet):
    """Daily sales, listed with filters (a row's key is its SKU, date and channel)."""

    model = SalesRecord
    kind = "sales"
    serializer_class = SalesOut
    filterset_class = SalesFilter
    write_perm = Perm.IMPORT_DATA

    def get_tenant_queryset(self):
        return SalesRecord.objects.select_related("product").order_by("-date", "product__sku")


class OfferOut(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku")
    url = serializers.SerializerMethodField()

    class Meta:
        model = CompetitorOffer
        fields = ["id", "sku", "competitor", "price", "observed_at", "in_stock", "url"]

    # What the importer checks of a URL (an http(s) prefix, 1,000 characters), not RFC 3986.
    @extend_schema_field(
        {
            "type": "string",
            "nullable": True,
            "pattern": "^[hH][tT][tT][pP][sS]?://",
            "maxLength": 1000,
            "description": "The offer's page; null when not known.",
        }
    )
    def get_url(self, offer) -> str | None:
        return offer.url or None


class OfferFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(field_name="product__sku")
    # any spelling the import reads as the competitor's (case, runs of white space)
    competitor = CompetitorFilter()
    observed_from = inputs.IsoDateTimeFilter(field_name="observed_at", lookup_expr="gte")

    class Meta:
        model = CompetitorOffer
        fields = ["competitor", "in_stock"]


class CompetitorOfferViewSet(
    BulkMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    model = CompetitorOffer
    kind = "competitor_prices"
    serializer_class = OfferOut
    filterset_class = OfferFilter
    write_perm = Perm.IMPORT_DATA

    def get_tenant_queryset(self):
        return CompetitorOffer.objects.select_related("product").order_by("-observed_at")


class ImportJobOut(serializers.ModelSerializer):
    live = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [
            "id", "kind", "status", "source", "original_name", "options", "headers", "column_map",
            "live", "rows", "created", "updated", "unchanged", "error_count", "errors", "message",
            "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_live(self, job) -> dict:
        return services.job_progress(job)


class ImportJobIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ImportJob.Kind.choices)
    file = serializers.FileField()
    decimal_comma = serializers.BooleanField(default=False)
    create_missing_products = serializers.BooleanField(default=False)
    skip_invalid = serializers.BooleanField(default=False)
    column_map = serializers.JSONField(required=False, default=dict)


class ColumnMapIn(serializers.Serializer):
    column_map = serializers.DictField(child=serializers.CharField(allow_blank=True))


class ImportJobViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, TenantViewSet
):
    """File imports: POST a multipart file, then poll the job for status and report."""

    model = ImportJob
    serializer_class = ImportJobOut
    input_serializer_class = ImportJobIn
    write_perm = Perm.IMPORT_DATA
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_tenant_queryset(self):
        return ImportJob.objects.order_by("-created_at")

    @extend_schema(request={"multipart/form-data": ImportJobIn}, responses={202: ImportJobOut})
    def create(self, request, *args, **kwargs):
        data = ImportJobIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        upload, kind = values.pop("file"), values.pop("kind")
        if not isinstance(values.get("column_map"), dict):
            raise serializers.ValidationError({"column_map": ["must be an object"]})
        job = services.create_import_job(
            kind=kind,
            upload=upload,
            options=services.options_from(values),
            user=request.user if request.user.is_authenticated else None,
            source="api",
        )
        return Response(ImportJobOut(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ColumnMapIn, responses={202: ImportJobOut})
    @action(detail=True, methods=["post"], url_path="mapping", parser_classes=[JSONParser])
    def mapping(self, request, pk=None):
        job = self.get_object()
        data = ColumnMapIn(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.set_column_map(job=job, column_map=data.validated_data["column_map"])
        return Response(ImportJobOut(job).data, status=status.HTTP_202_ACCEPTED)


class ExportView(TenantAPIView):
    """The tenant's data in the canonical CSV format (what import_csv reads)."""

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=list(FORMATS))],
        responses={(200, "text/csv"): OpenApiTypes.BINARY},
    )
    def get(self, request, kind: str):
        if kind not in FORMATS:
            raise NotFound(f"unknown kind {kind!r}")
        handle = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 (FileResponse closes it)
        export_csv(kind, handle)
        handle.seek(0)
        return FileResponse(
            handle,
            as_attachment=True,
            filename=f"{kind}.csv",
            content_type="text/csv; charset=utf-8",
        )
