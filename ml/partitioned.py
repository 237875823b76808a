"""The partitioned demand fit of a very large tenant: the three stages of ml.science.demand
(pooled, per-SKU blocks, reduce) as Celery tasks that any worker host can run, each on a
bounded share of the tenant's rows, ending in one model version.

Blocks are contiguous ranges of product ids of DEMAND_PARTITION_BLOCK_SKUS products with sales
(not categories: one category can hold most of a tenant's SKUs, and a block's memory must not
depend on how the merchant files its catalog). A block reads only its products' rows (one COPY
with a product-id range, ml.panel.demand_panel(block)).

1. `ml.train_pooled`: the pooled model (shared coefficients, their covariance, the dispersion of
   truncated counts) on the products of ml.science.demand.sample_ranges: every product while
   the tenant has at most DEMAND_PARTITION_SAMPLE_SKUS (then every estimate is the one-process
   fit's), else that many in 20 runs of consecutive products spread over the tenant. Its
   result goes to the storage backend (never a host's own disk).
2. `ml.train_part` (one per block): each SKU's fit given the pooled one, stored the same way.
   At most PARTITION_IN_FLIGHT parts of one run are queued or running at a time: each
   finished part queues the next, so other tenants' tasks queued meanwhile run in between.
3. `ml.train_reduce`: once every part is in, the tenant-wide quantities (dispersion, shrinkage
   to category and tenant, mean offset, recent level), the estimates and the artifact; the
   version ends ready and is promoted here only. A gated run (the nightly retraining) is
   promoted only if it won the backtest that stage 1 ran on its sample of products, as a
   one-process run is judged (ml.services._challenge).

Progress is the share of parts done. A cancel (ml.services.cancel) stops the run at the next
part; a part that fails fails the version with the reason. Either way the staged results are
deleted and nothing is promoted.
"""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from datetime import date

import numpy as np
from django.conf import settings
from django.db import transaction

from tenants import parts as job_parts
from tenants.context import require_current_tenant

from .models import ModelVersion
from .panel import demand_panel, reading_day_of, tenant_facts

logger = logging.getLogger(__name__)

# What a staged file means: raised whenever a release changes what the pooled stage or a part
# stores, or how the reduce reads it (2: each block's variance parts carry their held-price
# clusters, ml.science.demand._few_clusters, a promotion's day read inside its held price's
# run as well as apart). A run whose parts span a deploy would otherwise merge blocks of two
# releases into one model (an older block read without its clusters takes no few-clusters
# factor: narrower intervals on some SKUs than on others); such a run fails instead, naming
# the formats, and the next run retrains.
# 3: the pooled stage names its closed controls (Pooled.closed); 4: it states the weights' k
# (Pooled.weight_k) and the blocks each SKU's Poisson floor of the dispersion (`model_floor`),
# which change what their dispersions are relative to; 5: each block's today's position
# against the competitor (BlockFit.gap_today, within the positions seen, read on the plan's
# reading day) that the stored level is carried from; 6: each block's curvature read beside
# the hinge (BlockFit.joint_c and how the hinge and the slope move with it); 7: the
# competitor's price each block's position was read against, with its readings' count
# (BlockFit.competitor_then, competitor_then_k); 8: each block's hinge (and the slope and bend
# read beside it) without the hinge's prior (`_without_hinge_prior`), where 7 held it pulled
STAGED_FORMAT = 8


class StagedFormatError(ValueError):
    pass


def wanted(products: int) -> bool:
    """Whether a tenant with this many products with sales takes the partitioned path."""
    return products > settings.DEMAND_PARTITION_MIN_SKUS


def is_partitioned(version: ModelVersion | None) -> bool:
    return version is not None and "partitioned" in (version.progress or {})


