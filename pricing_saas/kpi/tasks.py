from __future__ import annotations

import json
import logging
from datetime import date

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from pricing_saas.catalog.models import ImportJob
from tenants.models import Membership
from tenants.roles import Role
from tenants.tasks import tenant_task

from . import alerts, services, undercuts
from .models import Alert, UndercutAlert

logger = logging.getLogger(__name__)

# Webhook delivery: retried on a transport error, 429 and 5xx with growing waits (30 s, 1 min,
# 2 min, ... up to 1 h; 8 tries over about 2 h), never on another 4xx (the receiver refused).
WEBHOOK_RETRIES = 7
WEBHOOK_TIMEOUT_S = 10


def _send_or_retry(task, subject: str, body: str, recipients: list[str]) -> int:
    """Send an alert e-mail; the mail server down: the task tries again later."""
    try:
        return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except OSError as exc:
        raise task.retry(exc=exc) from exc


@tenant_task(name="kpi.refresh", queue="default", time_limit=3600, soft_time_limit=3500)
def refresh(
    self,
    tenant,
    import_job_id: int | None = None,
    since: str | None = None,
    until: str | None = None,
    product_ids: list[int] | None = None,
) -> dict | None:
    """Refresh the tenant's KPI facts: what a finished import touched (`import_job_id`), or the
    days `since`..`until` (ISO dates, None: unbounded) of `product_ids` (None: all); then check
    the alert policy against the outcomes the new sales measure."""
    if import_job_id is not None:
        job = ImportJob.objects.filter(pk=import_job_id).first()
        if job is None or job.status != ImportJob.Status.SUCCEEDED:
            return None
        scope = services.scope_of_import(job)
    else:
        scope = services.Scope(
            since=date.fromisoformat(since) if since else None,
            until=date.fromisoformat(until) if until else None,
            product_ids=None if product_ids is None else tuple(product_ids),
        )
    result = services.refresh_kpis(
        since=scope.since, until=scope.until, product_ids=scope.product_ids
    ).as_dict()
    try:  # the facts are committed: a failing schedule must not make the refresh look failed
        scheduled = alerts.request_evaluation()
    except Exception:
        logger.exception("alert check of tenant %s not scheduled after a KPI refresh", tenant.pk)
        scheduled = None
    try:  # competitor prices or ours may have changed: the undercuts follow
        undercut = undercuts.evaluate().as_dict()
    except Exception:
        logger.exception("undercut checks of tenant %s failed after a KPI refresh", tenant.pk)
        undercut = None
    return {**result, "alert_check_scheduled": scheduled, "undercuts": undercut}


@tenant_task(name="kpi.evaluate_undercuts", queue="default")
def evaluate_undercuts(self, tenant) -> dict:
    return undercuts.evaluate().as_dict()


@tenant_task(name="kpi.evaluate_alerts", queue="default")
def evaluate_alerts(self, tenant) -> list[int]:
    return [a.pk for a in alerts.evaluate()]


@tenant_task(name="kpi.evaluate_when_due", queue="default")
def evaluate_when_due(self, tenant) -> list[int] | None:
    """The alert check scheduled by `alerts.request_evaluation`: run once the tenant's KPI
    refreshes have been quiet for KPI_ALERT_QUIET_S, else wait again for the rest. (Run
    eagerly, as in tests and the demo, there is no later: it checks at once.)"""
    if self.request.is_eager:
        from .models import AlertCheckDue

        AlertCheckDue.objects.all().delete()
        return [a.pk for a in alerts.evaluate()]
    result = alerts.evaluate_if_due()
    if isinstance(result, float):  # a refresh came since: wait the rest (a new task, no retry
        # count to run out however long an upload goes on)
        tenant_id, wait = tenant.pk, max(1, round(result))
        transaction.on_commit(lambda: evaluate_when_due.apply_async((tenant_id,), countdown=wait))
        return None
    return None if result is None else [a.pk for a in result]


