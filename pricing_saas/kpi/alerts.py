"""Alerts of the KPI loop: once a burst of KPI refreshes is over (`request_evaluation`: a sync
or a batched upload is checked once, on all its sales) the tenant's published changes are
checked against its alert policy; a breached check raises an alert (once, while it lasts), tells the
admins (portal, e-mail, a signed webhook) and, if the policy says so, retrains the demand model
behind a backtest gate (ml.services.start_training(gate=True)).

The checks, each over the changes measured with the policy's window:
- forecast error: the WAPE of the demand version in force (units per day after its changes,
  against its forecast applied to the counterfactual; pricing.outcomes.accuracy);
- interval coverage: the share of those changes whose outcome lay in the 95 % forecast interval;
- profit shortfall: over the changes published in the last LOOKBACK_DAYS that went out with a
  forecast, the realised profit lift (difference-in-differences, pricing.outcomes.outcome)
  against the forecast lift: an alert when even the upper end of its 95 % interval falls short
  of the forecast by more than the policy's share. Judged at the upper end, so noise alone
  raises it in about 2.5 % of checks at most.
A check with fewer than `min_changes` measured changes judges nothing (an open alert stays).
An open alert closes only once its figure is back past the limit by the policy's
`resolve_margin` of it (hysteresis), and a kind of alert that closed opens again only after
`cooldown_hours`, so a figure hovering at a limit does not mail the admins at every check.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ml.models import ModelVersion
from ml.selectors import promoted_version
from pricing_saas.pricing.models import PriceChange
from pricing_saas.pricing.outcomes import MIN_DAYS, accuracy, outcome
from pricing_saas.web.errors import ConflictError, NotFoundError, ServiceError
from tenants import audit
from tenants.context import require_current_tenant

from .models import Alert, AlertCheckDue, AlertPolicy

RETRAIN_MIN_NEW_DAYS = 14  # no gated retraining before the version in force misses this many days
STALE_CHECK = timedelta(hours=1)  # a scheduled check this late was lost (a worker died): resend
LOOKBACK_DAYS = 90  # the profit check reads the changes published this many days back
LOCK_CLASS = 0x414C54  # "ALT": one evaluation per tenant at a time
POLICY_FIELDS = [
    "enabled",
    "window_days",
    "min_changes",
    "max_wape",
    "min_coverage",
    "max_profit_shortfall",
    "resolve_margin",
    "cooldown_hours",
    "retrain",
    "email_admins",
    "webhook_url",
    "undercut_threshold",
]
SIGNATURE_HEADER = "X-Pricing-Signature"
SIGNATURE_TOLERANCE_S = 300  # what receivers are told to accept (README)


# --- the policy --------------------------------------------------------------------------------


def policy() -> AlertPolicy:
    """The tenant's policy, or the defaults (unsaved) until an admin saves one."""
    found = AlertPolicy.objects.first()
    return found or AlertPolicy(tenant=require_current_tenant())


def _share(name: str, value, low: float = 0.0, high: float = 1.0) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ServiceError(f"{name} must be a number", code="invalid", attr=name) from None
    if not number.is_finite() or not low <= number <= high:
        raise ServiceError(
            f"{name} must be between {low:g} and {high:g} (a share: 0.5 is 50 %)",
            code="invalid",
            attr=name,
        )
    return number.quantize(Decimal("0.001"))


