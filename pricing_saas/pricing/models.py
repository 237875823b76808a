"""The pricing workflow's tables: reprice jobs and their recommendations, rule sets and their
versions, the approval policy (one per tenant), reprice schedules, publications and the price
changes they send (the price history)."""

from __future__ import annotations

from typing import Self

from django.db import models

from tenants import parts as job_parts
from tenants.jobs import LOST_MESSAGE, CancellableJob, Job, JobStates, JobStatus, TimeLimit
from tenants.models import TenantOwned


class RepriceJob(CancellableJob):
    """One reprice of a tenant's catalog. Its states are JobStatus (`RepriceJob.Status`)."""

    time_limit = TimeLimit(hard_s=3600, soft_s=3500)  # the pricing.reprice task's

    trigger = models.CharField(max_length=16, default="manual")  # manual | schedule | api
    started_by = models.CharField(max_length=200, blank=True, default="")
    progress = models.FloatField(default=0.0)
    phase = models.CharField(max_length=64, blank=True, default="")
    auto_approved = models.IntegerField(default=0)
    skus = models.IntegerField(default=0)
    changed = models.IntegerField(default=0)
    conflicts = models.IntegerField(default=0)
    expected_profit_now = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    expected_profit_new = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    demand_version = models.ForeignKey(
        "ml.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    log = models.JSONField(default=list, blank=True)
    # A reprice in parts (pricing.partitioned): its plan, the parts done, its heartbeat.
    parts = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="reprice_tenant_created_idx")
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]),
                name="reprice_one_active_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return f"reprice {self.pk} ({self.status})"

    def reading_day(self, demand=None):
        """The tenant's local day this job reads the competitor's last week up to (the `as_of`
        of ml.selectors.demand_curve): the day it started, the same day for every part of a
        job in parts, a job that runs past midnight included; or the day its demand model
        (`demand`) read that week up to where that is later (a model the job trained after
        midnight: never a week older than the model's). Readings observed later on that day
        count in the parts that run after them."""
        from zoneinfo import ZoneInfo

        from django.utils import timezone

        from ml.selectors import reading_day_of_version
        from tenants.context import require_current_tenant

        zone = ZoneInfo(require_current_tenant().timezone)
        day = timezone.localdate(self.started_at or self.created_at, timezone=zone)
        read = reading_day_of_version(demand)
        return max(day, read) if read is not None else day

    def is_stale(self, now=None) -> bool:
        """A reprice in parts is alive while its parts beat, however long the whole job takes."""
        if self.status == self.states.running:
            stale = job_parts.is_stale(self.parts, self.time_limit.stale_after, now)
            if stale is not None:
                return stale
        return super().is_stale(now)

    def mark_lost(self, message: str = LOST_MESSAGE) -> Self:
        """The worker died (or the run lost its database): the demand run this job was
        training in that worker's process (named in demand_version while it trains) died with
        it."""
        version = self.demand_version
        if version is not None and version.status in type(version).states.active:
            version.mark_lost(message)
        if self.parts and self.parts.get("folder"):  # a job in parts: its staged rows go
            job_parts.clean(self.parts)
        return super().mark_lost(message)