@tenant_task(name="kpi.email_alert", queue="default", max_retries=5, default_retry_delay=120)
def email_alert(self, tenant, alert_id: int) -> int:
    """E-mail a newly opened alert to the tenant's owners and admins (once: the alert's row is
    locked while the mail goes out and marked sent in the same transaction, so a redelivered
    or concurrent task finds it sent and sends nothing)."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
        if alert is None or alert.emailed_at is not None:
            return 0
        return _email(self, tenant, alert)


def _email(task, tenant, alert: Alert) -> int:
    recipients = sorted(
        Membership.objects.filter(role__in=[Role.OWNER, Role.ADMIN], user__is_active=True)
        .values_list("user__email", flat=True)
        .distinct()
    )
    if not recipients:
        return 0
    link = f"{settings.PUBLIC_BASE_URL.rstrip('/')}/kpi/alerts/"
    body = (
        f"{alert.get_kind_display()} ({alert.subject}) for {tenant.name}.\n\n{alert.message}\n"
        + (
            f"\nA retraining of the demand model was started (v{alert.retraining.version}); it "
            "replaces the version in force only if it beats it on a backtest.\n"
            if alert.retraining
            else ""
        )
        + f"\nSee {link}\n"
    )
    sent = _send_or_retry(
        task, f"[{tenant.name}] Pricing alert: {alert.get_kind_display()}", body, recipients
    )
    Alert.objects.filter(pk=alert.pk).update(emailed_at=timezone.now())
    return sent


@tenant_task(
    name="kpi.deliver_alert_webhook",
    queue="default",
    max_retries=WEBHOOK_RETRIES,
    time_limit=WEBHOOK_TIMEOUT_S * 6,
    soft_time_limit=WEBHOOK_TIMEOUT_S * 5,
)
def deliver_alert_webhook(self, tenant, alert_id: int, event: str) -> str:
    """POST the alert's event, signed, to the policy's webhook (see alerts.sign)."""
    alert = Alert.objects.filter(pk=alert_id).first()
    policy = alerts.policy()
    if alert is None or not policy.webhook_url or not policy.has_signing_key:
        return "skipped"
    attempt = self.request.retries + 1

    def done(status: str, error: str = "") -> str:
        Alert.objects.filter(pk=alert.pk).update(
            webhook_status=status, webhook_attempts=attempt, webhook_error=error[:300]
        )
        return status

    event_body = alerts.payload(alert, event)
    return _deliver(self, policy, event, event_body, done, attempt)


def _deliver(task, policy, event: str, event_body: dict, done, attempt: int) -> str:
    """POST one event, signed with the policy's key, to its webhook; `done(status, error)`
    records the outcome on the rows the event is about."""
    import httpx

    from pricing_saas.web.errors import ServiceError

    try:  # again: DNS may have changed since saved; then connect to the address checked
        address = alerts.check_webhook_url(policy.webhook_url)
    except ServiceError as exc:
        return done("failed", exc.detail)
    url, host_header, extensions = alerts.pinned(policy.webhook_url, address)
    body = json.dumps(event_body, sort_keys=True, default=str).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "pricing-saas-webhooks/1",
        "X-Pricing-Event": event,
        "X-Pricing-Delivery": event_body["id"],
        alerts.SIGNATURE_HEADER: alerts.sign(policy.signing_key(), body),
        **host_header,
    }
    try:
        # the status is all that is read (a slow or huge body cannot hold the worker), no proxy
        # from the environment, no redirect to follow
        with (
            httpx.Client(trust_env=False, timeout=WEBHOOK_TIMEOUT_S) as client,
            client.stream(
                "POST",
                url,
                content=body,
                headers=headers,
                follow_redirects=False,
                extensions=extensions,
            ) as response,
        ):
            status_code = response.status_code
            retry_after = response.headers.get("Retry-After", "")
    except httpx.HTTPError as exc:
        error = f"{exc.__class__.__name__}: {exc}"
        return _retry_or_fail(task, done, attempt, error)
    if 200 <= status_code < 300:
        return done("sent")
    error = f"HTTP {status_code}"
    if status_code == 429 or status_code >= 500:
        wait = retry_after
        return _retry_or_fail(task, done, attempt, error, int(wait) if wait.isdigit() else None)
    return done("failed", error + " (the receiver refused it; not retried)")


def _retry_or_fail(task, done, attempt: int, error: str, wait: int | None = None) -> str:
    if attempt > WEBHOOK_RETRIES:
        return done("failed", f"{error} (gave up after {attempt} tries)")
    done("retrying", error)
    countdown = wait if wait is not None else min(30 * 2 ** (attempt - 1), 3600)
    raise task.retry(countdown=min(countdown, 3600))


# --- competitor undercuts ----------------------------------------------------------------------

UNDERCUTS_LISTED = 50  # in the e-mail; the portal lists them all


@tenant_task(name="kpi.email_undercuts", queue="default", max_retries=5, default_retry_delay=120)
def email_undercuts(self, tenant, alert_ids: list[int]) -> int:
    """One e-mail to owners and admins listing the undercut alerts an evaluation opened (those
    not e-mailed yet and still open: a redelivered task sends nothing twice)."""
    with transaction.atomic():
        rows = list(
            UndercutAlert.objects.select_for_update(of=("self",))
            .select_related("product")
            .filter(pk__in=alert_ids, emailed_at__isnull=True, status=UndercutAlert.Status.OPEN)
            .order_by("-gap", "pk")
        )
        if not rows:
            return 0
        recipients = sorted(
            Membership.objects.filter(role__in=[Role.OWNER, Role.ADMIN], user__is_active=True)
            .values_list("user__email", flat=True)
            .distinct()
        )
        if not recipients:
            return 0
        lines = [
            f"- {a.product.sku} {a.product.title[:60]}: {a.competitor} sells at "
            f"{a.their_price:.2f}, {100 * a.gap:.1f} % below our {a.our_price:.2f}"
            for a in rows[:UNDERCUTS_LISTED]
        ]
        more = len(rows) - UNDERCUTS_LISTED
        link = f"{settings.PUBLIC_BASE_URL.rstrip('/')}/kpi/competitors/undercuts/"
        body = (
            f"{len(rows)} competitor offer{'s' if len(rows) != 1 else ''} for {tenant.name} "
            f"{'are' if len(rows) != 1 else 'is'} below our price by more than the alert "
            f"policy's threshold ({100 * rows[0].threshold:.1f} %), largest gap first:\n\n"
            + "\n".join(lines)
            + (f"\n... and {more} more.\n" if more > 0 else "\n")
            + f"\nSee {link}\n"
        )
        subject = f"[{tenant.name}] {len(rows)} competitor undercut{'s' if len(rows) != 1 else ''}"
        sent = _send_or_retry(self, subject, body, recipients)
        UndercutAlert.objects.filter(pk__in=[a.pk for a in rows]).update(emailed_at=timezone.now())
        return sent


@tenant_task(
    name="kpi.deliver_undercut_webhook",
    queue="default",
    max_retries=WEBHOOK_RETRIES,
    time_limit=WEBHOOK_TIMEOUT_S * 6,
    soft_time_limit=WEBHOOK_TIMEOUT_S * 5,
)
def deliver_undercut_webhook(self, tenant, alert_ids: list[int], event: str) -> str:
    """POST one signed event listing the undercut alerts (see undercuts.payload)."""
    rows = list(UndercutAlert.objects.select_related("product").filter(pk__in=alert_ids)
                .order_by("pk"))  # fmt: skip
    policy = alerts.policy()
    if not rows or not policy.webhook_url or not policy.webhook_secret:
        return "skipped"
    attempt = self.request.retries + 1

    def done(status: str, error: str = "") -> str:
        UndercutAlert.objects.filter(pk__in=[a.pk for a in rows]).update(
            webhook_status=status, webhook_error=error[:300]
        )
        return status

    return _deliver(self, policy, event, undercuts.payload(rows, event), done, attempt)
