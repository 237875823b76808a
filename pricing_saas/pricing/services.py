"""Reprice jobs: from the database to stored recommendations, one tenant at a time."""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from decimal import Decimal

import numpy as np
from django.db import IntegrityError, transaction
from django.utils import timezone

from ml import services as ml_services
from ml.models import Elasticity, ModelVersion, ReferencePrice
from ml.optimizer import RULES, Rules, optimise
from pricing_saas.catalog.models import CompetitorOffer, Product
from tenants.bulk import copy_insert
from tenants.context import get_current_actor, require_current_tenant
from tenants.services import ConflictError, ServiceError

from . import approvals
from .models import Recommendation, RepriceJob, RuleSet
from .rules import resolve

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
    "no_cost_kept": "no cost known, so today's price was kept (the policy's fallback)",
    "min_units": "held to the volume floor (minimum units or stock clearance)",
    "min_revenue": "held to the revenue floor",
    "reference": "no sales yet: moved into what the market pays for items like it",
}


@transaction.atomic
def start_reprice(*, trigger: str = "manual", enqueue: bool = True) -> RepriceJob:
    """Queue a reprice job; never two at once for one tenant (the running one is returned)."""
    active = RepriceJob.objects.select_for_update().filter(status__in=["queued", "running"]).first()
    if active is not None and _is_stale(active):
        _mark_lost(active)
        active = None
    if active is not None:
        return active
    try:
        with transaction.atomic():
            job = RepriceJob.objects.create(
                tenant=require_current_tenant(), trigger=trigger, started_by=get_current_actor()[1]
            )
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
    except JobCancelled:
        _log(job, "cancelled")
        job.status, job.finished_at = RepriceJob.Status.CANCELLED, timezone.now()
        job.message = "cancelled by a user"
        job.save()
        return job
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


class JobCancelled(Exception):
    pass


STALE_AFTER = timedelta(seconds=3600 + 300)  # the reprice task's time limit, and some slack


def _is_stale(job: RepriceJob) -> bool:
    """A job whose worker died (a hard time limit, a lost machine) stays 'running' forever:
    past the task's time limit it cannot still be running."""
    since = job.started_at if job.status == RepriceJob.Status.RUNNING else job.created_at
    return since is not None and timezone.now() - since > STALE_AFTER


def _mark_lost(job: RepriceJob) -> None:
    job.status, job.finished_at = RepriceJob.Status.FAILED, timezone.now()
    job.message = "the worker running it stopped (time limit or lost); marked failed"
    job.save()


@transaction.atomic
def cancel_reprice(*, job: RepriceJob) -> RepriceJob:
    """A queued job is cancelled at once; a running one stops at its next step."""
    job = RepriceJob.objects.select_for_update().get(pk=job.pk)
    if job.status == RepriceJob.Status.QUEUED:
        job.status, job.finished_at = RepriceJob.Status.CANCELLED, timezone.now()
        job.message = "cancelled before it started"
        job.save()
    elif job.status == RepriceJob.Status.RUNNING and _is_stale(job):
        _mark_lost(job)
    elif job.status == RepriceJob.Status.RUNNING:
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
    else:
        raise ConflictError(f"reprice job {job.pk} has {job.status}: nothing to cancel",
                            code="not_active")  # fmt: skip
    return job


def _log(job: RepriceJob, line: str, progress: float | None = None) -> None:
    job.log = [*job.log, f"{timezone.now():%H:%M:%S} {line}"]
    fields = {"log": job.log}
    if progress is not None:
        job.progress, job.phase = progress, line[:64]
        fields.update(progress=progress, phase=job.phase)
    RepriceJob.objects.filter(pk=job.pk).update(**fields)
    running = job.status == RepriceJob.Status.RUNNING
    if running and RepriceJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise JobCancelled()


