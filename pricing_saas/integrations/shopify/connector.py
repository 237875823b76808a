"""A connection's Shopify client, and the connection checks (test-connection)."""

from __future__ import annotations

from typing import Any

from . import queries
from .client import ShopifyAuthError, ShopifyClient

# Extra ShopifyClient arguments (tests share a simulated clock with the fake shop).
CLIENT_OPTIONS: dict[str, Any] = {}


def client_for(connection) -> ShopifyClient:
    """The connection's client; credentials no configured key can read are refused like a
    revoked token (the connection then shows failing, with the reason)."""
    from ..crypto import DecryptionError

    try:
        token = connection.secrets().get("access_token", "")
    except DecryptionError as exc:
        raise ShopifyAuthError(f"{exc} (FIELD_ENCRYPTION_KEYS); connect the shop again") from None
    return ShopifyClient(base_url=connection.base_url, token=token, **CLIENT_OPTIONS)


def client_with(*, base_url: str, token: str) -> ShopifyClient:
    return ShopifyClient(base_url=base_url, token=token, **CLIENT_OPTIONS)


def shop_info(client: ShopifyClient) -> dict:
    """{name, currencyCode, myshopifyDomain}: proves the token works."""
    return client.execute(queries.SHOP, operation="Shop")["shop"] or {}
