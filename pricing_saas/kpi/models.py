"""Daily KPI facts: one row per product and day with sales, derived from the sales, the
product's cost and the competitor prices by `services.refresh_kpis` (never written otherwise).

Category and tenant figures are sums of these rows grouped at read time (`selectors`): a
category rollup table would have to follow every product's category change, and the grouped
read is fast enough (benchmarks/RESULTS.md, "KPI refresh").
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from pricing_saas.integrations import crypto
from tenants.models import Tenant, TenantOwned


class DailyKpi(TenantOwned):
    """Units, revenue and gross profit of one product on one day (all channels together), and
    the lowest competitor price in force that day.

    The natural key is the primary key, as for SalesRecord: one index instead of a surrogate id
    plus a unique constraint, and no database FK (a refresh writes up to millions of rows; row
    level security still forces tenant_id, delete_tenant() and the ORM's cascade from Product
    remove the rows).
    """

    pk = models.CompositePrimaryKey("tenant", "product", "date")
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+"
    )
    product = models.ForeignKey(
        "catalog.Product",
        on_delete=models.CASCADE,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    date = models.DateField()  # the tenant's local day, as SalesRecord.date
    units = models.IntegerField()
    revenue = models.DecimalField(max_digits=18, decimal_places=4)
    # The product's cost when the row was computed (profit used it): a changed cost is found by
    # comparing it with the product's (services.products_with_changed_cost).
    unit_cost = models.DecimalField(max_digits=14, decimal_places=4, null=True)
    cost_known = models.BooleanField()
    # The cost is an estimate (the product's attributes["cost_source"] starts with "derived"),
    # not the merchant's own figure: profit and margin built on it are labelled as such.
    cost_derived = models.BooleanField()
    profit = models.DecimalField(max_digits=18, decimal_places=4, null=True)  # null: no cost
    competitor_price = models.DecimalField(max_digits=14, decimal_places=4, null=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "date"], name="dailykpi_tenant_date_idx")]

    def __str__(self) -> str:
        return f"{self.product_id} {self.date}: {self.units} units, {self.revenue}"


class AlertPolicy(TenantOwned):
    """When the KPI loop raises an alert and what it does then (one per tenant; the defaults
    apply until an admin saves one). Checked after each KPI refresh (`alerts.evaluate`)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")
    enabled = models.BooleanField(default=True)
    window_days = models.PositiveSmallIntegerField(
        default=28, help_text="Days after each published change that are measured (7-365)."
    )
    min_changes = models.PositiveIntegerField(
        default=20, help_text="Measured changes needed before accuracy or profit is judged."
    )
    max_wape = models.DecimalField(
        max_digits=5,
        decimal_places=3,
        default=0.5,
        help_text="Forecast error (WAPE of units per day) above which an alert is raised.",
    )
    min_coverage = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=0.8,
        help_text="Share of changes inside their 95 % forecast interval below which an alert "
        "is raised (0.95 is what honest intervals give).",
    )
    max_profit_shortfall = models.DecimalField(
        max_digits=5,
        decimal_places=3,
        default=0.5,
        help_text="Alert when even the upper end of the realised profit lift's 95 % interval "
        "is below the forecast lift by more than this share of it.",
    )
    resolve_margin = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=0.1,
        help_text="An open alert closes only once its figure is back past the limit by this "
        "share of the limit (0.1: an alert above a 50 % error limit closes at 45 %), so a figure "
        "hovering at the limit does not open and close it check after check.",
    )
    cooldown_hours = models.PositiveIntegerField(
        default=24,
        help_text="After an alert of a kind closes, no alert of that kind opens again for this "
        "many hours (0-720).",
    )
    retrain = models.BooleanField(
        default=True,
        help_text="On a new alert, retrain the demand model; the new version is promoted only "
        "if it beats the version in force on a backtest.",
    )
    email_admins = models.BooleanField(default=True)
    webhook_url = models.URLField(blank=True, default="", max_length=500)
    # Competitor undercuts (undercuts.evaluate, after each import): an alert per SKU and
    # competitor whose in-stock offer in force is below our price by more than this share.
    # Null: no undercut alerts.
    undercut_threshold = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        default=0.05,
        help_text="Alert when a competitor's in-stock offer is below our price by more than "
        "this share (0.05 is 5 %); empty: no undercut alerts.",
    )
    # The HMAC-SHA256 key of the webhook's signature, encrypted at rest as the shops'
    # credentials are (integrations.crypto: a Fernet token under FIELD_ENCRYPTION_KEYS; read
    # and written through signing_key/set_signing_key). Generated when a URL is first set and
    # on request, shown once to the admin who made it, never again.
    webhook_secret = models.TextField(blank=True, default="", editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"alert policy of {self.tenant_id}"

    def __repr__(self) -> str:  # never the key
        return f"<AlertPolicy {self.pk} of {self.tenant_id}>"

    @property
    def has_signing_key(self) -> bool:
        return bool(self.webhook_secret)

    def signing_key(self) -> str:
        return crypto.decrypt(self.webhook_secret).get("key", "") if self.webhook_secret else ""

    def set_signing_key(self, key: str) -> None:
        self.webhook_secret = crypto.encrypt({"key": key}) if key else ""


class AlertCheckDue(TenantOwned):
    """The tenant's alert check is scheduled (`alerts.request_evaluation`): it runs once no KPI
    refresh has come for `due_at`'s quiet period, then the row goes. One per tenant, so that a
    shop sync or an API upload in many batches is checked once, on all of its sales."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")
    due_at = models.DateTimeField()
    scheduled_at = models.DateTimeField()  # when the task now waiting was sent

    def __str__(self) -> str:
        return f"alert check of {self.tenant_id} due {self.due_at}"


class Alert(TenantOwned):
    """A condition of the KPI loop that needs a person: raised once when it starts (notified
    then), updated while it lasts, resolved when a later check finds it cleared."""

    class Kind(models.TextChoices):
        FORECAST_ERROR = "forecast_error", "Forecast error above the policy's limit"
        INTERVAL_COVERAGE = "interval_coverage", "Forecast intervals cover too few outcomes"
        PROFIT_SHORTFALL = "profit_shortfall", "Realised profit behind the forecast"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # What the alert is about (e.g. "demand v3"): one open alert per kind and subject.
    subject = models.CharField(max_length=100)
    message = models.TextField()
    figures = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    checked_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The retraining this alert started (the policy's `retrain`), if any.
    retraining = models.ForeignKey(
        "ml.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    emailed_at = models.DateTimeField(null=True, blank=True)
    webhook_status = models.CharField(max_length=16, blank=True, default="")  # "", sent, failed
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "subject"],
                condition=models.Q(status="open"),
                name="alert_one_open_per_subject",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} ({self.status})"


class UndercutAlert(TenantOwned):
    """A competitor whose in-stock offer in force is below our price by more than the policy's
    `undercut_threshold`: opened once per SKU and competitor (the partial unique constraint),
    updated while it lasts, resolved when an evaluation finds it cleared (undercuts.evaluate)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Cleared"

    product = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    competitor = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    our_price = models.DecimalField(max_digits=14, decimal_places=4)
    their_price = models.DecimalField(max_digits=14, decimal_places=4)
    # 1 - their / ours when last checked: 0.08 is "8 % below our price"
    gap = models.DecimalField(max_digits=6, decimal_places=4)
    threshold = models.DecimalField(max_digits=4, decimal_places=3)  # the policy's, when checked
    url = models.URLField(max_length=1000, blank=True, default="")
    observed_at = models.DateTimeField()  # the offer's observation
    opened_at = models.DateTimeField()
    checked_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True, default="")
    emailed_at = models.DateTimeField(null=True, blank=True)
    webhook_status = models.CharField(max_length=16, blank=True, default="")  # "", sent, failed
    webhook_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "product", "competitor"],
                condition=models.Q(status="open"),
                name="undercut_one_open_per_offer",
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "-opened_at"], name="undercut_status_idx"),
            models.Index(fields=["tenant", "product"], name="undercut_product_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.competitor} undercuts {self.product_id} by {self.gap} ({self.status})"