def check_webhook_url(url: str) -> str | None:
    """A webhook goes to an http(s) address outside this platform's own networks (unless
    ALERT_WEBHOOK_ALLOW_PRIVATE, for tests and on-premises set-ups); https in production.
    Returns the address checked (None where private addresses are allowed): a delivery
    connects to that very address (`pinned`), so a name that resolves to a public address when
    checked and to a private one a moment later (DNS rebinding) cannot reach inside."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number of 0-65535
    except ValueError:
        raise ServiceError(
            "webhook_url is not a valid address", code="invalid", attr="webhook_url"
        ) from None
    allowed = ("http", "https") if settings.ALERT_WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        raise ServiceError(
            f"webhook_url must be an {' or '.join(allowed)} address", code="invalid",
            attr="webhook_url",
        )  # fmt: skip
    if settings.ALERT_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        raise ServiceError(
            f"webhook_url: host {parts.hostname!r} does not resolve",
            code="invalid",
            attr="webhook_url",
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ServiceError(
                f"webhook_url: {parts.hostname} is a private or local address ({address})",
                code="invalid",
                attr="webhook_url",
            )
    return str(ipaddress.ip_address(infos[0][4][0])) if infos else None


def pinned(url: str, address: str | None) -> tuple[str, dict, dict]:
    """(the URL to connect to, extra headers, httpx request extensions): the host replaced by
    the address checked, the name kept in the Host header and, for https, in the TLS server
    name (SNI), against which the certificate is verified."""
    parts = urlsplit(url)
    try:
        ipaddress.ip_address(parts.hostname or "")
        literal = True  # an address already: nothing to resolve, nothing to pin
    except ValueError:
        literal = False
    if address is None or literal:
        return url, {}, {}
    port = f":{parts.port}" if parts.port else ""
    userinfo = parts.netloc.rpartition("@")[0]
    host = f"[{address}]" if ":" in address else address
    netloc = (f"{userinfo}@" if userinfo else "") + host + port
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), {"Host": parts.hostname + port}, extensions


@transaction.atomic
def save_policy(**values) -> AlertPolicy:
    """Change the policy (only the fields given); every change is an audit event."""
    existed = AlertPolicy.objects.exists()
    # two first saves at once: one creates the row, both then edit it under its lock
    AlertPolicy.objects.get_or_create(tenant=require_current_tenant())
    current = AlertPolicy.objects.select_for_update().get()
    before = audit.snapshot(current, POLICY_FIELDS) if existed else None
    unknown = set(values) - set(POLICY_FIELDS)
    if unknown:
        raise ServiceError(f"unknown setting {sorted(unknown)[0]!r}", code="invalid")
    for name in ("enabled", "retrain", "email_admins"):
        if name in values:
            setattr(current, name, bool(values[name]))
    if "window_days" in values:
        days = _whole("window_days", values["window_days"])
        if not MIN_DAYS <= days <= 365:
            raise ServiceError(
                f"window_days must be {MIN_DAYS}-365", code="invalid", attr="window_days"
            )
        current.window_days = days
    if "min_changes" in values:
        count = _whole("min_changes", values["min_changes"])
        if not 1 <= count <= 100_000:
            raise ServiceError("min_changes must be 1-100000", code="invalid", attr="min_changes")
        current.min_changes = count
    if "max_wape" in values:
        current.max_wape = _share("max_wape", values["max_wape"], 0.0, 10.0)
    if "min_coverage" in values:
        current.min_coverage = _share("min_coverage", values["min_coverage"])
    if "max_profit_shortfall" in values:
        shortfall = values["max_profit_shortfall"]
        # above 1: an alert only once the changes lose money outright, by that much
        current.max_profit_shortfall = _share("max_profit_shortfall", shortfall, 0.0, 10.0)
    if "resolve_margin" in values:
        current.resolve_margin = _share("resolve_margin", values["resolve_margin"])
    if "cooldown_hours" in values:
        hours = _whole("cooldown_hours", values["cooldown_hours"])
        if not 0 <= hours <= 720:
            raise ServiceError(
                "cooldown_hours must be 0-720", code="invalid", attr="cooldown_hours"
            )
        current.cooldown_hours = hours
    if "webhook_url" in values:
        url = (values["webhook_url"] or "").strip()
        if len(url) > 500:
            raise ServiceError("webhook_url: at most 500 characters", code="invalid",
                               attr="webhook_url")  # fmt: skip
        if url:
            check_webhook_url(url)
            if not current.has_signing_key:  # shown once, in what this call returns
                current.new_webhook_secret = _new_secret()
                try:
                    current.set_signing_key(current.new_webhook_secret)
                except ImproperlyConfigured as exc:  # production without FIELD_ENCRYPTION_KEYS
                    raise ServiceError(
                        "alert webhooks need the operator to set FIELD_ENCRYPTION_KEYS (the key "
                        "that encrypts the webhook's signing key); e-mail alerts work without",
                        code="not_configured",
                        attr="webhook_url",
                    ) from exc
        else:
            current.set_signing_key("")
        current.webhook_url = url
    threshold_before = current.undercut_threshold
    if "undercut_threshold" in values:
        current.undercut_threshold = _threshold(values["undercut_threshold"])
    current.save()
    if current.undercut_threshold != threshold_before:  # the alerts follow the new threshold
        from .tasks import evaluate_undercuts

        tenant_id = current.tenant_id
        transaction.on_commit(lambda: evaluate_undercuts.delay(tenant_id))
    after = audit.snapshot(current, POLICY_FIELDS)
    if before != after:
        audit.record(
            "kpi.alert_policy_changed",
            target=current,
            summary="alert policy changed",
            before=before,
            after=after,
        )
    return current


def _threshold(value) -> Decimal | None:
    """The undercut threshold: a share above 0 and at most 0.9; None or blank: no alerts."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _share("undercut_threshold", value, 0.0, 0.9)
    if number <= 0:
        raise ServiceError(
            "undercut_threshold must be above 0 (leave it empty for no undercut alerts)",
            code="invalid",
            attr="undercut_threshold",
        )
    return number


