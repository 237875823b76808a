"""A connection's WooCommerce client, and the connection check (test-connection)."""

from __future__ import annotations

from typing import Any

from .client import WooAuthError, WooClient, WooError

# Extra WooClient arguments (tests make waits free).
CLIENT_OPTIONS: dict[str, Any] = {}


def client_for(connection) -> WooClient:
    """The connection's client; credentials no configured key can read are refused like a
    revoked key (the connection then shows failing, with the reason)."""
    from ..crypto import DecryptionError

    _public_or_refused(connection.base_url)

    try:
        secrets = connection.secrets()
    except DecryptionError as exc:
        raise WooAuthError(f"{exc} (FIELD_ENCRYPTION_KEYS); connect the shop again") from None
    return client_with(
        base_url=connection.base_url,
        key=secrets.get("consumer_key", ""),
        secret=secrets.get("consumer_secret", ""),
    )


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
        raise WooError(f"the shop's address is refused: {exc}") from None


def client_with(*, base_url: str, key: str, secret: str) -> WooClient:
    return WooClient(base_url=base_url, key=key, secret=secret, **CLIENT_OPTIONS)


def shop_info(client: WooClient) -> dict:
    """{name, currencyCode}: proves the key works (the store's currency setting needs an
    authenticated key)."""
    data, _ = client.get("settings/general/woocommerce_currency")
    currency = data.get("value") if isinstance(data, dict) else ""
    return {"name": "", "currencyCode": (currency or "").upper()}
