"""The GraphQL client against the fake shop: cost-driven waits, THROTTLED, 429, 5xx, auth."""

from __future__ import annotations

import pytest

from pricing_saas.integrations.shopify import queries
from pricing_saas.integrations.shopify.client import (
    ShopifyAuthError,
    ShopifyClient,
    ShopifyTransientError,
)


def client_of(shop, **kw) -> ShopifyClient:
    return ShopifyClient(
        base_url=shop.url,
        token=shop.token,
        clock=shop.clock,
        sleep=shop.clock.sleep,
        timeout=1.0,
        **kw,
    )


def test_reads_the_shop_and_the_cost_it_reports(fake_shop):
    client = client_of(fake_shop)
    data = client.execute(queries.SHOP, operation="Shop")
    assert data["shop"]["currencyCode"] == "USD"
    assert client.bucket.maximum == 2000 and client.bucket.restore_rate == 100


def test_never_sends_a_request_the_bucket_cannot_pay(fake_shop):
    fake_shop.maximum = 1000.0
    for i in range(300):
        fake_shop.add_product(f"P{i}", [{"sku": f"S{i}", "price": "10.00"}])
    client = client_of(fake_shop)
    for _ in range(20):  # 20 x 962 points: far more than the bucket holds
        client.execute(
            queries.VARIANTS,
            {"first": 240},
            operation="Variants",
            estimate=queries.estimate("Variants", {"first": 240}),
        )
    assert fake_shop.throttled == 0
    assert client.stats.waited_s > 0  # it waited for the refill instead
    # The minimum the bucket allows: what was requested beyond the first bucket, refilled at
    # 100/s (the actual cost is refunded, so it waits less).
    assert client.stats.waited_s <= 20 * 962 / 100


def test_throttled_answer_waits_for_the_refill_and_retries(fake_shop):
    fake_shop.fail_next("throttle")
    client = client_of(fake_shop)
    assert client.execute(queries.SHOP, operation="Shop")["shop"]["name"] == "Fake Shop"
    assert client.stats.throttled == 1 and fake_shop.calls["Shop"] == 2


def test_429_waits_for_retry_after(fake_shop):
    fake_shop.fail_next("429")
    client = client_of(fake_shop)
    before = fake_shop.clock.slept
    client.execute(queries.SHOP, operation="Shop")
    assert fake_shop.clock.slept - before >= 2.0  # Retry-After: 2
    assert client.stats.throttled == 1


def test_5xx_and_timeouts_back_off_then_give_up(fake_shop):
    fake_shop.fail_next("500", 2)
    client = client_of(fake_shop)
    client.execute(queries.SHOP, operation="Shop")
    assert client.stats.retries == 2
    fake_shop.fail_next("500", 10)
    with pytest.raises(ShopifyTransientError, match="HTTP 500"):
        client_of(fake_shop, max_retries=2).execute(queries.SHOP, operation="Shop")


def test_a_timeout_is_transient(fake_shop):
    fake_shop.fail_next("timeout", 1)
    client = client_of(fake_shop, max_retries=0)
    with pytest.raises(ShopifyTransientError, match="network error"):
        client.execute(queries.SHOP, operation="Shop")


def test_wrong_token_is_an_auth_error_not_retried(fake_shop):
    client = ShopifyClient(
        base_url=fake_shop.url, token="wrong", clock=fake_shop.clock, sleep=fake_shop.clock.sleep
    )
    with pytest.raises(ShopifyAuthError, match="refused the access token"):
        client.execute(queries.SHOP, operation="Shop")
    assert fake_shop.calls["Shop"] == 0  # refused before it ran
    assert "wrong" not in repr(client)
