"""A merchant's data: products, daily sales, competitor offers, and the import jobs that load them.

Sales and competitor offers are the high-volume tables (millions of rows per tenant). Their
product link has no database-level foreign-key constraint: a per-row RI trigger would dominate bulk
import time, and the import service only writes rows whose product it has just joined. Deleting
a product still cascades through the ORM.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.jobs import Job, JobStates, TimeLimit
from tenants.models import Tenant, TenantOwned


class Product(TenantOwned):
    sku = models.CharField(max_length=64)
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True, default="")
    category = models.CharField(max_length=200, blank=True, default="")
    brand = models.CharField(max_length=200, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    price = models.DecimalField(max_digits=14, decimal_places=4)
    currency = models.CharField(max_length=3)
    stock = models.IntegerField(null=True, blank=True)
    min_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    max_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    map_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "sku"], name="product_unique_sku"),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="product_price_positive"),
        ]
        indexes = [
            models.Index(fields=["tenant", "category"], name="product_tenant_category_idx"),
            models.Index(fields=["tenant", "active"], name="product_tenant_active_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.title[:40]}"


class SalesRecord(TenantOwned):
    """Units sold of one product on one day (optionally per channel) at the unit price paid.

    The natural key is the primary key: one index instead of a surrogate id plus a unique
    constraint makes bulk imports about twice as fast (benchmarks/RESULTS.md), and it serves
    every read by tenant, SKU and date range.
    """

    pk = models.CompositePrimaryKey("tenant", "product", "date", "channel")
    # No database FK constraint on tenant either: its deferred per-row check doubled the commit
    # of a 1M-row import. Row-level security already forces tenant_id to the current tenant on
    # every write, and delete_tenant() removes a tenant's rows.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+"
    )
    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+"
    )
    date = models.DateField()
    channel = models.CharField(max_length=64, blank=True, default="")
    units = models.IntegerField()
    price = models.DecimalField(max_digits=14, decimal_places=4)
    revenue = models.DecimalField(max_digits=16, decimal_places=4)
    promo = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.product_id} {self.date} {self.units}"


class CompetitorOffer(TenantOwned):
    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+"
    )
    competitor = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=14, decimal_places=4)
    observed_at = models.DateTimeField()
    in_stock = models.BooleanField(default=True)
    url = models.URLField(max_length=1000, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "product", "competitor", "observed_at"],
                name="offer_unique_observation",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "observed_at"], name="offer_tenant_observed_idx")]

    def __str__(self) -> str:
        return f"{self.competitor} {self.product_id} {self.price}"


class CompetitorName(TenantOwned):
    """How the tenant's competitor readings spell each competitor: spellings that differ only
    in case and white space are one competitor (`key`, the name with its runs of white space
    read as one space, trimmed, then in lower case as the database's lower() reads it
    (`spellings.key_sql`): text, since lower case may be longer), stored as `name`, the
    spelling the tenant's readings had most of when an import first met it, else that file's
    most frequent (importer.upsert.one_spelling). One row per competitor: an import looks its
    names up here, not in the readings (millions of rows)."""

    key = models.TextField()
    name = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="competitor_name_unique_key")
        ]

    def __str__(self) -> str:
        return self.name


def import_upload_to(instance: ImportJob, filename: str) -> str:
    """imports/tenants/<tenant id>/<year>/<month>/<name>: each tenant's uploads under a prefix
    of its own that no year can match (the oldest uploads are under imports/<year>/<month>/,
    later ones under imports/<tenant id>/<year>/<month>/), so that the sweep of files no row
    names reads one tenant's files against that tenant's rows
    (catalog.services.sweep_orphan_uploads)."""
    if instance.tenant_id is None:
        raise ValueError("an upload belongs to a tenant: the import job has none")
    return f"imports/tenants/{instance.tenant_id}/{timezone.now():%Y/%m}/{filename}"


class ImportJob(Job):
    """One import of a file (portal or API upload, or the `import_csv` command), with its
    report."""

    class Kind(models.TextChoices):
        PRODUCTS = "products", "Products"
        SALES = "sales", "Sales"
        COMPETITOR_PRICES = "competitor_prices", "Competitor prices"

    class Status(models.TextChoices):
        NEEDS_MAPPING = "needs_mapping", "Needs column mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    states = JobStates(
        queued=Status.QUEUED,
        running=Status.RUNNING,
        succeeded=Status.SUCCEEDED,
        failed=Status.FAILED,
        waiting=(Status.NEEDS_MAPPING,),
    )
    time_limit = TimeLimit(hard_s=3 * 3600, soft_s=3 * 3600 - 60)  # the catalog.run_import task's

    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    source = models.CharField(max_length=16, default="upload")  # upload | api | command
    file = models.FileField(upload_to=import_upload_to, blank=True)
    original_name = models.CharField(max_length=255, blank=True, default="")
    options = models.JSONField(default=dict, blank=True)
    headers = models.JSONField(default=list, blank=True)
    preview = models.JSONField(default=list, blank=True)
    column_map = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)
    phase = models.CharField(max_length=32, blank=True, default="")
    rows = models.IntegerField(default=0)
    created = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    unchanged = models.IntegerField(default=0)
    error_count = models.IntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="import_tenant_created_idx")]

    def __str__(self) -> str:
        return f"{self.kind} import {self.pk} ({self.status})"

    def on_claim(self) -> list[str]:
        self.phase = "reading"
        return ["phase"]

    @property
    def skipped(self) -> int:
        """Invalid rows a `skip_invalid` import left out (the rows neither written nor found
        unchanged)."""
        if self.status != self.Status.SUCCEEDED:
            return 0
        return self.rows - self.created - self.updated - self.unchanged
