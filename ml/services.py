"""The model registry, every write of the ml app: start, run, cancel, promote and roll back
training runs (text and demand); store the demand estimates and the reference prices. The
science lives in ml.science; the demand panel's SQL in ml.panel; reads in ml.selectors."""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import threading
import time
import zipfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from pricing_saas.web.errors import NotFoundError, ServiceError
from tenants import audit
from tenants.context import require_current_tenant
from tenants.files import dated_files, delete_unnamed
from tenants.jobs import connection_lost, fail_once_the_database_answers

from .models import ModelVersion, ReferencePrice, TextModelConfig
from .panel import demand_panel
from .selectors import load_version_predictor, promoted_version

logger = logging.getLogger(__name__)
TRAINERS = ("baseline", "embed_ridge", "finetune", "lora")
DEMAND_TRAINER = "poisson_eb"
MIN_SALES_ROWS = 30
MIN_SALES_DAYS = 14  # two weeks at least before a price response is learnt
NOT_ENOUGH_HISTORY = "not enough sales history"


def base_model_path(name: str) -> str | None:
    """The folder of a named base model; None means the packaged MiniLM."""
    if name in ("", "minilm"):
        return None
    try:
        return settings.ML_BASE_MODELS[name]
    except KeyError:
        known = ", ".join(["minilm", *settings.ML_BASE_MODELS]) or "minilm"
        raise ServiceError(
            f"unknown base model {name!r}; the operator has configured: {known}",
            code="invalid_choice",
            attr="base_model",
        ) from None


def text_config() -> TextModelConfig:
    config = TextModelConfig.objects.first()
    return config or TextModelConfig(tenant=require_current_tenant())


@transaction.atomic
def start_training(
    *,
    kind: str = ModelVersion.Kind.TEXT,
    user=None,
    trainer: str | None = None,
    epochs: int | None = None,
    base_model: str | None = None,
    enqueue: bool = True,
    gate: bool = False,
    reason: str = "",
) -> ModelVersion:
    """Queue a training run (idempotent: a run already queued or training is returned).

    A demand run with `gate` (a retraining the alert policy asked for, `reason` saying why) is
    promoted only when it beats the version in force on the newest days that version never
    saw (`_challenge`); without it a demand run is put in force when it succeeds."""
    from ml.science.text_price import BaseModelError, check_base_model

    if kind not in ModelVersion.Kind.values:
        raise ServiceError(f"unknown model kind {kind!r}", code="invalid_choice", attr="kind")
    tenant = require_current_tenant()
    running = ModelVersion.lock_active(kind=kind)  # one past its time limit is marked lost
    if running is not None:
        return running
    if kind == ModelVersion.Kind.DEMAND:
        params = {"trainer": DEMAND_TRAINER}
        if gate:
            params.update(gate="backtest", reason=reason[:500])
        return _queue(kind, DEMAND_TRAINER, "", params, user, tenant, enqueue)
    config = text_config()
    trainer = trainer or config.trainer
    if trainer not in TRAINERS:
        raise ServiceError(
            f"unknown trainer {trainer!r}: use {', '.join(TRAINERS)}",
            code="invalid_choice",
            attr="trainer",
        )
    name = base_model or config.base_model
    path = base_model_path(name)
    if trainer != "baseline":
        try:
            folder = check_base_model(path)  # a clear error before any work starts
        except BaseModelError as exc:
            raise ServiceError(str(exc), code="invalid_base_model", attr="base_model") from exc
    else:
        folder = None
    epochs = epochs or config.epochs
    if not 1 <= epochs <= 50:
        raise ServiceError("epochs must be between 1 and 50", code="invalid", attr="epochs")
    label = f"{name} ({folder})" if folder else name
    params = {"trainer": trainer, "epochs": epochs, "base_model": name}
    return _queue(kind, trainer, label, params, user, tenant, enqueue)


def _queue(kind, trainer, base_model, params, user, tenant, enqueue) -> ModelVersion:
    latest = ModelVersion.objects.filter(kind=kind).aggregate(v=Max("version"))["v"] or 0
    version = ModelVersion.objects.create(
        tenant=tenant,
        kind=kind,
        version=latest + 1,
        requested_trainer=trainer,
        base_model=base_model,
        hyperparameters=params,
        created_by=user,
    )
    why = f": {params['reason']}" if params.get("reason") else ""
    audit.record(
        "model.training_queued",
        target=version,
        summary=f"{version.get_kind_display()} v{version.version} ({trainer}){why}",
        after=params,
    )
    if enqueue:
        from .tasks import train_model_version

        tenant_id, version_id = tenant.pk, version.pk
        transaction.on_commit(lambda: train_model_version.delay(tenant_id, version_id))
    return version