def start(version: ModelVersion, facts: dict | None = None) -> ModelVersion:
    """Plan the blocks of a claimed demand run and queue its pooled stage."""
    from ml.science.demand import sample_ranges

    facts = facts or tenant_facts()
    products = facts["products"]
    size = int(settings.DEMAND_PARTITION_BLOCK_SKUS)
    bounds = [*products[::size].tolist(), int(products[-1]) + 1]
    sampled = sample_ranges(len(products), int(settings.DEMAND_PARTITION_SAMPLE_SKUS))
    parts = len(bounds) - 1
    plan = job_parts.plan(
        parts,
        f"partitions/{version.tenant_id}/demand-{version.pk}",
        bounds=bounds,
        block_skus=size,
        sample=[
            [int(products[a]), int(products[b]) if b < len(products) else int(products[-1]) + 1]
            for a, b in sampled
        ],
        sample_products=sum(b - a for a, b in sampled),
        day_range=list(facts["day_range"]),
        # the day every block reads today's competitor price up to (ml.panel.reading_day_of)
        reading_day=reading_day_of(int(facts["day_range"][1])) if facts["day_range"] else None,
        tracks=bool(facts["tracks"]),
        competitor_sd=float(facts["competitor_sd"]),
        sold_weekdays=[int(k) for k in facts.get("sold_weekdays", ())],
        promo_sold=bool(facts.get("promo_sold", False)),
    )
    version.set_progress(progress=_state(plan, "pooled stage"))
    from .tasks import train_pooled

    tenant_id, version_id = version.tenant_id, version.pk
    transaction.on_commit(lambda: train_pooled.delay(tenant_id, version_id))
    return version


def _state(plan: dict, phase: str) -> dict:
    done = len(plan["done"])
    return {
        "phase": phase,
        "share": round(done / max(plan["parts"], 1), 4),
        "parts": plan["parts"],
        "parts_done": done,
        "partitioned": plan,
    }


def _block(plan: dict, index: int) -> dict:
    return {
        "low": plan["bounds"][index],
        "high": plan["bounds"][index + 1],
        "tracks": plan["tracks"],
        "competitor_sd": plan["competitor_sd"],
        # today's competitor price read up to this day in every block (ml.panel.demand_panel)
        **({"reading_day": plan["reading_day"]} if plan.get("reading_day") else {}),
    }


def _save(plan: dict, what: str, arrays: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, staged_format=np.asarray(STAGED_FORMAT))
    job_parts.save(plan, f"{what}.npz", buffer.getvalue())


def _load(plan: dict, what: str):
    """A staged file's arrays; StagedFormatError if another release of this code staged it."""
    arrays = np.load(io.BytesIO(job_parts.read(plan, f"{what}.npz")))
    found = int(arrays["staged_format"]) if "staged_format" in arrays.files else 1
    if found != STAGED_FORMAT:
        name = "the pooled stage" if what == "pooled" else f"part {int(what[6:]) + 1}"
        raise StagedFormatError(
            f"{name} was staged by another release of the demand fit (format {found}; this "
            f"release reads format {STAGED_FORMAT}): the run cannot merge it, retrain"
        )
    return arrays


def _clean(plan: dict) -> None:
    names = ["pooled", *(f"block-{i}" for i in range(plan["parts"]))]
    job_parts.clean(plan, [f"{what}.npz" for what in names])


def _live(version_id: int) -> tuple[ModelVersion | None, bool]:
    """The run (locked) and whether its work goes on: a run that ended (failed, cancelled) is
    left alone; one whose cancel was asked for ends cancelled here, its staged results gone."""
    version = ModelVersion.objects.select_for_update().filter(pk=version_id).first()
    if version is None or version.status != ModelVersion.Status.TRAINING:
        return version, False
    if version.cancel_requested:
        _clean(version.progress["partitioned"])
        version.finish(status=ModelVersion.Status.CANCELLED, message="cancelled by a user",
                       progress={})  # fmt: skip
        return version, False
    return version, True


def _fail(version_id: int, reason: str) -> None:
    with transaction.atomic():
        version, live = _live(version_id)
        if live:
            _clean(version.progress["partitioned"])
            version.finish(status=ModelVersion.Status.FAILED, message=reason, progress={})


