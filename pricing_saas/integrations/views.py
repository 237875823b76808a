"""The shop webhook endpoints (Shopify, WooCommerce): no session, no CSRF, a shop's signature
is the authentication.

Both verify first (base64 HMAC-SHA256 of the raw body under the connection's webhook secret,
constant time, before anything is parsed), then store the event once and queue it; the answer
goes back at once. Any failure to verify answers 401 the same way whether the tenant, the
connection or the signature is wrong."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tenants.context import actor_context, tenant_context
from tenants.models import Tenant

from .crypto import DecryptionError
from .models import Connection
from .shopify import webhooks
from .woocommerce import webhooks as woo_webhooks

MAX_BODY = 5 * 1024 * 1024
_PING = re.compile(rb"webhook_id=\d{1,20}")


def _connection_secret(platform: str, pk: int) -> tuple[Connection | None, str]:
    connection = (
        Connection.objects.select_related("tenant")
        .filter(pk=pk, platform=platform)
        .exclude(status=Connection.Status.DISCONNECTED)
        .first()
    )
    secret = ""
    if connection is not None and connection.has_credentials:
        try:
            secret = connection.secrets().get("app_secret", "")
        except DecryptionError:
            secret = ""  # a key dropped too soon: nothing can be verified
    return connection, secret


def _verified(request, slug: str, pk: int, platform: str, header: str, receive: Callable):
    """Verify, parse, and hand `receive(connection, payload)` the event under the tenant."""
    raw = request.body[: MAX_BODY + 1]
    signature = request.headers.get(header, "")
    tenant = Tenant.objects.filter(slug=slug, status=Tenant.Status.ACTIVE).first()
    denied = JsonResponse({"detail": "invalid signature"}, status=401)
    if tenant is None or len(raw) > MAX_BODY:
        webhooks.verify(raw, signature, "")  # the same work as a real check
        return denied
    with tenant_context(tenant), actor_context(None, f"{platform} webhook"):
        connection, secret = _connection_secret(platform, pk)
        if not webhooks.verify(raw, signature, secret):
            return denied
        try:
            payload = json.loads(raw)
        except ValueError:
            return JsonResponse({"detail": "the body is not JSON"}, status=400)
        if not isinstance(payload, dict):
            return JsonResponse({"detail": "the body is not a JSON object"}, status=400)
        return receive(connection, payload)


@csrf_exempt
@require_POST
def shopify_webhook(request, slug: str, pk: int):
    """X-Shopify-Hmac-Sha256; stored once per X-Shopify-Event-Id."""

    def receive(connection, payload):
        event_id = request.headers.get("X-Shopify-Event-Id") or request.headers.get(
            "X-Shopify-Webhook-Id", ""
        )
        if not event_id:
            return JsonResponse({"detail": "X-Shopify-Event-Id is missing"}, status=400)
        outcome, _event = webhooks.receive(
            connection=connection,
            topic=request.headers.get("X-Shopify-Topic", ""),
            event_id=event_id,
            triggered_at=request.headers.get("X-Shopify-Triggered-At", ""),
            payload=payload,
        )
        return JsonResponse({"status": outcome})

    return _verified(
        request, slug, pk, Connection.Platform.SHOPIFY, "X-Shopify-Hmac-Sha256", receive
    )


@csrf_exempt
@require_POST
def woocommerce_webhook(request, slug: str, pk: int):
    """X-WC-Webhook-Signature; stored once per resource version (WooCommerce sends no event
    id). The unsigned ping WooCommerce sends when a webhook is saved (`webhook_id=N`) is
    answered 200 and changes nothing."""
    if not request.headers.get("X-WC-Webhook-Signature") and _PING.fullmatch(request.body):
        return JsonResponse({"status": "pong"})

    def receive(connection, payload):
        outcome, _event = woo_webhooks.receive(
            connection=connection,
            topic=request.headers.get("X-WC-Webhook-Topic", ""),
            payload=payload,
        )
        return JsonResponse({"status": outcome})

    return _verified(
        request, slug, pk, Connection.Platform.WOOCOMMERCE, "X-WC-Webhook-Signature", receive
    )