def _training_data() -> tuple[list[int], list[str], list]:
    from pricing_saas.catalog.models import Product

    from .science.text_price import product_text

    ids, texts, prices = [], [], []
    rows = Product.objects.filter(active=True).values_list(
        "pk", "title", "description", "brand", "category", "attributes", "price"
    )
    for pk, title, description, brand, category, attributes, price in rows.iterator(
        chunk_size=5000
    ):
        ids.append(pk)
        texts.append(product_text(title, description, brand, category, attributes))
        prices.append(price)
    return ids, texts, prices


def run_training(*, version_id: int, on_progress=None, sync: bool = False) -> ModelVersion | None:
    """Train a queued version (idempotent: anything not queued is left alone). With `sync`,
    the promoted model's reference prices are computed here too, not on the queue. A run that
    loses its database connection is marked failed, saying so, once the database answers."""
    version, claimed = ModelVersion.claim(version_id)
    if not claimed:
        return version
    try:
        return _train(version, on_progress, sync)
    except Exception as exc:
        if connection_lost(exc):
            fail_once_the_database_answers(version, exc)
        raise


def _train(version: ModelVersion, on_progress, sync: bool) -> ModelVersion:
    from .science.text_price import (
        TooFewProducts,
        TrainConfig,
        TrainingCancelled,
        save_predictor,
        train_text_model,
    )

    if version.kind == ModelVersion.Kind.DEMAND:
        return _run_demand(version)
    params = version.hyperparameters
    config = TrainConfig(
        trainer=params.get("trainer", "finetune"),
        base_model=base_model_path(params.get("base_model", "minilm")),
        epochs=int(params.get("epochs", 10)),
        time_limit_s=ModelVersion.time_limit.soft_s * 0.9,
    )
    checked = {"at": 0.0, "cancel": False}
    lock = threading.Lock()

    def progress(state: dict) -> None:
        with lock:
            version.set_progress(progress=state)
        if on_progress:
            on_progress(state)

    def cancelled() -> bool:
        now = time.monotonic()
        if now - checked["at"] > 3:
            checked["at"] = now
            checked["cancel"] = version.cancel_was_requested()
        return checked["cancel"]

    ids, texts, prices = _training_data()
    version.data_size = len(ids)
    try:
        outcome = train_text_model(
            texts, prices, config, progress=progress, cancelled=cancelled, keys=ids
        )
    except TooFewProducts as exc:
        return _end(version, ModelVersion.Status.FAILED, str(exc))
    except TrainingCancelled:
        return _end(version, ModelVersion.Status.CANCELLED, "cancelled by a user")
    except Exception as exc:
        logger.exception("training %s failed", version.pk)
        _end(
            version, ModelVersion.Status.FAILED, f"training failed: {exc.__class__.__name__}: {exc}"
        )
        raise
    folder = Path(tempfile.mkdtemp(prefix="model-"))
    try:
        save_predictor(outcome.predictor, folder, {"version": version.version})
        _save_held_out(folder, outcome.held_out)
        version.artifact.save(
            f"{version.tenant_id}-{version.kind}-v{version.version}.zip",
            ContentFile(_zip(folder)),
            save=False,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    version.metrics = outcome.metrics
    version.trainer = outcome.chosen
    note = outcome.metrics.get("note", "")
    refit = outcome.metrics.get("refit")
    if refit and refit["refitted"]:
        note += f" Refitted on all {refit['products']} products: {', '.join(refit['refitted'])}"
        note += f" ({', '.join(refit['kept'])} kept as trained)." if refit["kept"] else "."
    elif refit:
        note += f" {', '.join(refit['kept'])} kept as trained (a GPU refits it on all products)."
    message = f"{outcome.chosen} won on the held-out products. {note.strip()}".strip()
    if not text_config().auto_promote:
        return _end(version, ModelVersion.Status.READY, message)
    verdict = _against_version_in_force(outcome.held_out)
    if verdict is not None:
        version.metrics = {**outcome.metrics, "against_in_force": verdict}
        message += " " + verdict["message"]
    version = _end(version, ModelVersion.Status.READY, message)
    if verdict is None or verdict["promoted"]:
        version = promote(version=version, refresh_now=sync)
    return version


HELD_OUT_FILE = "held_out.json"


def _save_held_out(folder: Path, held_out: dict) -> None:
    """The chosen model's log prices for its held-out products, by product id, beside the
    artifact: a later version is compared with this one on the products both held out."""
    import json

    pairs = zip(held_out["keys"], held_out["log_predicted"], strict=True)
    rows = {str(key): round(float(value), 6) for key, value in pairs}
    (folder / HELD_OUT_FILE).write_text(json.dumps({"log_predicted": rows}))


def _held_out_of(version: ModelVersion) -> dict[str, float] | None:
    import json

    try:
        with version.artifact.open("rb") as handle, zipfile.ZipFile(handle) as archive:
            if HELD_OUT_FILE not in archive.namelist():
                return None
            return json.loads(archive.read(HELD_OUT_FILE))["log_predicted"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _against_version_in_force(held_out: dict) -> dict | None:
    """How a newly trained text version compares with the version in force on the same
    held-out products (None: none is in force). The version in force answers with the
    predictions it made for its own held-out products before its refit (the split is by
    product id, so both held out the same products and neither saw them); a version trained
    before these were kept is scored now on the new run's held-out texts. The new version
    wins only with a lower RMSLE (to 4 decimals)."""
    import numpy as np

    current = promoted_version(ModelVersion.Kind.TEXT)
    if current is None:
        return None
    keys = [str(key) for key in held_out["keys"]]
    actual = np.asarray(held_out["log_actual"], float)
    new = np.asarray(held_out["log_predicted"], float)
    kept = _held_out_of(current) or {}
    common = [i for i, key in enumerate(keys) if key in kept]
    if common and len(common) >= len(keys) / 2:
        rows = np.asarray(common)
        old = np.asarray([kept[keys[i]] for i in common], float)
        how = "its predictions for the products it held out"
    else:
        try:
            predictor = load_version_predictor(current)
            old = np.log1p(predictor.predict(held_out["texts"]).price)
        except Exception as exc:  # an artifact that cannot be read must not block the new one
            logger.exception("scoring version %s in force failed", current.pk)
            return {
                "version": current.version,
                "promoted": True,
                "message": f"Promoted: v{current.version} in force could not be scored "
                f"({exc.__class__.__name__}).",
            }
        rows = np.arange(len(keys))
        how = "scored now (it predates held-out records; it may have seen some of them)"
    new_rmsle = round(float(np.sqrt(np.mean((new[rows] - actual[rows]) ** 2))), 4)
    old_rmsle = round(float(np.sqrt(np.mean((old - actual[rows]) ** 2))), 4)
    wins = new_rmsle < old_rmsle
    figures = (
        f"held-out RMSLE {new_rmsle:.4f} against {old_rmsle:.4f} for v{current.version} in "
        f"force, on the same {len(rows)} products"
    )
    message = (
        f"Promoted: {figures}."
        if wins
        else f"Not promoted: {figures}; it stays ready (promote it by hand to use it anyway)."
    )
    return {
        "version": current.version,
        "products": len(rows),
        "rmsle": new_rmsle,
        "in_force_rmsle": old_rmsle,
        "in_force_scored_by": how,
        "promoted": wins,
        "message": message,
    }


def _run_demand(version: ModelVersion) -> ModelVersion:
    import numpy as np

    from . import partitioned
    from .science.demand import fit_demand

    if partitioned.wanted(_products_with_sales()):
        return _start_partitioned(version)
    panel, product_ids, stats = demand_panel()
    days = 0 if panel is None else len(np.unique(panel.day))
    if panel is None or len(panel.units) < MIN_SALES_ROWS or days < MIN_SALES_DAYS:
        n = 0 if panel is None else len(panel.units)
        return _end(
            version,
            ModelVersion.Status.FAILED,
            f"{NOT_ENOUGH_HISTORY}: {n} product-days on {days} days; at least "
            f"{MIN_SALES_ROWS} product-days on {MIN_SALES_DAYS} days are "
            "needed",
        )
    try:
        fit = fit_demand(panel)
    except Exception as exc:
        logger.exception("demand fit %s failed", version.pk)
        _end(
            version,
            ModelVersion.Status.FAILED,
            f"demand fit failed: {exc.__class__.__name__}: {exc}",
        )
        raise
    observed = np.bincount(panel.sku, minlength=len(product_ids))

    def challenge():
        return _challenge(panel, product_ids)

    return finish_demand(
        version,
        fit,
        product_ids,
        observed,
        len(panel.units),
        stats,
        last_day=date.fromordinal(int(np.max(panel.day))),
        reading_day=panel.reading_day,
        challenge=challenge,
    )


def _products_with_sales() -> int:
    from django.db import connection

    from pricing_saas.catalog.models import SalesRecord

    with connection.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(DISTINCT product_id) FROM {SalesRecord._meta.db_table} "
            "WHERE tenant_id = %s",
            [require_current_tenant().pk],
        )
        return int(cur.fetchone()[0])


def _start_partitioned(version: ModelVersion) -> ModelVersion:
    """A tenant above DEMAND_PARTITION_MIN_SKUS: the fit runs in parts (ml.partitioned)."""
    from . import partitioned
    from .panel import tenant_facts

    facts = tenant_facts()
    first, last = facts["day_range"] or (0, -1)
    if last - first + 1 < MIN_SALES_DAYS:
        return _end(
            version,
            ModelVersion.Status.FAILED,
            f"{NOT_ENOUGH_HISTORY}: sales on {max(last - first + 1, 0)} days; at least "
            f"{MIN_SALES_DAYS} days are needed",
        )
    return partitioned.start(version, facts)


ELASTICITY_CHUNK = 50_000  # estimate rows built and copied at a time (bounded memory)


def finish_demand(
    version,
    fit,
    product_ids,
    observed,
    data_size,
    stats,
    *,
    last_day,
    challenge,
    reading_day: int | None = None,
) -> ModelVersion:
    """Store a demand fit's estimates and artifact, end the run ready and promote it (unless a
    gated run loses its backtest: `challenge()` says; None: a gated run cannot be backtested
    and stays ready). The one-process fit and the partitioned fit's reduce both end here."""
    import numpy as np

    estimates = {
        "product_id": np.asarray(product_ids, dtype=np.int64),
        "elasticity": fit.elasticity,
        "elasticity_se": fit.elasticity_se,
        "raw_elasticity": fit.raw_elasticity,
        "curvature": fit.curvature if fit.curvature is not None else np.zeros(len(product_ids)),
        "typical_price": fit.typical_price,
        # per calendar day: the intercept is an open day's level (DemandFit.open_share)
        "units_per_day": np.exp(fit.intercept) * fit.open_share,
        "days_observed": observed,
        "price_low": fit.price_low,
        "price_high": fit.price_high,
        "from_prior": fit.from_prior.astype(bool),
        "competitor_slope": fit.competitor_above,
        "competitor_slope_se": fit.competitor_above_se,
        "curvature_se": fit.curvature_se,
        "gap_low": fit.gap_low,
        "gap_high": fit.gap_high,
        "slope_hinge_corr": (
            fit.slope_hinge_corr if fit.slope_hinge_corr is not None else np.zeros(len(product_ids))
        ),
        # every recent day's units over a shelf day's (units_per_day is a shelf day's; NaN,
        # stored NULL: not read, a fit whose blocks were staged by an older version)
        "promo_lift": (
            fit.promo_lift if fit.promo_lift is not None else np.full(len(product_ids), np.nan)
        ),
        # the position the level was read at (NaN, stored NULL: none known)
        "gap_today": (
            fit.gap_today if fit.gap_today is not None else np.full(len(product_ids), np.nan)
        ),
        # the competitor's price it is against, and its week's days read (NaN: none known)
        "competitor_then": (
            fit.competitor_then
            if fit.competitor_then is not None
            else np.full(len(product_ids), np.nan)
        ),
        "competitor_then_readings": (
            np.where(np.isfinite(fit.competitor_then), fit.competitor_then_k, np.nan)
            if fit.competitor_then is not None and fit.competitor_then_k is not None
            else np.full(len(product_ids), np.nan)
        ),
    }
    buffer = io.BytesIO()
    # The artifact holds every estimate, so a version whose rows were pruned can be restored.
    np.savez_compressed(buffer, coef=fit.coef, **estimates)
    with transaction.atomic():
        for start in range(0, len(product_ids), ELASTICITY_CHUNK):
            part = slice(start, start + ELASTICITY_CHUNK)
            _store_elasticities(version, {k: v[part] for k, v in estimates.items()})
        version.artifact.save(
            f"{version.tenant_id}-demand-v{version.version}.npz",
            ContentFile(buffer.getvalue()),
            save=False,
        )
        version.trainer = DEMAND_TRAINER
        version.data_size = data_size
        version.metrics = {
            "chosen": DEMAND_TRAINER,
            DEMAND_TRAINER: {"pooled_elasticity": round(fit.pooled_elasticity, 4),
                             "pooled_se": round(fit.pooled_se, 4),
                             "dispersion": round(fit.dispersion, 3),
                             # Var = mu + k mu^2 behind each SKU's own fits' weights
                             "overdispersion_k": round(fit.weight_k, 3),
                             # the k the counts read, and the median SKU's variance of its
                             # own slope on those weights over Poisson's: the weights are
                             # the negative binomial's only where that is below 1
                             "counts_k": round(fit.counts_k, 3),
                             "weights_ratio": None if not np.isfinite(fit.weights_ratio)
                             else round(fit.weights_ratio, 3),
                             "competitor_hinges": int(np.sum(fit.competitor_above < 0)),
                             "ramp_sd": round(fit.ramp_sd, 5),
                             # the share of calendar days open: units_per_day is an open
                             # day's level times it (stored per open day before 2026-12-05)
                             "open_share": round(fit.open_share, 4),
                             # one normal spread (what older readers take), and the
                             # mixture with its share without a hinge (ml.selectors)
                             "hinge_prior": None if fit.hinge_normal is None
                             else [round(v, 5) for v in fit.hinge_normal],
                             "hinge_mixture": None if fit.hinge_prior is None
                             else [round(v, 5) for v in fit.hinge_prior],
                             "from_prior": int(fit.from_prior.sum())},
            "n_skus": len(product_ids), "product_days": data_size, **stats,
            "last_day": last_day.isoformat(),
            # the day the fit read today's competitor price up to (ml.panel.competitor_today):
            # a job never reads an older week than its model's (RepriceJob.reading_day); a
            # version that stored no week per SKU has it read again there
            **({"reading_day": date.fromordinal(int(reading_day)).isoformat()}
               if reading_day else {}),
            "coefficients": dict(zip(fit.coef_names, np.round(fit.coef, 4).tolist(), strict=True)),
        }  # fmt: skip
        summary = f"pooled elasticity {fit.pooled_elasticity:.2f} ± {fit.pooled_se:.2f}"
        message = f"{summary} over {len(product_ids)} SKUs."
        verdict = None
        if version.hyperparameters.get("gate") == "backtest":
            verdict = (
                challenge()
                if challenge is not None
                else {
                    "promoted": False,
                    "message": "Not promoted: a model fitted in parts is not backtested; it "
                    "stays ready (promote it by hand to use it anyway).",
                }
            )
            version.metrics = {**version.metrics, "against_in_force": verdict}
            message += " " + verdict["message"]
        _end(version, ModelVersion.Status.READY, message)
        if verdict is None or verdict["promoted"]:
            version = promote(version=version)
        _prune_elasticities(also_keep=version.pk)
    return version


def _challenge(panel, product_ids) -> dict:
    """Whether a gated demand run may replace the version in force: the same method refitted
    on all but the newest days, against the version in force, both forecasting those days
    (ml.science.backtest.champion_challenger). The held-out days are only days the version in
    force never saw; with fewer than MIN_NEW_DAYS of them nothing can be judged fairly and the
    version in force stays."""
    import numpy as np

    from .science.backtest import MIN_NEW_DAYS, MIN_SCORED_SKUS, champion_challenger, holdout_for
    from .selectors import demand_curve

    current = promoted_version(ModelVersion.Kind.DEMAND)
    if current is None:
        return {"promoted": True, "message": "Promoted: no demand model was in force."}
    seen = current.metrics.get("last_day")
    seen_until = (
        date.fromisoformat(seen)
        if seen
        else timezone.localtime(current.started_at or current.created_at).date()
    )
    last = int(np.max(panel.day))
    holdout = holdout_for(last, seen_until.toordinal())
    base = {"version": current.version, "in_force_saw_until": seen_until.isoformat()}
    if holdout == 0:
        return {
            **base,
            "promoted": False,
            "message": f"Not promoted: v{current.version} in force has seen the sales up to "
            f"{seen_until.isoformat()}; a fair backtest needs at least {MIN_NEW_DAYS} newer days "
            f"(there are {max(last - seen_until.toordinal(), 0)}). It stays ready (promote it "
            "by hand to use it anyway).",
        }
    latest = np.full(len(product_ids), np.nan)  # the anchor: each SKU's latest price
    order = np.lexsort((panel.day, panel.sku))
    latest[panel.sku[order]] = np.asarray(panel.price, float)[order]  # the last write wins
    from pricing_saas.catalog.models import Product

    category = dict(Product.objects.filter(pk__in=list(product_ids)).values_list("pk", "category"))
    champion, _known = demand_curve(
        current,
        product_ids,
        np.nan_to_num(latest, nan=1.0),
        categories=[category.get(int(pk), "") for pk in product_ids],
    )  # a SKU the version in force has no estimate for: its category's prior slope
    try:
        result = champion_challenger(panel, champion, holdout)
    except ValueError as exc:
        return {**base, "promoted": False, "message": f"Not promoted: {exc}."}
    figures = (
        f"on the last {holdout} days (neither model saw them; {result.skus} SKUs whose price "
        f"moved, {result.rows} SKU-days) the retrained model's deviance is "
        f"{result.deviance_challenger:.4f} against {result.deviance_champion:.4f} for "
        f"v{current.version} in force (the improvement's 95 % interval "
        f"{result.difference_low:.4f} to {result.difference_high:.4f}"
        + (
            ""
            if result.wins
            else f"; fewer than {MIN_SCORED_SKUS} SKUs to judge on"
            if result.skus < MIN_SCORED_SKUS
            else ": not clearly above 0"
        )
        + ")"
    )
    return {
        **base,
        "promoted": result.wins,
        "holdout_days": holdout,
        "skus": result.skus,
        "rows": result.rows,
        "skus_price_still": result.skus_price_still,
        "skus_prior": result.skus_prior,
        "deviance": round(result.deviance_challenger, 6),
        "in_force_deviance": round(result.deviance_champion, 6),
        "improvement_low": round(result.difference_low, 6),
        "improvement_high": round(result.difference_high, 6),
        "message": (
            f"Promoted: {figures}."
            if result.wins
            else f"Not promoted: {figures}; it stays ready (promote it by hand to use it anyway)."
        ),
    }


ELASTICITY_VERSIONS_KEPT = 5  # demand versions whose estimates stay as rows (rollback targets)
ESTIMATE_FIELDS = ("product_id", "elasticity", "elasticity_se", "raw_elasticity", "curvature",
                   "typical_price", "units_per_day", "days_observed")  # fmt: skip
# Kept since the evidence range: absent from older artifacts (restored as unknown).
OPTIONAL_FIELDS = ("price_low", "price_high", "from_prior", "competitor_slope",
                   "competitor_slope_se", "gap_low", "gap_high", "curvature_se",
                   "slope_hinge_corr", "promo_lift", "gap_today", "competitor_then",
                   "competitor_then_readings")  # fmt: skip
# The optional estimates stored as they are, NULL where not finite (an artifact stored before
# one: NULL, none known).
NULLABLE_FIELDS = ("curvature_se", "slope_hinge_corr", "promo_lift", "gap_today",
                   "competitor_then")  # fmt: skip


def _store_elasticities(version: ModelVersion, estimates) -> int:
    """One Elasticity row per product of `estimates` (arrays by ESTIMATE_FIELDS; the optional
    ones, OPTIONAL_FIELDS, unknown where absent), for `version`."""
    import math

    import numpy as np

    from tenants.bulk import copy_insert

    from .models import Elasticity

    tenant = require_current_tenant()
    size = len(estimates[ESTIMATE_FIELDS[0]])

    def column(name: str, fill=np.nan, convert=float, required: bool = False) -> list:
        """The column as values, None where not finite (unknown); an optional one absent: all
        `fill`."""
        given = estimates[name] if required else estimates.get(name, np.full(size, fill))
        values = np.asarray(given, float).tolist()
        return [convert(v) if math.isfinite(v) else None for v in values]

    def count(value: float) -> int:  # (a count of days of a week: 0-7)
        return int(min(max(value, 0), 32767))

    required = {
        "product_id": [int(v) for v in np.asarray(estimates["product_id"]).tolist()],
        "elasticity": np.asarray(estimates["elasticity"], float).tolist(),
        "elasticity_se": np.asarray(estimates["elasticity_se"], float).tolist(),
        "raw_elasticity": column("raw_elasticity", required=True),
        "curvature": np.asarray(estimates["curvature"], float).tolist(),
        "typical_price": [_money(v) for v in np.asarray(estimates["typical_price"]).tolist()],
        "units_per_day": np.asarray(estimates["units_per_day"], float).tolist(),
        "days_observed": [int(v) for v in np.asarray(estimates["days_observed"]).tolist()],
    }
    optional = {
        "price_low": column("price_low", convert=_money),
        "price_high": column("price_high", convert=_money),
        "from_prior": np.asarray(estimates.get("from_prior", np.zeros(size)), bool).tolist(),
        # (none read: 0, no hinge)
        "competitor_slope": [0.0 if v is None else v for v in column("competitor_slope", 0.0)],
        "competitor_slope_se": column("competitor_slope_se", np.inf),
        "gap_low": column("gap_low"),
        "gap_high": column("gap_high"),
        **{name: column(name) for name in NULLABLE_FIELDS},
        "competitor_then_readings": column("competitor_then_readings", convert=count),
    }
    columns = {**required, **optional}
    names = list(columns)
    base = {"tenant_id": tenant.pk, "model_version_id": version.pk}
    rows = [
        {**base, **dict(zip(names, values, strict=True))}
        for values in zip(*columns.values(), strict=True)
    ]
    return copy_insert(Elasticity, rows)


def _prune_elasticities(also_keep: int | None = None) -> None:
    """Keep the estimate rows of the ELASTICITY_VERSIONS_KEPT most recently promoted demand
    versions (the one in force and the rollback targets) and of `also_keep` (a run just trained
    but not promoted); older versions are retired, their estimates kept in their artifacts
    (promoting one restores its rows)."""
    from .models import Elasticity

    promoted = ModelVersion.objects.filter(kind=ModelVersion.Kind.DEMAND, promoted_at__isnull=False)
    keep = list(
        promoted.order_by("-promoted_at").values_list("pk", flat=True)[:ELASTICITY_VERSIONS_KEPT]
    ) + ([also_keep] if also_keep else [])
    stale = set(
        Elasticity.objects.exclude(model_version__in=keep)
        .values_list("model_version", flat=True)
        .distinct()
    )
    if not stale:
        return
    Elasticity.objects.filter(model_version__in=stale).delete()
    ModelVersion.objects.filter(pk__in=stale, status=ModelVersion.Status.READY).update(
        status=ModelVersion.Status.RETIRED
    )


def _restore_elasticities(version: ModelVersion) -> None:
    """Rows for a demand version being promoted again after its rows were pruned."""
    import numpy as np

    from pricing_saas.catalog.models import Product

    from .models import Elasticity

    stored = Elasticity.objects.filter(model_version=version).count()
    if stored and stored >= int(version.metrics.get("n_skus", 0)):
        return
    with version.artifact.open("rb") as handle, np.load(handle) as archive:
        missing = [name for name in ESTIMATE_FIELDS if name not in archive.files]
        if missing and stored:
            # Trained before estimates were kept per version: the rows it still has (the
            # products it was the last to estimate) are all there is; the rest get priors.
            return
        if missing:
            raise ServiceError(
                f"version {version.version} was trained before its estimates were archived in "
                "full and its rows are gone: train a new demand model instead",
                code="invalid_state",
            )
        estimates = {name: archive[name] for name in ESTIMATE_FIELDS}
        estimates.update({k: archive[k] for k in OPTIONAL_FIELDS if k in archive.files})
    known = set(
        Product.objects.filter(pk__in=estimates["product_id"].tolist()).values_list("pk", flat=True)
    )
    alive = np.isin(estimates["product_id"], list(known))
    Elasticity.objects.filter(model_version=version).delete()  # a partial set, if any
    _store_elasticities(version, {k: np.asarray(v)[alive] for k, v in estimates.items()})


def _end(version: ModelVersion, status: str, message: str) -> ModelVersion:
    """A training run's end; the trainer's progress state is not kept (it is shown while the
    run trains)."""
    return version.finish(status=status, message=message, progress={})


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    return buffer.getvalue()


@transaction.atomic
def cancel(*, version: ModelVersion) -> ModelVersion:
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if not version.request_cancel():
        raise ServiceError(
            "only a queued or running training can be cancelled", code="invalid_state"
        )
    return version


@transaction.atomic
def promote(*, version: ModelVersion, refresh_now: bool = False) -> ModelVersion:
    """Put a trained version in force; its reference prices are recomputed after commit (on the
    ml_train queue, or right here with refresh_now)."""
    versions = ModelVersion.objects.select_for_update().filter(kind=version.kind)
    # Every version of the kind is locked, in one order, before any write: two promotions (or a
    # promotion and a training run's pruning) wait for each other instead of deadlocking or
    # leaving two versions promoted.
    locked = {v.pk: v for v in versions.order_by("pk")}
    if version.pk not in locked:
        raise NotFoundError(f"no {version.kind} model version {version.pk}", code="not_found")
    target = locked[version.pk]
    if target.status == ModelVersion.Status.PROMOTED:
        return target
    if not target.promotable or not target.artifact:
        raise ServiceError(
            f"version {target.version} is {target.status}: only a trained model can be promoted",
            code="invalid_state",
        )
    before = next((v for v in locked.values() if v.status == ModelVersion.Status.PROMOTED), None)
    versions.filter(status=ModelVersion.Status.PROMOTED).update(status=ModelVersion.Status.READY)
    target.status, target.promoted_at = ModelVersion.Status.PROMOTED, timezone.now()
    target.save(update_fields=["status", "promoted_at"])
    audit.record(
        "model.promoted",
        target=target,
        summary=f"{target.get_kind_display()} v{target.version} in force"
        + (f" (was v{before.version})" if before else ""),
        before={"version": before.version} if before else None,
        after={"version": target.version},
    )
    if target.kind != ModelVersion.Kind.TEXT:
        _restore_elasticities(target)  # stored when trained, unless pruned since
        return target
    if refresh_now:
        transaction.on_commit(lambda: refresh_reference_prices(version_id=target.pk))
    else:
        transaction.on_commit(lambda: refresh_reference_prices_async(target))
    return target


@transaction.atomic
def rollback(*, kind: str = ModelVersion.Kind.TEXT) -> ModelVersion:
    """Promote the version that was in force before the current one."""
    current = ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.PROMOTED).first()
    if current is None:
        raise NotFoundError("no promoted model to roll back from", code="nothing_to_roll_back")
    previous = (
        ModelVersion.objects.filter(kind=kind, promoted_at__isnull=False, artifact__gt="")
        .exclude(pk=current.pk)
        .exclude(status__in=[ModelVersion.Status.FAILED, ModelVersion.Status.CANCELLED])
        .order_by("-promoted_at")
        .first()
    )
    if previous is None:
        raise ServiceError(
            "no earlier promoted version to roll back to", code="nothing_to_roll_back"
        )
    audit.record(
        "model.rolled_back",
        target=previous,
        summary=f"{current.get_kind_display()}: v{current.version} back to v{previous.version}",
    )
    return promote(version=previous)


