"""The WooCommerce connector against a fake WooCommerce (tests/integrations/fake_woocommerce.py):
connect, pull products and orders, publish, webhooks, commands and the API."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client

from pricing_saas.catalog.models import Product, SalesRecord
from pricing_saas.integrations import services
from pricing_saas.integrations.models import Connection, ShopVariant, WebhookEvent
from pricing_saas.integrations.publishers import TransientPublishError, get_publisher
from pricing_saas.integrations.woocommerce import pull
from pricing_saas.pricing import approvals, publishing
from pricing_saas.pricing.models import PriceChange, Publication
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context

from .fake_woocommerce import signed

pytestmark = pytest.mark.django_db


def stock(woo):
    woo.add_product(
        "Tea",
        sku="TEA",
        price="4.50",
        categories=["Drinks"],
        brands=["Leaf & Co"],
        description="<p>Green <b>tea</b></p>",
        stock_quantity=12,
        cost_of_goods_sold={"values": [], "total_value": 2.1},
    )
    woo.add_product("Mug", sku="MUG", price="9.00", sale_price="8.00")
    shirt = woo.add_product("Shirt", price="", categories=["Clothes"])
    woo.add_variation(shirt, sku="SHIRT-S", price="20.00", option="S")
    woo.add_variation(shirt, sku="SHIRT-L", price="22.00", option="L")
    woo.add_variation(shirt, sku="", price="21.00", option="M")
    woo.add_product("Bundle", sku="BUNDLE", price="", type="grouped")


def test_connect_tests_the_key_and_stores_it_encrypted(world_a, connect_woo, fake_woo):
    connection = connect_woo(world_a)
    assert connection.platform == "woocommerce" and connection.currency == "USD"
    assert fake_woo.key not in connection.credentials  # encrypted at rest
    with tenant_context(world_a.tenant):
        assert Connection.objects.get().secrets()["consumer_secret"] == fake_woo.secret


def test_a_refused_key_stores_nothing_and_names_the_field(world_a, connect_woo):
    with pytest.raises(ServiceError) as caught:
        connect_woo(world_a, consumer_secret="cs_wrong")
    assert caught.value.attr == "consumer_key" and "refused" in caught.value.detail
    with pytest.raises(ServiceError) as caught:
        connect_woo(world_a, consumer_key="not-a-key")
    assert caught.value.attr == "consumer_key"
    with tenant_context(world_a.tenant):
        assert not Connection.objects.exists()


def test_a_shop_in_another_currency_is_refused(world_a, connect_woo, fake_woo):
    fake_woo.currency = "EUR"
    with pytest.raises(ServiceError) as caught:
        connect_woo(world_a)
    assert "EUR" in caught.value.detail


def test_products_and_variations_arrive_in_the_catalog(world_a, connect_woo, sync, fake_woo):
    stock(fake_woo)
    run = sync(world_a, connect_woo(world_a), kind="products")
    assert run.status == "succeeded", run.message
    assert run.products == 4  # Tea, Mug, two named Shirt variations
    reasons = " ".join(f"{r['item']} {r['reason']}" for r in run.report)
    assert "grouped" in reasons and "no SKU" in reasons
    with tenant_context(world_a.tenant):
        tea = Product.objects.get(sku="TEA")
        assert (tea.title, tea.category, tea.brand) == ("Tea", "Drinks", "Leaf & Co")
        assert tea.description == "Green tea"
        assert (tea.price, tea.stock, tea.cost) == (Decimal("4.5"), 12, Decimal("2.1"))
        mug = Product.objects.get(sku="MUG")
        assert mug.price == Decimal(8) and mug.attributes["compare_at_price"] == "9.00"
        assert Product.objects.get(sku="SHIRT-L").title == "Shirt - L"
        refs = dict(ShopVariant.objects.values_list("sku", "variant_ref"))
        parents = dict(ShopVariant.objects.values_list("sku", "product_ref"))
        assert refs["TEA"] == parents["TEA"] and refs["SHIRT-S"] != parents["SHIRT-S"]


def test_paging_and_incremental_sync(world_a, connect_woo, sync, fake_woo):
    for i in range(250):
        fake_woo.add_product(f"P{i}", sku=f"P{i:04d}", price="10.00")
    connection = connect_woo(world_a)
    run = sync(world_a, connection, kind="products")
    assert run.products == 250 and fake_woo.calls["GET products"] == 3
    fake_woo.set_price(fake_woo.by_sku("P0007"), "11.00")
    with tenant_context(world_a.tenant):
        connection.refresh_from_db()
    run = sync(world_a, connection, kind="products")
    # what changed, and what shares the last sync's newest second (read again: one overlap)
    assert run.products == 2 and fake_woo.calls["GET products"] == 4
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="P0007").price == Decimal(11)


def test_a_product_changed_while_paging_is_not_skipped(world_a, connect_woo, sync, fake_woo):
    for i in range(250):
        fake_woo.add_product(f"P{i}", sku=f"P{i:04d}", price="10.00")

    def change_one(path, page):  # a person edits a product on page one while page two is read
        if path == "products" and fake_woo.calls["GET products"] == 2:
            fake_woo.set_price(fake_woo.by_sku("P0003"), "12.00")

    fake_woo.on_list = change_one
    run = sync(world_a, connect_woo(world_a), kind="products")
    assert run.status == "succeeded"
    with tenant_context(world_a.tenant):
        assert Product.objects.count() == 250
        assert Product.objects.get(sku="P0003").price == Decimal(12)


def test_a_full_page_of_one_seconds_changes_is_paged_by_number(
    world_a, connect_woo, sync, fake_woo
):
    fake_woo.frozen = True  # 230 products modified in the same second
    for i in range(230):
        fake_woo.add_product(f"P{i}", sku=f"P{i:04d}", price="10.00")
    run = sync(world_a, connect_woo(world_a), kind="products")
    assert run.status == "succeeded" and run.products == 230


def test_revoked_key_mid_sync_keeps_what_was_synced_and_resumes(
    world_a, connect_woo, sync, fake_woo, monkeypatch
):
    monkeypatch.setattr(pull, "BATCH", 1)  # every page is imported as it arrives
    for i in range(250):
        fake_woo.add_product(f"P{i}", sku=f"P{i:04d}", price="10.00")
    connection = connect_woo(world_a)
    secret = fake_woo.secret
    fake_woo.revoke_after = 2  # two pages, then refused
    run = sync(world_a, connection, kind="products")
    assert run.status == "failed" and "refused the consumer key" in run.message
    with tenant_context(world_a.tenant):
        # two pages of 100 kept, one product read twice (pages overlap by the shared second)
        assert Product.objects.count() == 199
        connection.refresh_from_db()
        assert connection.status == "failing" and connection.sync_state["products_cursor"]
    fake_woo.secret, fake_woo.revoke_after = secret, None
    before = fake_woo.calls["GET products"]
    run = sync(world_a, connection, kind="products")
    assert run.status == "succeeded"
    assert fake_woo.calls["GET products"] - before == 1  # resumed from the stored position
    with tenant_context(world_a.tenant):
        assert Product.objects.count() == 250
        connection.refresh_from_db()
        assert connection.status == "connected"


def test_orders_become_daily_sales_with_refunds_and_unpaid_orders(
    world_a, connect_woo, sync, fake_woo
):
    stock(fake_woo)
    day = "2026-03-01T10:00:00"
    fake_woo.add_order(created=day, lines=[("TEA", 2, "8.00"), ("MUG", 1, "8.00")])
    fake_woo.add_order(created=day, lines=[("TEA", 3, "13.50")], refunds=[(0, 1)])
    fake_woo.add_order(created=day, lines=[("TEA", 5, "20.00")], status="cancelled")
    fake_woo.add_order(created=day, lines=[("GHOST", 1, "3.00")])
    fake_woo.add_order(created=day, lines=[("TEA", 1, "4.00")], currency="EUR")
    connection = connect_woo(world_a)
    run = sync(world_a, connection)
    assert run.status == "succeeded", run.message
    reasons = " ".join(r["reason"] for r in run.report)
    assert "in EUR" in reasons and "not in the catalog" in reasons
    with tenant_context(world_a.tenant):
        tea = SalesRecord.objects.get(product__sku="TEA", date=dt.date(2026, 3, 1))
        # 2 at 4.00 and 3 - 1 refunded at 4.50; the cancelled order counts nothing
        assert (tea.units, tea.revenue, tea.channel) == (4, Decimal(17), connection.channel)
        sync(world_a, connection, full=True)  # a full re-sync counts nothing twice
        assert SalesRecord.objects.get(product__sku="TEA").units == 4


def test_an_order_refunded_later_is_recounted(world_a, connect_woo, sync, fake_woo):
    stock(fake_woo)
    order = fake_woo.add_order(created="2026-03-01T10:00:00", lines=[("TEA", 5, "20.00")])
    connection = connect_woo(world_a)
    sync(world_a, connection)
    fake_woo.refund(order, 0, 2)
    with tenant_context(world_a.tenant):
        connection.refresh_from_db()
    run = sync(world_a, connection, kind="orders")
    assert run.orders == 1
    with tenant_context(world_a.tenant):
        assert SalesRecord.objects.get(product__sku="TEA").units == 3


# --- publishing -------------------------------------------------------------------------------


@pytest.fixture
def woo_synced(world_a, connect_woo, sync, fake_woo):
    stock(fake_woo)
    connection = connect_woo(world_a)
    sync(world_a, connection, kind="products")
    with tenant_context(world_a.tenant):
        approvals.update_policy(publisher="woocommerce")
    return connection


def publication_of(world, changes: dict[str, str]) -> Publication:
    with tenant_context(world.tenant):
        publication = Publication.objects.create(
            tenant=world.tenant, publisher="woocommerce", changes=len(changes)
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
    assert get_publisher("woocommerce").label.startswith("WooCommerce")


def test_prices_go_out_in_batches_and_move_the_catalog(world_a, woo_synced, fake_woo):
    publication = publication_of(world_a, {"TEA": "4.99", "SHIRT-S": "19.00", "SHIRT-L": "21.00"})
    publication, changes = run(world_a, publication)
    assert publication.status == "succeeded", changes
    assert fake_woo.by_sku("TEA")["price"] == "4.99"
    assert fake_woo.by_sku("SHIRT-L")["regular_price"] == "21.00"
    assert fake_woo.calls["POST products/batch"] == 1
    assert fake_woo.calls["POST products/{id}/variations/batch"] == 1  # both variations at once
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="SHIRT-L").price == Decimal(21)


def test_more_than_a_hundred_changes_are_split(world_a, connect_woo, sync, fake_woo):
    for i in range(230):
        fake_woo.add_product(f"P{i}", sku=f"P{i:04d}", price="10.00")
    sync(world_a, connect_woo(world_a), kind="products")
    with tenant_context(world_a.tenant):
        approvals.update_policy(publisher="woocommerce")
    publication = publication_of(world_a, {f"P{i:04d}": "10.50" for i in range(230)})
    publication, _ = run(world_a, publication)
    assert publication.status == "succeeded"
    assert fake_woo.calls["POST products/batch"] == 3 and len(fake_woo.writes) == 230


def test_removed_on_sale_and_changed_in_shop_fail_alone(world_a, woo_synced, fake_woo):
    tea = fake_woo.by_sku("TEA")
    del fake_woo.products[tea["id"]]
    fake_woo.set_price(fake_woo.by_sku("SHIRT-S"), "25.00")  # a person changed it
    publication = publication_of(
        world_a, {"TEA": "4.99", "MUG": "7.50", "SHIRT-S": "19.00", "SHIRT-L": "21.00"}
    )
    publication, changes = run(world_a, publication)
    assert publication.status == "partial"
    assert changes["SHIRT-L"][0] == "published"
    assert changes["TEA"][0] == "failed" and "no longer has" in changes["TEA"][1]
    assert changes["MUG"][0] == "failed" and "on sale" in changes["MUG"][1]
    assert changes["SHIRT-S"][0] == "failed" and "changed in the shop" in changes["SHIRT-S"][1]
    assert fake_woo.by_sku("SHIRT-S")["regular_price"] == "25.00"  # not overwritten


def test_an_item_error_fails_only_that_change(world_a, woo_synced, fake_woo):
    fake_woo.refuse[fake_woo.by_sku("SHIRT-S")["id"]] = "Sorry, this product cannot be edited."
    publication = publication_of(world_a, {"SHIRT-S": "19.00", "SHIRT-L": "21.00"})
    publication, changes = run(world_a, publication)
    assert changes["SHIRT-L"][0] == "published"
    assert changes["SHIRT-S"] == ("failed", "WooCommerce: Sorry, this product cannot be edited.")


def test_rate_limits_are_waited_out(world_a, woo_synced, fake_woo):
    fake_woo.fail_next("429", 2)
    publication, _ = run(world_a, publication_of(world_a, {"TEA": "4.99"}))
    assert publication.status == "succeeded" and fake_woo.http_429 == 2
    assert fake_woo.slept.count(2.0) == 2  # Retry-After honoured


def test_a_lost_answer_is_retried_without_sending_twice(world_a, woo_synced, fake_woo, monkeypatch):
    from pricing_saas.integrations.publishers import ChangeRow
    from pricing_saas.integrations.woocommerce import connector

    monkeypatch.setitem(connector.CLIENT_OPTIONS, "max_retries", 0)
    fake_woo.fail_next("apply-then-500")
    tea = [ChangeRow(1, "TEA", "Tea", Decimal("4.50"), Decimal("4.99"), "USD")]
    with tenant_context(world_a.tenant):
        with pytest.raises(TransientPublishError):
            get_publisher("woocommerce").push(tea, reference="x")
        assert len(fake_woo.writes) == 1  # applied, the answer lost
        outcome = get_publisher("woocommerce").push(tea, reference="x")  # the task's retry
    assert outcome.results[0].ok
    assert len(fake_woo.writes) == 1  # the retry read the live price and sent nothing


def test_a_revoked_key_fails_the_changes_and_marks_the_connection(world_a, woo_synced, fake_woo):
    fake_woo.revoke()
    _, changes = run(world_a, publication_of(world_a, {"TEA": "4.99"}))
    assert changes["TEA"][0] == "failed" and "refused" in changes["TEA"][1]
    with tenant_context(world_a.tenant):
        assert Connection.objects.get().status == "failing"


# --- webhooks ---------------------------------------------------------------------------------


def post_hook(world, connection, topic, payload, *, secret="hook-secret", signature=None):  # noqa: S107
    raw, digest = signed(payload, secret)
    return Client().post(
        f"/webhooks/woocommerce/{world.tenant.slug}/{connection.pk}/",
        raw,
        content_type="application/json",
        HTTP_X_WC_WEBHOOK_TOPIC=topic,
        HTTP_X_WC_WEBHOOK_SIGNATURE=signature if signature is not None else digest,
        HTTP_X_WC_WEBHOOK_DELIVERY_ID="d1",
    )


@pytest.mark.usefixtures("run_on_commit_at_once")
def test_a_price_changed_in_the_shop_arrives_by_webhook(world_a, woo_synced, fake_woo):
    tea = fake_woo.by_sku("TEA")
    fake_woo.set_price(tea, "4.80")
    answer = post_hook(world_a, woo_synced, "product.updated", dict(tea))
    assert answer.status_code == 200 and answer.json()["status"] == "queued"
    again = post_hook(world_a, woo_synced, "product.updated", dict(tea))
    assert again.json()["status"] == "duplicate"
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="TEA").price == Decimal("4.8")
        event = WebhookEvent.objects.get()
        assert event.status == "processed" and "changed in the shop" in event.message
        external = PriceChange.objects.get(kind="external")
        assert (external.old_price, external.new_price) == (Decimal("4.5"), Decimal("4.8"))


@pytest.mark.usefixtures("run_on_commit_at_once")
def test_a_stale_product_event_changes_nothing(world_a, woo_synced, fake_woo):
    tea = fake_woo.by_sku("TEA")
    old = dict(tea, price="3.00", regular_price="3.00")
    fake_woo.set_price(tea, "4.80")
    post_hook(world_a, woo_synced, "product.updated", dict(tea))
    post_hook(world_a, woo_synced, "product.updated", old)  # delivered late
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="TEA").price == Decimal("4.8")


@pytest.mark.usefixtures("run_on_commit_at_once")
def test_an_order_webhook_counts_once(world_a, woo_synced, fake_woo):
    order = fake_woo.add_order(created="2026-03-01T10:00:00", lines=[("TEA", 2, "9.00")])
    post_hook(world_a, woo_synced, "order.created", order)
    post_hook(world_a, woo_synced, "order.created", order)
    with tenant_context(world_a.tenant):
        assert SalesRecord.objects.get(product__sku="TEA").units == 2


def test_bad_or_missing_signatures_are_refused_and_change_nothing(
    world_a, world_b, woo_synced, fake_woo
):
    tea = dict(fake_woo.by_sku("TEA"), price="1.00")
    assert post_hook(world_a, woo_synced, "product.updated", tea, secret="wrong").status_code == 401
    assert post_hook(world_a, woo_synced, "product.updated", tea, signature="").status_code == 401
    # the connection under another tenant's address: refused the same way
    raw, digest = signed(tea, "hook-secret")
    answer = Client().post(
        f"/webhooks/woocommerce/{world_b.tenant.slug}/{woo_synced.pk}/",
        raw,
        content_type="application/json",
        HTTP_X_WC_WEBHOOK_TOPIC="product.updated",
        HTTP_X_WC_WEBHOOK_SIGNATURE=digest,
    )
    assert answer.status_code == 401
    with tenant_context(world_a.tenant):
        assert not WebhookEvent.objects.exists()
        assert Product.objects.get(sku="TEA").price == Decimal("4.5")


def test_the_ping_of_a_new_webhook_is_answered(world_a, woo_synced):
    answer = Client().post(
        f"/webhooks/woocommerce/{world_a.tenant.slug}/{woo_synced.pk}/",
        b"webhook_id=12",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 200
    with tenant_context(world_a.tenant):
        assert not WebhookEvent.objects.exists()


# --- commands and API -------------------------------------------------------------------------


def test_connect_sync_approve_publish_and_confirm_end_to_end(world_a, fake_woo, tmp_path):
    """A merchant's whole path with a WooCommerce shop: connect, see the catalog and orders
    arrive, approve, publish, and the change confirmed by the shop."""
    from tests.factories import RecommendationFactory, RepriceJobFactory

    stock(fake_woo)
    fake_woo.add_order(created="2026-03-01T10:00:00", lines=[("SHIRT-L", 2, "40.00")])
    secret_file = tmp_path / "secret"
    secret_file.write_text(fake_woo.secret)
    call_command(
        "connect_shop",
        world_a.tenant.slug,
        "woocommerce",
        "--shop-url",
        "https://fake-woo.example.com",
        "--key",
        fake_woo.key,
        "--secret-file",
        str(secret_file),
        "--api-base-url",
        fake_woo.url,
    )
    call_command("sync_shop", world_a.tenant.slug)
    with tenant_context(world_a.tenant):
        assert SalesRecord.objects.get(product__sku="SHIRT-L").units == 2
        approvals.update_policy(publisher="woocommerce")
        product = Product.objects.get(sku="SHIRT-L")
    job = RepriceJobFactory(tenant=world_a.tenant)
    RecommendationFactory(
        tenant=world_a.tenant,
        job=job,
        product=product,
        status="approved",
        current_price="22.00",
        recommended_price="22.90",
    )
    call_command("publish", world_a.tenant.slug, "--job", str(job.pk))
    assert fake_woo.by_sku("SHIRT-L")["price"] == "22.90"
    with tenant_context(world_a.tenant):
        change = PriceChange.objects.get(product=product)
        assert change.status == "published" and change.sent_at is not None
        assert Product.objects.get(sku="SHIRT-L").price == Decimal("22.90")


def test_connect_and_sync_by_command(world_a, fake_woo, tmp_path):
    stock(fake_woo)
    secret_file = tmp_path / "secret"
    secret_file.write_text(fake_woo.secret + "\n")
    call_command(
        "connect_shop",
        world_a.tenant.slug,
        "woocommerce",
        "--shop-url",
        "https://fake-woo.example.com",
        "--key",
        fake_woo.key,
        "--secret-file",
        str(secret_file),
        "--api-base-url",
        fake_woo.url,
    )
    call_command("sync_shop", world_a.tenant.slug)
    with tenant_context(world_a.tenant):
        assert Connection.objects.get().platform == "woocommerce"
        assert Product.objects.filter(sku="SHIRT-S").exists()


def test_connect_through_the_api(world_a, world_b, fake_woo):
    answer = world_a.api().post(
        "/api/v1/connections/",
        {
            "platform": "woocommerce",
            "shop_url": "https://fake-woo.example.com",
            "api_base_url": fake_woo.url,
            "consumer_key": fake_woo.key,
            "consumer_secret": fake_woo.secret,
        },
        format="json",
    )
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["platform"] == "woocommerce" and fake_woo.secret not in answer.content.decode()
    assert "/webhooks/woocommerce/" in body["webhook_url"]
    assert world_b.api().get(f"/api/v1/connections/{body['id']}/").status_code == 404
    refused = world_a.api().post(
        "/api/v1/connections/",
        {
            "platform": "woocommerce",
            "shop_url": "https://other.example.com",
            "api_base_url": fake_woo.url,
            "consumer_key": fake_woo.key,
            "consumer_secret": "cs_wrong",
        },
        format="json",
    )
    assert refused.status_code == 400 and fake_woo.secret not in refused.content.decode()


def test_test_connection_reports_a_revoked_key(world_a, connect_woo, fake_woo):
    connection = connect_woo(world_a)
    fake_woo.revoke()
    with tenant_context(world_a.tenant):
        connection = services.test_connection(connection=connection)
    assert connection.status == "failing" and "refused" in connection.status_reason


# --- sync status and the SKU's history ----------------------------------------------------------


def test_a_lost_answer_leaves_the_change_sent_until_the_retry_confirms_it(
    world_a, woo_synced, fake_woo, monkeypatch
):
    from pricing_saas.integrations.woocommerce import connector

    monkeypatch.setitem(connector.CLIENT_OPTIONS, "max_retries", 0)
    fake_woo.fail_next("apply-then-500")
    publication = publication_of(world_a, {"TEA": "4.99"})
    with tenant_context(world_a.tenant), pytest.raises(TransientPublishError):
        publishing.run_publication(publication_id=publication.pk)
    with tenant_context(world_a.tenant):
        change = PriceChange.objects.get(publication=publication)
        assert change.status == "sent" and change.sent_at is not None
        assert Product.objects.get(sku="TEA").price == Decimal("4.5")  # not confirmed yet
    publication, changes = run(world_a, publication)  # the task's retry
    assert changes["TEA"][0] == "published" and len(fake_woo.writes) == 1
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="TEA").price == Decimal("4.99")


def test_a_price_changed_in_the_shop_enters_the_history_and_is_not_overwritten(
    world_a, woo_synced, sync, fake_woo
):
    # our own push, seen again by the next sync: not an external change
    run(world_a, publication_of(world_a, {"SHIRT-L": "21.00"}))
    fake_woo.set_price(fake_woo.by_sku("TEA"), "4.80")  # a person, in the WooCommerce admin
    with tenant_context(world_a.tenant):
        pending = publication_of(world_a, {"TEA": "4.99"})  # made against 4.50 ...
        Product.objects.filter(sku="TEA").update(price=Decimal("4.50"))
        connection = Connection.objects.get()
    sync(world_a, connection, kind="products")
    with tenant_context(world_a.tenant):
        external = PriceChange.objects.filter(kind="external")
        assert [(c.product.sku, c.old_price, c.new_price) for c in external] == [
            ("TEA", Decimal("4.5"), Decimal("4.8"))
        ]
        assert external[0].status == "published" and "WooCommerce" in external[0].created_by
    _, changes = run(world_a, pending)  # ... so it fails instead of overwriting the shop's
    assert changes["TEA"][0] == "failed"
    assert fake_woo.by_sku("TEA")["regular_price"] == "4.80"


def test_a_lost_answer_then_a_sync_is_confirmed_not_taken_for_a_change_in_the_shop(
    world_a, woo_synced, sync, fake_woo, monkeypatch
):
    """The shop applied the price, its answer was lost, and a sync read the new price before
    the retry: the sync recognises our own write, and the retry confirms the change."""
    from pricing_saas.integrations.woocommerce import connector

    monkeypatch.setitem(connector.CLIENT_OPTIONS, "max_retries", 0)
    fake_woo.fail_next("apply-then-500")
    publication = publication_of(world_a, {"TEA": "4.99"})
    with tenant_context(world_a.tenant), pytest.raises(TransientPublishError):
        publishing.run_publication(publication_id=publication.pk)
    with tenant_context(world_a.tenant):
        connection = Connection.objects.get()
    sync(world_a, connection, kind="products")  # in the task's backoff
    _, changes = run(world_a, publication)  # the retry
    assert changes["TEA"][0] == "published", changes
    assert len(fake_woo.writes) == 1
    with tenant_context(world_a.tenant):
        assert not PriceChange.objects.filter(kind="external").exists()
        assert Product.objects.get(sku="TEA").price == Decimal("4.99")


def test_an_unforeseen_answer_fails_the_changes_instead_of_leaving_them_sent(
    world_a, woo_synced, fake_woo, monkeypatch
):
    from pricing_saas.integrations.woocommerce import publisher

    def broken(*args, **kwargs):
        raise AttributeError("'list' object has no attribute 'get'")  # a malformed answer

    original = publisher.live_items
    monkeypatch.setattr(publisher, "live_items", broken)
    publication, changes = run(world_a, publication_of(world_a, {"TEA": "4.99"}))
    assert publication.status == "failed" and changes["TEA"][0] == "failed"
    assert "internal error (AttributeError)" in changes["TEA"][1]
    with tenant_context(world_a.tenant):
        retry = publishing.retry_publication(publication=publication, enqueue=False)
    monkeypatch.setattr(publisher, "live_items", original)
    _, changes = run(world_a, retry)
    assert changes["TEA"][0] == "published"


def test_a_price_in_another_currency_than_the_shops_is_not_sent(world_a, woo_synced, fake_woo):
    with tenant_context(world_a.tenant):
        Product.objects.filter(sku="TEA").update(currency="EUR")
    _, changes = run(world_a, publication_of(world_a, {"TEA": "4.99", "SHIRT-L": "21.00"}))
    assert changes["TEA"][0] == "failed" and "in EUR, the shop sells in USD" in changes["TEA"][1]
    assert changes["SHIRT-L"][0] == "published"
    assert fake_woo.by_sku("TEA")["price"] == "4.50"


def test_a_webhook_with_a_malformed_date_is_stored_not_a_500(world_a, woo_synced, fake_woo):
    tea = dict(fake_woo.by_sku("TEA"), date_modified_gmt={"not": "a date"})
    answer = post_hook(world_a, woo_synced, "product.updated", tea)
    assert answer.status_code == 200


def test_a_malformed_product_or_order_is_reported_and_the_sync_goes_on(
    world_a, connect_woo, sync, fake_woo
):
    stock(fake_woo)
    odd = fake_woo.add_product("Odd", sku="ODD", price="3.00")
    odd["stock_quantity"], odd["manage_stock"] = "many", True  # not a number
    order = fake_woo.add_order(created="2026-03-01T10:00:00", lines=[("TEA", 1, "4.50")])
    order["line_items"][0]["quantity"] = "two"  # not a number
    fake_woo.add_order(created="2026-03-01T11:00:00", lines=[("TEA", 2, "9.00")])
    run = sync(world_a, connect_woo(world_a))
    assert run.status == "succeeded", run.message
    reasons = " ".join(f"{r['item']} {r['reason']}" for r in run.report)
    assert "ODD" in reasons or "not a product the connector can read" in reasons
    assert "not an order the connector can read" in reasons
    with tenant_context(world_a.tenant):
        assert SalesRecord.objects.get(product__sku="TEA").units == 2