def run_pooled(version_id: int) -> None:
    """Stage 1 (ml.train_pooled), then the first parts."""
    from ml.science.demand import fit_pooled

    with transaction.atomic():
        version, live = _live(version_id)
        if not live:
            return
        plan = version.progress["partitioned"]
    if plan.get("queued"):
        return  # delivered again after its parts were queued: the parts read its file
    try:
        blocks, ids, names = _read(plan, plan["sample"])  # product-id ranges over the tenant
        if not blocks:
            raise ValueError("no sales rows in the sampled blocks")
        sample = _joined(blocks, names)  # one panel, its categories coded across the blocks
        del blocks
        fit = lambda sample: fit_pooled(  # noqa: E731
            sample, day_range=tuple(plan["day_range"]), ramp_sd=_ramp_sd(plan["competitor_sd"])
        )
        pooled = fit(sample)
        # Judged on the sample as drawn (spread over the tenant), before any product joins it
        verdict = _backtest(version, sample, ids) if _gated(version) else None
        # A control the sample could not read, on which other products sold: one it saw
        # nothing sold on (every part holding those products would fail, hours in on a large
        # tenant), one it left out for its few rows (a rare promotion of slow movers), or had
        # no rows of (no promotion among its products, a weekday its daily reports do not
        # list): their blocks would read its effect as their prices' or their level's. The
        # products with the most days on it that sold then join the sample, once.
        absent = lambda pooled: (  # noqa: E731
            () if "promo" in pooled.names + list(pooled.rare) else ("promo",)
        )
        wanted = _sold_on(plan, [*pooled.closed, *pooled.rare, *absent(pooled), *pooled.unlisted])
        if wanted:
            extra, more, more_names = _read(plan, _sellers_on(plan, wanted))
            if extra:
                sample = _joined([sample, *extra], names + more_names)
                ids, names = ids + more, names + more_names
                del extra
                pooled = fit(sample)
        # Still nothing sold there in the sample: the control gets no coefficient (its days
        # are read at the base weekday's level; the others keep what the fit with it pinned
        # read) and is named with the version (a larger DEMAND_PARTITION_CONTROL_SKUS reads
        # it), not a failure of every run.
        pooled = pooled.without(_sold_on(plan, pooled.closed))
        # a weekday without a row in the sample is the tenant's closed one only if nothing
        # sold then on the whole tenant
        sold = _sold_on(plan, pooled.unlisted)
        unread = _sold_on(plan, [*pooled.rare, *absent(pooled)]) + sold
        pooled = replace(pooled, unlisted=tuple(n for n in pooled.unlisted if n not in sold))
        order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")  # (parts search it)
        arrays = {**_pooled_arrays(pooled), "alpha_products": np.asarray(ids)[order]}
        arrays["alpha"] = np.asarray(arrays["alpha"])[order]
        _save(plan, "pooled", arrays)
        del pooled, sample
    except Exception as exc:
        logger.exception("pooled stage of demand run %s failed", version_id)
        _fail(version_id, f"demand fit failed in the pooled stage: {exc.__class__.__name__}: {exc}")
        return
    _advance(version_id, None, "fitting blocks", verdict=verdict, unread=unread, sampled=len(ids))


def _read(plan: dict, ranges) -> tuple[list, list, list]:
    """The panels of the products with ids in `ranges` ([low, high) pairs) that have sales
    rows, their ids, and their categories' names."""
    blocks, ids, names = [], [], []
    for low, high in ranges:
        panel, kept, stats = demand_panel({**_block(plan, 0), "low": low, "high": high})
        if panel is not None:
            blocks.append(panel)
            ids.extend(kept)
            names.extend(stats["category_names"])
    return blocks, ids, names


def _joined(blocks: list, names: list):
    """Panels one after another as one (the pooled stage's sample, the backtest's), their
    categories coded across them by `names`."""
    from ml.science.demand import concatenate

    return replace(
        concatenate(blocks),
        category=np.unique(np.asarray(names, dtype=str), return_inverse=True)[1],
        current_price=np.concatenate([np.asarray(b.current_price, float) for b in blocks]),
    )