def _whole(name: str, value) -> int:
    if isinstance(value, bool):
        raise ServiceError(f"{name} must be a whole number", code="invalid", attr=name)
    try:
        return int(str(value).strip(), 10)
    except ValueError:
        raise ServiceError(f"{name} must be a whole number", code="invalid", attr=name) from None


def _new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


@transaction.atomic
def rotate_webhook_secret() -> AlertPolicy:
    current = AlertPolicy.objects.select_for_update().first()
    if current is None or not current.webhook_url:
        raise ServiceError("no webhook is set", code="invalid_state", attr="webhook_url")
    current.new_webhook_secret = _new_secret()  # shown once, in what this call returns
    current.set_signing_key(current.new_webhook_secret)
    current.save(update_fields=["webhook_secret", "updated_at"])
    audit.record("kpi.webhook_secret_rotated", target=current, summary="webhook secret replaced")
    return current


def rotate_stored_keys() -> int:
    """The current tenant's signing key re-encrypted under the first FIELD_ENCRYPTION_KEYS key
    (`manage.py rotate_credentials`)."""
    from pricing_saas.integrations import crypto

    done = 0
    for pk, token in AlertPolicy.objects.exclude(webhook_secret="").values_list(
        "pk", "webhook_secret"
    ):
        AlertPolicy.objects.filter(pk=pk).update(webhook_secret=crypto.rotate(token))
        done += 1
    return done


# --- the checks --------------------------------------------------------------------------------


@dataclass
class Check:
    kind: str
    subject: str
    breached: bool | None  # None: too few measured changes to judge
    message: str
    figures: dict = field(default_factory=dict)
    # Back past the limit by the policy's margin: only then does an open alert close (a figure
    # between the two keeps it open, and opens none).
    cleared: bool = True


def _past(value, limit: float, margin: float, *, bad_above: bool) -> bool:
    """`value` on the good side of `limit` by `margin` times |limit| (hysteresis)."""
    if value is None:
        return True
    band = margin * abs(limit)
    return value <= limit - band if bad_above else value >= limit + band


