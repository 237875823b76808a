"""Writes of the integrations app: connect, test, disconnect shops; start and run syncs.

Every change of a connection is an audit event (`tenants.audit.record`, inside the
transaction); its credentials never appear in one, nor in a log line or an answer.
"""

from __future__ import annotations

import logging
from secrets import token_urlsafe
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pricing_saas.web.addresses import refuse_private
from pricing_saas.web.errors import ConflictError, NotFoundError, ServiceError
from tenants import audit
from tenants.context import get_current_actor, require_current_tenant

from .crypto import DecryptionError
from .errors import ConnectorAuthError, ConnectorError, ConnectorTransientError
from .models import Connection, SyncRun

logger = logging.getLogger(__name__)

AUDITED = ["platform", "shop_url", "api_base_url", "status", "status_reason", "publishes"]


def _check_url(value: str, attr: str) -> str:
    value = (value or "").strip().rstrip("/")
    parts = urlsplit(value)
    allowed = ("https", "http") if settings.CONNECTOR_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        raise ServiceError(
            f"{attr} must be an {' or '.join(allowed)} address such as "
            "https://example.myshopify.com",
            attr=attr,
        )
    if parts.query or parts.fragment or parts.username:
        raise ServiceError(
            f"{attr} must be a plain address, without query or credentials", attr=attr
        )
    if not settings.CONNECTOR_ALLOW_PRIVATE:
        try:
            refuse_private(parts.hostname, parts.port)
        except ValueError as exc:
            raise ServiceError(f"{attr}: {exc}", code="invalid", attr=attr) from None
    return value


def _check_shopify_token(token: str) -> str:
    token = (token or "").strip()
    if not token:
        raise ServiceError(
            "access_token is required (the Admin API access token)", attr="access_token"
        )
    if len(token) > 500 or any(c.isspace() for c in token):
        raise ServiceError("access_token is not a valid token", attr="access_token")
    return token


