from __future__ import annotations

import re

import pytest

from pricing_saas.integrations.shopify import connector

from .fake_shopify import PATH, FakeShop


@pytest.fixture
def fake_shop(httpserver, monkeypatch):
    """A fake Shopify shop on 127.0.0.1 whose clock the connector's client shares (waits for
    the cost bucket take no real time). `fake_shop.url` is its base URL."""
    shop = FakeShop()
    httpserver.expect_request(PATH, method="POST").respond_with_handler(shop.handle)
    httpserver.expect_request(re.compile(r"^/bulk/.*$")).respond_with_handler(shop.serve_bulk)
    shop.url = httpserver.url_for("/").rstrip("/")
    monkeypatch.setattr(
        connector,
        "CLIENT_OPTIONS",
        {"clock": shop.clock, "sleep": shop.clock.sleep, "timeout": 1.0},
    )
    return shop


@pytest.fixture
def connect(fake_shop):
    """`connect(world, **kw)`: world's tenant connected to the fake shop (as its owner would)."""
    from pricing_saas.integrations import services
    from tenants.context import tenant_context

    def connect(world, **kw):
        with tenant_context(world.tenant):
            return services.connect(
                platform="shopify",
                shop_url=kw.pop("shop_url", "https://fake-shop.myshopify.com"),
                api_base_url=fake_shop.url,
                access_token=kw.pop("access_token", fake_shop.token),
                app_secret=kw.pop("app_secret", "app-secret"),
                **kw,
            )

    return connect


@pytest.fixture
def sync():
    """`sync(world, connection, kind="all", full=False)`: run one sync now, return the run."""
    from pricing_saas.integrations import services
    from tenants.context import tenant_context

    def sync(world, connection, kind="all", full=False):
        with tenant_context(world.tenant):
            run = services.start_sync(connection=connection, kind=kind, full=full, enqueue=False)
            return services.run_sync(run_id=run.pk)

    return sync


@pytest.fixture
def fake_woo(httpserver, monkeypatch):
    """A fake WooCommerce shop on 127.0.0.1; the connector's waits (backoff, Retry-After) are
    recorded in `fake_woo.slept` instead of slept. `fake_woo.url` is its base URL."""
    from pricing_saas.integrations.woocommerce import connector as woo_connector

    from .fake_woocommerce import PATH as WOO_PATH
    from .fake_woocommerce import FakeWoo

    shop = FakeWoo()
    shop.slept = []
    httpserver.expect_request(WOO_PATH).respond_with_handler(shop.handle)
    shop.url = httpserver.url_for("/").rstrip("/")
    monkeypatch.setattr(
        woo_connector, "CLIENT_OPTIONS", {"sleep": shop.slept.append, "timeout": 0.5}
    )
    return shop


@pytest.fixture
def connect_woo(fake_woo):
    """`connect_woo(world, **kw)`: world's tenant connected to the fake WooCommerce shop."""
    from pricing_saas.integrations import services
    from tenants.context import tenant_context

    def connect(world, **kw):
        with tenant_context(world.tenant):
            return services.connect(
                platform="woocommerce",
                shop_url=kw.pop("shop_url", "https://fake-woo.example.com"),
                api_base_url=fake_woo.url,
                consumer_key=kw.pop("consumer_key", fake_woo.key),
                consumer_secret=kw.pop("consumer_secret", fake_woo.secret),
                app_secret=kw.pop("app_secret", "hook-secret"),
                **kw,
            )

    return connect
