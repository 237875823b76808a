"""The partitioned reprice of a very large catalog: more than REPRICE_PARTITION_MIN_SKUS active
products are repriced in blocks of REPRICE_PARTITION_BLOCK_SKUS (contiguous product ids), one
`pricing.reprice_part` task each (any worker host), then one `pricing.reprice_reduce`.

- The plan (`start`, in the job's own task) reads once what every block must agree on: the
  demand model in force, each category's mean elasticity over the whole catalog (the prior of a
  product without an estimate) and the jitter of the competitor readings.
- A part computes its products' recommendations exactly as the one-process job does
  (services.reprice_block) and stages them in the storage backend; it writes nothing to the
  job's tables. (The optimiser's risk budget, the expected share of SKUs whose change loses
  money, `Rules.loss_budget`, is spent per part, over the part's own products.)
  At most PARTITION_IN_FLIGHT parts of a job are queued at a time (tenants.parts).
- The reduce writes every part's recommendations in one transaction, ends the job succeeded,
  then auto-approves and publishes as the one-process job does: a job's recommendations are
  visible all at once or not at all. A cancelled or failed job's staged parts are deleted.

Progress is the share of parts done. A partitioned reprice needs a demand model in force: with
none, the training is started (for a big tenant itself in parts) and the job fails saying so;
`manage.py reprice --sync` runs that fit's parts and then the job's in its own process
(tenants.tasks.tasks_run_here), so there it does not fail.
"""

from __future__ import annotations

import gzip
import json
import logging
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from ml import selectors as ml_selectors
from ml.models import ModelVersion
from ml.partitioned import StagedFormatError
from pricing_saas.catalog.models import Product
from tenants import parts as job_parts
from tenants.bulk import copy_columns
from tenants.context import require_current_tenant

from . import approvals, services
from .models import RepriceJob

logger = logging.getLogger(__name__)


# The format of a part's staged recommendations (services.Staged's fields and what they mean):
# raise it with any change to either. A reduce that finds a part staged by another release (no
# stamp: format 1) fails the job naming both formats instead of storing recommendations of two
# releases side by side (or failing on a missing field); the next run reprices from scratch.
# 3: each row says where its level was carried (level_carried, position_then, position_now),
# the competitor's move counted beyond its readings' jitter
STAGED_FORMAT = 3


def _active():
    return Product.objects.filter(active=True).exclude(pk__in=services.locked_products())


def wanted() -> bool:
    """Whether this tenant's reprice runs in parts (more active products than the setting)."""
    limit = int(settings.REPRICE_PARTITION_MIN_SKUS)
    return _active().order_by().values("pk")[: limit + 1].count() > limit


def start(job: RepriceJob) -> RepriceJob:
    """Plan a claimed job's blocks and queue its first parts."""
    import numpy as np

    demand = services._demand_model(job)
    if demand is None or demand.status != ModelVersion.Status.PROMOTED:
        raise services.ServiceError("no demand model in force to price on: train one first")
    tenant_id = int(require_current_tenant().pk)
    ids = copy_columns(
        f"SELECT id FROM {Product._meta.db_table} WHERE tenant_id = {tenant_id} AND active "
        "ORDER BY id",
        1,
    )[:, 0].astype(np.int64)
    size = int(settings.REPRICE_PARTITION_BLOCK_SKUS)
    bounds = [*ids[::size].tolist(), int(ids[-1]) + 1] if len(ids) else [0, 1]
    # the policy as the job starts holds in every part (a setting changed mid-job waits for
    # the next job, as in a one-process job)
    current = approvals.policy()
    noise = services.tenant_competitor_noise()
    plan = job_parts.plan(
        len(bounds) - 1,
        f"partitions/{job.tenant_id}/reprice-{job.pk}",
        bounds=bounds,
        demand=demand.pk,
        category_means=ml_selectors.category_prior_means(demand, _active()),
        competitor_noise=noise.as_list(),
        competitor_sd=noise.sd,  # what a worker of the release before reads
        no_cost=current.no_cost_fallback,
        risk=approvals.risk(current),
    )
    services._log(job, f"{len(ids)} active products in {plan['parts']} parts; demand model "
                       f"v{demand.version}", 0.05)  # fmt: skip
    job.set_progress(parts=plan, demand_version=demand)
    _advance(job.pk, None)
    return job