def _check_woo_key(value: str, attr: str, prefix: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ServiceError(
            f"{attr} is required (WooCommerce > Settings > Advanced > REST API)", attr=attr
        )
    if len(value) > 200 or any(c.isspace() for c in value) or not value.startswith(prefix):
        raise ServiceError(f"{attr} is not a WooCommerce key (it starts with {prefix})", attr=attr)
    return value


def _credentials(platform: str, values: dict) -> dict[str, str]:
    """The secrets a platform needs, checked for shape (not yet against the shop)."""
    if platform == Connection.Platform.SHOPIFY:
        return {"access_token": _check_shopify_token(values.get("access_token", ""))}
    return {
        "consumer_key": _check_woo_key(values.get("consumer_key", ""), "consumer_key", "ck_"),
        "consumer_secret": _check_woo_key(
            values.get("consumer_secret", ""), "consumer_secret", "cs_"
        ),
    }


def check_shop(*, platform: str, base_url: str, secrets: dict[str, str]) -> dict:
    """Test-connection: read the shop with the credentials. {name, currencyCode}, or a
    ServiceError naming the field that is wrong (the credential for a refusal, `shop_url` for a
    shop that cannot be reached)."""
    if platform == Connection.Platform.SHOPIFY:
        from .shopify.connector import client_with, shop_info

        client = client_with(base_url=base_url, token=secrets.get("access_token", ""))
        credential = "access_token"
    else:
        from .woocommerce.connector import client_with, shop_info

        client = client_with(
            base_url=base_url,
            key=secrets.get("consumer_key", ""),
            secret=secrets.get("consumer_secret", ""),
        )
        credential = "consumer_key"
    client.max_retries = 1
    try:
        return shop_info(client)
    except ConnectorAuthError as exc:
        raise ServiceError(str(exc), code="connection_refused", attr=credential) from None
    except ConnectorTransientError as exc:
        raise ServiceError(
            f"the shop could not be reached: {exc}", code="unreachable", attr="shop_url"
        ) from None
    except ConnectorError as exc:
        raise ServiceError(
            f"the shop answered with an error: {exc}", code="shop_error", attr="shop_url"
        ) from None
    finally:
        client.close()


def connect(
    *,
    platform: str,
    shop_url: str,
    access_token: str = "",
    app_secret: str = "",
    consumer_key: str = "",
    consumer_secret: str = "",
    api_base_url: str = "",
    publishes: bool = True,
) -> Connection:
    """Connect a shop: the credentials are tested first (nothing is stored if the shop refuses
    them), then stored encrypted. Shopify takes an Admin API access token; WooCommerce a
    consumer key and secret. `app_secret` is the secret webhooks are signed with (Shopify: the
    app's client secret; WooCommerce: the webhook's secret)."""
    tenant = require_current_tenant()
    if platform not in Connection.Platform.values:
        raise ServiceError(
            f"platform {platform!r} is not supported: use one of "
            f"{', '.join(Connection.Platform.values)}",
            code="invalid_choice",
            attr="platform",
        )
    shop_url = _check_url(shop_url, "shop_url")
    api_base_url = _check_url(api_base_url, "api_base_url") if api_base_url else ""
    secrets = _credentials(
        platform,
        {
            "access_token": access_token,
            "consumer_key": consumer_key,
            "consumer_secret": consumer_secret,
        },
    )
    earlier = Connection.objects.filter(platform=platform, shop_url=shop_url).first()
    if earlier is not None and earlier.status != Connection.Status.DISCONNECTED:
        raise ConflictError(
            f"{shop_url} is already connected", code="already_connected", attr="shop_url"
        )
    info = check_shop(platform=platform, base_url=api_base_url or shop_url, secrets=secrets)
    currency = (info.get("currencyCode") or "").upper()
    if currency and currency != tenant.default_currency:
        raise ServiceError(
            f"the shop sells in {currency}, your account in {tenant.default_currency}: prices "
            "and sales would not compare; connect a shop in your account's currency",
            code="currency_mismatch",
            attr="shop_url",
        )
    with transaction.atomic():
        # A shop disconnected before comes back as the same connection: what was synced from it
        # (its variants, order lines, sync position) carries on.
        connection = (
            Connection.objects.select_for_update().filter(pk=earlier.pk).first()
            if earlier is not None
            else None
        )
        if connection is not None and connection.status != Connection.Status.DISCONNECTED:
            raise ConflictError(
                f"{shop_url} is already connected", code="already_connected", attr="shop_url"
            )
        before = audit.snapshot(connection, AUDITED) if connection is not None else None
        connection = connection or Connection(
            tenant=tenant,
            platform=platform,
            shop_url=shop_url,
            created_by=get_current_actor()[1][:200],
        )
        connection.api_base_url = api_base_url
        connection.name = (info.get("name") or connection.name or "")[:200]
        connection.currency = currency
        connection.publishes = publishes
        connection.status, connection.status_reason = Connection.Status.CONNECTED, ""
        connection.last_tested_at = timezone.now()
        connection.set_secrets(
            {**secrets, **({"app_secret": app_secret.strip()} if app_secret else {})}
        )
        connection.save()
        audit.record(
            "connection.create" if before is None else "connection.reconnect",
            target=connection,
            summary=f"{connection.get_platform_display()} shop {shop_url} "
            + ("connected" if before is None else "connected again"),
            before=before,
            after={
                **audit.snapshot(connection, AUDITED),
                "credentials": "set (encrypted)",
                "webhook_secret": "set" if app_secret else "not set",
            },
        )
    return connection


def _set_status(connection: Connection, status: str, reason: str = "", **fields) -> None:
    before = audit.snapshot(connection, AUDITED)
    changed = connection.status != status or connection.status_reason != reason[:500]
    connection.status, connection.status_reason = status, reason[:500]
    for name, value in fields.items():
        setattr(connection, name, value)
    connection.save()
    if changed:
        audit.record(
            "connection.status",
            target=connection,
            summary=f"{connection.shop_url}: {status}" + (f" ({reason[:200]})" if reason else ""),
            before=before,
            after=audit.snapshot(connection, AUDITED),
        )


@transaction.atomic
def mark_failing(*, connection: Connection, reason: str) -> None:
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    if connection.status != Connection.Status.DISCONNECTED:
        _set_status(connection, Connection.Status.FAILING, reason)


def test_connection(*, connection: Connection) -> Connection:
    """Read the shop again with the stored token; the status says what happened."""
    if connection.status == Connection.Status.DISCONNECTED or not connection.has_credentials:
        raise ConflictError(
            "this connection is disconnected; connect the shop again", code="disconnected"
        )
    try:
        try:
            secrets = connection.secrets()
        except DecryptionError as exc:
            raise ServiceError(
                f"{exc} (FIELD_ENCRYPTION_KEYS); connect the shop again", attr="credentials"
            ) from None
        info = check_shop(
            platform=connection.platform, base_url=connection.base_url, secrets=secrets
        )
    except ServiceError as exc:
        with transaction.atomic():
            locked = Connection.objects.select_for_update().get(pk=connection.pk)
            _set_status(
                locked, Connection.Status.FAILING, exc.detail, last_tested_at=timezone.now()
            )
        return locked
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        _set_status(
            locked,
            Connection.Status.CONNECTED,
            "",
            last_tested_at=timezone.now(),
            name=(info.get("name") or locked.name)[:200],
        )
    return locked


@transaction.atomic
def update_connection(*, connection: Connection, **values) -> Connection:
    """Change what may change without reconnecting: publishes, the API address, the webhook
    secret (a new access token means connecting again)."""
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    if connection.status == Connection.Status.DISCONNECTED:
        raise ConflictError("this connection is disconnected", code="disconnected")
    before = audit.snapshot(connection, AUDITED)
    if "publishes" in values:
        connection.publishes = bool(values["publishes"])
    if "api_base_url" in values:
        url = values["api_base_url"]
        connection.api_base_url = _check_url(url, "api_base_url") if url else ""
    secret_changed = "app_secret" in values
    if secret_changed:
        secrets = connection.secrets()
        secrets["app_secret"] = (values["app_secret"] or "").strip()
        connection.set_secrets(secrets)
    connection.save()
    audit.record(
        "connection.update",
        target=connection,
        summary=f"{connection.shop_url} changed",
        before=before,
        after={
            **audit.snapshot(connection, AUDITED),
            **({"webhook_secret": "replaced"} if secret_changed else {}),
        },
    )
    return connection


@transaction.atomic
def disconnect(*, connection: Connection, reason: str = "") -> Connection:
    """Delete the credentials and stop syncing and publishing through this shop. What was
    imported from it stays."""
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    before = audit.snapshot(connection, AUDITED)
    connection.credentials = ""
    connection.status = Connection.Status.DISCONNECTED
    connection.status_reason = reason[:500]
    connection.save()
    audit.record(
        "connection.disconnect",
        target=connection,
        summary=f"{connection.shop_url} disconnected; credentials deleted"
        + (f" ({reason})" if reason else ""),
        before=before,
        after={**audit.snapshot(connection, AUDITED), "credentials": "deleted"},
    )
    return connection


def register_webhooks(*, connection: Connection) -> dict[str, str]:
    """Subscribe the shop's webhooks to this connection's address (those missing only); returns
    {topic: "created" | "present" | the shop's refusal}. A WooCommerce connection without a
    webhook secret gets one (the shop signs with it)."""
    from .api import webhook_url
    from .webhook_subscriptions import subscribe

    if connection.status == Connection.Status.DISCONNECTED or not connection.has_credentials:
        raise ConflictError(
            "this connection is disconnected; connect the shop again", code="disconnected"
        )
    url = webhook_url(connection)
    allowed = ("https", "http") if settings.CONNECTOR_ALLOW_HTTP else ("https",)
    if urlsplit(url).scheme not in allowed:
        raise ServiceError(
            f"the shop can only call an https address; PUBLIC_BASE_URL gives {url}",
            code="not_https",
        )
    new_secret = False
    if connection.platform == Connection.Platform.WOOCOMMERCE:
        with transaction.atomic():  # stored before any hook is made with it
            connection = Connection.objects.select_for_update().get(pk=connection.pk)
            secrets = connection.secrets()
            if not secrets.get("app_secret"):
                secrets["app_secret"] = token_urlsafe(32)
                connection.set_secrets(secrets)
                connection.save(update_fields=["credentials", "updated_at"])
                new_secret = True
    try:
        outcome = subscribe(connection, url, new_secret=new_secret)
    except ConnectorAuthError as exc:
        mark_failing(connection=connection, reason=str(exc))
        raise ServiceError(str(exc), code="connection_refused") from None
    except ConnectorError as exc:
        raise ServiceError(
            f"the shop refused the subscriptions: {exc}", code="shop_error"
        ) from None
    with transaction.atomic():
        locked = Connection.objects.get(pk=connection.pk)
        audit.record(
            "connection.webhooks",
            target=locked,
            summary=f"{locked.shop_url}: webhooks subscribed to {url}",
            after={
                "topics": outcome,
                **({"webhook_secret": "made and stored"} if new_secret else {}),
            },
        )
    return outcome


def get_connection(pk: int) -> Connection:
    connection = Connection.objects.filter(pk=pk).first()
    if connection is None:
        raise NotFoundError(f"no connection {pk}", attr="connection")
    return connection


# --- syncs ------------------------------------------------------------------------------------


@transaction.atomic
def start_sync(
    *,
    connection: Connection,
    kind: str = SyncRun.Kind.ALL,
    full: bool = False,
    trigger: str = "manual",
    enqueue: bool = True,
) -> SyncRun:
    """Queue a sync of a connected shop (one at a time per connection: a running one is
    returned instead)."""
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    if connection.status == Connection.Status.DISCONNECTED or not connection.has_credentials:
        raise ConflictError(
            "this connection is disconnected; connect the shop again", code="disconnected"
        )
    if kind not in SyncRun.Kind.values:
        raise ServiceError(
            f"unknown kind {kind!r}: use one of {', '.join(SyncRun.Kind.values)}", attr="kind"
        )
    active = SyncRun.lock_active(connection=connection)
    if active is not None:
        return active
    run = SyncRun.objects.create(
        tenant=connection.tenant,
        connection=connection,
        kind=kind,
        full=full,
        trigger=trigger,
        created_by=get_current_actor()[1][:200],
    )
    audit.record(
        "connection.sync",
        target=connection,
        summary=f"{connection.shop_url}: {run.get_kind_display().lower()} sync started"
        + (" (full)" if full else ""),
        after={"sync_run": run.pk, "kind": kind, "full": full, "trigger": trigger},
    )
    if enqueue:
        from .tasks import sync as sync_task

        tenant_id, pk = run.tenant_id, run.pk
        transaction.on_commit(lambda: sync_task.delay(tenant_id, pk))
    return run


def run_sync(*, run_id: int) -> SyncRun | None:
    """Run a queued sync (idempotent: only a queued run is claimed). A refused token stops it,
    marks the connection failing and keeps what was synced; the next sync resumes from the
    stored cursor."""
    from .shopify import pull as shopify_pull
    from .woocommerce import pull as woocommerce_pull

    pull = shopify_pull if run_platform(run_id) == Connection.Platform.SHOPIFY else woocommerce_pull
    run, claimed = SyncRun.claim(run_id)
    if not claimed:
        return run
    connection = run.connection
    try:
        pull.sync(run=run, connection=connection)
    except ConnectorAuthError as exc:
        mark_failing(connection=connection, reason=str(exc))
        run.refresh_from_db()
        run.fail(f"stopped: {exc}; what was synced before is kept, the next sync resumes")
    except ConnectorError as exc:
        run.refresh_from_db()
        run.fail(f"stopped: {exc}; what was synced before is kept, the next sync resumes")
    except Exception as exc:
        logger.exception("sync %s crashed", run.pk)
        run.refresh_from_db()
        run.fail(f"internal error: {exc.__class__.__name__}")
        raise
    else:
        with transaction.atomic():  # the shop answered all along: it works again
            locked = Connection.objects.select_for_update().get(pk=connection.pk)
            if locked.status == Connection.Status.FAILING:
                _set_status(locked, Connection.Status.CONNECTED, "")
    return run


def run_platform(run_id: int) -> str:
    return (
        SyncRun.objects.filter(pk=run_id).values_list("connection__platform", flat=True).first()
        or ""
    )