def checks(current: AlertPolicy) -> list[Check]:
    out: list[Check] = []
    margin = float(current.resolve_margin)
    version = promoted_version(ModelVersion.Kind.DEMAND)
    if version is not None:
        subject = f"demand v{version.version}"
        row = next(
            (r for r in accuracy(current.window_days) if r["model_version"] == version.pk), None
        )
        n = row["changes"] if row else 0
        enough = n >= current.min_changes
        wape = row["wape"] if row else None
        coverage = row["coverage"] if row else None
        # the coverage is of the changes whose forecast states an interval
        stated = row["intervals"] if row else 0
        figures = {
            "changes": n, "wape": wape, "coverage": coverage, "bias": row and row["bias"],
            "intervals": stated,
        }  # fmt: skip
        limit, floor = float(current.max_wape), float(current.min_coverage)
        out.append(
            Check(
                Alert.Kind.FORECAST_ERROR,
                subject,
                bool(wape is not None and wape > limit) if enough else None,
                f"Forecast error of {subject} is {_pct(wape)} of units per day over {n} "
                f"measured changes (the policy's limit: {_pct(limit)}).",
                {**figures, "limit": limit},
                _past(wape, limit, margin, bad_above=True),
            )
        )
        out.append(
            Check(
                Alert.Kind.INTERVAL_COVERAGE,
                subject,
                bool(coverage is not None and coverage < floor)
                if stated >= current.min_changes
                else None,
                f"Only {_pct(coverage)} of {stated} measured changes of {subject} landed inside "
                f"their 95 % forecast interval (the policy's floor: {_pct(floor)}).",
                {**figures, "floor": floor},
                coverage is None or coverage >= min(floor * (1 + margin), 1.0),
            )
        )
    since = timezone.now() - timedelta(days=LOOKBACK_DAYS)
    recent = PriceChange.objects.filter(
        published_at__gte=since, forecast_units_new__isnull=False, forecast_units_old__isnull=False
    )
    result = outcome(recent, current.window_days)
    n = len(result.changes)
    shortfall = float(current.max_profit_shortfall)
    forecast = result.forecast_total
    breached, floor = None, float(forecast) * (1 - shortfall)
    if n >= current.min_changes and forecast > 0:
        breached = bool(result.total_high < floor)
    out.append(
        Check(
            Alert.Kind.PROFIT_SHORTFALL,
            f"changes of the last {LOOKBACK_DAYS} days",
            breached,
            f"Realised profit lift {result.total:,.2f} a day (95 % interval {result.total_low:,.2f}"
            f" to {result.total_high:,.2f}) against {forecast:,.2f} forecast, over {n} changes "
            f"published in the last {LOOKBACK_DAYS} days (alert below {_pct(1 - shortfall)} of "
            "the forecast at the interval's upper end).",
            {
                "changes": n,
                "realised": result.total,
                "realised_low": result.total_low,
                "realised_high": result.total_high,
                "forecast": float(forecast),
                "max_shortfall": shortfall,
            },
            _past(result.total_high, floor, margin, bad_above=False),
        )
    )
    return out


def _pct(share) -> str:
    return "—" if share is None else f"{100 * float(share):.0f} %"


# A shop whose refreshes come more often than every KPI_ALERT_QUIET_S would put its check off
# for ever: the check runs at the latest this many quiet periods after the first refresh.
QUIET_AT_MOST = 6


def request_evaluation(*, now=None) -> bool:
    """Schedule the current tenant's alert check for when its KPI refreshes have been quiet for
    KPI_ALERT_QUIET_S (called after each refresh). A sync or an API upload in many batches
    refreshes many times: each call moves the check's due time on, and one task waits for it
    (`evaluate_when_due`), so the check reads all of the new sales, once, instead of opening an
    alert on half an import and closing it on the rest. Returns whether a task was sent."""
    from .tasks import evaluate_when_due

    tenant = require_current_tenant()
    now = now or timezone.now()
    quiet = settings.KPI_ALERT_QUIET_S
    due = now + timedelta(seconds=quiet)
    with transaction.atomic():
        row = AlertCheckDue.objects.select_for_update().filter(tenant=tenant).first()
        waiting = row is not None and row.scheduled_at > now - STALE_CHECK
        if waiting:  # refreshes that never stop still get a check, at most this late
            due = min(due, row.scheduled_at + timedelta(seconds=QUIET_AT_MOST * quiet))
        if row is None:
            row = AlertCheckDue(tenant=tenant, due_at=due, scheduled_at=now)
        row.due_at = due
        if not waiting:
            row.scheduled_at = now
        try:
            with transaction.atomic():  # a concurrent first request inserted it: it waits
                row.save()
        except IntegrityError:
            return False
        if not waiting:
            tenant_id = tenant.pk
            transaction.on_commit(
                lambda: evaluate_when_due.apply_async((tenant_id,), countdown=quiet)
            )
    return not waiting


