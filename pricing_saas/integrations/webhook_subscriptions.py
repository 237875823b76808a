"""Subscribing a shop's webhooks to the connection's own address, so a merchant does not have to
copy it into the shop's admin by hand. Idempotent: a subscription of the same topic to the same
address is left as it is; only the missing ones are created.

- Shopify (Admin GraphQL 2025-07): `webhookSubscriptions`, then `webhookSubscriptionCreate`
  for products/update, orders/create, orders/updated and app/uninstalled. Shopify signs them
  with the app's client secret, which the connection must hold to verify them.
- WooCommerce (REST v3): `GET webhooks`, then `POST webhooks` for product.created,
  product.updated, order.created and order.updated, API version v3, with the connection's
  webhook secret (one is made and stored first when the connection has none, so a failure
  half-way loses nothing; hooks already there then get it too: WooCommerce signs with whatever
  secret a hook was given).
"""

from __future__ import annotations

from .models import Connection

WOO_TOPICS = ("product.created", "product.updated", "order.created", "order.updated")


def subscribe(connection: Connection, url: str, *, new_secret: bool = False) -> dict[str, str]:
    """{topic: "created" | "present" | "updated" | the shop's refusal}. `new_secret`: the
    connection's webhook secret was just made, so WooCommerce hooks already there (made with a
    secret nobody here knows) get it too."""
    if connection.platform == Connection.Platform.SHOPIFY:
        return _shopify(connection, url)
    return _woocommerce(connection, url, new_secret=new_secret)


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


def _woocommerce(connection: Connection, url: str, *, new_secret: bool) -> dict[str, str]:
    from .woocommerce.connector import client_for

    secret = connection.secrets().get("app_secret") or ""
    client = client_for(connection)
    client.max_retries = 1  # a person waits on the answer: fail fast, say why
    try:
        # `context=edit` answers each hook's secret: one made before with another secret (by
        # hand, or by a registration that failed half-way) is given ours
        existing = client.page("webhooks", {"status": "active", "context": "edit"}).items
        present = {
            hook.get("topic"): hook
            for hook in existing
            if isinstance(hook, dict) and hook.get("delivery_url") == url
        }
        outcome = {}
        for topic in WOO_TOPICS:
            hook = present.get(topic)
            if hook is not None:
                if new_secret or hook.get("secret") != secret:
                    client.post(f"webhooks/{int(hook['id'])}", {"secret": secret})
                    outcome[topic] = "updated"
                else:
                    outcome[topic] = "present"
                continue
            client.post(
                "webhooks",
                {
                    "name": f"Pricing: {topic}",
                    "topic": topic,
                    "delivery_url": url,
                    "secret": secret,
                    "status": "active",
                    "api_version": "wp_api_v3",
                },
            )
            outcome[topic] = "created"
        return outcome
    finally:
        client.close()
