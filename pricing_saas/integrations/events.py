"""Processing of stored webhook events, whatever the platform (the `ingest` queue's task).

An event is processed once: it is locked, and only one still `received` is handled; the
platform's handler answers its status and a message. A disconnected connection's events are
ignored; a shop that cannot be read back (a variable product's variations, an order's
refunds) marks the event failed with the reason, and the next sync catches up; an unexpected
error marks the event failed (logged, not raised: the shop was answered
long ago and a retry would not see anything new).
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from .errors import ConnectorError
from .models import Connection, WebhookEvent

logger = logging.getLogger(__name__)


def process(*, event_id: int) -> WebhookEvent | None:
    from .shopify import webhooks as shopify
    from .woocommerce import webhooks as woocommerce

    handlers = {
        Connection.Platform.SHOPIFY: shopify.handle,
        Connection.Platform.WOOCOMMERCE: woocommerce.process,
    }
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.status != WebhookEvent.Status.RECEIVED:
            return event
        connection = event.connection
        try:
            if connection.status == Connection.Status.DISCONNECTED:
                status, message = WebhookEvent.Status.IGNORED, "the connection is disconnected"
            else:
                with transaction.atomic():  # a failing handler leaves nothing half-written
                    status, message = handlers[connection.platform](event)
        except ConnectorError as exc:  # the shop could not be read back: the next sync will
            status, message = WebhookEvent.Status.FAILED, f"{exc}; the next sync catches up"
        except Exception as exc:
            logger.exception("webhook event %s failed", event.pk)
            status, message = WebhookEvent.Status.FAILED, f"internal error: {type(exc).__name__}"
        event.status, event.message = status, message[:500]
        event.save(update_fields=["status", "message"])
    return event


def store(*, connection: Connection, event_id: str, topic: str, triggered_at, payload: dict):
    """Keep a verified event once (unique per connection and event id) and queue it on the
    `ingest` queue: ("queued", event), or ("duplicate", None) for one seen before."""
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                tenant=connection.tenant,
                connection=connection,
                event_id=event_id[:100],
                topic=topic,
                triggered_at=triggered_at,
                payload=payload,
            )
    except IntegrityError:
        return "duplicate", None
    Connection.objects.filter(pk=connection.pk).update(last_webhook_at=timezone.now())
    from .tasks import process_webhook

    tenant_id, pk = event.tenant_id, event.pk
    transaction.on_commit(lambda: process_webhook.delay(tenant_id, pk))
    return "queued", event