def evaluate_if_due(*, now=None) -> float | list[Alert] | None:
    """The scheduled check: None if none is due (another task ran it), the seconds still to
    wait if a refresh came since it was scheduled, else the alerts the check opened."""
    now = now or timezone.now()
    with transaction.atomic():
        row = AlertCheckDue.objects.select_for_update().first()
        if row is None:
            return None
        if row.due_at > now:
            row.scheduled_at = now
            row.save(update_fields=["scheduled_at"])
            return (row.due_at - now).total_seconds()
        row.delete()
    return evaluate()


@transaction.atomic
def evaluate(*, wait: bool = True) -> list[Alert]:
    """Run the checks of the current tenant's policy: open an alert for each newly breached
    check (notified, and a gated retraining started if the policy says so), update the ones
    still breached, resolve the ones cleared. Returns the alerts opened. One check at a time
    per tenant: `wait=False` (a person's "check now") answers a ConflictError while another
    runs instead of waiting behind it."""
    tenant = require_current_tenant()
    with connection.cursor() as cur:
        if wait:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s::int)", [LOCK_CLASS, int(tenant.pk)])
        else:
            cur.execute(
                "SELECT pg_try_advisory_xact_lock(%s, %s::int)", [LOCK_CLASS, int(tenant.pk)]
            )
            if not cur.fetchone()[0]:
                raise ConflictError(
                    "a check of the alert policy is running already; see its alerts in a moment",
                    code="check_running",
                )
    current = policy()
    opened: list[Alert] = []
    open_alerts = {(a.kind, a.subject): a for a in Alert.objects.filter(status=Alert.Status.OPEN)}
    if not current.enabled:  # switched off: nothing stays open that nobody checks
        for alert in open_alerts.values():
            _resolve(alert, current, "the alert policy was switched off.")
        return opened
    seen = set()
    cooling = _cooling_down(current)
    for check in checks(current):
        key = (check.kind, check.subject)
        seen.add(key)
        alert = open_alerts.get(key)
        if check.breached or (alert is not None and check.breached is False and not check.cleared):
            if alert is not None:  # still breached, or not yet past the limit by the margin
                alert.message, alert.figures = check.message, check.figures
                alert.save(update_fields=["message", "figures", "checked_at"])
                continue
            if key in cooling:
                continue  # the same alert closed a moment ago: no second e-mail for a blip
            alert = Alert.objects.create(
                kind=check.kind, subject=check.subject, message=check.message,
                figures=check.figures,
            )  # fmt: skip
            opened.append(alert)
            audit.record("kpi.alert_opened", target=alert, summary=check.message)
        elif check.breached is False and alert is not None:
            _resolve(alert, current, "cleared: " + check.message)
    if opened and current.retrain:  # one retraining, whatever number of alerts opened
        too_soon = _too_soon_to_retrain()
        if too_soon:
            for alert in opened:
                alert.figures = {**alert.figures, "retraining_skipped": too_soon}
                alert.save(update_fields=["figures"])
        else:
            version = _retrain(opened)
            if version is not None and version.hyperparameters.get("gate") != "backtest":
                version = None  # a run someone else started, not gated: not this alert's
            Alert.objects.filter(pk__in=[a.pk for a in opened]).update(retraining=version)
            for alert in opened:
                alert.retraining = version
    for alert in opened:
        _notify(alert, "alert.opened", current)
    # an alert about a model version no longer in force is over
    for key, alert in open_alerts.items():
        if key not in seen and alert.subject.startswith("demand v"):
            _resolve(alert, current, f"{alert.subject} is no longer in force.")
    return opened