def _reprice(job: RepriceJob) -> None:
    demand = ml_services.promoted_version(ModelVersion.Kind.DEMAND)
    if demand is None:
        _log(job, "no demand model in force: training one first", 0.05)
        version = ml_services.start_training(kind=ModelVersion.Kind.DEMAND, enqueue=False)
        demand = ml_services.run_training(version_id=version.pk, sync=True)
        if demand is None or demand.status != ModelVersion.Status.PROMOTED:
            raise ServiceError(f"demand training failed: {demand.message if demand else ''}")
    products = list(
        Product.objects.filter(active=True)
        .order_by("pk")
        .values_list(
            "pk", "price", "cost", "min_price", "max_price", "map_price", "category", "sku",
            "brand", "stock",
        )
    )  # fmt: skip
    _log(job, f"{len(products)} active products; demand model v{demand.version}", 0.4)
    if not products:
        _finish(job, demand, 0, 0, 0, Decimal(0), Decimal(0), "no active products")
        return
    ids = np.array([p[0] for p in products])
    col = lambda i: np.array([np.nan if p[i] is None else float(p[i]) for p in products])  # noqa: E731
    price, cost = col(1), col(2)
    # Only the estimates of the version in force: after a rollback, rows written by a newer
    # (not promoted) run must not be used; those SKUs fall back to their category's prior.
    fits = {row[0]: row[1:] for row in Elasticity.objects.filter(model_version=demand).values_list(
        "product_id", "elasticity", "elasticity_se", "units_per_day", "typical_price",
        "curvature")}  # fmt: skip
    if len(fits) < len(products):
        _log(
            job,
            f"{len(products) - len(fits)} SKUs without an estimate from v{demand.version}: priors",
        )
    by_category: dict[str, list[float]] = {}
    for pk, *_rest, category, _sku, _brand, _stock in products:
        if pk in fits:
            by_category.setdefault(category, []).append(fits[pk][0])
    pooled = demand.metrics.get(demand.trainer, {}).get("pooled_elasticity", -1.5)
    e, se, units = np.empty(len(ids)), np.empty(len(ids)), np.empty(len(ids))
    curve = np.zeros(len(ids))
    for i, (pk, p0, *_r, category, _sku, _brand, _stock) in enumerate(products):
        if pk in fits:
            el, s, rate, typical, c = fits[pk]
            x = float(np.log(float(p0) / float(typical)))
            e[i], se[i], curve[i] = el + 2 * c * x, s, c  # the slope at today's price
            units[i] = rate * float(np.exp(el * x + c * x * x))
        else:  # no sales history: the category's prior (or the tenant's), and no volume yet
            prior = by_category.get(category)
            e[i] = float(np.mean(prior)) if prior else pooled
            se[i], units[i] = 1.0, 0.0
    since = timezone.now() - COMPETITOR_WINDOW
    lowest = {  # the lowest in-stock offer of the window per SKU, and whose it is
        pk: (name, price)
        for pk, name, price in CompetitorOffer.objects.filter(observed_at__gte=since, in_stock=True)
        .order_by("product_id", "price")
        .distinct("product_id")
        .values_list("product_id", "competitor", "price")
    }
    comp = np.array([float(lowest[pk][1]) if pk in lowest else np.nan for pk in ids])
    comp_names = [lowest[pk][0] if pk in lowest else "" for pk in ids]
    references = {
        pk: (price_, low, high)
        for pk, price_, low, high in ReferencePrice.objects.values_list(
            "product_id", "price", "low", "high"
        )
    }
    reference = {pk: r[0] for pk, r in references.items()}
    ref_low = np.array([float(references[pk][1]) if pk in references else np.nan for pk in ids])
    ref_high = np.array([float(references[pk][2]) if pk in references else np.nan for pk in ids])
    resolved = resolve(
        list(RuleSet.objects.filter(active=True)),
        skus=[p[7] for p in products], categories=[p[6] for p in products],
        brands=[p[8] for p in products],
    )  # fmt: skip
    _log(job, "rules resolved; optimising", 0.6)
    no_cost = approvals.policy().no_cost_fallback
    rec = _optimise_by_rules(
        price, cost, units, e, se, comp, col, resolved, curve, ref_low, ref_high, no_cost
    )
    _log(job, f"optimised {len(ids)} SKUs; {len(rec.conflicts)} with contradictory rules", 0.75)
    _store(job, demand, products, rec, e, se, comp, reference, resolved, comp_names)
    approved = approvals.auto_approve(job)
    _log(job, f"{approved} auto-approved by the policy", 1.0)
    RepriceJob.objects.filter(pk=job.pk).update(auto_approved=approved)
    job.auto_approved = approved
    current = approvals.policy()
    if approved and current.auto_publish and not current.kill_switch:
        from .publishing import publish

        ids = list(
            Recommendation.objects.filter(job=job, status=Recommendation.Status.APPROVED)
            .values_list("pk", flat=True)
        )  # fmt: skip
        publication = publish(recommendation_ids=ids)
        _log(job, f"auto-publish: publication {publication.pk} queued")