def _sellers_on(plan: dict, controls) -> list[list[int]]:
    """For each of the controls (`dow_K`, `promo`), up to DEMAND_PARTITION_CONTROL_SKUS of the
    tenant's products outside the plan's sample with the most days on it among those that
    sold on it (a sale as `tenant_facts` reads one: priced by the revenue where the files
    record it), as ranges of consecutive ids, in ascending order. Ranked by days, not by units: the
    products that sold the most on a promotion are those it lifted most, and the shared
    coefficient read from them would be theirs (review: +0.13 to +0.20 on the promotion's).
    One query per control."""
    from django.db import connection

    from pricing_saas.catalog.models import SalesRecord

    limit = int(settings.DEMAND_PARTITION_CONTROL_SKUS)
    if limit <= 0:
        return []
    tenant = require_current_tenant()
    priced = "revenue > 0" if plan["tracks"] else "price > 0"
    outside = " AND ".join("NOT (product_id >= %s AND product_id < %s)" for _ in plan["sample"])
    bounds = [int(v) for pair in plan["sample"] for v in pair]
    found: set[int] = set()
    with connection.cursor() as cur:
        for name in controls:
            if name.startswith("dow_"):
                when, args = "((date - DATE '0001-01-01') + 1) %% 7 = %s", [int(name[4:])]
            else:  # promo
                when, args = "promo", []
            cur.execute(  # (per product and day first: both groupings hash, none sorts)
                "SELECT product_id FROM (SELECT product_id, date, "
                f"BOOL_OR(units > 0 AND {priced}) AS sold FROM {SalesRecord._meta.db_table} "
                f"WHERE tenant_id = %s AND {when} AND {outside or 'TRUE'} "
                "GROUP BY product_id, date) AS d GROUP BY product_id HAVING BOOL_OR(sold) "
                "ORDER BY COUNT(*) DESC, product_id LIMIT %s",
                [tenant.pk, *args, *bounds, limit],
            )
            found.update(int(row[0]) for row in cur.fetchall())
    ranges: list[list[int]] = []  # runs of consecutive ids as one range: one read each
    for pid in sorted(found):
        if ranges and ranges[-1][1] == pid:
            ranges[-1][1] = pid + 1
        else:
            ranges.append([pid, pid + 1])
    return ranges


def _sold_on(plan: dict, controls) -> list[str]:
    """Of the named 0/1 controls, those on whose days some product of the tenant sold, as
    `tenant_facts` read them once for the run (`dow_K`: the weekday of day ordinals K mod 7;
    `promo`); others, and a plan made before it read them, are not looked up."""
    weekdays = set(plan.get("sold_weekdays", ()))
    return [
        name
        for name in controls
        if (name.startswith("dow_") and int(name[4:]) in weekdays)
        or (name == "promo" and plan.get("promo_sold", False))
    ]


def _gated(version: ModelVersion) -> bool:
    return (version.hyperparameters or {}).get("gate") == "backtest"


def _backtest(version: ModelVersion, sample, ids: list) -> dict:
    """Whether a gated run may replace the version in force, judged as a one-process run is
    (ml.services._challenge: the method refitted on all but the newest days against the version
    in force, both forecasting those days) on the pooled stage's sample of products, which
    spans the tenant; the reduce promotes by this verdict. A backtest that cannot be run keeps
    the version in force, with the reason."""
    from . import services
    from .selectors import promoted_version

    current = promoted_version(ModelVersion.Kind.DEMAND)
    judged = {"in_force_id": current.pk if current is not None else None}
    try:
        verdict = services._challenge(sample, np.asarray(ids, dtype=np.int64))
    except Exception as exc:  # the run itself goes on: only its promotion is at stake
        logger.exception("backtest of demand run %s failed", version.pk)
        return {
            **judged,
            "promoted": False,
            "message": f"Not promoted: the backtest failed ({exc.__class__.__name__}: {exc}); "
            "it stays ready (promote it by hand to use it anyway).",
        }
    if "skus" not in verdict:  # nothing was scored (no version in force, no newer days)
        return {**verdict, **judged}
    message = verdict["message"]
    head, dot = (message[:-1], ".") if message.endswith(".") else (message, "")
    return {
        **verdict,
        **judged,
        "sample_products": len(ids),
        "message": f"{head}; judged on {len(ids):,} products sampled over the tenant{dot}",
    }