def _live(job_id: int) -> tuple[RepriceJob | None, bool]:
    """The job (locked) and whether its work goes on: one that ended is left alone; one whose
    cancel was asked for ends cancelled here, its staged parts deleted."""
    job = RepriceJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.status != RepriceJob.Status.RUNNING:
        return job, False
    if job.cancel_requested:
        _clean(job.parts)
        job.cancel("cancelled by a user")
        return job, False
    return job, True


def _clean(plan: dict) -> None:
    job_parts.clean(plan, [f"block-{i}.json.gz" for i in range(plan["parts"])])


def _fail(job_id: int, reason: str) -> None:
    with transaction.atomic():
        job, live = _live(job_id)
        if live:
            _clean(job.parts)
            job.fail(reason)


def _advance(job_id: int, finished: int | None) -> None:
    from .tasks import reprice_part, reprice_reduce

    with transaction.atomic():
        job, live = _live(job_id)
        if not live:
            return
        plan = job.parts
        step = job_parts.advance(plan, finished)
        if step is None:
            return
        queue, all_in = step
        done = len(plan["done"])
        job.set_progress(
            parts=plan,
            progress=round(0.1 + 0.8 * done / plan["parts"], 4),
            phase=f"{done} of {plan['parts']} parts" if not all_in else "storing",
        )
        tenant_id = job.tenant_id
        for index in queue:
            transaction.on_commit(lambda i=index: reprice_part.delay(tenant_id, job_id, i))
        if all_in:
            transaction.on_commit(lambda: reprice_reduce.delay(tenant_id, job_id))


def run_part(job_id: int, index: int) -> None:
    with transaction.atomic():
        job, live = _live(job_id)
        if not live:
            return
    plan = job.parts
    if job_parts.is_done(plan, index):
        return  # delivered again after it was counted
    within = (plan["bounds"][index], plan["bounds"][index + 1])
    try:
        demand = ModelVersion.objects.filter(pk=plan["demand"]).first()
        staged = services.reprice_block(
            job,
            demand,
            within,
            plan["category_means"],
            # (a plan made before the noise was planned holds the jitter alone)
            plan.get("competitor_noise", plan.get("competitor_sd")),
            no_cost=plan.get("no_cost"),
            risk=plan.get("risk"),
        )
        payload = {name: getattr(staged, name) for name in services.Staged.__dataclass_fields__}
        payload["staged_format"] = STAGED_FORMAT
        content = gzip.compress(json.dumps(payload, default=_plain).encode())
        job_parts.save(plan, f"block-{index}.json.gz", content)
    except Exception as exc:
        logger.exception("part %s of reprice %s failed", index, job_id)
        _fail(
            job_id,
            f"part {index + 1} of {plan['parts']} (products {within[0]} to {within[1] - 1}) "
            f"failed: {exc.__class__.__name__}: {exc}",
        )
        return
    _advance(job_id, index)


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)  # the COPY parses it back as the column's numeric
    raise TypeError(f"{type(value).__name__} is not serialisable")


def _staged(plan: dict, index: int) -> services.Staged:
    payload = json.loads(gzip.decompress(job_parts.read(plan, f"block-{index}.json.gz")))
    found = payload.pop("staged_format", 1)
    if found != STAGED_FORMAT:
        raise StagedFormatError(
            f"part {index + 1} was staged by another release of the reprice (format {found}; "
            f"this release reads format {STAGED_FORMAT}): the job cannot merge it, run the "
            "reprice again"
        )
    payload["differ"] = [tuple(item) for item in payload["differ"]]
    return services.Staged(**payload)


def run_reduce(job_id: int) -> RepriceJob | None:
    """Every part's recommendations in one transaction (one part's in memory at a time), the
    job succeeded; then the policy's approvals and publication, as after a one-process job."""
    with transaction.atomic():
        job, live = _live(job_id)
        if not live:
            return job
        plan = job.parts
        demand = ModelVersion.objects.filter(pk=plan["demand"]).first()
        try:
            if sorted(plan["done"]) != list(range(plan["parts"])):
                raise ValueError(f"parts missing: {plan['parts'] - len(plan['done'])}")
            with transaction.atomic():  # a failure rolls every part's rows back
                services._write(job, demand, (_staged(plan, i) for i in range(plan["parts"])))
        except Exception as exc:
            logger.exception("reduce of reprice %s failed", job_id)
            _clean(plan)
            job.fail(f"storing the parts failed: {exc.__class__.__name__}: {exc}")
            return job
        _clean(plan)
    services._approve_and_publish(job)
    return job