class Recommendation(TenantOwned):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        PUBLISHED = "published", "Published"
        SUPERSEDED = "superseded", "Superseded"
        NO_CHANGE = "no_change", "No change"
        CONFLICT = "conflict", "Contradictory rules"

    job = models.ForeignKey(
        RepriceJob, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
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
    competitor_name = models.CharField(max_length=200, blank=True, default="")
    # How far the price buyers meet at the competitor may be off competitor_price (log-price
    # s.d.: the level's own error and the day's jitter), as the decision judged it; the change's
    # forecast interval holds that doubt (publishing.store_forecasts). Null: no competitor.
    competitor_sd = models.FloatField(null=True, blank=True)
    # The expected units are a day's at the shelf price; every day's, the product's recent
    # promotions going on as they went, are those times this (its demand model's
    # `Elasticity.promo_lift`; 1: no promotions or none read; null: no estimate of the
    # product's volume).
    promo_lift = models.FloatField(null=True, blank=True)
    # Where the demand model read the product's level at another position against the
    # competitor than the job's day's (ml.selectors.demand_curve): the factor the expected
    # units were carried by through its collapse above the competitor's price, and both
    # positions, log(price / competitor's price) (the model's; the job's, against the median of
    # the week's lowest readings). Null: not carried.
    level_carried = models.FloatField(null=True, blank=True)
    position_then = models.FloatField(null=True, blank=True)
    position_now = models.FloatField(null=True, blank=True)
    reference_price = models.DecimalField(max_digits=14, decimal_places=4, null=True)
    binding_rules = models.JSONField(default=list, blank=True)
    rule_sets = models.JSONField(default=list, blank=True)  # names of the rule sets applied
    explanation = models.TextField(blank=True, default="")
    # Stored for filtering and sorting: relative change and expected profit impact.
    change = models.FloatField(default=0.0)
    profit_delta = models.FloatField(null=True)
    # The chance the change loses money (more than 0.5 % of the day's profit, against today's
    # price or the smallest move a rule forces), as the run's risk budget judged it: 0 where
    # today's price is kept or a rule set the price (a restore, a volume floor), null without
    # an estimate. A later run counts it while no sales have verified the change
    # (ml.science.optimizer.Rules.unverified_chance).
    loss_chance = models.FloatField(null=True, blank=True)
    confident = models.BooleanField(default=False)
    # The hard bounds of the rules in force: an edited price must stay inside them.
    price_floor = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    price_ceiling = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    flag = models.CharField(max_length=200, blank=True, default="")  # e.g. the price-war guard
    approved_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    auto_approved = models.BooleanField(default=False)
    decided_by = models.CharField(max_length=200, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status"], name="recommendation_status_idx"),
            models.Index(fields=["tenant", "job"], name="recommendation_job_idx"),
            models.Index(fields=["tenant", "product"], name="recommendation_product_idx"),
        ]

    @property
    def final_price(self):
        return self.approved_price if self.approved_price is not None else self.recommended_price

    def __str__(self) -> str:
        return f"{self.product_id}: {self.current_price} -> {self.recommended_price}"


class RuleSet(TenantOwned):
    """Pricing rules for a scope of products. Fields left empty inherit from rule sets of lower
    precedence (higher `priority` first, then the more specific scope), then the defaults."""

    class Scope(models.TextChoices):
        ALL = "all", "All products"
        CATEGORY = "category", "Categories"
        BRAND = "brand", "Brands"
        SKUS = "skus", "SKU list"

    class Objective(models.TextChoices):
        PROFIT = "profit", "Profit"
        REVENUE = "revenue", "Revenue"

    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.ALL)
    scope_values = models.JSONField(default=list, blank=True)  # categories, brands or SKUs
    priority = models.IntegerField(default=0)
    active = models.BooleanField(default=True)
    objective = models.CharField(max_length=16, choices=Objective.choices, blank=True, default="")
    min_margin = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    max_step = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    min_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    max_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    map_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    max_above_competitor = models.DecimalField(
        max_digits=6, decimal_places=4, null=True, blank=True
    )
    ending = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    # Volume and clearance: keep at least this share of today's expected units or revenue, or
    # sell today's stock within this many days (a floor on expected daily units).
    min_units_share = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    min_revenue_share = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    clearance_days = models.PositiveIntegerField(null=True, blank=True)
    # When a change is worth making: its expected gain per day over keeping today's price, in
    # money and as a share of today's figure; how far past the prices seen a price may go; and
    # how much a price may move in total within a window of days (stops a nightly ratchet).
    min_gain_abs = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    min_gain_rel = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    evidence_margin = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    window_change = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    window_days = models.PositiveIntegerField(null=True, blank=True)
    version = models.IntegerField(default=1)
    updated_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    RULE_FIELDS = (
        "objective", "min_margin", "max_step", "min_price", "max_price", "map_price",
        "max_above_competitor", "ending", "min_units_share", "min_revenue_share", "clearance_days",
        "min_gain_abs", "min_gain_rel", "evidence_margin", "window_change", "window_days",
    )  # fmt: skip
    SPECIFICITY = {"all": 0, "category": 1, "brand": 2, "skus": 3}

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="ruleset_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class RuleSetVersion(TenantOwned):
    """The state of a rule set after each change (who, when, what)."""

    rule_set = models.ForeignKey(
        RuleSet, on_delete=models.CASCADE, db_constraint=False, related_name="versions"
    )
    version = models.IntegerField()
    data = models.JSONField()
    changed_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "rule_set", "version"], name="rulesetversion_unique"
            )
        ]


class PricingPolicy(TenantOwned):
    """The tenant's approval policy, kill switch, price-war guard and publisher (one row)."""

    auto_approve = models.BooleanField(default=True)
    auto_approve_max_change = models.DecimalField(max_digits=6, decimal_places=4, default="0.05")
    # "Confident": the elasticity's standard error is at most this share of its size.
    auto_approve_max_relative_se = models.DecimalField(
        max_digits=6, decimal_places=4, default="0.50"
    )
    auto_publish = models.BooleanField(default=False)
    publisher = models.CharField(max_length=32, default="csv")
    kill_switch = models.BooleanField(default=False)
    kill_switch_changed_by = models.CharField(max_length=200, blank=True, default="")
    kill_switch_changed_at = models.DateTimeField(null=True, blank=True)
    price_war_window_days = models.IntegerField(default=14)
    price_war_max_cuts = models.IntegerField(default=3)
    # A product without a cost under the profit objective: maximise revenue instead, or keep
    # today's price (moved only to restore a hard rule). The recommendation says which.
    no_cost_fallback = models.CharField(
        max_length=16,
        choices=[("revenue", "maximise revenue"), ("keep", "keep today's price")],
        default="revenue",
    )
    # The risk a run may take (ml.science.optimizer.Rules, docs/pricing-decisions.md step 5):
    # the expected share of the products a run changes that lose money (more than 0.5 % of the
    # day's profit), and the highest chance any one change may carry of doing so.
    loss_budget = models.DecimalField(max_digits=6, decimal_places=4, default="0.0100")
    max_loss_chance = models.DecimalField(max_digits=6, decimal_places=4, default="0.1000")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="pricingpolicy_one")]