def _resolve(alert: Alert, current: AlertPolicy, why: str) -> None:
    alert.status, alert.resolved_at = Alert.Status.RESOLVED, timezone.now()
    alert.figures = {**alert.figures, "resolved": why}
    alert.save(update_fields=["status", "resolved_at", "figures", "checked_at"])
    audit.record("kpi.alert_resolved", target=alert, summary=why)
    _notify(alert, "alert.resolved", current, email=False)


def _cooling_down(current: AlertPolicy) -> set[tuple[str, str]]:
    """(kind, subject) of the alerts closed less than the policy's cooldown ago: none of them
    opens again now. Another subject of the same kind (a newer model version) is no blip of
    that alert: it may open."""
    if not current.cooldown_hours:
        return set()
    since = timezone.now() - timedelta(hours=current.cooldown_hours)
    return set(
        Alert.objects.filter(status=Alert.Status.RESOLVED, resolved_at__gte=since).values_list(
            "kind", "subject"
        )
    )


def _too_soon_to_retrain() -> str:
    """Why a gated retraining would be wasted now ("" if it would not): the demand version in
    force saw sales less than RETRAIN_MIN_NEW_DAYS before the newest, so the backtest could not
    judge a challenger (ml.services._challenge would keep the version in force anyway)."""
    from django.db.models import Max

    from pricing_saas.catalog.models import SalesRecord

    version = promoted_version(ModelVersion.Kind.DEMAND)
    seen = version and version.metrics.get("last_day")
    newest = SalesRecord.objects.aggregate(d=Max("date"))["d"]
    if not seen or newest is None:
        return ""
    new_days = (newest - date.fromisoformat(seen)).days
    if new_days >= RETRAIN_MIN_NEW_DAYS:
        return ""
    return (
        f"v{version.version} in force has seen the sales up to {seen}, {max(new_days, 0)} days "
        f"before the newest ({newest.isoformat()}); a retraining is judged against it only once "
        f"{RETRAIN_MIN_NEW_DAYS} newer days exist"
    )


def _retrain(opened: list[Alert]) -> ModelVersion | None:
    from ml.services import start_training

    why = "; ".join(f"alert #{a.pk}: {a.get_kind_display()}" for a in opened)
    try:
        return start_training(kind=ModelVersion.Kind.DEMAND, gate=True, reason=why)
    except ServiceError:
        return None


@transaction.atomic
def acknowledge(*, alert_id: int, user) -> Alert:
    alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
    if alert is None:
        raise NotFoundError(f"no alert {alert_id}", code="not_found")
    if alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by = timezone.now(), user
        alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
        audit.record("kpi.alert_acknowledged", target=alert, summary=alert.message[:200])
    return alert


# --- notifications -----------------------------------------------------------------------------


def _notify(alert: Alert, event: str, current: AlertPolicy, email: bool = True) -> None:
    from .tasks import deliver_alert_webhook, email_alert

    tenant_id, alert_id = alert.tenant_id, alert.pk
    if email and current.email_admins:
        transaction.on_commit(lambda: email_alert.delay(tenant_id, alert_id))
    if current.webhook_url:
        transaction.on_commit(lambda: deliver_alert_webhook.delay(tenant_id, alert_id, event))


def payload(alert: Alert, event: str) -> dict:
    tenant = require_current_tenant()
    return {
        "id": f"evt_alert_{alert.pk}_{event.split('.')[-1]}",
        "type": event,
        "created": timezone.now().isoformat(),
        "tenant": tenant.slug,
        "alert": {
            "id": alert.pk,
            "kind": alert.kind,
            "subject": alert.subject,
            "status": alert.status,
            "message": alert.message,
            "figures": alert.figures,
            "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "retraining": alert.retraining.version if alert.retraining else None,
        },
    }


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    """The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def verify(secret: str, body: bytes, header: str, now: int | None = None) -> bool:
    """What a receiver does (and the tests): the timestamp within SIGNATURE_TOLERANCE_S and the
    digest equal, compared in constant time."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        at = int(parts["t"])
    except (ValueError, KeyError):
        return False
    now = int(time.time()) if now is None else now
    if abs(now - at) > SIGNATURE_TOLERANCE_S:
        return False
    expected = sign(secret, body, at).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
