"""Reprice jobs and the price recommendations they produce."""

from __future__ import annotations

from django.db import models

from tenants.models import TenantOwned


class RepriceJob(TenantOwned):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=16, default="manual")  # manual | schedule | api
    skus = models.IntegerField(default=0)
    changed = models.IntegerField(default=0)
    conflicts = models.IntegerField(default=0)
    expected_profit_now = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    expected_profit_new = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    demand_version = models.ForeignKey(
        "ml.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    log = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="reprice_tenant_created_idx")
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(status__in=["queued", "running"]),
                name="reprice_one_active_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return f"reprice {self.pk} ({self.status})"


class Recommendation(TenantOwned):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUPERSEDED = "superseded", "Superseded"
        NO_CHANGE = "no_change", "No change"
        CONFLICT = "conflict", "Contradictory rules"

    job = models.ForeignKey(RepriceJob, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    current_price = models.DecimalField(max_digits=14, decimal_places=4)
    recommended_price = models.DecimalField(max_digits=14, decimal_places=4, null=True)
    elasticity = models.FloatField(null=True)
    elasticity_low = models.FloatField(null=True)
    elasticity_high = models.FloatField(null=True)
    expected_units_now = models.FloatField(default=0)
    expected_units = models.FloatField(default=0)
    expected_revenue_now = models.FloatField(default=0)
    expected_revenue = models.FloatField(default=0)
    expected_profit_now = models.FloatField(null=True)
    expected_profit = models.FloatField(null=True)
    competitor_price = models.DecimalField(max_digits=14, decimal_places=4, null=True)
    reference_price = models.DecimalField(max_digits=14, decimal_places=4, null=True)
    binding_rules = models.JSONField(default=list, blank=True)
    explanation = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status"], name="recommendation_status_idx"),
            models.Index(fields=["tenant", "job"], name="recommendation_job_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.current_price} -> {self.recommended_price}"