class RepriceSchedule(TenantOwned):
    """A cron schedule for reprice jobs, mirrored into a django-celery-beat PeriodicTask."""

    name = models.CharField(max_length=100, default="Reprice")
    cron = models.CharField(max_length=120)  # minute hour day-of-month month day-of-week
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    # One task per schedule: unique with the tenant (a unique key of a tenant-owned table holds
    # tenant_id, docs/citus.md); the task's name holds the tenant and schedule ids.
    periodic_task = models.ForeignKey(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "periodic_task"], name="repriceschedule_unique_task"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.cron} ({self.timezone})"


class Publication(Job):
    """One push of price changes through a publisher (CSV / XLSX file, later shop connectors).
    A publication left running by a dead worker may be pushed again (setting a price twice is
    harmless), so its task claims it with reclaim_stale."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partly failed"
        FAILED = "failed", "Failed"

    states = JobStates(
        queued=Status.QUEUED,
        running=Status.RUNNING,
        succeeded=Status.SUCCEEDED,
        failed=Status.FAILED,
    )
    time_limit = TimeLimit(hard_s=900, soft_s=870)  # the pricing.publish task's

    publisher = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    kind = models.CharField(max_length=16, default="approval")  # approval | rollback
    file = models.FileField(upload_to="publications/%Y/%m/", blank=True)
    changes = models.IntegerField(default=0)
    published = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    attempts = models.IntegerField(default=0)
    created_by = models.CharField(max_length=200, blank=True, default="")
    # a retry carries the failed changes of the publication it retried (they move to it)
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="retries",
    )

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="publication_created_idx")]

    def __str__(self) -> str:
        return f"publication {self.pk} ({self.status})"

    def on_claim(self) -> list[str]:
        self.attempts += 1
        return ["attempts"]


class PriceChange(TenantOwned):
    """A price change of one SKU: from an approved recommendation, a rollback, or made in the
    shop by a person (seen by a sync or a webhook: recorded, already in force). The published
    ones are the SKU's price history.

    Status: pending -> (sent: handed to a shop, its confirmation not yet back) -> published
    (for a shop: the shop answered with the new price) or failed (the reason)."""

    class Kind(models.TextChoices):
        RECOMMENDATION = "recommendation", "Recommendation"
        ROLLBACK = "rollback", "Rollback"
        EXTERNAL = "external", "Changed in the shop"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent, awaiting the shop"
        PUBLISHED = "published", "Published"
        FAILED = "failed", "Failed"

    product = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.RECOMMENDATION)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    old_price = models.DecimalField(max_digits=14, decimal_places=4)
    new_price = models.DecimalField(max_digits=14, decimal_places=4)
    recommendation = models.ForeignKey(
        Recommendation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    job = models.ForeignKey(
        RepriceJob,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    publication = models.ForeignKey(
        Publication,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    reverts = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    reverted = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)  # handed to a shop's API
    # The forecast when it went out, from the demand model of its job (the one curve): expected
    # units per day at the new price and at the old one (the counterfactual), the new price's
    # 95 % interval (the curve's doubt: slope, bend, hinge, where the competitor's price is;
    # 0 to infinity on a slope of unknown error), and the unit cost then (profit = (price -
    # cost) units; null without a cost). What the change did is measured against these
    # (pricing_saas.pricing.outcomes).
    forecast_units_new = models.FloatField(null=True, blank=True)
    forecast_units_old = models.FloatField(null=True, blank=True)
    forecast_units_new_low = models.FloatField(null=True, blank=True)
    forecast_units_new_high = models.FloatField(null=True, blank=True)
    forecast_unit_cost = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    forecast_cost_derived = models.BooleanField(default=False, db_default=False)
    forecast_version = models.ForeignKey(
        "ml.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "product", "-created_at"], name="pricechange_sku_idx"),
            models.Index(fields=["tenant", "status"], name="pricechange_status_idx"),
            models.Index(fields=["tenant", "job"], name="pricechange_job_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.old_price} -> {self.new_price} ({self.status})"


class PriceLock(TenantOwned):
    """A product whose price no reprice job may change until `until` (inclusive), e.g. the
    SKUs of a running A/B price test: the test's prices hold for its duration."""

    product = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    until = models.DateField()
    reason = models.CharField(max_length=200)
    # the one change that may still go out (a price test's treatment price); any other change
    # of the product, a rollback included, fails at publication while the lock holds
    allow_recommendation = models.ForeignKey(
        "pricing.Recommendation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "product", "until"], name="pricelock_idx")]

    def __str__(self) -> str:
        return f"{self.product_id} locked until {self.until}: {self.reason}"