def _optimise_by_rules(
    price, cost, units, e, se, comp, col, resolved, curve, ref_low, ref_high, no_cost="revenue"
):
    """The optimiser per group of SKUs that share an objective and a price ending (each group
    vectorised); the product's own min / max / MAP combine with the rule sets' (the stricter
    wins)."""
    v = resolved.values
    # Volume floors: a share of today's expected units or revenue, or the daily units that sell
    # today's stock within the clearance days (where the stock is known).
    with np.errstate(all="ignore"):
        clear = col(9) / v["clearance_days"]
    min_units = np.fmax(v["min_units_share"] * units, np.where(clear > 0, clear, np.nan))
    min_revenue = v["min_revenue_share"] * units * price
    min_price = np.fmax(col(3), v["min_price"])
    max_price = np.fmin(col(4), v["max_price"])
    map_price = np.fmax(col(5), v["map_price"])
    n = len(price)
    out = None
    keys = np.array([f"{o}|{x}" for o, x in zip(v["objective"], v["ending"], strict=True)])
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        objective, ending = key.split("|")
        rules = Rules(
            min_margin=v["min_margin"][idx], max_step=v["max_step"][idx],
            min_price=min_price[idx], max_price=max_price[idx], map_price=map_price[idx],
            competitor_price=comp[idx], max_above_competitor=v["max_above_competitor"][idx],
            ending=None if ending == "nan" else float(ending), objective=objective,
            min_units=min_units[idx], min_revenue=min_revenue[idx],
            reference_low=ref_low[idx], reference_high=ref_high[idx], no_cost=no_cost,
        )  # fmt: skip
        part = optimise(
            price[idx], cost[idx], units[idx], e[idx], se[idx], rules, curvature=curve[idx]
        )
        if out is None:
            out = OptimiserResult.empty(n)
        out.put(idx, part)
    return out


class OptimiserResult:
    """The optimiser's per-SKU arrays, assembled from several groups."""

    ARRAYS = ("price", "binding", "units_now", "units_new", "revenue_now", "revenue_new",
              "profit_now", "profit_new", "floor", "ceiling")  # fmt: skip

    @classmethod
    def empty(cls, n: int) -> OptimiserResult:
        self = cls()
        for name in cls.ARRAYS:
            setattr(self, name, np.zeros(n, dtype=np.int64 if name == "binding" else np.float64))
        self.conflicts = []
        return self

    def put(self, idx, part) -> None:
        for name in self.ARRAYS:
            getattr(self, name)[idx] = getattr(part, name)
        self.conflicts.extend(part.conflicts)