def _verdict_now(plan: dict) -> dict:
    """The pooled stage's verdict, if the version it judged against is still the one in force
    (the parts take hours on a large tenant: a version promoted or rolled back meanwhile by a
    person is not overridden by a verdict about another)."""
    from .selectors import promoted_version

    verdict = plan["verdict"]
    current = promoted_version(ModelVersion.Kind.DEMAND)
    if (current.pk if current is not None else None) == verdict.get("in_force_id"):
        return verdict
    now = f"v{current.version}" if current is not None else "none"
    return {
        **verdict,
        "promoted": False,
        "message": f"Not promoted: the version in force changed since this run was backtested "
        f"(now {now}); it stays ready (promote it by hand to use it anyway).",
    }


def _ramp_sd(competitor_sd: float) -> float:
    from ml.science.demand import RAMP_SCALE

    return RAMP_SCALE * competitor_sd if competitor_sd > 0 else 0.0


def _pooled_arrays(pooled) -> dict:
    return {
        "beta": pooled.beta,
        "cov": pooled.cov,
        "names": np.asarray(pooled.names, dtype=str),
        "day_range": np.asarray(pooled.day_range),
        "flags": np.asarray([pooled.competitor, pooled.truncated, pooled.time_effects]),
        "nb_k": np.asarray(pooled.nb_k),
        "weight_k": np.asarray(pooled.weight_k),
        "counts_k": np.asarray(pooled.counts_k),
        "weights_ratio": np.asarray(pooled.weights_ratio),
        "ramp_sd": np.asarray(pooled.ramp_sd),
        "alpha": pooled.alpha,
        "closed": np.asarray(pooled.closed, dtype=str),
        "unlisted": np.asarray(pooled.unlisted, dtype=str),
    }


def _pooled_of(arrays):
    from ml.science.demand import Pooled

    competitor, truncated, time_effects = (bool(v) for v in arrays["flags"])
    weight_k = float(arrays["weight_k"]) if "weight_k" in arrays.files else 0.0
    return Pooled(
        beta=arrays["beta"],
        cov=arrays["cov"],
        names=[str(name) for name in arrays["names"]],
        day_range=(int(arrays["day_range"][0]), int(arrays["day_range"][1])),
        competitor=competitor,
        truncated=truncated,
        nb_k=float(arrays["nb_k"]),
        ramp_sd=float(arrays["ramp_sd"]),
        time_effects=time_effects,
        alpha=arrays["alpha"],
        closed=tuple(str(name) for name in arrays["closed"]),
        # (a stage of the release before them has none: its open share counts closed ones)
        unlisted=tuple(str(n) for n in arrays["unlisted"]) if "unlisted" in arrays.files else (),
        # (a stage of the release before it has none: Poisson weights, as then)
        weight_k=weight_k,
        # (one of the release before them: the k read was the k used, never compared)
        counts_k=float(arrays["counts_k"]) if "counts_k" in arrays.files else weight_k,
        weights_ratio=float(arrays["weights_ratio"])
        if "weights_ratio" in arrays.files
        else float("nan"),
    )


def _advance(
    version_id: int,
    finished: int | None,
    phase: str,
    verdict: dict | None = None,
    unread: list[str] | None = None,
    sampled: int | None = None,
) -> None:
    """Record a finished part (None: the pooled stage, with its backtest's `verdict` for a gated
    run, the controls it could not read, `unread`, and the products its sample held, `sampled`,
    added ones included) and queue what comes next: parts up to
    PARTITION_IN_FLIGHT of them in flight, the reduce once every part is in. Counted by part
    index under the run's lock: a part delivered twice counts once."""
    from .tasks import train_part, train_reduce

    with transaction.atomic():
        version, live = _live(version_id)
        if not live:
            return
        plan = version.progress["partitioned"]
        if finished is None and plan.get("queued"):
            return  # the pooled stage delivered twice at once: the first one's results stand
        step = job_parts.advance(plan, finished)
        if step is None:
            return  # a duplicate delivery: its successor was queued the first time
        if verdict is not None:
            plan["verdict"] = verdict
        if unread:
            plan["unread"] = list(unread)
        if sampled is not None:
            plan["sample_products"] = int(sampled)
        queue, all_in = step
        version.set_progress(progress=_state(plan, "merging" if all_in else phase))
        tenant_id = version.tenant_id
        for index in queue:
            transaction.on_commit(lambda i=index: train_part.delay(tenant_id, version_id, i))
        if all_in:
            transaction.on_commit(lambda: train_reduce.delay(tenant_id, version_id))


