"""Approved prices pushed to the (fake) Shopify through the publishing path of pricing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing_saas.catalog.models import Product
from pricing_saas.integrations.publishers import TransientPublishError, get_publisher
from pricing_saas.integrations.shopify import queries
from pricing_saas.pricing import approvals, publishing
from pricing_saas.pricing.models import PriceChange, Publication
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop_synced(world_a, connect, sync, fake_shop):
    """World A's catalog from the fake shop (three products, one with two variants), and the
    Shopify publisher chosen in the policy."""
    fake_shop.add_product("Tea", [{"sku": "TEA", "price": "4.50"}])
    fake_shop.add_product("Mug", [{"sku": "MUG", "price": "9.00"}])
    fake_shop.add_product(
        "Shirt",
        [
            {"sku": "S", "title": "S", "price": "20.00"},
            {"sku": "L", "title": "L", "price": "22.00"},
        ],
    )
    connection = connect(world_a)
    sync(world_a, connection, kind="products")
    with tenant_context(world_a.tenant):
        approvals.update_policy(publisher="shopify")
    return connection


def publication_of(world, changes: dict[str, str]) -> Publication:
    """A queued Shopify publication of `changes` (SKU -> new price), as publish() makes it."""
    with tenant_context(world.tenant):
        publication = Publication.objects.create(
            tenant=world.tenant, publisher="shopify", changes=len(changes)
        )
        for sku, price in changes.items():
            product = Product.objects.get(sku=sku)
            PriceChange.objects.create(
                tenant=world.tenant,
                product=product,
                old_price=product.price,
                new_price=Decimal(price),
                publication=publication,
            )
    return publication


def run(world, publication):
    with tenant_context(world.tenant):
        publishing.run_publication(publication_id=publication.pk)
        publication.refresh_from_db()
        return publication, {
            c.product.sku: (c.status, c.error)
            for c in PriceChange.objects.filter(publication=publication).select_related("product")
        }


def test_publisher_is_registered():
    assert get_publisher("shopify").label.startswith("Shopify")


def test_pushes_grouped_by_product_and_moves_the_catalog(world_a, shop_synced, fake_shop):
    publication = publication_of(world_a, {"TEA": "4.99", "S": "19.00", "L": "21.00"})
    publication, changes = run(world_a, publication)
    assert publication.status == "succeeded", changes
    assert fake_shop.variant("TEA")["price"] == "4.99"
    assert fake_shop.calls["VariantsBulkUpdate"] == 2  # Tea, and Shirt's two variants at once
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="L").price == Decimal("21.00")


def test_a_removed_product_fails_only_its_change(world_a, shop_synced, fake_shop):
    fake_shop.remove_product_of("MUG")
    publication, changes = run(world_a, publication_of(world_a, {"TEA": "4.99", "MUG": "9.50"}))
    assert publication.status == "partial"
    assert changes["TEA"][0] == "published"
    assert changes["MUG"] == (
        "failed",
        "the shop no longer has this product or variant (removed); not sent",
    )
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="MUG").price == Decimal("9.00")


def test_a_user_error_fails_only_that_variant_with_the_reason(
    world_a, shop_synced, fake_shop, monkeypatch
):
    publication = publication_of(world_a, {"S": "19.00", "L": "21.00"})
    original = fake_shop._op_VariantsBulkUpdate

    def refuse_l(variables):  # the shop refuses one variant's price
        for change in variables["variants"]:
            if change["id"] == fake_shop.variant("L")["id"]:
                change["price"] = "-1"
        return original(variables)

    monkeypatch.setattr(fake_shop, "_op_VariantsBulkUpdate", refuse_l)
    publication, changes = run(world_a, publication)
    assert changes["S"][0] == "published"
    assert changes["L"] == ("failed", "Shopify: Price must be greater than or equal to 0")


def test_a_price_changed_in_the_shop_is_not_overwritten(world_a, shop_synced, fake_shop):
    fake_shop.variant("TEA")["price"] = "3.75"  # a person changed it in the Shopify admin
    _, changes = run(world_a, publication_of(world_a, {"TEA": "4.99"}))
    assert changes["TEA"][0] == "failed" and "changed in the shop" in changes["TEA"][1]
    assert fake_shop.variant("TEA")["price"] == "3.75"
    assert fake_shop.calls["VariantsBulkUpdate"] == 0


def test_an_unknown_sku_fails_with_the_reason(world_a, shop_synced):
    with tenant_context(world_a.tenant):
        Product.objects.create(
            tenant=world_a.tenant, sku="LOCAL", title="x", price=5, currency="USD"
        )
    _, changes = run(world_a, publication_of(world_a, {"LOCAL": "6.00"}))
    assert changes["LOCAL"][0] == "failed" and "not a product of" in changes["LOCAL"][1]


def test_transient_failure_retries_and_nothing_is_sent_twice(world_a, shop_synced, fake_shop):
    publication = publication_of(world_a, {"TEA": "4.99", "MUG": "9.50"})
    # The first product goes through, then the shop keeps failing: the push is retried later.
    calls = {"n": 0}
    original = fake_shop._op_VariantsBulkUpdate

    def fail_second(variables):
        calls["n"] += 1
        if calls["n"] == 1:  # after this one, the shop answers 500
            fake_shop.fail_next("500", 20)
        return original(variables)

    fake_shop._op_VariantsBulkUpdate = fail_second
    with pytest.raises(TransientPublishError), tenant_context(world_a.tenant):
        publishing.run_publication(publication_id=publication.pk)
    with tenant_context(world_a.tenant):
        publication.refresh_from_db()
        assert publication.status == "queued"  # the task retries it with backoff
    fake_shop._faults.clear()
    fake_shop._op_VariantsBulkUpdate = original
    writes_before = len(fake_shop.writes)
    publication, changes = run(world_a, publication)
    assert publication.status == "succeeded", changes
    # Only what had not reached the shop is written on the retry.
    assert len(fake_shop.writes) - writes_before == 1


def test_throttling_is_waited_out_not_failed(world_a, shop_synced, fake_shop):
    fake_shop.maximum, fake_shop._available = 30.0, 12.0
    fake_shop.fail_next("429")
    publication, changes = run(
        world_a, publication_of(world_a, {"TEA": "4.99", "MUG": "9.50", "S": "19.00"})
    )
    assert publication.status == "succeeded", changes
    assert fake_shop.throttled == 0  # never sent what the bucket could not pay


def test_echo_of_our_write_is_remembered(world_a, shop_synced, fake_shop):
    from pricing_saas.integrations.models import ShopVariant

    run(world_a, publication_of(world_a, {"TEA": "4.99"}))
    with tenant_context(world_a.tenant):
        variant = ShopVariant.objects.get(sku="TEA")
    assert variant.pushed_price == Decimal("4.99") and variant.pushed_at is not None


def test_no_connection_fails_every_change_with_the_reason(world_a, shop_synced):
    from pricing_saas.integrations import services

    with tenant_context(world_a.tenant):
        services.disconnect(connection=shop_synced)
    _, changes = run(world_a, publication_of(world_a, {"TEA": "4.99"}))
    assert changes["TEA"][0] == "failed" and "no connected Shopify shop" in changes["TEA"][1]


def test_the_mutation_stays_under_the_single_query_limit():
    assert queries.estimate("Variants", {"first": queries.VARIANTS_PAGE}) <= 1000
    assert queries.estimate("Orders", {"first": queries.ORDERS_PAGE}) <= 1000
