"""Shop connections and what the connectors remember about each shop.

- `Connection`: one shop of a tenant (platform, address, encrypted credentials, status, last
  sync times and the cursors a sync resumes from). Credentials are one Fernet token
  (`crypto.py`); they are never serialised, shown or logged, and disconnecting deletes them.
- `SyncRun`: one pull of products and/or orders (a job row: progress, counts, the reason it
  stopped).
- `ShopVariant`: a shop variant by SKU, the ids a push needs and the last price we wrote (so
  the webhook that echoes our own write is recognised).
- `ShopOrderLine`: one order line as last seen, so daily sales can be recomputed when an order
  changes (a refund) without counting anything twice.
- `WebhookEvent`: a received webhook, unique per event id (duplicates are dropped).
"""

from __future__ import annotations

from django.db import models

from tenants.jobs import Job, TimeLimit
from tenants.models import TenantOwned

from . import crypto


class Connection(TenantOwned):
    class Platform(models.TextChoices):
        SHOPIFY = "shopify", "Shopify"
        WOOCOMMERCE = "woocommerce", "WooCommerce"

    class Status(models.TextChoices):
        CONNECTED = "connected", "Connected"
        FAILING = "failing", "Failing"
        DISCONNECTED = "disconnected", "Disconnected"

    platform = models.CharField(max_length=16, choices=Platform.choices)
    name = models.CharField(max_length=200, blank=True, default="")  # the shop's own name
    shop_url = models.URLField(max_length=300)  # https://example.myshopify.com
    # Where the API is reached; empty: the shop's address (tests point it at a local server).
    api_base_url = models.URLField(max_length=300, blank=True, default="")
    credentials = models.TextField(blank=True, default="", editable=False)  # a Fernet token
    currency = models.CharField(max_length=3, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CONNECTED)
    status_reason = models.CharField(max_length=500, blank=True, default="")
    publishes = models.BooleanField(default=True)  # the shop the platform's publisher pushes to
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_products_sync_at = models.DateTimeField(null=True, blank=True)
    last_orders_sync_at = models.DateTimeField(null=True, blank=True)
    last_webhook_at = models.DateTimeField(null=True, blank=True)
    # Where the next sync resumes: {"products_cursor": ..., "orders_since": ISO time}
    sync_state = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "platform", "shop_url"], name="connection_unique_shop"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.shop_url}"

    def __repr__(self) -> str:  # never the credentials
        return f"<Connection {self.pk} {self.platform} {self.shop_url} {self.status}>"

    @property
    def base_url(self) -> str:
        return (self.api_base_url or self.shop_url).rstrip("/")

    @property
    def channel(self) -> str:
        """The sales channel this shop's orders are imported under (one per connection)."""
        return f"{self.platform}-{self.pk}"

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials)

    def secrets(self) -> dict[str, str]:
        return crypto.decrypt(self.credentials)

    def set_secrets(self, secrets: dict[str, str]) -> None:
        self.credentials = crypto.encrypt(secrets) if secrets else ""


class SyncRun(Job):
    """One pull from a shop (products, orders, or both)."""

    time_limit = TimeLimit(hard_s=3 * 3600, soft_s=3 * 3600 - 60)

    class Kind(models.TextChoices):
        ALL = "all", "Products and orders"
        PRODUCTS = "products", "Products"
        ORDERS = "orders", "Orders"

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, db_constraint=False, related_name="runs"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ALL)
    full = models.BooleanField(default=False)
    trigger = models.CharField(max_length=16, default="manual")  # manual | api | command
    phase = models.CharField(max_length=32, blank=True, default="")
    products = models.IntegerField(default=0)  # variant rows imported
    orders = models.IntegerField(default=0)
    sales_rows = models.IntegerField(default=0)  # (sku, day) rows written
    skipped = models.IntegerField(default=0)
    report = models.JSONField(default=list, blank=True)  # what was skipped and why (first 200)
    calls = models.IntegerField(default=0)
    throttled = models.IntegerField(default=0)
    created_by = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="syncrun_tenant_created_idx")
        ]

    def __str__(self) -> str:
        return f"sync {self.pk} ({self.status})"


class ShopVariant(TenantOwned):
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    sku = models.CharField(max_length=64)
    product_ref = models.CharField(max_length=100)  # gid://shopify/Product/1
    variant_ref = models.CharField(max_length=100)  # gid://shopify/ProductVariant/1
    price = models.DecimalField(max_digits=14, decimal_places=4, null=True)  # as last seen
    pushed_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    pushed_at = models.DateTimeField(null=True, blank=True)
    shop_updated_at = models.DateTimeField(null=True, blank=True)  # newest product event seen

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "connection", "sku"], name="shopvariant_unique_sku"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "connection", "variant_ref"], name="shopvariant_ref_idx")
        ]


class ShopOrderLine(TenantOwned):
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    order_ref = models.CharField(max_length=100)
    line_ref = models.CharField(max_length=100)
    sku = models.CharField(max_length=64, blank=True, default="")
    date = models.DateField()  # the order's day in the tenant's time zone
    quantity = models.IntegerField()  # ordered
    refunded = models.IntegerField(default=0)
    unit_price = models.DecimalField(max_digits=14, decimal_places=4)  # paid, after discounts
    currency = models.CharField(max_length=3)
    cancelled = models.BooleanField(default=False)
    order_updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "connection", "line_ref"], name="shoporderline_unique_line"
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "connection", "sku", "date"], name="shoporderline_day_idx"
            )
        ]


class WebhookEvent(TenantOwned):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    event_id = models.CharField(max_length=100)
    topic = models.CharField(max_length=64)
    triggered_at = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    message = models.CharField(max_length=500, blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "connection", "event_id"], name="webhookevent_unique_event"
            ),
        ]