def run_part(version_id: int, index: int) -> None:
    """Stage 2 for block `index` (ml.train_part)."""
    from ml.science.demand import fit_block

    with transaction.atomic():
        version, live = _live(version_id)
        if not live:
            return
        plan = version.progress["partitioned"]
    if job_parts.is_done(plan, index):
        return  # delivered again after it was counted
    block = _block(plan, index)
    try:
        arrays = _load(plan, "pooled")  # first: one staged by another release fails at once
        panel, kept, stats = demand_panel(block)
        if panel is None:
            _save(plan, f"block-{index}", {"empty": np.asarray(True)})
        else:
            pooled = _pooled_of(arrays)
            known = np.asarray(arrays["alpha_products"])
            ids = np.asarray(kept, dtype=np.int64)
            at = np.minimum(np.searchsorted(known, ids), max(len(known) - 1, 0))
            found = (known[at] == ids) if len(known) else np.zeros(len(ids), bool)
            alpha = np.where(found, pooled.alpha[at], np.nan) if len(known) else None
            n = len(kept)
            fit = fit_block(panel, pooled, alpha=alpha, n=n, every_origin=True)
            _save(
                plan,
                f"block-{index}",
                {
                    **_block_arrays(fit),
                    "product_id": ids,
                    "category_name": np.asarray(stats.pop("category_names"), dtype=str),
                    "category_given": np.asarray(True),
                    "current_price": np.asarray(panel.current_price, float),
                    "days_observed": np.bincount(panel.sku, minlength=n),
                    "stats": np.asarray([stats[k] for k in STAT_KEYS], float),
                },
            )
    except Exception as exc:
        logger.exception("part %s of demand run %s failed", index, version_id)
        _fail(
            version_id,
            f"demand fit failed in part {index + 1} of {plan['parts']} (products "
            f"{block['low']} to {block['high'] - 1}): {exc.__class__.__name__}: {exc}",
        )
        return
    _advance(version_id, index, "fitting blocks")


STAT_KEYS = ("rows", "zero", "truncated", "competitor", "discounted")
_VAR_KEYS = ("pearson", "df", "model", "info2")


def _block_arrays(fit) -> dict:
    out = {}
    for name, value in vars(fit).items():
        if name in ("slope_var", "hinge_var", "curvature_var"):
            if value is None:
                continue
            for key in _VAR_KEYS:
                out[f"{name}.{key}"] = value[key]
            if "model_floor" in value:
                out[f"{name}.model_floor"] = value["model_floor"]
            out[f"{name}.meat"] = np.vstack(value["meat"])
            out[f"{name}.clusters"] = np.vstack(value["clusters"])
            out[f"{name}.origins"] = np.asarray(value["origins"])
            if "first" in value:
                out[f"{name}.first"] = np.asarray(value["first"])
        elif value is None:
            continue
        else:
            out[name] = np.asarray(value)
    return out


