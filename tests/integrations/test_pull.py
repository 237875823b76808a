"""Pulling a (fake) Shopify shop: variants into the catalog, orders into daily sales."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pricing_saas.catalog.models import Product, SalesRecord
from pricing_saas.integrations.models import Connection, ShopVariant
from pricing_saas.integrations.shopify import pull
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db


def stock_shop(shop):
    shop.add_product(
        "Tea",
        [
            {
                "sku": "TEA",
                "price": "4.50",
                "compareAtPrice": "5.00",
                "unitCost": "2.10",
                "inventoryQuantity": 12,
            }
        ],
        vendor="Leaf & Co",
        productType="Drinks",
        description="Green tea",
    )
    shop.add_product(
        "Shirt",
        [
            {"sku": "SHIRT-S", "title": "S", "price": "20.00"},
            {"sku": "SHIRT-L", "title": "L", "price": "22.00"},
            {"sku": "", "price": "1.00"},
        ],
        vendor="Cotton",
        productType="Apparel",
    )


def test_products_arrive_with_their_fields(world_a, connect, sync, fake_shop):
    stock_shop(fake_shop)
    connection = connect(world_a)
    run = sync(world_a, connection, kind="products")
    assert run.status == "succeeded", run.message
    assert run.products == 3 and run.skipped == 1
    assert run.report[0]["reason"] == "the variant has no SKU"
    with tenant_context(world_a.tenant):
        tea = Product.objects.get(sku="TEA")
        assert (tea.title, tea.brand, tea.category, tea.description) == (
            "Tea",
            "Leaf & Co",
            "Drinks",
            "Green tea",
        )
        assert (tea.price, tea.cost, tea.stock) == (Decimal("4.5"), Decimal("2.1"), 12)
        assert tea.attributes["compare_at_price"] == "5.00"
        assert Product.objects.get(sku="SHIRT-L").title == "Shirt - L"
        assert Product.objects.get(sku="SHIRT-S").cost is None  # not granted: not cleared
        assert ShopVariant.objects.count() == 3
        assert Connection.objects.get().last_products_sync_at is not None


def test_a_product_sync_never_clears_a_cost_the_shop_does_not_give(
    world_a, connect, sync, fake_shop
):
    from pricing_saas.catalog.importer import import_rows

    stock_shop(fake_shop)
    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=[{"sku": "SHIRT-S", "title": "x", "price": 1, "cost": 7}])
    sync(world_a, connect(world_a), kind="products")
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="SHIRT-S").cost == Decimal(7)


def test_second_sync_reads_only_what_changed(world_a, connect, sync, fake_shop):
    stock_shop(fake_shop)
    connection = connect(world_a)
    sync(world_a, connection, kind="products")
    variant = fake_shop.variant("TEA")
    variant["price"], variant["updatedAt"] = "4.90", "2999-01-01T00:00:00Z"
    with tenant_context(world_a.tenant):
        connection.refresh_from_db()
    run = sync(world_a, connection, kind="products")
    assert run.products == 1
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="TEA").price == Decimal("4.9")


def test_orders_become_daily_sales_after_discounts_and_refunds(world_a, connect, sync, fake_shop):
    stock_shop(fake_shop)
    fake_shop.add_order(
        created="2025-03-01T10:00:00Z", lines=[("TEA", 2, "4.00"), ("SHIRT-S", 1, "18.00")]
    )
    fake_shop.add_order(
        created="2025-03-01T15:00:00Z", lines=[("TEA", 3, "4.50")], refunds=[[(0, 1)]]
    )
    fake_shop.add_order(created="2025-03-01T16:00:00Z", lines=[("GHOST", 1, "3.00")])
    fake_shop.add_order(created="2025-03-01T17:00:00Z", lines=[("TEA", 1, "4.00")], currency="EUR")
    connection = connect(world_a)
    run = sync(world_a, connection)
    assert run.status == "succeeded", run.message
    assert run.orders == 3 and run.sales_rows == 2
    reasons = " ".join(r["reason"] for r in run.report)
    assert "in EUR" in reasons and "not in the catalog" in reasons
    with tenant_context(world_a.tenant):
        tea = SalesRecord.objects.get(product__sku="TEA", date=dt.date(2025, 3, 1))
        # 2 at 4.00 and 3 - 1 refunded at 4.50: 4 units, 17.00
        assert (tea.units, tea.revenue, tea.channel) == (4, Decimal(17), connection.channel)
        assert tea.price == Decimal("4.25")
        # A full re-sync counts nothing twice.
        sync(world_a, connection, full=True)
        assert SalesRecord.objects.get(product__sku="TEA").units == 4
        assert SalesRecord.objects.count() == 2


def test_an_order_refunded_later_is_recounted_incrementally(world_a, connect, sync, fake_shop):
    stock_shop(fake_shop)
    order = fake_shop.add_order(created="2025-03-01T10:00:00Z", lines=[("TEA", 5, "4.00")])
    connection = connect(world_a)
    sync(world_a, connection)
    order["refunds"] = [
        {
            "refundLineItems": {
                "nodes": [{"quantity": 2, "lineItem": {"id": order["lineItems"][0]["id"]}}]
            }
        }
    ]
    order["updatedAt"] = "2025-03-02T09:00:00Z"
    with tenant_context(world_a.tenant):
        connection.refresh_from_db()
    run = sync(world_a, connection, kind="orders")
    assert run.orders == 1
    with tenant_context(world_a.tenant):
        assert SalesRecord.objects.get(product__sku="TEA").units == 3


def test_revoked_token_mid_sync_keeps_what_was_synced_and_resumes(
    world_a, connect, sync, fake_shop, monkeypatch
):
    monkeypatch.setattr(pull, "BATCH", 1)  # every page is imported as it arrives
    for i in range(600):
        fake_shop.add_product(f"P{i}", [{"sku": f"P{i:04d}", "price": "10.00"}])
    connection = connect(world_a)
    real = fake_shop.token
    fake_shop.revoke_after = sum(fake_shop.calls.values()) + 3  # the counts, two pages, refused
    run = sync(world_a, connection, kind="products")
    assert run.status == "failed" and "refused the access token" in run.message
    with tenant_context(world_a.tenant):
        assert Product.objects.count() == 480  # two pages of 240 kept
        connection.refresh_from_db()
        assert connection.status == "failing"
        assert connection.sync_state["products_cursor"]
    fake_shop.token = real
    before = fake_shop.calls["Variants"]
    run = sync(world_a, connection, kind="products")
    assert run.status == "succeeded" and run.products == 120
    assert fake_shop.calls["Variants"] - before == 1  # resumed from the cursor
    with tenant_context(world_a.tenant):
        assert Product.objects.count() == 600
        connection.refresh_from_db()
        assert connection.status == "connected"


def test_one_tenants_sync_writes_nothing_in_another(world_a, world_b, connect, sync, fake_shop):
    stock_shop(fake_shop)
    fake_shop.add_order(created="2025-03-01T10:00:00Z", lines=[("TEA", 2, "4.00")])
    sync(world_a, connect(world_a))
    with tenant_context(world_b.tenant):
        assert not Product.objects.exists() and not SalesRecord.objects.exists()
        assert not ShopVariant.objects.exists()


def test_credentials_no_key_can_read_fail_the_sync_with_the_reason(
    world_a, connect, sync, fake_shop, settings
):
    from cryptography.fernet import Fernet

    connection = connect(world_a)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key dropped
    run = sync(world_a, connection, kind="products")
    assert run.status == "failed" and "cannot be decrypted" in run.message
    with tenant_context(world_a.tenant):
        connection.refresh_from_db()
    assert connection.status == "failing" and "FIELD_ENCRYPTION_KEYS" in connection.status_reason


def test_an_order_larger_than_a_page_is_read_whole(world_a, connect, sync, fake_shop):
    stock_shop(fake_shop)
    lines = [("TEA", 1, "4.00")] * 130 + [("SHIRT-S", 2, "18.00")]
    order = fake_shop.add_order(
        created="2025-03-01T10:00:00Z",
        lines=lines,
        refunds=[[(0, 1)], [(1, 1)], [(130, 1)]],  # three refunds: more than the page holds
    )
    run = sync(world_a, connect(world_a))
    assert run.status == "succeeded"
    assert not [r for r in run.report if r["item"].startswith("order")], run.report
    assert fake_shop.calls["OrderRest"] == 2  # lines 26-125, then 126-131
    with tenant_context(world_a.tenant):
        tea = SalesRecord.objects.get(product__sku="TEA")
        shirt = SalesRecord.objects.get(product__sku="SHIRT-S")
        assert (tea.units, shirt.units) == (128, 1)  # 130 less 2 refunded; 2 less 1
    assert len(order["lineItems"]) == 131


def test_a_sync_refreshes_the_kpi_facts_once_not_once_a_batch(
    world_a, connect, sync, fake_shop, monkeypatch
):
    from pricing_saas.catalog.signals import rows_upserted

    monkeypatch.setattr(pull, "BATCH", 1)  # every page is its own batch
    stock_shop(fake_shop)
    for day in range(1, 13):
        fake_shop.add_order(created=f"2025-03-{day:02d}T10:00:00Z", lines=[("TEA", 1, "4.00")])
    heard = []

    def listener(sender, kind, rows, **kwargs):
        heard.append((kind, sorted(r.get("date", "") for r in rows)))

    rows_upserted.connect(listener, dispatch_uid="test-listener")
    try:
        run = sync(world_a, connect(world_a))
    finally:
        rows_upserted.disconnect(dispatch_uid="test-listener")
    assert run.status == "succeeded" and run.sales_rows == 12
    sales = [dates for kind, dates in heard if kind == "sales"]
    assert len(sales) == 1  # one refresh, for the whole range of days the sync wrote
    assert sales[0][0] == "2025-03-01" and sales[0][-1] == "2025-03-12"


def test_a_row_read_before_our_own_push_does_not_move_the_price_back(
    world_a, connect, sync, fake_shop
):
    """A sync paged past a variant at 4.50, then a publication wrote 4.99: the sync's old row
    must not move the catalog back (nor be taken for a change made in the shop)."""
    from pricing_saas.catalog.models import Product
    from pricing_saas.integrations import ingest
    from pricing_saas.pricing.models import PriceChange

    stock_shop(fake_shop)
    connection = connect(world_a)
    sync(world_a, connection, kind="products")
    with tenant_context(world_a.tenant):
        tea = ShopVariant.objects.get(sku="TEA")
        read_at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        ShopVariant.objects.filter(pk=tea.pk).update(
            pushed_price=Decimal("4.99"),
            price=Decimal("4.99"),
            pushed_at=read_at + dt.timedelta(minutes=1),
        )
        Product.objects.filter(sku="TEA").update(price=Decimal("4.99"))
        row = {"sku": "TEA", "title": "Tea", "price": "4.50"}
        refs = {"TEA": (tea.product_ref, tea.variant_ref, Decimal("4.50"), read_at)}
        from pricing_saas.integrations.models import SyncRun

        run = SyncRun.objects.create(tenant=world_a.tenant, connection=connection)
        ingest.import_products(run, connection, {"TEA": row}, refs, ingest.Report(run))
        assert Product.objects.get(sku="TEA").price == Decimal("4.99")
        assert not PriceChange.objects.filter(kind="external").exists()


def test_a_malformed_variant_or_order_is_reported_and_the_sync_goes_on(
    world_a, connect, sync, fake_shop
):
    stock_shop(fake_shop)
    fake_shop.add_product("Odd", [{"sku": "ODD", "price": "3.00", "inventoryQuantity": "many"}])
    odd = fake_shop.add_order(created="2025-03-01T10:00:00Z", lines=[("TEA", 1, "4.00")])
    odd["lineItems"][0]["quantity"] = "two"  # not a number
    fake_shop.add_order(created="2025-03-01T11:00:00Z", lines=[("TEA", 2, "4.00")])
    run = sync(world_a, connect(world_a))
    assert run.status == "succeeded", run.message
    reasons = " ".join(r["reason"] for r in run.report)
    assert "not a variant the connector can read" in reasons
    assert "not an order the connector can read" in reasons
    with tenant_context(world_a.tenant):
        assert SalesRecord.objects.get(product__sku="TEA").units == 2
        assert Product.objects.filter(sku="TEA").exists()


# --- bulk operations ------------------------------------------------------------------------


@pytest.fixture
def bulk_small(monkeypatch):
    """Bulk operations from two variants and one order on (the real thresholds are large)."""
    from pricing_saas.integrations.shopify import bulk

    monkeypatch.setattr(bulk, "VARIANTS_THRESHOLD", 1)
    monkeypatch.setattr(bulk, "ORDERS_THRESHOLD", 0)
    return bulk


def test_a_first_sync_of_a_large_shop_runs_one_bulk_query_each(
    world_a, connect, sync, fake_shop, bulk_small
):
    stock_shop(fake_shop)
    fake_shop.add_order(
        created="2025-03-01T10:00:00Z", lines=[("TEA", 2, "4.00"), ("SHIRT-S", 1, "18.00")]
    )
    fake_shop.add_order(
        created="2025-03-01T15:00:00Z", lines=[("TEA", 3, "4.50")], refunds=[[(0, 1)]]
    )
    run = sync(world_a, connect(world_a))
    assert run.status == "succeeded", run.message
    assert fake_shop.bulk_runs == 2 and fake_shop.calls["Variants"] == 0
    assert fake_shop.calls["Orders"] == 0 and fake_shop.calls["OrderRest"] == 1  # the refund
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="SHIRT-L").title == "Shirt - L"
        tea = SalesRecord.objects.get(product__sku="TEA", date=dt.date(2025, 3, 1))
        assert (tea.units, tea.revenue) == (4, Decimal(17))  # as the paged sync counts it
    with tenant_context(world_a.tenant):
        connection = Connection.objects.get()
    again = sync(world_a, connection)  # incremental: pages, no bulk
    assert again.status == "succeeded" and fake_shop.bulk_runs == 2


def test_a_bulk_query_refused_because_another_runs_falls_back_to_pages(
    world_a, connect, sync, fake_shop, bulk_small
):
    stock_shop(fake_shop)
    fake_shop.bulk = {"id": "gid://shopify/BulkOperation/1", "status": "RUNNING", "kind": "x"}
    fake_shop.bulk["polls"] = 10**6
    run = sync(world_a, connect(world_a), kind="products")
    assert run.status == "succeeded" and run.products == 3
    assert fake_shop.calls["Variants"] >= 1


def test_a_failed_bulk_query_stops_the_sync_with_the_reason(
    world_a, connect, sync, fake_shop, bulk_small
):
    stock_shop(fake_shop)
    fake_shop.bulk_outcome = "FAILED"
    run = sync(world_a, connect(world_a), kind="products")
    assert run.status == "failed" and "bulk operation ended failed" in run.message
