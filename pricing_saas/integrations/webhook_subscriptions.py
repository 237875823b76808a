"""Subscribing a shop's webhooks to the connection's own address, so a merchant does not have to
copy it into the shop's admin by hand. Idempotent: a subscription of the same topic to the same
address is left as it is; only the missing ones are created.

- Shopify (Admin GraphQL 2025-07): `webhookSubscriptions`, then `webhookSubscriptionCreate`
  for products/update, orders/create, orders/updated and app/uninstalled. Shopify signs them
  with the app's client secret, which the connection must hold to verify them.
- WooCommerce (REST v3): `GET webhooks`, then `POST webhooks` for product.created,
  product.updated, order.created and order.updated, API version v3, with the connection's
  webhook secret (one is made and stored when the connection has none: WooCommerce signs with
  whatever secret the subscription was given).
"""

from __future__ import annotations

import secrets as random

from .models import Connection

WOO_TOPICS = ("product.created", "product.updated", "order.created", "order.updated")


def subscribe(connection: Connection, url: str) -> tuple[dict[str, str], str | None]:
    """({topic: "created" | "present" | the shop's refusal}, a new webhook secret to store or
    None)."""
    if connection.platform == Connection.Platform.SHOPIFY:
        return _shopify(connection, url), None
    return _woocommerce(connection, url)


def _shopify(connection: Connection, url: str) -> dict[str, str]:
    from .shopify import queries
    from .shopify.connector import client_for

    client = client_for(connection)
    client.max_retries = 1  # a person waits on the answer: fail fast, say why
    try:
        data = client.execute(queries.WEBHOOKS, operation="Webhooks", estimate=12)
        present = {
            node["topic"]
            for node in (data.get("webhookSubscriptions") or {}).get("nodes") or []
            if ((node.get("endpoint") or {}).get("callbackUrl") or "") == url
        }
        outcome = {}
        for topic in queries.WEBHOOK_TOPICS:
            if topic in present:
                outcome[topic] = "present"
                continue
            answer = client.execute(
                queries.WEBHOOK_CREATE,
                {"topic": topic, "subscription": {"callbackUrl": url, "format": "JSON"}},
                operation="WebhookCreate",
                estimate=queries.MUTATION_COST,
            )
            errors = (answer.get("webhookSubscriptionCreate") or {}).get("userErrors") or []
            outcome[topic] = (
                "refused: " + "; ".join(e.get("message", "") for e in errors)
                if errors
                else "created"
            )
        return outcome
    finally:
        client.close()


def _woocommerce(connection: Connection, url: str) -> tuple[dict[str, str], str | None]:
    from .woocommerce.connector import client_for

    secret = connection.secrets().get("app_secret") or ""
    new_secret = None if secret else random.token_urlsafe(32)
    client = client_for(connection)
    client.max_retries = 1  # a person waits on the answer: fail fast, say why
    try:
        existing = client.page("webhooks", {"status": "active"}).items
        present = {hook.get("topic") for hook in existing if hook.get("delivery_url") == url}
        outcome = {}
        for topic in WOO_TOPICS:
            if topic in present:
                outcome[topic] = "present"
                continue
            client.post(
                "webhooks",
                {
                    "name": f"Pricing: {topic}",
                    "topic": topic,
                    "delivery_url": url,
                    "secret": secret or new_secret,
                    "status": "active",
                    "api_version": "wp_api_v3",
                },
            )
            outcome[topic] = "created"
        return outcome, new_secret
    finally:
        client.close()