def explain(
    i: int, rec, e: float, se: float, competitor: float, price: float, competitor_name: str = ""
) -> str:
    if rec.binding[i] & RULES["conflict"]:
        return (
            f"No recommendation: the floor {rec.floor[i]:.2f} (minimum margin, min price or MAP) "
            f"is above the maximum price {rec.ceiling[i]:.2f}; fix the rules or the product."
        )
    new = rec.price[i]
    change = new / price - 1
    kind = "inelastic" if e > -1 else "elastic"
    parts = [f"{change:+.0%}: demand is {kind} ({e:.1f} ± {1.96 * se:.1f})"]
    if rec.binding[i] & RULES["no_estimate"]:
        parts = [f"{change:+.0%}: no usable demand estimate ({e:+.1f}), today's price kept"]
    elif rec.binding[i] & RULES["reference"] or rec.units_now[i] == 0:
        parts = [f"{change:+.0%}: no sales history yet"]
    if np.isfinite(competitor):
        gap = price / competitor - 1
        who = competitor_name or "the lowest competitor"
        parts.append(f"you are {abs(gap):.0%} {'above' if gap > 0 else 'below'} {who}")
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
def _store(job, demand, products, rec, e, se, comp, reference, resolved, comp_names) -> None:
    tenant = require_current_tenant()
    # A newer job supersedes what waits: pending recommendations, and approved ones not yet
    # handed to a publication (else an old approval could later overwrite the new price).
    from .publishing import in_flight_recommendations

    Recommendation.objects.filter(status=Recommendation.Status.PENDING).update(
        status=Recommendation.Status.SUPERSEDED
    )
    Recommendation.objects.filter(status=Recommendation.Status.APPROVED).exclude(
        pk__in=in_flight_recommendations()
    ).update(status=Recommendation.Status.SUPERSEDED)
    candidates = {
        pk: (float(p0), float(rec.price[i]), bool(rec.binding[i] & RULES["competitor"]))
        for i, (pk, p0, *_r) in enumerate(products)
        if np.isfinite(rec.price[i]) and abs(rec.price[i] - float(p0)) > 0.005
    }
    current_policy = approvals.policy()
    flags = approvals.price_war_flags(candidates, current_policy)
    max_rel_se = float(current_policy.auto_approve_max_relative_se)
    # Every per-SKU figure as a plain Python list once (numpy scalars one at a time cost most
    # of a 100,000-SKU job); money rounded to the column's 4 decimals, None where unknown.
    n = len(products)

    def money(values) -> list:  # Python's round (correctly rounded), as the column had it
        return [
            round(v, 4) if math.isfinite(v) else None for v in np.asarray(values, float).tolist()
        ]

    def nulls(values: list) -> list:
        return [None if v != v else v for v in values]  # NaN -> NULL

    e_, se_ = np.asarray(e, dtype=float), np.asarray(se, dtype=float)
    p0s = np.array([float(p[1]) for p in products])
    conflict = (rec.binding & RULES["conflict"]) > 0
    moved = ~conflict & (np.abs(rec.price - p0s) > 0.005)
    has_cost = np.array([p[2] is not None for p in products], dtype=bool)
    profit_known = np.isfinite(rec.profit_now) & has_cost
    confident = (
        np.isfinite(e_) & (e_ < 0) & np.isfinite(se_) & (se_ <= max_rel_se * np.abs(e_))
        & (e_ + 1.96 * se_ < 0) & ((rec.binding & RULES["no_estimate"]) == 0)
    )  # fmt: skip
    profit_new = np.nan_to_num(rec.profit_new)
    with np.errstate(invalid="ignore", divide="ignore"):
        change = np.where(moved, rec.price / p0s - 1, 0.0)
    columns = {
        "recommended_price": money(rec.price),
        "elasticity": e_.tolist(),
        "elasticity_low": (e_ - 1.96 * se_).tolist(),
        "elasticity_high": (e_ + 1.96 * se_).tolist(),
        "expected_units_now": np.asarray(rec.units_now, dtype=float).tolist(),
        "expected_units": np.nan_to_num(rec.units_new).tolist(),
        "expected_revenue_now": np.asarray(rec.revenue_now, dtype=float).tolist(),
        "expected_revenue": np.nan_to_num(rec.revenue_new).tolist(),
        "expected_profit_now": np.where(profit_known, rec.profit_now, np.nan).tolist(),
        "expected_profit": np.where(profit_known, profit_new, np.nan).tolist(),
        "profit_delta": np.where(profit_known, profit_new - rec.profit_now, np.nan).tolist(),
        "competitor_price": money(comp),
        "price_floor": money(rec.floor),
        "price_ceiling": money(rec.ceiling),
        "change": change.tolist(),
        "confident": confident.tolist(),
    }
    for name in ("expected_profit_now", "expected_profit", "profit_delta"):
        columns[name] = nulls(columns[name])
    rule_names = {int(mask): [name for name, bit in RULES.items() if mask & bit]
                  for mask in np.unique(rec.binding)}  # fmt: skip
    binding = rec.binding.tolist()
    status = np.where(
        conflict, Recommendation.Status.CONFLICT,
        np.where(moved, Recommendation.Status.PENDING, Recommendation.Status.NO_CHANGE),
    ).tolist()  # fmt: skip
    moved_list, changed = moved.tolist(), int(moved.sum())
    objects = []
    for i in range(n):
        pk, price = products[i][0], products[i][1]
        row = {name: values[i] for name, values in columns.items()}
        row.update(
            tenant_id=tenant.pk, job_id=job.pk, product_id=pk, status=status[i],
            current_price=price, reference_price=reference.get(pk),
            binding_rules=rule_names[binding[i]],
            rule_sets=[x for x in str(resolved.names[i]).split(", ") if x],
            competitor_name=comp_names[i][:200],
            explanation=explain(i, rec, row["elasticity"], se_[i].item(), float(comp[i]),
                                float(price), comp_names[i]),
            flag=flags.get(pk, "") if moved_list[i] else "",
        )  # fmt: skip
        objects.append(row)
    copy_insert(Recommendation, objects)
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
    job.progress, job.phase = 1.0, "done"
    job.save()
    _log(job, message)