def refresh_reference_prices_async(version: ModelVersion) -> None:
    from .tasks import refresh_reference_prices as task

    task.delay(version.tenant_id, version.pk)


def refresh_reference_prices(*, version_id: int) -> int:
    """Store a reference price for every active product.

    Products with a price were part of the training data, so they get out-of-fold prices
    (5-fold cross-fitting of the text baseline): no product is judged by a model that memorised
    it. The promoted model prices text it has not seen (new products, predict_prices, the API).
    A reference far outside its category's prices is stored flagged (outside_category_range)
    and is not to be used.
    """
    from pricing_saas.catalog.models import Product

    from .science.text_price import cross_fitted, outside_category_range

    version = ModelVersion.objects.filter(
        pk=version_id, status=ModelVersion.Status.PROMOTED
    ).first()
    if version is None:
        return 0
    tenant = require_current_tenant()
    ids, texts, prices = _training_data()
    if not ids:
        return 0
    prediction = cross_fitted(texts, [float(p) for p in prices])
    category = dict(Product.objects.filter(pk__in=ids).values_list("pk", "category"))
    flagged = outside_category_range(
        prediction.price, [category.get(pk, "") for pk in ids], [float(p) for p in prices]
    )
    objects = [
        ReferencePrice(
            tenant=tenant,
            product_id=pk,
            model_version=version,
            price=_money(p),
            low=_money(lo),
            high=_money(hi),
            outside_category_range=bool(flag),
        )
        for pk, p, lo, hi, flag in zip(
            ids, prediction.price, prediction.low, prediction.high, flagged, strict=True
        )
    ]
    with transaction.atomic():
        ReferencePrice.objects.bulk_create(
            objects,
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["tenant", "product"],
            update_fields=[
                *("model_version", "price", "low", "high"),
                *("outside_category_range", "computed_at"),
            ],
        )
    return len(objects)


