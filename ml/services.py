"""Writes of the ml app: start, run, cancel, promote and roll back training runs; store
reference prices. The science itself lives in the pure module ml.science.text_price."""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import threading
import time
import zipfile
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from pricing_saas.web.errors import NotFoundError, ServiceError
from tenants.context import require_current_tenant

from .models import ModelVersion, ReferencePrice, TextModelConfig

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
) -> ModelVersion:
    """Queue a training run (idempotent: a run already queued or training is returned)."""
    from ml.science.text_price import BaseModelError, check_base_model

    if kind not in ModelVersion.Kind.values:
        raise ServiceError(f"unknown model kind {kind!r}", code="invalid_choice", attr="kind")
    tenant = require_current_tenant()
    running = ModelVersion.lock_active(kind=kind)  # one past its time limit is marked lost
    if running is not None:
        return running
    if kind == ModelVersion.Kind.DEMAND:
        return _queue(kind, DEMAND_TRAINER, "", {"trainer": DEMAND_TRAINER}, user, tenant, enqueue)
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
    if enqueue:
        from .tasks import train_text_model

        tenant_id, version_id = tenant.pk, version.pk
        transaction.on_commit(lambda: train_text_model.delay(tenant_id, version_id))
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
    the promoted model's reference prices are computed here too, not on the queue."""
    from .science.text_price import (
        TooFewProducts,
        TrainConfig,
        TrainingCancelled,
        save_predictor,
        train_text_model,
    )

    version, claimed = ModelVersion.claim(version_id)
    if not claimed:
        return version
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
        version.artifact.save(f"{version.tenant_id}-{version.kind}-v{version.version}.zip",
                              ContentFile(_zip(folder)), save=False)  # fmt: skip
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
            return {"version": current.version, "promoted": True,
                    "message": f"Promoted: v{current.version} in force could not be scored "
                               f"({exc.__class__.__name__})."}  # fmt: skip
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
    return {"version": current.version, "products": len(rows), "rmsle": new_rmsle,
            "in_force_rmsle": old_rmsle, "in_force_scored_by": how, "promoted": wins,
            "message": message}  # fmt: skip


PRICE_TOLERANCE = 0.005  # prices within 0.5 % count as the same price
# A SKU's sales rows are a daily report (days without a sale listed as 0 units) when it has
# 0-unit rows with a price and rows on at least this share of the days between its first and
# last row; otherwise an order export, whose 0-unit rows (refunds, empty channels) are dropped.
DAILY_REPORT_COVERAGE = 0.8


