"""A/B price tests: an experiment and its SKUs, each in the treatment arm (the recommended
price) or the control arm (today's price)."""

from __future__ import annotations

from django.db import models

from tenants.models import TenantOwned


class Experiment(TenantOwned):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        STOPPED = "stopped", "Stopped"

    class Metric(models.TextChoices):
        PROFIT = "profit", "Profit per SKU-day"
        REVENUE = "revenue", "Revenue per SKU-day"
        UNITS = "units", "Units per SKU-day"

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    metric = models.CharField(max_length=16, choices=Metric.choices, default=Metric.PROFIT)
    share = models.FloatField(default=0.5)  # of the SKUs in the treatment arm
    seed = models.IntegerField(default=0)
    start = models.DateField()
    days = models.PositiveIntegerField()
    # recorded: run outside the platform (a past start); its prices are not published
    recorded = models.BooleanField(default=False)
    # False: the arms were given (a recorded test's own split), not randomised here; the
    # comparison then rests on the merchant's split being as good as random (labelled so)
    randomised = models.BooleanField(default=True)
    # the days_observed of every look whose report was read (the stopping rule needs them)
    looks = models.JSONField(default=list, blank=True)
    result = models.JSONField(default=dict, blank=True)  # the latest report
    excluded = models.JSONField(default=list, blank=True)  # SKUs left out, with the reason
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "status"], name="experiment_status_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class ExperimentUnit(TenantOwned):
    class Arm(models.TextChoices):
        TREATMENT = "treatment", "Treatment"
        CONTROL = "control", "Control"

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, db_constraint=False, related_name="units"
    )
    product = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    arm = models.CharField(max_length=16, choices=Arm.choices)
    stratum = models.CharField(max_length=200, blank=True, default="")
    price_before = models.DecimalField(max_digits=14, decimal_places=4)
    price_test = models.DecimalField(max_digits=14, decimal_places=4)
    pre_metric = models.FloatField(default=0.0)  # metric per day over the pre-period
    recommendation = models.ForeignKey(
        "pricing.Recommendation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "experiment", "product"], name="experiment_unit_unique"
            )
        ]
        indexes = [models.Index(fields=["tenant", "product"], name="experiment_unit_sku_idx")]