def _money(value: float) -> Decimal:
    return Decimal(str(round(min(float(value), 9_999_999_999.0), 4)))


# A model file is stored at the end of its training and its row committed in the same task:
# one older than the task's hard time limit (and an hour) that no version names was left by a
# worker killed in between. The sweep also waits while any of the tenant's versions is active
# (a training run from a command has no time limit).
ARTIFACT_ORPHAN_AFTER = timedelta(seconds=ModelVersion.time_limit.hard_s) + timedelta(hours=1)


def sweep_orphan_artifacts(*, older_than: timedelta = ARTIFACT_ORPHAN_AFTER) -> int:
    """Delete the current tenant's stored model files that none of its versions names and that
    are older than `older_than` (a worker killed between storing a version's artifact and
    committing the row: the row rolled back, the file did not). Reads only the tenant's own
    prefix (ml.models.artifact_path) and files named for it (`<tenant id>-...`), so one
    tenant's sweep never judges another's files. Returns how many were deleted."""
    from django.core.files.storage import default_storage

    if ModelVersion.objects.filter(status__in=ModelVersion.states.active).exists():
        return 0  # a run may be storing its file now
    storage = default_storage
    pk = require_current_tenant().pk
    named = set(ModelVersion.objects.exclude(artifact="").values_list("artifact", flat=True))
    names = [
        name
        for name in dated_files(storage, f"models/tenants/{pk}")
        if name.rsplit("/", 1)[-1].startswith(f"{pk}-")
    ]
    deleted = delete_unnamed(storage, names, named, timezone.now() - older_than)
    if deleted:
        logger.warning("deleted %s model file(s) no version names of tenant %s", deleted, pk)
    return deleted
