"""A/B price tests over the API: create (randomise), list, read, the report (a look for the
stopping rule), the assignments as CSV, stop."""

from __future__ import annotations

import csv
import io

from django.db.models import Count, Q
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pricing_saas.web import inputs
from pricing_saas.web.base import TenantViewSet
from tenants.roles import Perm

from . import services
from .models import Experiment


class ExperimentIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    days = inputs.IntegerField(min_value=services.MIN_DAYS, max_value=365)
    categories = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=1000
    )
    skus = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=services.MAX_SKUS
    )
    share = inputs.FloatField(default=0.5, min_value=0.0, max_value=1.0)
    seed = inputs.IntegerField(default=0, min_value=0, max_value=2**31 - 1)
    start = serializers.DateField(required=False)
    metric = serializers.ChoiceField(choices=Experiment.Metric.choices, default="profit")
    arms = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        max_length=services.MAX_SKUS,
        help_text="A test that already ran (a past `start`): its own assignment, "
        '[{"sku": ..., "arm": "treatment" | "control", "price_test": ...}], instead of a '
        "randomisation here.",
    )

    def validate_share(self, value):
        if not 0 < value < 1:
            raise serializers.ValidationError("share must be strictly between 0 and 1")
        return value

    def validate(self, attrs):
        if not attrs.get("categories") and not attrs.get("skus") and not attrs.get("arms"):
            raise serializers.ValidationError({"skus": "give categories or a list of SKUs"})
        return attrs


class ExperimentOut(serializers.ModelSerializer):
    n_treatment = serializers.SerializerMethodField()
    n_control = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = [
            "id", "name", "status", "metric", "share", "seed", "start", "days", "recorded",
            "randomised", "looks", "result", "excluded", "n_treatment", "n_control", "created_by",
            "created_at",
        ]  # fmt: skip

    def get_n_treatment(self, obj) -> int:
        if hasattr(obj, "n_treatment"):
            return obj.n_treatment
        return obj.units.filter(arm="treatment").count()

    def get_n_control(self, obj) -> int:
        if hasattr(obj, "n_control"):
            return obj.n_control
        return obj.units.filter(arm="control").count()


class ExperimentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, TenantViewSet
):
    """A/B price tests. POST creates one (SKUs by `categories` and/or `skus`, randomised into
    treatment and control, stratified by category and pre-period sales); /{id}/report/ reads
    the result (each read counts as a look for the stopping rule); /{id}/assignments/ is the
    CSV sku,arm,price_before,price_test; /{id}/stop/ ends it now."""

    model = Experiment
    serializer_class = ExperimentOut
    write_perm = Perm.RUN_JOBS
    # a report is recomputed and counts as a look: those who run tests ask for it; anyone
    # reads the latest one on the experiment
    action_perms = {
        "report": Perm.RUN_JOBS,
        "assignments": Perm.VIEW,
        "stop": Perm.RUN_JOBS,
        "roll_out": Perm.APPROVE,
        "roll_back": Perm.PUBLISH,
    }

    def get_tenant_queryset(self):
        return Experiment.objects.annotate(
            n_treatment=Count("units", filter=Q(units__arm="treatment")),
            n_control=Count("units", filter=Q(units__arm="control")),
        ).order_by("-created_at")

    @extend_schema(request=ExperimentIn, responses={201: ExperimentOut})
    def create(self, request, *args, **kwargs):
        data = ExperimentIn(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = services.start_experiment(**data.validated_data)
        return Response(ExperimentOut(experiment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ExperimentOut)
    @action(detail=True, methods=["post"])
    def report(self, request, pk=None):
        experiment = self.get_object()
        services.report(experiment=experiment)
        return Response(ExperimentOut(experiment).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def assignments(self, request, pk=None):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["sku", "arm", "price_before", "price_test"])
        for sku, arm, before, test in services.assignments(self.get_object()):
            writer.writerow([sku, arm, f"{before:.2f}", f"{test:.2f}"])
        return HttpResponse(out.getvalue(), content_type="text/csv")

    @extend_schema(request=None, responses=ExperimentOut)
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        return Response(ExperimentOut(services.stop(experiment=self.get_object())).data)

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path="roll-out")
    def roll_out(self, request, pk=None):
        """The treatment won: release the control SKUs and queue a reprice for them (its
        prices go through approvals)."""
        job = services.roll_out(experiment=self.get_object())
        return Response({"reprice_job": job.pk}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path="roll-back")
    def roll_back(self, request, pk=None):
        """The control won: the treatment's published test prices go back."""
        publication = services.roll_back(experiment=self.get_object())
        return Response(
            {"publication": publication.pk, "changes": publication.changes},
            status=status.HTTP_202_ACCEPTED,
        )
