"""The Django side of ml: the per-tenant model registry and stored reference prices."""

from __future__ import annotations

from typing import Self

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.jobs import LOST_MESSAGE, CancellableJob, JobStates, TimeLimit
from tenants.models import TenantOwned


def artifact_path(instance, filename: str) -> str:
    """models/tenants/<tenant id>/<year>/<month>/<name>: a tenant's model files under a prefix
    of its own, which no year can match (models/<year>/<month>/ is where artifacts were stored
    before; they keep their names and are never swept), so that its sweep
    (ml.services.sweep_orphan_artifacts) lists only its own files."""
    if instance.tenant_id is None:
        raise ValueError("a model file belongs to a tenant: the version has none")
    return f"models/tenants/{instance.tenant_id}/{timezone.now():%Y/%m}/{filename}"


class TrainingStatus(models.TextChoices):
    """ModelVersion.Status (declared here so that its Meta can name a state)."""

    QUEUED = "queued", "Queued"
    TRAINING = "training", "Training"
    READY = "ready", "Ready"
    PROMOTED = "promoted", "Promoted"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    RETIRED = "retired", "Retired"


class ModelVersion(CancellableJob):
    """One training run and the model it produced. At most one version per tenant and kind is
    promoted; it stays in force until another is promoted, whatever a later run does."""

    class Kind(models.TextChoices):
        TEXT = "text", "Reference price (text)"
        DEMAND = "demand", "Demand"

    Status = TrainingStatus
    # A training run is `training` while it runs and `ready` when it succeeds.
    states = JobStates(
        queued=Status.QUEUED,
        running=Status.TRAINING,
        succeeded=Status.READY,
        failed=Status.FAILED,
        cancelled=Status.CANCELLED,
    )
    # The ml.train_model_version task's (both kinds): the trainer keeps the best model so far at
    # 90 % of the soft limit, ML_TRAIN_TIME_LIMIT_S.
    time_limit = TimeLimit(
        hard_s=settings.ML_TRAIN_TIME_LIMIT_S + 300, soft_s=settings.ML_TRAIN_TIME_LIMIT_S
    )

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TEXT)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    requested_trainer = models.CharField(max_length=32)
    trainer = models.CharField(max_length=32, blank=True, default="")  # the one that won
    base_model = models.CharField(max_length=200, blank=True, default="")
    hyperparameters = models.JSONField(default=dict, blank=True)
    data_size = models.IntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=dict, blank=True)  # the trainer's state while it runs
    artifact = models.FileField(upload_to=artifact_path, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "version"], name="model_version_unique"
            ),
            models.UniqueConstraint(
                fields=["tenant", "kind"],
                condition=models.Q(status=TrainingStatus.PROMOTED),
                name="model_one_promoted_per_kind",
            ),
        ]

    def mark_lost(self, message: str = LOST_MESSAGE) -> Self:
        """A run fitted in parts loses its staged results with it (nothing reads them again)."""
        plan = (self.progress or {}).get("partitioned")
        if plan and plan.get("folder"):
            from tenants.parts import clean

            clean(plan)
        return super().mark_lost(message)

    def is_stale(self, now=None) -> bool:
        """A run fitted in parts (ml.partitioned) is alive while its parts beat (each part
        counted stamps the plan), however long the whole run takes."""
        if self.status == self.states.running:
            from tenants.parts import is_stale

            stale = is_stale(
                (self.progress or {}).get("partitioned"), self.time_limit.stale_after, now
            )
            if stale is not None:
                return stale
        return super().is_stale(now)

    def __str__(self) -> str:
        return f"{self.kind} v{self.version} ({self.status})"

    @property
    def promotable(self) -> bool:
        """Trained and not in force: ready, or retired (a demand version whose estimate rows
        were pruned; promoting it restores them from its artifact)."""
        return self.status in (self.Status.READY, self.Status.RETIRED)

    @property
    def rmsle(self) -> float | None:
        chosen = self.metrics.get("chosen")
        return self.metrics.get(chosen, {}).get("rmsle") if chosen else None

    @property
    def typical_error_pct(self) -> int | None:
        """The RMSLE in plain words: a typical miss of ± this many percent of the price (an
        error of e in log price is a factor exp(e))."""
        import math

        value = self.rmsle
        return None if value is None else round(100 * (math.exp(float(value)) - 1))


