"""Reprice jobs: from the database to stored recommendations, one tenant at a time."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from ml import services as ml_services
from ml.models import Elasticity, ModelVersion, ReferencePrice
from ml.optimizer import RULES, Rules, optimise
from pricing_saas.catalog.models import CompetitorOffer, Product
from tenants.context import require_current_tenant
from tenants.services import ServiceError

from .models import Recommendation, RepriceJob

logger = logging.getLogger(__name__)
COMPETITOR_WINDOW = timedelta(days=30)
RULE_WORDS = {
    "min_margin": "held at the minimum margin",
    "max_step": "capped by the step limit",
    "min_price": "held at the minimum price",
    "max_price": "capped by the maximum price",
    "map": "held at the MAP",
    "competitor": "capped by the competitor position",
    "ending": "rounded to the price ending",
    "uncertainty": "moved less because the estimate is uncertain",
    "no_estimate": "kept: no usable demand estimate",
    "restores_rule": "restores a rule today's price breaks",
    "no_cost": "no cost known, so revenue was maximised instead of profit",
}


@transaction.atomic
def start_reprice(*, trigger: str = "manual", enqueue: bool = True) -> RepriceJob:
    """Queue a reprice job; never two at once for one tenant (the running one is returned)."""
    active = RepriceJob.objects.filter(status__in=["queued", "running"]).first()
    if active is not None:
        return active
    try:
        with transaction.atomic():
            job = RepriceJob.objects.create(tenant=require_current_tenant(), trigger=trigger)
    except IntegrityError:  # another request created it a moment ago
        return RepriceJob.objects.filter(status__in=["queued", "running"]).first()
    if enqueue:
        from .tasks import reprice

        tenant_id, job_id = job.tenant_id, job.pk
        transaction.on_commit(lambda: reprice.delay(tenant_id, job_id))
    return job


def run_reprice(*, job_id: int) -> RepriceJob | None:
    with transaction.atomic():
        job = RepriceJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != RepriceJob.Status.QUEUED:
            return job
        job.status, job.started_at = RepriceJob.Status.RUNNING, timezone.now()
        job.save(update_fields=["status", "started_at"])
    try:
        _reprice(job)
    except Exception as exc:
        logger.exception("reprice %s failed", job.pk)
        _log(job, f"failed: {exc.__class__.__name__}: {exc}")
        job.status, job.message, job.finished_at = (
            RepriceJob.Status.FAILED,
            str(exc),
            timezone.now(),
        )
        job.save()
        raise
    return job


def _log(job: RepriceJob, line: str) -> None:
    job.log = [*job.log, f"{timezone.now():%H:%M:%S} {line}"]
    RepriceJob.objects.filter(pk=job.pk).update(log=job.log)


def _reprice(job: RepriceJob) -> None:
    demand = ml_services.promoted_version(ModelVersion.Kind.DEMAND)
    if demand is None:
        _log(job, "no demand model in force: training one first")
        version = ml_services.start_training(kind=ModelVersion.Kind.DEMAND, enqueue=False)
        demand = ml_services.run_training(version_id=version.pk, sync=True)
        if demand is None or demand.status != ModelVersion.Status.PROMOTED:
            raise ServiceError(f"demand training failed: {demand.message if demand else ''}")
    products = list(
        Product.objects.filter(active=True)
        .order_by("pk")
        .values_list("pk", "price", "cost", "min_price", "max_price", "map_price", "category")
    )
    _log(job, f"{len(products)} active products; demand model v{demand.version}")
    if not products:
        _finish(job, demand, 0, 0, 0, Decimal(0), Decimal(0), "no active products")
        return
    ids = np.array([p[0] for p in products])
    col = lambda i: np.array([np.nan if p[i] is None else float(p[i]) for p in products])  # noqa: E731
    price, cost = col(1), col(2)
    # Only the estimates of the version in force: after a rollback, rows written by a newer
    # (not promoted) run must not be used; those SKUs fall back to their category's prior.
    fits = {row[0]: row[1:] for row in Elasticity.objects.filter(model_version=demand).values_list(
        "product_id", "elasticity", "elasticity_se", "units_per_day", "typical_price")}  # fmt: skip
    if len(fits) < len(products):
        _log(
            job,
            f"{len(products) - len(fits)} SKUs without an estimate from v{demand.version}: priors",
        )
    by_category: dict[str, list[float]] = {}
    for pk, *_rest, category in products:
        if pk in fits:
            by_category.setdefault(category, []).append(fits[pk][0])
    pooled = demand.metrics.get(demand.trainer, {}).get("pooled_elasticity", -1.5)
    e, se, units = np.empty(len(ids)), np.empty(len(ids)), np.empty(len(ids))
    for i, (pk, p0, *_r, category) in enumerate(products):
        if pk in fits:
            el, s, rate, typical = fits[pk]
            e[i], se[i] = el, s
            units[i] = rate * (float(p0) / float(typical)) ** el
        else:  # no sales history: the category's prior (or the tenant's), and no volume yet
            prior = by_category.get(category)
            e[i] = float(np.mean(prior)) if prior else pooled
            se[i], units[i] = 1.0, 0.0
    since = timezone.now() - COMPETITOR_WINDOW
    competitor = dict(
        CompetitorOffer.objects.filter(observed_at__gte=since, in_stock=True)
        .values("product_id")
        .annotate(p=Min("price"))
        .values_list("product_id", "p")
    )
    comp = np.array([float(competitor[pk]) if pk in competitor else np.nan for pk in ids])
    reference = dict(ReferencePrice.objects.values_list("product_id", "price"))
    rules = Rules(min_price=col(3), max_price=col(4), map_price=col(5), competitor_price=comp)
    rec = optimise(price, cost, units, e, se, rules)
    _log(job, f"optimised {len(ids)} SKUs; {len(rec.conflicts)} with contradictory rules")
    _store(job, demand, products, rec, e, se, comp, reference)


def _money(value) -> Decimal | None:
    if value is None or not np.isfinite(value):
        return None
    return Decimal(str(round(float(value), 4)))


def explain(i: int, rec, e: float, se: float, competitor: float, price: float) -> str:
    if rec.binding[i] & RULES["conflict"]:
        return (
            "No recommendation: " + "; ".join(rec.conflicts[:1])
            if rec.conflicts
            else "No recommendation: contradictory rules."
        )
    new = rec.price[i]
    change = new / price - 1
    kind = "inelastic" if e > -1 else "elastic"
    parts = [f"{change:+.0%}: demand is {kind} ({e:.1f} ± {1.96 * se:.1f})"]
    if np.isfinite(competitor):
        gap = price / competitor - 1
        parts.append(
            f"you are {abs(gap):.0%} {'above' if gap > 0 else 'below'} the lowest competitor"
        )
    reasons = [
        RULE_WORDS[name]
        for name, bit in RULES.items()
        if rec.binding[i] & bit and name in RULE_WORDS
    ]
    text = " and ".join(parts)
    if reasons:
        text += "; " + ", ".join(reasons)
    return text


@transaction.atomic
def _store(job, demand, products, rec, e, se, comp, reference) -> None:
    tenant = require_current_tenant()
    Recommendation.objects.filter(status=Recommendation.Status.PENDING).update(
        status=Recommendation.Status.SUPERSEDED
    )
    objects, changed = [], 0
    for i, (pk, price, *_rest) in enumerate(products):
        p0 = float(price)
        new = rec.price[i]
        conflict = bool(rec.binding[i] & RULES["conflict"])
        moved = not conflict and abs(new - p0) > 0.005
        changed += moved
        status = (
            Recommendation.Status.CONFLICT if conflict
            else Recommendation.Status.PENDING if moved else Recommendation.Status.NO_CHANGE
        )  # fmt: skip
        profit_known = np.isfinite(rec.profit_now[i]) and _rest[0] is not None
        objects.append(Recommendation(
            tenant=tenant, job=job, product_id=pk, status=status, current_price=price,
            recommended_price=_money(new), elasticity=float(e[i]),
            elasticity_low=float(e[i] - 1.96 * se[i]), elasticity_high=float(e[i] + 1.96 * se[i]),
            expected_units_now=float(rec.units_now[i]),
            expected_units=float(np.nan_to_num(rec.units_new[i])),
            expected_revenue_now=float(rec.revenue_now[i]),
            expected_revenue=float(np.nan_to_num(rec.revenue_new[i])),
            expected_profit_now=float(rec.profit_now[i]) if profit_known else None,
            expected_profit=float(np.nan_to_num(rec.profit_new[i])) if profit_known else None,
            competitor_price=_money(comp[i]), reference_price=reference.get(pk),
            binding_rules=[n for n, bit in RULES.items() if rec.binding[i] & bit],
            explanation=explain(i, rec, float(e[i]), float(se[i]), float(comp[i]), p0),
        ))  # fmt: skip
    Recommendation.objects.bulk_create(objects, batch_size=5000)
    ok = np.isfinite(rec.profit_new) & np.isfinite(rec.profit_now)
    _finish(
        job, demand, len(objects), changed, len(rec.conflicts),
        Decimal(str(round(float(rec.profit_now[ok].sum()), 2))),
        Decimal(str(round(float(rec.profit_new[ok].sum()), 2))),
        f"{changed} price changes recommended for {len(objects)} SKUs",
    )  # fmt: skip


def _finish(job, demand, skus, changed, conflicts, now, new, message) -> None:
    job.skus, job.changed, job.conflicts = skus, changed, conflicts
    job.expected_profit_now, job.expected_profit_new = now, new
    job.demand_version = demand
    job.status, job.message, job.finished_at = RepriceJob.Status.SUCCEEDED, message, timezone.now()
    job.save()
    _log(job, message)
