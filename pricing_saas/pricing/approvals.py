"""The approval policy, the kill switch, the price-war guard, and approving or rejecting
recommendations one at a time or in bulk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Abs
from django.utils import timezone
from django.utils.crypto import salted_hmac

from ml.science.optimizer import NO_COST_FALLBACKS, RULES
from pricing_saas.web.errors import ConflictError as Conflict
from pricing_saas.web.errors import NotFoundError, ServiceError
from pricing_saas.web.inputs import (
    PRICE_LIMIT,
    BadInput,
    parse_number,
    require_integer,
    require_number,
)
from tenants import audit
from tenants.context import get_current_actor, require_current_tenant

from .models import PriceChange, PricingPolicy, Recommendation

POLICY_FIELDS = [
    "auto_approve",
    "auto_approve_max_change",
    "auto_approve_max_relative_se",
    "auto_publish",
    "publisher",
    "price_war_window_days",
    "price_war_max_cuts",
    "no_cost_fallback",
    "loss_budget",
    "max_loss_chance",
]
AUTO_ACTOR = "auto-approval policy"
# The most risk a merchant may ask a run to take: beyond these a run would be expected to lose
# money on more than 1 product in 20, or one change could be as likely to lose as not.
MAX_LOSS_BUDGET = Decimal("0.05")
MAX_LOSS_CHANCE = Decimal("0.5")


def risk(current: PricingPolicy | None = None) -> dict[str, float]:
    """The policy's risk settings as the optimiser's `Rules` fields."""
    current = current or policy()
    return {
        "loss_budget": float(current.loss_budget),
        "max_loss_chance": float(current.max_loss_chance),
    }


def policy() -> PricingPolicy:
    found = PricingPolicy.objects.first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return PricingPolicy.objects.create(tenant=require_current_tenant())
    except IntegrityError:  # created concurrently
        return PricingPolicy.objects.get()


@transaction.atomic
def update_policy(**values) -> PricingPolicy:
    from pricing_saas.integrations.publishers import PUBLISHERS

    current = PricingPolicy.objects.select_for_update().get(pk=policy().pk)
    before = audit.snapshot(current, POLICY_FIELDS)
    for name, value in values.items():
        if name not in POLICY_FIELDS:
            raise ServiceError(f"unknown setting {name!r}", attr=name)
        setattr(current, name, value)
    if current.publisher not in PUBLISHERS:
        raise ServiceError(
            f"unknown publisher {current.publisher!r}; use one of {', '.join(PUBLISHERS)}",
            attr="publisher",
        )
    if not Decimal(0) <= Decimal(current.auto_approve_max_change) <= Decimal(1):
        raise ServiceError(
            "auto_approve_max_change must be between 0 and 1", attr="auto_approve_max_change"
        )
    if current.no_cost_fallback not in NO_COST_FALLBACKS:
        raise ServiceError(
            f"no_cost_fallback must be one of {', '.join(NO_COST_FALLBACKS)}",
            attr="no_cost_fallback",
        )
    for name in ("loss_budget", "max_loss_chance"):  # as stored: 4 decimal places
        value = require_number(getattr(current, name), attr=name)
        setattr(current, name, Decimal(str(value)).quantize(Decimal("0.0001")))
    if not Decimal(0) <= Decimal(current.loss_budget) <= MAX_LOSS_BUDGET:
        raise ServiceError(
            f"loss_budget must be between 0 and {MAX_LOSS_BUDGET} (a share of the products)",
            attr="loss_budget",
        )
    if not Decimal(0) < Decimal(current.max_loss_chance) <= MAX_LOSS_CHANCE:
        raise ServiceError(
            f"max_loss_chance must be above 0 and at most {MAX_LOSS_CHANCE}",
            attr="max_loss_chance",
        )
    if current.price_war_window_days < 1 or current.price_war_max_cuts < 2:
        raise ServiceError(
            "the price-war window is at least 1 day and the cut count at least 2",
            attr="price_war_max_cuts",
        )
    current.save()
    after = audit.snapshot(current, POLICY_FIELDS)
    if after != before:
        audit.record(
            "policy.update",
            target=current,
            summary="approval policy changed",
            before=before,
            after=after,
        )
    return current


@transaction.atomic
def set_kill_switch(*, on: bool, reason: str = "") -> PricingPolicy:
    current = PricingPolicy.objects.select_for_update().get(pk=policy().pk)
    if current.kill_switch == on:
        return current
    _user, actor = get_current_actor()
    current.kill_switch = on
    current.kill_switch_changed_by, current.kill_switch_changed_at = actor, timezone.now()
    current.save()
    audit.record(
        "kill_switch.on" if on else "kill_switch.off",
        target=current,
        summary=("stopped all automatic approval and publishing" if on else "resumed")
        + (f": {reason}" if reason else ""),
        before={"kill_switch": not on},
        after={"kill_switch": on},
    )
    return current


def require_switch_off(what: str) -> None:
    if policy().kill_switch:
        raise Conflict(
            f"the kill switch is on: {what} is stopped until an approver turns it off",
            code="kill_switch_on",
        )


# --- the price-war guard ---------------------------------------------------------------------


def price_war_flags(candidates: dict[int, tuple[float, float, bool]], current) -> dict[int, str]:
    """SKUs whose automatic approval must stop: {product id: reason}.

    `candidates` maps product id -> (today's price, recommended price, follows a competitor).
    A SKU is flagged when this cut would be the N-th within the window while following a
    competitor (a price war), or when its published prices went up and down repeatedly in the
    window and this change turns again (oscillation).
    """
    if not candidates:
        return {}
    window = timedelta(days=current.price_war_window_days)
    since = timezone.now() - window
    history: dict[int, list[int]] = {}
    rows = (
        PriceChange.objects.filter(
            status=PriceChange.Status.PUBLISHED,
            published_at__gte=since,
            product_id__in=list(candidates),
        )
        .order_by("product_id", "published_at")
        .values_list("product_id", "old_price", "new_price")
    )
    for pk, old, new in rows:
        history.setdefault(pk, []).append(1 if new > old else -1 if new < old else 0)
    flags = {}
    for pk, (price, new, follows_competitor) in candidates.items():
        moves = [m for m in history.get(pk, []) if m]
        direction = 1 if new > price else -1 if new < price else 0
        if not direction:
            continue
        cuts = sum(1 for m in moves if m < 0) + (direction < 0)
        if direction < 0 and follows_competitor and cuts >= current.price_war_max_cuts:
            flags[pk] = (
                f"price war: cut {cuts} times in {current.price_war_window_days} days "
                "following a competitor"
            )
            continue
        sequence = [*moves, direction]
        turns = sum(1 for a, b in pairwise(sequence) if a != b)
        if turns >= 3:
            flags[pk] = (
                f"oscillating price: changed direction {turns} times in "
                f"{current.price_war_window_days} days"
            )
    return flags


# --- approving --------------------------------------------------------------------------------


def _replace_older_approvals(approved_ids: list[int]) -> int:
    """An approval of a newer recommendation replaces an older approved price of the same
    product that still waits to be published (a newer job keeps such approvals, flagged)."""
    from .publishing import in_flight_recommendations

    chosen = set(approved_ids)
    products = set(
        Recommendation.objects.filter(pk__in=approved_ids).values_list("product_id", flat=True)
    )
    # The approved ones first (a short list: the status index), then those of these products.
    # Lock the older approvals (in pk order, as publish() does) before reading what is in
    # flight: a publication that takes one of them commits first, and it is then left alone.
    candidates = [
        pk
        for pk, product in Recommendation.objects.filter(
            status=Recommendation.Status.APPROVED, pk__lt=max(approved_ids)
        ).values_list("pk", "product_id")
        if product in products and pk not in chosen
    ]
    older = (
        list(
            Recommendation.objects.select_for_update()
            .filter(pk__in=candidates, status=Recommendation.Status.APPROVED)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if candidates
        else []
    )
    if not older:
        return 0
    replace = set(older) - in_flight_recommendations()
    return Recommendation.objects.filter(pk__in=replace).update(
        status=Recommendation.Status.SUPERSEDED
    )


def auto_approve(job) -> int:
    """Approve the job's pending recommendations that the policy allows; returns the count."""
    current = policy()
    if current.kill_switch or not current.auto_approve:
        return 0
    limit = float(current.auto_approve_max_change)
    with transaction.atomic():
        queryset = (
            Recommendation.objects.filter(
                job=job,
                status=Recommendation.Status.PENDING,
                confident=True,
                flag="",
            )
            .annotate(size=Abs(F("change")))
            .filter(size__lte=limit + 1e-12)
            # never a change without a positive expected gain (profit, or revenue without a cost)
            .filter(
                Q(profit_delta__gt=0)
                | Q(profit_delta__isnull=True, expected_revenue__gt=F("expected_revenue_now"))
            )
        )
        ids = list(queryset.values_list("pk", flat=True))
        if not ids:
            return 0
        Recommendation.objects.filter(pk__in=ids).update(
            status=Recommendation.Status.APPROVED,
            auto_approved=True,
            decided_by=AUTO_ACTOR,
            decided_at=timezone.now(),
        )
        _replace_older_approvals(ids)
        audit.record(
            "recommendation.auto_approve",
            target=job,
            target_type="RepriceJob",
            summary=f"{len(ids)} recommendations within ±{limit:.1%} and confident",
            after={"status": "approved", "ids": ids[:1000], "count": len(ids)},
        )
    return len(ids)


def _check_price(rec: Recommendation, price) -> Decimal:
    try:
        value = parse_number(price, limit=PRICE_LIMIT).quantize(Decimal("0.01"))
    except BadInput as exc:
        raise ServiceError(f"price {price!r}: {exc.reason}", code=exc.code, attr="price") from None
    if value <= 0:
        raise ServiceError("the price must be positive", attr="price")
    if rec.price_floor is not None and value < rec.price_floor - Decimal("0.005"):
        raise ServiceError(
            f"{value} is below the floor {rec.price_floor:.2f} of the rules in force "
            "(minimum margin, min price or MAP)",
            code="breaks_rule",
            attr="price",
        )
    if rec.price_ceiling is not None and value > rec.price_ceiling + Decimal("0.005"):
        raise ServiceError(
            f"{value} is above the maximum price {rec.price_ceiling:.2f} of the rules in force",
            code="breaks_rule",
            attr="price",
        )
    return value


def _not_pending(rec: Recommendation) -> Conflict:
    return Conflict(
        f"recommendation {rec.pk} is {rec.get_status_display().lower()}: only recommendations "
        "waiting for approval can be approved or rejected",
        code="not_pending",
    )


@transaction.atomic
def decide(*, recommendation: Recommendation, approve: bool, price=None, comment: str = ""):
    rec = Recommendation.objects.select_for_update().get(pk=recommendation.pk)
    if rec.status != Recommendation.Status.PENDING:
        raise _not_pending(rec)
    before = {"status": rec.status, "price": str(rec.recommended_price)}
    _user, actor = get_current_actor()
    if approve and price not in (None, ""):
        rec.approved_price = _check_price(rec, price)
    rec.status = Recommendation.Status.APPROVED if approve else Recommendation.Status.REJECTED
    rec.decided_by, rec.decided_at, rec.comment = actor, timezone.now(), comment[:2000]
    rec.save()
    if approve:
        _replace_older_approvals([rec.pk])
    audit.record(
        f"recommendation.{'approve' if approve else 'reject'}",
        target=rec,
        summary=f"SKU #{rec.product_id}: {rec.current_price:.2f} -> {rec.final_price:.2f}"
        + (" (edited)" if rec.approved_price is not None else ""),
        before=before,
        after={"status": rec.status, "price": str(rec.final_price), "comment": rec.comment},
    )
    return rec


MAX_SEARCH = 200
NO_REASON = "none"


@dataclass
class BulkFilter:
    category: str = ""
    min_change: float | None = None  # absolute relative change, e.g. 0.02
    max_change: float | None = None
    min_profit_delta: float | None = None
    job_id: int | None = None
    flagged: bool | None = None  # only flagged (True) or only unflagged (False)
    search: str = ""  # in the SKU or the title, whatever the case
    # what shaped the price: a rule name of ml.science.optimizer.RULES, or NO_REASON (the
    # demand curve's best price, no rule binding)
    reason: str = ""

    def __post_init__(self):
        # Whoever builds it (the API, a page): NaN or Infinity would match every row
        # (`|change| <= NaN` holds for all in Postgres), so a bulk decision would take them all.
        for name in ("min_change", "max_change", "min_profit_delta"):
            if getattr(self, name) is not None:
                setattr(self, name, require_number(getattr(self, name), attr=name))
        if self.job_id is not None:
            self.job_id = require_integer(self.job_id, attr="job_id")
        self.search = (self.search or "").strip()
        if len(self.search) > MAX_SEARCH:
            raise ServiceError(f"search at most {MAX_SEARCH} characters", attr="search")
        # an unknown reason is refused, never dropped: "all matching" would become all of them
        if self.reason and self.reason != NO_REASON and self.reason not in RULES:
            raise ServiceError(f"unknown reason {self.reason[:50]!r}", attr="reason")


def filtered(queryset, f: BulkFilter):
    if f.category:
        queryset = queryset.filter(product__category=f.category)
    if f.min_change is not None or f.max_change is not None:
        queryset = queryset.annotate(size=Abs(F("change")))
        if f.min_change is not None:
            queryset = queryset.filter(size__gte=f.min_change)
        if f.max_change is not None:
            queryset = queryset.filter(size__lte=f.max_change)
    if f.min_profit_delta is not None:
        queryset = queryset.filter(profit_delta__gte=f.min_profit_delta)
    if f.job_id is not None:
        queryset = queryset.filter(job_id=f.job_id)
    if f.flagged is not None:
        queryset = queryset.exclude(flag="") if f.flagged else queryset.filter(flag="")
    if f.search:
        queryset = queryset.filter(
            Q(product__sku__icontains=f.search) | Q(product__title__icontains=f.search)
        )
    if f.reason == NO_REASON:
        queryset = queryset.filter(binding_rules=[])
    elif f.reason:
        queryset = queryset.filter(binding_rules__contains=[f.reason])
    return queryset


def confirm_token(*, action: str, rows) -> str:
    """What a person confirmed after a summary: the action (with what it names, e.g. the
    publisher or the job) and the rows it acts on with their prices, `rows` being tuples
    (pk, price, ...) in pk order. The action acts only when the set it finds, locked, is the
    one confirmed (require_confirmed): the one guard of every two-step action (a bulk decision
    over filters, publishing, rolling back a job)."""
    text = ";".join(":".join(map(str, row)) for row in rows)
    tenant = require_current_tenant().pk
    return salted_hmac("pricing.confirm", f"{tenant}|{action}|{text}").hexdigest()


def require_confirmed(*, action: str, rows, expect: str | None, detail: str) -> None:
    """With `expect` (a confirm_token a person confirmed), a ConflictError (code "changed",
    `detail` saying what changed and that nothing was done) unless `rows` are still exactly
    the confirmed ones; without it, nothing to check."""
    if expect is not None and confirm_token(action=action, rows=rows) != expect:
        raise Conflict(detail, code="changed")


def bulk_token(*, approve: bool, rows) -> str:
    """The confirm_token of a bulk decision (by ids or filters), `rows` being (pk,
    recommended price) in pk order."""
    return confirm_token(action="approve" if approve else "reject", rows=rows)


def named_in_status(ids, *, status: str, refusal: str, code: str, lock: bool = False):
    """The recommendations named, every one this tenant's and in `status`: else a
    NotFoundError naming the missing, or a ConflictError (`refusal` then the others with
    their status, `code`), and the caller does nothing. Locked with `lock` (inside a
    transaction)."""
    wanted = set(ids)
    rows = Recommendation.objects.select_for_update() if lock else Recommendation.objects
    found = dict(rows.filter(pk__in=wanted).values_list("pk", "status"))
    missing = sorted(wanted - set(found))
    if missing:
        raise NotFoundError(f"no such recommendation: {', '.join(map(str, missing[:20]))}")
    others = sorted(pk for pk, found_status in found.items() if found_status != status)
    if others:
        raise Conflict(refusal + ", ".join(f"{pk} ({found[pk]})" for pk in others[:20]), code=code)
    return Recommendation.objects.filter(pk__in=wanted)


def pending_by_ids(ids: list[int], *, lock: bool = False):
    """The recommendations named, all of them waiting for approval (named_in_status)."""
    return named_in_status(
        ids,
        status=Recommendation.Status.PENDING,
        refusal="only recommendations waiting for approval can be decided; not: ",
        code="not_pending",
        lock=lock,
    )


@transaction.atomic
def bulk_decide(
    *,
    approve: bool,
    ids: list[int] | None = None,
    where: BulkFilter | None = None,
    comment: str = "",
    expect: str | None = None,
) -> int:
    """Approve or reject many: by ids (all must be this tenant's and pending, else nothing
    changes) or by filters over the pending ones. With `expect` (a `bulk_token` a person
    confirmed after selectors.bulk_preview), only if the rows named or matching are still
    exactly those confirmed, at the same prices; otherwise a ConflictError (code "changed")
    and nothing changes."""
    if ids is not None:
        queryset = pending_by_ids(ids, lock=True)
        changed = (
            "the ticked recommendations changed since the summary (a reprice, or someone "
            "else's decision): nothing was decided"
        )
    else:
        if where is None:
            raise ServiceError("name the recommendations: ids or filters", attr="ids")
        queryset = filtered(
            Recommendation.objects.select_for_update(of=("self",)).filter(
                status=Recommendation.Status.PENDING
            ),
            where,
        )
        changed = (
            "the recommendations matching the filters changed since the summary (a reprice, "
            "or someone else's decision): nothing was decided"
        )
    if expect is not None:
        require_confirmed(
            action="approve" if approve else "reject",
            rows=queryset.order_by("pk").values_list("pk", "recommended_price"),
            expect=expect,
            detail=changed,
        )
    chosen = list(queryset.values_list("pk", flat=True))  # locked: the set checked above
    if not chosen:
        return 0
    _user, actor = get_current_actor()
    status = Recommendation.Status.APPROVED if approve else Recommendation.Status.REJECTED
    Recommendation.objects.filter(pk__in=chosen).update(
        status=status, decided_by=actor, decided_at=timezone.now(), comment=comment[:2000]
    )
    if approve:
        _replace_older_approvals(chosen)
    audit.record(
        f"recommendation.bulk_{'approve' if approve else 'reject'}",
        target_type="Recommendation",
        summary=f"{len(chosen)} recommendations {status}",
        before={"status": "pending"},
        after={"status": status, "ids": chosen[:1000], "count": len(chosen), "comment": comment},
    )
    return len(chosen)


def pending_summary() -> dict:
    from django.db.models import Count, Sum

    row = Recommendation.objects.filter(status=Recommendation.Status.PENDING).aggregate(
        count=Count("pk"),
        impact=Sum("profit_delta"),
        flagged=Count("pk", filter=~Q(flag="")),
    )
    return {k: v or 0 for k, v in row.items()}
