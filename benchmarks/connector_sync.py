"""Shopify at the Standard plan's limits: pull a catalog and a year of orders (once through
cursor pages, once through bulk operations, each into a fresh tenant), then push 10,000 price
changes, through the real path (sync run -> ingest; publication -> ShopifyPublisher), against
the fake Shopify of the test suite served over HTTP on 127.0.0.1. The fake shop finishes a
bulk query after two polls (10 s); a real one takes as long as Shopify takes, so the bulk row
measures the connector's side.

    .venv/bin/python benchmarks/connector_sync.py [--products 2500] [--variants 4]
        [--orders 25000] [--lines 4] [--changes 10000] [--keep]

Shopify restores 100 cost points a second into a bucket of 2,000 (Standard plan). Waiting for
that at real speed would take an hour, so the client and the fake shop share a clock that runs
in real time *plus* every wait the client chose (a wait costs no real time but moves the clock
on, so the bucket refills as it would have). "Wall" below is that clock: real time spent plus
the waits. The minimum the cost limit allows: the calls made, replayed against a bucket that
starts full, each sent the moment the bucket holds its requested cost, no time spent anywhere
else; the ratio says how close the connector runs to it. Calls are compared with the fewest
the page sizes allow. Push checks: every variant written exactly once (none
sent twice) at its new price (none lost), throttled answers as a share of calls.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")

import django  # noqa: E402

django.setup()

from pytest_httpserver import HTTPServer  # noqa: E402

from pricing_saas.catalog.models import Product  # noqa: E402
from pricing_saas.integrations import services  # noqa: E402
from pricing_saas.integrations.models import ShopOrderLine  # noqa: E402
from pricing_saas.integrations.shopify import bulk, connector, queries  # noqa: E402
from pricing_saas.pricing import approvals, publishing  # noqa: E402
from pricing_saas.pricing.models import PriceChange, Publication  # noqa: E402
from tenants.context import tenant_context  # noqa: E402
from tenants.services import create_tenant, delete_tenant  # noqa: E402
from tests.integrations.fake_shopify import PATH, FakeShop  # noqa: E402


class WallClock:
    """Real time plus the waits chosen (waits advance it without sleeping)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.offset = 0.0
        self.waited = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.offset += max(0.0, seconds)
            self.waited += max(0.0, seconds)

    def wall(self) -> float:
        return self() - self.started


class Spent:
    """The (requested, actual) cost of every answer the fake shop gives."""

    def __init__(self, shop: FakeShop) -> None:
        self.shop, self.calls = shop, []
        original = shop._cost

        def cost(requested, actual):
            if actual is not None:
                self.calls.append((requested, actual))
            return original(requested, actual)

        shop._cost = cost

    def minimum_s(self) -> float:
        """The least time the cost limit allows for these calls: replayed against a bucket
        that starts full, each call sent the moment the bucket holds its requested cost, with
        no time spent anywhere else."""
        shop, available, now = self.shop, self.shop.maximum, 0.0
        for requested, actual in self.calls:
            if available < requested:
                now += (requested - available) / shop.restore_rate
                available = requested
            available -= actual
        return now