class ReferencePrice(TenantOwned):
    """What the promoted text model says the market pays for a product, with its interval."""

    product = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    price = models.DecimalField(max_digits=14, decimal_places=4)
    low = models.DecimalField(max_digits=14, decimal_places=4)
    high = models.DecimalField(max_digits=14, decimal_places=4)
    # Far outside the prices of the product's category (below a third of their 1st percentile
    # or above three times their 99th; ml.science.text_price.outside_category_range):
    # implausible, kept for inspection, never used as a reference.
    outside_category_range = models.BooleanField(default=False)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "product"], name="reference_price_unique")
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.price}"


class TextModelConfig(TenantOwned):
    """A tenant's choice of encoder and trainer (e.g. a multilingual checkpoint for a catalog
    not in English). Base models are named by the operator in ML_BASE_MODELS; a tenant picks a
    name, never a server path."""

    base_model = models.CharField(max_length=64, default="minilm")
    trainer = models.CharField(max_length=32, default="finetune")
    epochs = models.PositiveSmallIntegerField(default=10)
    auto_promote = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="text_model_config_unique")]

    def __str__(self) -> str:
        return f"{self.base_model}/{self.trainer}"


class Elasticity(TenantOwned):
    """A product's price elasticity from a demand-model version, with its uncertainty and the
    expected daily units at its typical price. Rows are kept for the last few promoted versions
    (ml.services.ELASTICITY_VERSIONS_KEPT); older ones live on in the version's artifact."""

    product = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    elasticity = models.FloatField()  # at the typical price
    elasticity_se = models.FloatField()
    raw_elasticity = models.FloatField(null=True, blank=True)  # before shrinkage; None: no data
    # d² log units / d(log price)²: the curve bends (0 = constant elasticity).
    curvature = models.FloatField(default=0.0)
    curvature_se = models.FloatField(null=True, blank=True)  # None: unknown (older versions)
    typical_price = models.DecimalField(max_digits=14, decimal_places=4)
    units_per_day = models.FloatField()  # expected a calendar day at the typical price
    days_observed = models.IntegerField(default=0)
    # The prices the product was seen at (its evidence; None: unknown, e.g. older versions).
    price_low = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    price_high = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    # The product's own estimate had the wrong sign: this is its category's (or the tenant's).
    from_prior = models.BooleanField(default=False)
    # How much faster demand falls above the lowest competitor's price, as estimated, and its
    # s.e. (None: the product's prices do not show it).
    competitor_slope = models.FloatField(default=0.0)
    competitor_slope_se = models.FloatField(null=True, blank=True)
    # the correlation of the errors of the elasticity and of competitor_slope (None: none known,
    # older versions; the two judged as independent errors; DemandFit.slope_hinge_corr)
    slope_hinge_corr = models.FloatField(null=True, blank=True)
    # Its positions against the lowest competitor seen, log(price / competitor) (None: unknown).
    gap_low = models.FloatField(null=True, blank=True)
    gap_high = models.FloatField(null=True, blank=True)
    # Its recent days' expected units with their promotions over the same days' at the shelf
    # price (units_per_day is a shelf day's; None: unknown, older versions, read as 1): what
    # counts units over every day (stock sold through, a published change's realised lift)
    # reads units_per_day times this.
    promo_lift = models.FloatField(null=True, blank=True)
    # Its position when the fit read units_per_day, log(today's price then / the competitor's
    # then) (None: unknown, no competitor or older versions): a reprice whose price or
    # competitor's price has moved since carries the level through the hinge to its own.
    gap_today = models.FloatField(null=True, blank=True)
    # The competitor's price that position was against (the median of its week's lowest
    # readings), and the days of that week whose lowest price was read that day (None:
    # unknown, older versions: a reprice reads that week again on the fit's reading day): a
    # reprice counts the competitor's move since only beyond its readings' jitter.
    competitor_then = models.FloatField(null=True, blank=True)
    competitor_then_readings = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            # one row per product and version: a rollback finds the older estimates in place
            models.UniqueConstraint(
                fields=["tenant", "model_version", "product"], name="elasticity_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.elasticity:.2f} ± {self.elasticity_se:.2f}"
