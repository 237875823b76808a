from __future__ import annotations

import pytest

from pricing_saas.integrations.shopify import connector

from .fake_shopify import PATH, FakeShop


@pytest.fixture
def fake_shop(httpserver, monkeypatch):
    """A fake Shopify shop on 127.0.0.1 whose clock the connector's client shares (waits for
    the cost bucket take no real time). `fake_shop.url` is its base URL."""
    shop = FakeShop()
    httpserver.expect_request(PATH, method="POST").respond_with_handler(shop.handle)
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