def _block_of(arrays, nb_k: float, recent: bool = True):
    """A BlockFit from its stored arrays (without its recent rows unless `recent`)."""
    from ml.science.demand import BlockFit, Truncation

    values = {}
    for name in BlockFit.__dataclass_fields__:
        if name in ("slope_var", "hinge_var", "curvature_var"):
            if f"{name}.meat" not in arrays.files:
                values[name] = None
                continue
            part = {key: arrays[f"{name}.{key}"] for key in _VAR_KEYS}
            if f"{name}.model_floor" in arrays.files:  # (Poisson weights: none, the model's)
                part["model_floor"] = arrays[f"{name}.model_floor"]
            part["meat"] = list(arrays[f"{name}.meat"])
            part["clusters"] = list(arrays[f"{name}.clusters"])
            part["origins"] = arrays[f"{name}.origins"].tolist()
            if f"{name}.first" in arrays.files:
                part["first"] = int(arrays[f"{name}.first"])
            values[name] = part
        elif (name.startswith("recent_") and not recent) or name not in arrays.files:
            values[name] = None
        else:
            values[name] = arrays[name]
    values["n"] = int(values["n"])
    values["offset_sum"], values["offset_rows"] = (
        float(values["offset_sum"]),
        int(values["offset_rows"]),
    )
    if values["recent_trunc"] is not None:
        values["recent_trunc"] = Truncation(values["recent_trunc"], nb_k)
    return BlockFit(**values)


def run_reduce(version_id: int) -> ModelVersion | None:
    """Stage 3 (ml.train_reduce): merge, store, end ready, promote. Locked from the first
    read to the promotion: a cancel asked for meanwhile waits for the end (and finds nothing to
    cancel), never a version half stored."""
    from ml.science.demand import reduce

    from . import services

    with transaction.atomic():
        version, live = _live(version_id)
        if not live:
            return version
        plan = version.progress["partitioned"]
        try:
            if sorted(plan["done"]) != list(range(plan["parts"])):
                raise ValueError(f"parts missing: {plan['parts'] - len(plan['done'])}")
            pooled = _pooled_of(_load(plan, "pooled"))
            blocks, parts, ids, names, observed = [], [], [], [], []
            totals = np.zeros(len(STAT_KEYS))
            for index in range(plan["parts"]):  # one block's file at a time
                arrays = _load(plan, f"block-{index}")
                if "empty" in arrays.files:
                    continue
                blocks.append(_block_of(arrays, nb_k=pooled.nb_k, recent=False))
                parts.append(index)
                ids.append(arrays["product_id"])
                names.append(arrays["category_name"])
                observed.append(arrays["days_observed"])
                totals += arrays["stats"]
            if not blocks:
                raise ValueError("no block had sales rows")
            names = np.concatenate(names)
            categories = sorted(set(names.tolist()))
            category = np.searchsorted(np.asarray(categories, dtype=str), names)

            def recent(j):  # the recent rows of one block, read when the reduce reaches it
                arrays = _load(plan, f"block-{parts[j]}")
                return _block_of(arrays, nb_k=pooled.nb_k)

            fit = reduce(blocks, pooled, category, recent=recent)
            product_ids = np.concatenate(ids)
        except Exception as exc:
            logger.exception("reduce of demand run %s failed", version_id)
            _clean(plan)
            return services._end(
                version,
                ModelVersion.Status.FAILED,
                f"demand fit failed merging its parts: {exc.__class__.__name__}: {exc}",
            )
        stats = dict(zip(STAT_KEYS, totals.tolist(), strict=True))
        rows = max(stats["rows"], 1.0)
        shares = {
            "zero_share": stats["zero"] / rows,
            "truncated_share": stats["truncated"] / rows,
            "competitor_share": stats["competitor"] / rows,
            "discounted_share": stats["discounted"] / rows,
        }
        version = services.finish_demand(
            version,
            fit,
            product_ids,
            np.concatenate(observed),
            int(stats["rows"]),
            {
                **shares,
                "partitioned": {
                    "parts": plan["parts"],
                    "block_skus": plan["block_skus"],
                    "pooled_products": plan.get("sample_products"),
                    # controls the sample had too few rows of to read, on which other
                    # products sold: their effect is in those products' price slopes
                    "unread_controls": plan.get("unread", []),
                },
            },
            last_day=date.fromordinal(int(pooled.day_range[1])),
            reading_day=plan.get("reading_day"),
            challenge=(lambda: _verdict_now(plan)) if "verdict" in plan else None,
        )
        _clean(plan)
    return version