def stock(shop: FakeShop, products: int, variants: int, orders: int, lines: int) -> None:
    for p in range(products):
        shop.add_product(
            f"Product {p}",
            [
                {"sku": f"S{p:05d}-{v}", "title": f"V{v}", "price": f"{10 + (p + v) % 40}.00"}
                for v in range(variants)
            ],
            productType=f"cat{p % 20}",
        )
    skus = [v["sku"] for product in shop.products.values() for v in product["variants"]]
    for o in range(orders):
        day = 1 + o % 28
        month = 1 + (o // 28) % 12
        shop.add_order(
            created=f"2025-{month:02d}-{day:02d}T12:00:00Z",
            lines=[
                (skus[(o * 7 + i * 13) % len(skus)], 1 + (o + i) % 3, "12.00") for i in range(lines)
            ],
            refunds=[[(0, 1)]] if o % 50 == 0 else (),
        )


def run(args) -> None:
    clock = WallClock()
    shop = FakeShop(clock=clock)
    spent = Spent(shop)
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request(PATH, method="POST").respond_with_handler(shop.handle)
    server.start()
    connector.CLIENT_OPTIONS = {"clock": clock, "sleep": clock.sleep, "timeout": 30.0}
    stock(shop, args.products, args.variants, args.orders, args.lines)
    server.expect_request(re.compile(r"^/bulk/.*$")).respond_with_handler(shop.serve_bulk)
    shop.url = server.url_for("/").rstrip("/")
    rows, tenants = [], []
    try:
        paged_wall = None
        for mode in ("pages", "bulk"):
            # one fresh tenant a mode: both pulls import into an empty catalog
            tenant = create_tenant(name=f"bench-connector-{mode}-{os.getpid()}")
            tenants.append(tenant)
            big = 10**12
            bulk.VARIANTS_THRESHOLD = big if mode == "pages" else 0
            bulk.ORDERS_THRESHOLD = big if mode == "pages" else 0
            with tenant_context(tenant):
                connection = services.connect(
                    platform="shopify",
                    shop_url="https://bench.myshopify.com",
                    api_base_url=shop.url,
                    access_token=shop.token,
                )
                shop.calls.clear()
                shop.throttled = 0
                spent.calls.clear()
                start_wall, start_wait = clock.wall(), clock.waited
                run_ = services.start_sync(connection=connection, enqueue=False)
                run_ = services.run_sync(run_id=run_.pk)
                assert run_.status == "succeeded", run_.message
                wall = clock.wall() - start_wall
                waited = clock.waited - start_wait
                variants = args.products * args.variants
                if mode == "pages":
                    # the pages, and the two counts that decide against bulk operations
                    min_calls = (
                        2
                        + math.ceil(variants / queries.VARIANTS_PAGE)
                        + math.ceil(args.orders / queries.ORDERS_PAGE)
                    )
                    paged_wall = wall
                    label = "pull through cursor pages"
                else:
                    refunded = sum(1 for o in shop.orders if o["refunds"])
                    # two counts, two bulk queries, their polls, one read per refunded order
                    min_calls = 2 + 2 + 2 * shop.bulk_polls + refunded
                    label = (
                        f"pull through bulk operations ({paged_wall / wall:.1f}x faster than pages)"
                    )
                calls = sum(shop.calls.values())
                minimum = spent.minimum_s()
                lines = ShopOrderLine.objects.count()
                rows.append(
                    (
                        f"{label}: {run_.products:,} products, {lines:,} order lines "
                        f"({run_.sales_rows:,} daily sales rows)",
                        wall,
                        waited,
                        minimum,
                        calls,
                        min_calls,
                        shop.throttled,
                    )
                )
                print(f"pull ({mode}) done: {run_.message}", flush=True)
                assert run_.products == variants and lines == args.orders * args.lines
        with tenant_context(tenant):
            # --- push ---
            approvals.update_policy(publisher="shopify")
            products = list(Product.objects.order_by("pk")[: args.changes])
            publication = Publication.objects.create(
                tenant=tenant, publisher="shopify", changes=len(products)
            )
            PriceChange.objects.bulk_create(
                [
                    PriceChange(
                        tenant=tenant,
                        product=p,
                        old_price=p.price,
                        new_price=(p.price * Decimal("1.03")).quantize(Decimal("0.01")),
                        publication=publication,
                    )
                    for p in products
                ]
            )
            targets = {
                p.sku: (p.price * Decimal("1.03")).quantize(Decimal("0.01")) for p in products
            }
            shop.calls.clear()
            shop.throttled = 0
            shop.writes.clear()
            spent.calls.clear()
            start_wall, start_wait = clock.wall(), clock.waited
            publishing.run_publication(publication_id=publication.pk)
            wall = clock.wall() - start_wall
            waited = clock.waited - start_wait
            publication.refresh_from_db()
            by_variant = Counter(ref for ref, _ in shop.writes)
            twice = sum(1 for n in by_variant.values() if n > 1)
            live = {
                v["sku"]: Decimal(v["price"])
                for pr in shop.products.values()
                for v in pr["variants"]
            }
            lost = sum(1 for sku, price in targets.items() if live.get(sku) != price)
            published = PriceChange.objects.filter(
                publication=publication, status=PriceChange.Status.PUBLISHED
            ).count()
            changed_products = sum(
                1
                for pr in shop.products.values()
                if any(v["sku"] in targets for v in pr["variants"])
            )
            min_calls = changed_products + math.ceil(len(targets) / queries.PRICES_PAGE)
            calls = sum(shop.calls.values())
            minimum = spent.minimum_s()
            rows.append(
                (
                    f"push: {len(targets):,} price changes ({published:,} published, "
                    f"{lost} lost, {twice} sent twice)",
                    wall,
                    waited,
                    minimum,
                    calls,
                    min_calls,
                    shop.throttled,
                )
            )
            print(f"push done: publication {publication.status}", flush=True)
    finally:
        server.stop()
        if not args.keep:
            for tenant in tenants:
                delete_tenant(tenant=tenant)
    print()
    print(
        "| step | wall (real + waits) | of which waits | minimum at the cost limit | ratio "
        "| calls | fewest calls | throttled answers |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, wall, waited, minimum, calls, min_calls, throttled in rows:
        ratio = f"{wall / minimum:.2f}x" if minimum >= 1 else "n/a"
        share = throttled / calls if calls else 0
        print(
            f"| {label} | {wall:,.1f} s | {waited:,.1f} s | {minimum:,.1f} s | {ratio} | "
            f"{calls:,} | {min_calls:,} | {throttled} ({share:.2%}) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=2500)
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--orders", type=int, default=25000)
    parser.add_argument("--lines", type=int, default=4)
    parser.add_argument("--changes", type=int, default=10000)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark tenant")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
