"""REST API of the model registry: training runs, versions (promote, roll back, cancel) and
reference-price predictions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pricing_saas.web import inputs
from pricing_saas.web.base import TenantAPIView, TenantViewSet
from tenants.roles import Perm

from . import selectors, services
from .models import ModelVersion
from .science.text_price import product_text


class ModelVersionOut(serializers.ModelSerializer):
    rmsle = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id", "kind", "version", "status", "requested_trainer", "trainer", "base_model",
            "hyperparameters", "data_size", "metrics", "rmsle", "progress", "message",
            "created_at", "started_at", "finished_at", "promoted_at",
        ]  # fmt: skip

    @extend_schema_field(
        serializers.FloatField(
            allow_null=True, help_text="the chosen text model's held-out RMSLE; null without one"
        )
    )
    def get_rmsle(self, version) -> float | None:
        return version.rmsle


class TrainIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices, default="text")
    trainer = serializers.ChoiceField(choices=services.TRAINERS, required=False)
    epochs = inputs.IntegerField(min_value=1, max_value=50, required=False)
    base_model = serializers.CharField(max_length=64, required=False)


class RollbackIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices, default="text")


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Model versions. POST /train/ starts a training run on the ml_train queue (one at a time
    per kind: a second request returns the run in progress)."""

    model = ModelVersion
    serializer_class = ModelVersionOut
    write_perm = Perm.TRAIN_MODELS
    filterset_fields = ["kind", "status"]

    def get_tenant_queryset(self):
        return ModelVersion.objects.order_by("-created_at")

    @extend_schema(request=TrainIn, responses={202: ModelVersionOut})
    @action(detail=False, methods=["post"])
    def train(self, request):
        data = TrainIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user if request.user.is_authenticated else None
        version = services.start_training(user=user, **data.validated_data)
        return Response(ModelVersionOut(version).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=ModelVersionOut)
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        return Response(ModelVersionOut(services.promote(version=self.get_object())).data)

    @extend_schema(request=None, responses=ModelVersionOut)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(ModelVersionOut(services.cancel(version=self.get_object())).data)

    @extend_schema(request=RollbackIn, responses=ModelVersionOut)
    @action(detail=False, methods=["post"])
    def rollback(self, request):
        data = RollbackIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(ModelVersionOut(services.rollback(**data.validated_data)).data)


class ProductTextIn(serializers.Serializer):
    sku = serializers.CharField(max_length=64, required=False, allow_blank=True)
    title = serializers.CharField(max_length=500)
    description = serializers.CharField(max_length=20000, required=False, allow_blank=True)
    brand = serializers.CharField(max_length=200, required=False, allow_blank=True)
    category = serializers.CharField(max_length=200, required=False, allow_blank=True)
    attributes = serializers.DictField(required=False)


class PredictIn(serializers.Serializer):
    products = ProductTextIn(many=True, allow_empty=False, max_length=1000)


PredictOut = inline_serializer(
    "ReferencePricePredictions",
    {
        "model_version": serializers.IntegerField(),
        "predictions": serializers.ListField(child=serializers.DictField()),
    },
)


class ReferencePricePredictView(TenantAPIView):
    """Reference prices from product text with the promoted model (up to 1,000 per request).
    A read: it changes nothing, so every role may call it."""

    write_perm = Perm.VIEW

    @extend_schema(request=PredictIn, responses=PredictOut)
    def post(self, request):
        data = PredictIn(data=request.data)
        data.is_valid(raise_exception=True)
        products = data.validated_data["products"]
        texts = [
            product_text(
                p["title"],
                p.get("description", ""),
                p.get("brand", ""),
                p.get("category", ""),
                p.get("attributes") or {},
            )
            for p in products
        ]
        version, prediction = selectors.predict_texts(texts)
        triples = zip(prediction.price, prediction.low, prediction.high, strict=True)
        rows = [
            {
                "sku": p.get("sku", ""),
                "predicted_price": round(float(price), 2),
                "low": round(float(low), 2),
                "high": round(float(high), 2),
            }
            for p, (price, low, high) in zip(products, triples, strict=True)
        ]
        return Response({"model_version": version.version, "predictions": rows})