def demand_panel():
    """Daily units per product (channels summed) between its first and last sale. Days without a
    sale count as zero units while the product is active and its price is known: recorded as a
    row with 0 units and the day's price, or unchanged between the sales around them; see the
    comments below. Every product is handled at once with numpy (no loop per product)."""
    import numpy as np

    from pricing_saas.catalog.models import Product, SalesRecord

    from .science.demand import Panel

    # Channels summed per product and day, read with one binary COPY straight into numpy (the
    # ORM built 2 million Python tuples for a 100,000-SKU tenant: 30 s of a 100 s training).
    data = _copy_columns(
        "SELECT product_id, (date - DATE '0001-01-01') + 1, SUM(units), "
        "COALESCE(SUM(revenue), 0), BOOL_OR(promo)::int, "
        # the listed price of the day: units-weighted over channels (MAX for 0-unit rows)
        "COALESCE(SUM(price * units) / NULLIF(SUM(units), 0), MAX(price)) "
        f"FROM {SalesRecord._meta.db_table} WHERE tenant_id = {int(require_current_tenant().pk)} "
        "GROUP BY product_id, date ORDER BY product_id, date",
        6,
    )
    if len(data) == 0:
        return None, [], {}
    active = dict(Product.objects.values_list("pk", "active"))
    categories = dict(Product.objects.values_list("pk", "category"))
    today = dict(Product.objects.values_list("pk", "price"))
    products, sku = np.unique(data[:, 0].astype(int), return_inverse=True)
    days, units, revenue, promo = data[:, 1].astype(int), data[:, 2], data[:, 3], data[:, 4]
    # A row with 0 units and a price is a day on sale without a sale (a daily report): the
    # price it lists is the price nobody bought at, an observed zero.
    recorded_zero = (units == 0) & (data[:, 5] > 0)
    # The own price is the listed (shelf) price the merchant sets; what buyers paid below it
    # (a promotion, a coupon) is the discount depth, a control of its own: the two move demand
    # differently (a discount comes with display and advertising). Where the file lists the
    # paid price only, the depth is 0 and the price is the paid one.
    paid = np.where(units > 0, revenue / np.maximum(units, 1), np.nan)
    listed = data[:, 5]
    price = np.where(listed > 0, listed, paid)
    # A sale nobody paid for (fully discounted, free) has no price to learn from; but where the
    # tenant's files do not record revenue (0 on most sales), sales are at the listed price.
    sold_rows = units > 0
    tracks = bool(sold_rows.any()) and float(np.mean(revenue[sold_rows] > 0)) >= 0.5
    free = sold_rows & ~(paid > 0) & tracks
    price = np.where(recorded_zero | ((units > 0) & ~free & (price > 0)), price, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(
            (units > 0) & (paid > 0) & (listed > 0), np.minimum(np.log(paid / listed), 0.0), 0.0
        )
    # Per product (rows are sorted by product, then day), all at once:
    starts = np.flatnonzero(np.r_[True, sku[1:] != sku[:-1]])
    n_products = len(products)
    priced = np.isfinite(price) & (price > 0)  # free (fully discounted) sales have no price
    # Never sold at a price: no volume to learn from (cold start), left out of the panel.
    sold = np.bincount(sku, weights=priced & (units > 0), minlength=n_products) > 0
    # A daily report: 0-unit rows, and rows on most days of the SKU's span. A stray 0-unit row
    # in an order export (a refunded line) does not make one: it is dropped instead.
    span = days[np.r_[starts[1:], len(sku)] - 1] - days[starts] + 1
    daily = (np.bincount(sku, weights=recorded_zero, minlength=n_products) > 0) & (
        np.bincount(sku, weights=priced, minlength=n_products) >= DAILY_REPORT_COVERAGE * span
    )
    rows = priced & sold[sku] & (daily[sku] | ~recorded_zero)
    kept = [int(pk) for pk in products[sold]]  # panel index order
    index = np.cumsum(sold) - 1  # product -> panel index
    owner = sku[rows]
    d, u, p, pr, dp = days[rows], units[rows], price[rows], promo[rows], depth[rows]
    on_daily = daily[owner]
    # A daily report lists every day on sale (none is there because it sold) and a missing day
    # was not on sale. An order export has a price only on days with a sale: where the price
    # was the same at the sales before and after a day without one, the day had that price and
    # counts as zero units; where the price moved in between, the day is left out, and the
    # sales days whose inclusion depended on selling (their price differs from a neighbour's)
    # get a zero-truncated likelihood.
    same_owner = owner[1:] == owner[:-1]
    same_price = np.abs(p[1:] / p[:-1] - 1) <= PRICE_TOLERANCE
    same_next = np.r_[same_price | ~same_owner, True]  # the last row of a product: True
    same_prev = np.r_[True, same_next[:-1]]
    truncated = ~on_daily & ~(same_prev & same_next)
    is_active = np.array([active.get(int(pk), True) for pk in products], dtype=bool)[owner]
    gaps = np.diff(d) - 1  # days without a sale between consecutive sales of a product
    fill = np.flatnonzero(same_owner & ~on_daily[:-1] & is_active[:-1] & (gaps > 0)
                          & same_next[:-1])  # fmt: skip
    run = gaps[fill]  # every day strictly between the sales k and k + 1, for each k in fill
    zero_days = (
        np.repeat(d[fill] + 1, run) + np.arange(run.sum()) - np.repeat(np.cumsum(run) - run, run)
    )
    # Each product's sales rows, then its zero days (the order the fit has always seen).
    both_owner = np.r_[owner, np.repeat(owner[fill], run)]
    order = np.lexsort((np.r_[np.zeros(len(owner)), np.ones(len(zero_days))], both_owner))
    if not kept:
        return None, [], {}
    names = sorted({categories.get(pk, "") for pk in kept})
    cat_index = {name: j for j, name in enumerate(names)}
    category = np.array([cat_index[categories.get(pk, "")] for pk in kept])
    panel = Panel(
        sku=index[both_owner][order],
        day=np.r_[d, zero_days][order],
        units=np.r_[u, np.zeros(len(zero_days))][order],
        price=np.r_[p, np.repeat(p[fill], run)][order],
        promo=np.r_[pr, np.zeros(len(zero_days))][order],
        discount=np.r_[dp, np.zeros(len(zero_days))][order],
        category=category,
        current_price=np.array([float(today[pk]) if today.get(pk) else np.nan for pk in kept]),
        truncated=np.r_[truncated, np.zeros(len(zero_days), dtype=bool)][order],
    )
    competitor = _competitor_prices(kept, panel.sku, panel.day)
    if np.isfinite(competitor).any():
        panel.competitor_price = competitor
    return (
        panel,
        kept,
        {
            "zero_share": float(np.mean(panel.units == 0)),
            "truncated_share": float(np.mean(panel.truncated)),
            "competitor_share": float(np.mean(np.isfinite(competitor))),
            "discounted_share": float(np.mean(panel.discount < -0.01)),
        },
    )


def _copy_columns(query: str, width: int, params=()):
    """The rows of `query` (`width` columns of numbers or booleans, none NULL; `params` bound
    as in cursor.execute) as a float64 array of shape (rows, width), read with one binary COPY
    and parsed by numpy: every column is cast to float8 in SQL, so each row has the same layout
    (a 2-byte field count, then a 4-byte length and 8 bytes of value per column, big-endian)."""
    import numpy as np
    from django.db import connection

    from tenants.bulk import copy_out

    columns = ", ".join(f"c{i}::float8" for i in range(width))
    names = ", ".join(f"c{i}" for i in range(width))
    buffer = io.BytesIO()
    with transaction.atomic(), connection.cursor() as cur:
        sql = cur.mogrify(f"SELECT {columns} FROM ({query}) AS q ({names})", params).decode()
        copy_out(cur, sql, buffer, "FORMAT binary")
    raw = buffer.getbuffer()
    start = 19 + int.from_bytes(raw[15:19], "big")  # signature, flags, header extension
    row = [("n", ">i2")] + [(f, t) for i in range(width) for f, t in
                            ((f"l{i}", ">i4"), (f"v{i}", ">f8"))]  # fmt: skip
    dtype = np.dtype(row)
    body = len(raw) - start - 2  # the file ends with a 2-byte -1
    if body < 0 or body % dtype.itemsize or bytes(raw[-2:]) != b"\xff\xff":
        raise ValueError("a NULL or an unexpected column in a numeric COPY")
    records = np.frombuffer(raw, dtype=dtype, count=body // dtype.itemsize, offset=start)
    if len(records) and ((records["n"] != width).any() or any(
            (records[f"l{i}"] != 8).any() for i in range(width))):  # fmt: skip
        raise ValueError("a NULL or an unexpected column in a numeric COPY")
    return np.stack([records[f"v{i}"].astype(np.float64) for i in range(width)], axis=1)


COMPETITOR_CARRY_DAYS = 14  # an observed competitor price holds for two weeks, then unknown


def _competitor_prices(product_ids: list[int], sku, day):
    """The lowest competitor price per panel row (SKU, day): each competitor's price holds from
    its observation for COMPETITOR_CARRY_DAYS, until its next observation, or until it is seen
    out of stock (on the day itself when its last observation that day was out of stock), and
    the row takes the lowest of those in force (NaN where none is). Days are the tenant's local
    days, as sales dates are. All competitors at once, so a marketplace feed with many sellers
    costs what one does. The demand model controls for the gap to it (buyers drift away when a
    competitor is cheaper)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    import numpy as np

    from pricing_saas.catalog.models import CompetitorOffer

    out = np.full(len(sku), np.nan)
    if not len(sku) or not len(product_ids):
        return out
    tenant = require_current_tenant()
    zone = ZoneInfo(tenant.timezone)
    day = np.asarray(day, np.int64)
    first = dt.date.fromordinal(int(day.min()) - COMPETITOR_CARRY_DAYS)
    after = dt.date.fromordinal(int(day.max()) + 1)
    # Per competitor (numbered), product and local day: the day's lowest in-stock price (NaN if
    # only seen out of stock) and whether the last observation of the day was out of stock.
    obs = _copy_columns(
        "SELECT DENSE_RANK() OVER (ORDER BY competitor), product_id, "
        "(d - DATE '0001-01-01') + 1, COALESCE(low, 'NaN'), "
        "(last_out IS NOT NULL AND (last_in IS NULL OR last_out > last_in))::int "
        "FROM (SELECT competitor, product_id, (observed_at AT TIME ZONE %s)::date AS d, "
        "MIN(price) FILTER (WHERE in_stock)::float8 AS low, "
        "MAX(observed_at) FILTER (WHERE in_stock) AS last_in, "
        "MAX(observed_at) FILTER (WHERE NOT in_stock) AS last_out "
        f"FROM {CompetitorOffer._meta.db_table} WHERE tenant_id = %s "
        "AND observed_at >= %s AND observed_at < %s GROUP BY 1, 2, 3) AS g",
        5,
        [tenant.timezone, int(tenant.pk), dt.datetime.combine(first, dt.time(), zone),
         dt.datetime.combine(after, dt.time(), zone)],
    )  # fmt: skip
    known = np.asarray(product_ids, np.int64)  # ascending, as the panel numbers them
    pos = np.minimum(np.searchsorted(known, obs[:, 1].astype(np.int64)), len(known) - 1)
    obs = obs[known[pos] == obs[:, 1]]
    if not len(obs):
        return out
    comp, ident = obs[:, 0].astype(np.int64), np.searchsorted(known, obs[:, 1].astype(np.int64))
    on, price, sold_out = obs[:, 2].astype(np.int64), obs[:, 3], obs[:, 4] > 0
    order = np.lexsort((on, ident, comp))
    comp, ident, on, price, sold_out = (a[order] for a in (comp, ident, on, price, sold_out))
    # An observation holds until the same competitor's next one for the product, for at most
    # COMPETITOR_CARRY_DAYS, and only its own day when the competitor sold out that day.
    same = np.r_[(comp[1:] == comp[:-1]) & (ident[1:] == ident[:-1]), False]
    next_on = np.where(same, np.r_[on[1:], 0], np.iinfo(np.int64).max)
    until = np.where(sold_out, on, np.minimum(on + COMPETITOR_CARRY_DAYS, next_on - 1))
    holds = np.isfinite(price)
    length = np.where(holds, until - on + 1, 0)
    days_in_force = (
        np.repeat(on, length)
        + np.arange(length.sum())
        - np.repeat(np.cumsum(length) - length, length)
    )
    span = 1 << 22  # day ordinals stay below it until the year 11,000
    key = np.repeat(ident, length) * span + days_in_force
    row_key = np.asarray(sku, np.int64) * span + day  # one panel row per product and day
    rows = np.argsort(row_key)
    at = np.minimum(np.searchsorted(row_key[rows], key), len(rows) - 1)
    match = row_key[rows][at] == key
    np.fmin.at(out, rows[at[match]], np.repeat(price, length)[match])
    return out


def _run_demand(version: ModelVersion) -> ModelVersion:
    import numpy as np

    from .science.demand import fit_demand

    panel, product_ids, stats = demand_panel()
    days = 0 if panel is None else len(np.unique(panel.day))
    if panel is None or len(panel.units) < MIN_SALES_ROWS or days < MIN_SALES_DAYS:
        n = 0 if panel is None else len(panel.units)
        return _end(version, ModelVersion.Status.FAILED,
                    f"{NOT_ENOUGH_HISTORY}: {n} product-days on {days} days; at least "
                    f"{MIN_SALES_ROWS} product-days on {MIN_SALES_DAYS} days are "
                    "needed")  # fmt: skip
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
    estimates = {
        "product_id": np.asarray(product_ids, dtype=np.int64),
        "elasticity": fit.elasticity,
        "elasticity_se": fit.elasticity_se,
        "raw_elasticity": fit.raw_elasticity,
        "curvature": fit.curvature if fit.curvature is not None else np.zeros(len(product_ids)),
        "typical_price": fit.typical_price,
        "units_per_day": np.exp(fit.intercept),
        "days_observed": observed,
        "price_low": fit.price_low,
        "price_high": fit.price_high,
        "from_prior": fit.from_prior.astype(bool),
        "competitor_slope": fit.competitor_above,
        "competitor_slope_se": fit.competitor_above_se,
        "curvature_se": fit.curvature_se,
        "gap_low": fit.gap_low,
        "gap_high": fit.gap_high,
    }
    buffer = io.BytesIO()
    # The artifact holds every estimate, so a version whose rows were pruned can be restored.
    np.savez_compressed(buffer, coef=fit.coef, **estimates)
    with transaction.atomic():
        _store_elasticities(version, estimates)
        version.artifact.save(f"{version.tenant_id}-demand-v{version.version}.npz",
                              ContentFile(buffer.getvalue()), save=False)  # fmt: skip
        version.trainer = DEMAND_TRAINER
        version.data_size = len(panel.units)
        version.metrics = {
            "chosen": DEMAND_TRAINER,
            DEMAND_TRAINER: {"pooled_elasticity": round(fit.pooled_elasticity, 4),
                             "pooled_se": round(fit.pooled_se, 4),
                             "dispersion": round(fit.dispersion, 3),
                             "competitor_hinges": int(np.sum(fit.competitor_above < 0)),
                             "from_prior": int(fit.from_prior.sum())},
            "n_skus": len(product_ids), "product_days": len(panel.units), **stats,
            "coefficients": dict(zip(fit.coef_names, np.round(fit.coef, 4).tolist(), strict=True)),
        }  # fmt: skip
        summary = f"pooled elasticity {fit.pooled_elasticity:.2f} ± {fit.pooled_se:.2f}"
        _end(version, ModelVersion.Status.READY, f"{summary} over {len(product_ids)} SKUs")
        version = promote(version=version)
        _prune_elasticities()
    return version


ELASTICITY_VERSIONS_KEPT = 5  # demand versions whose estimates stay as rows (rollback targets)
ESTIMATE_FIELDS = ("product_id", "elasticity", "elasticity_se", "raw_elasticity", "curvature",
                   "typical_price", "units_per_day", "days_observed")  # fmt: skip
# Kept since the evidence range: absent from older artifacts (restored as unknown).
OPTIONAL_FIELDS = ("price_low", "price_high", "from_prior", "competitor_slope",
                   "competitor_slope_se", "gap_low", "gap_high", "curvature_se")  # fmt: skip


def _store_elasticities(version: ModelVersion, estimates) -> int:
    """One Elasticity row per product of `estimates` (arrays by ESTIMATE_FIELDS), for `version`."""
    import numpy as np

    from tenants.bulk import copy_insert

    from .models import Elasticity

    def number(value):
        return None if not np.isfinite(value) else float(value)

    tenant = require_current_tenant()
    columns = [np.asarray(estimates[name]) for name in ESTIMATE_FIELDS]
    size = len(columns[0])
    low, high = (np.asarray(estimates.get(k, np.full(size, np.nan)), float)
                 for k in ("price_low", "price_high"))  # fmt: skip
    prior = np.asarray(estimates.get("from_prior", np.zeros(size, bool)), bool)
    hinge = np.asarray(estimates.get("competitor_slope", np.zeros(size)), float)
    hinge_se = np.asarray(estimates.get("competitor_slope_se", np.full(size, np.inf)), float)
    curv_se = np.asarray(estimates.get("curvature_se", np.full(size, np.nan)), float)
    gap_lo, gap_hi = (np.asarray(estimates.get(k, np.full(size, np.nan)), float)
                      for k in ("gap_low", "gap_high"))  # fmt: skip
    rows = [
        {
            "tenant_id": tenant.pk,
            "model_version_id": version.pk,
            "product_id": int(pk),
            "elasticity": float(e),
            "elasticity_se": float(se),
            "raw_elasticity": number(raw),
            "curvature": float(c),
            "typical_price": _money(typical),
            "units_per_day": float(rate),
            "days_observed": int(days),
            "price_low": None if not np.isfinite(lo) else _money(lo),
            "price_high": None if not np.isfinite(hi) else _money(hi),
            "from_prior": bool(fp),
            "competitor_slope": float(h) if np.isfinite(h) else 0.0,
            "competitor_slope_se": number(hs),
            "gap_low": number(gl),
            "gap_high": number(gh),
            "curvature_se": number(cs),
        }
        for pk, e, se, raw, c, typical, rate, days, lo, hi, fp, h, hs, gl, gh, cs in zip(
            *columns, low.tolist(), high.tolist(), prior.tolist(), hinge.tolist(),
            hinge_se.tolist(), gap_lo.tolist(), gap_hi.tolist(), curv_se.tolist(), strict=True,
        )
    ]  # fmt: skip
    return copy_insert(Elasticity, rows)


def _prune_elasticities() -> None:
    """Keep the estimate rows of the ELASTICITY_VERSIONS_KEPT most recently promoted demand
    versions (the one in force and the rollback targets); older versions are retired, their
    estimates kept in their artifacts (promoting one restores its rows)."""
    from .models import Elasticity

    promoted = ModelVersion.objects.filter(kind=ModelVersion.Kind.DEMAND, promoted_at__isnull=False)
    keep = list(promoted.order_by("-promoted_at").values_list("pk", flat=True)[
        :ELASTICITY_VERSIONS_KEPT])  # fmt: skip
    stale = set(Elasticity.objects.exclude(model_version__in=keep)
                .values_list("model_version", flat=True).distinct())  # fmt: skip
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
    known = set(Product.objects.filter(pk__in=estimates["product_id"].tolist())
                .values_list("pk", flat=True))  # fmt: skip
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
    versions.filter(status=ModelVersion.Status.PROMOTED).update(status=ModelVersion.Status.READY)
    target.status, target.promoted_at = ModelVersion.Status.PROMOTED, timezone.now()
    target.save(update_fields=["status", "promoted_at"])
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
    return promote(version=previous)


# --- prediction ----------------------------------------------------------------------------------

_PREDICTORS: dict[tuple[int, int], object] = {}


def promoted_version(kind: str = ModelVersion.Kind.TEXT) -> ModelVersion | None:
    return ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.PROMOTED).first()


def load_version_predictor(version: ModelVersion):
    """The version's predictor, unpacked once per process (cache keyed by tenant and version)."""
    from .science.text_price import load_predictor

    key = (version.tenant_id, version.pk)
    if key not in _PREDICTORS:
        target = Path(settings.ML_MODEL_CACHE) / f"{version.tenant_id}-{version.pk}"
        if not (target / "meta.json").exists():
            target.mkdir(parents=True, exist_ok=True)
            with version.artifact.open("rb") as handle, zipfile.ZipFile(handle) as archive:
                archive.extractall(target)
        _PREDICTORS[key] = load_predictor(target)
    return _PREDICTORS[key]


def predict_texts(texts: list[str]):
    version = promoted_version()
    if version is None:
        raise NotFoundError(
            "no reference-price model is promoted yet: train one first", code="no_model"
        )
    return version, load_version_predictor(version).predict(texts)


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


# --- the demand curve ----------------------------------------------------------------------------


def demand_curve(version: ModelVersion | None, product_ids, prices, categories=None,
                 competitor_price=None):  # fmt: skip
    """The one demand curve (ml.science.curve.DemandCurve) of `product_ids` at today's
    `prices`, from the estimates of a stored demand-model version. Products the version has no
    estimate for take the mean elasticity of their category (else the version's pooled one)
    with no volume (units 0: a cold start). Returns the curve and a mask of the products with
    an estimate."""
    import numpy as np

    from .models import Elasticity
    from .science.curve import DemandCurve

    ids = [int(pk) for pk in product_ids]
    n = len(ids)
    rows = Elasticity.objects.none() if version is None else Elasticity.objects.filter(
        model_version=version)  # fmt: skip
    if n <= 1000:
        rows = rows.filter(product_id__in=ids)
    names = ("elasticity", "elasticity_se", "units_per_day", "typical_price", "curvature",
             "price_low", "price_high", "from_prior", "competitor_slope", "competitor_slope_se",
             "curvature_se", "gap_low", "gap_high")  # fmt: skip
    fits = {r[0]: dict(zip(names, r[1:], strict=True))
            for r in rows.values_list("product_id", *names)}  # fmt: skip
    known = np.array([pk in fits for pk in ids], dtype=bool)

    def get(name: str, default: float = np.nan) -> np.ndarray:
        return np.array([default if pk not in fits or fits[pk][name] is None
                         else float(fits[pk][name]) for pk in ids])  # fmt: skip

    e, se, rate = get("elasticity"), get("elasticity_se"), get("units_per_day", 0.0)
    typical, curv = get("typical_price", 1.0), get("curvature", 0.0)
    hinge, hinge_se = get("competitor_slope", 0.0), get("competitor_slope_se")
    # no s.e. stored: a hinge kept by an older version (a fact then: s.e. 0), else none known
    hinge_se = np.where(np.isnan(hinge_se), np.where(hinge < 0, 0.0, np.inf), hinge_se)
    if not known.all():
        metrics = version.metrics.get(version.trainer, {}) if version is not None else {}
        pooled = float(metrics.get("pooled_elasticity", -1.5))
        pooled = pooled if pooled < 0 else -1.5
        cats = list(categories) if categories is not None else [""] * n
        by_category: dict[str, list[float]] = {}
        for i in np.flatnonzero(known):
            by_category.setdefault(cats[i], []).append(e[i])
        for i in np.flatnonzero(~known):
            prior = by_category.get(cats[i])
            e[i] = float(np.mean(prior)) if prior else pooled
            se[i], rate[i], typical[i], curv[i] = 1.0, 0.0, 1.0, 0.0
    price = np.asarray(prices, dtype=float)
    typical = np.where(known, typical, price)
    return DemandCurve.from_estimates(
        price, rate, e, typical, curv, elasticity_se=se, competitor_price=competitor_price,
        competitor_slope=hinge, competitor_slope_se=hinge_se,
        curvature_se=get("curvature_se", 0.0), evidence_low=get("price_low"),
        evidence_high=get("price_high"), borrowed=get("from_prior", 0.0) > 0,
        gap_low=get("gap_low"), gap_high=get("gap_high"),
    ), known  # fmt: skip
