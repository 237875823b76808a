"""A connection's Shopify client, and the connection checks (test-connection)."""

from __future__ import annotations

from typing import Any

from . import queries
from .client import ShopifyClient

# Extra ShopifyClient arguments (tests share a simulated clock with the fake shop).
CLIENT_OPTIONS: dict[str, Any] = {}


def client_for(connection) -> ShopifyClient:
    return ShopifyClient(
        base_url=connection.base_url,
        token=connection.secrets().get("access_token", ""),
        **CLIENT_OPTIONS,
    )


def client_with(*, base_url: str, token: str) -> ShopifyClient:
    return ShopifyClient(base_url=base_url, token=token, **CLIENT_OPTIONS)


def shop_info(client: ShopifyClient) -> dict:
    """{name, currencyCode, myshopifyDomain}: proves the token works."""
    return client.execute(queries.SHOP, operation="Shop")["shop"] or {}
