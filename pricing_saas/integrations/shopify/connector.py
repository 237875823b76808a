"""A connection's Shopify client, and the connection checks (test-connection)."""

from __future__ import annotations

from typing import Any

from . import queries
from .client import ShopifyAuthError, ShopifyClient, ShopifyError

# Extra ShopifyClient arguments (tests share a simulated clock with the fake shop).
CLIENT_OPTIONS: dict[str, Any] = {}


def client_for(connection) -> ShopifyClient:
    """The connection's client; credentials no configured key can read are refused like a
    revoked token (the connection then shows failing, with the reason)."""
    from ..crypto import DecryptionError

    _public_or_refused(connection.base_url)

    try:
        token = connection.secrets().get("access_token", "")
    except DecryptionError as exc:
        raise ShopifyAuthError(f"{exc} (FIELD_ENCRYPTION_KEYS); connect the shop again") from None
    return ShopifyClient(base_url=connection.base_url, token=token, **CLIENT_OPTIONS)


def _public_or_refused(url: str) -> None:
    """Again at each use: the name may resolve elsewhere than when the shop was connected."""
    from urllib.parse import urlsplit

    from django.conf import settings

    from pricing_saas.web.addresses import refuse_private

    if settings.CONNECTOR_ALLOW_PRIVATE:
        return
    parts = urlsplit(url)
    try:
        refuse_private(parts.hostname or "", parts.port)
    except ValueError as exc:
        raise ShopifyError(f"the shop's address is refused: {exc}") from None


def client_with(*, base_url: str, token: str) -> ShopifyClient:
    return ShopifyClient(base_url=base_url, token=token, **CLIENT_OPTIONS)


def shop_info(client: ShopifyClient) -> dict:
    """{name, currencyCode, myshopifyDomain}: proves the token works."""
    return client.execute(queries.SHOP, operation="Shop")["shop"] or {}
