"""Every read of the ml app: the promoted version, its reference-price predictor, and the one
demand curve of a stored demand-model version (what pricing, the pages and the KPIs call)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from django.conf import settings

from pricing_saas.web.errors import NotFoundError

from .models import ModelVersion

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


def demand_curve(
    version: ModelVersion | None,
    product_ids,
    prices,
    categories=None,
    competitor_price=None,
    within: tuple[int, int] | None = None,
    category_means: dict[str, float] | None = None,
    competitor_sd=None,
    as_of=None,
    carried=None,
):
    """The one demand curve (ml.science.curve.DemandCurve) of `product_ids` at today's
    `prices`, from the estimates of a stored demand-model version. Products the version has no
    estimate for take the mean elasticity of their category (else the version's pooled one)
    with no volume (units 0: a cold start). Returns the curve and a mask of the products with
    an estimate.

    A partitioned reprice asks for one block of products at a time: `within` (their id range)
    keeps the read to the block, and `category_means` (category_prior_means, over the whole
    catalog) gives the same priors as one call for every product. `competitor_sd` (per product,
    log price; None: none): how far the competitor's price may be off `competitor_price`, as a
    decision judged it (`Recommendation.competitor_sd`), for the doubt of a forecast's interval
    near the competitor's price (`DemandCurve.units_interval`). `as_of` (a date; None: the
    tenant's today): the day whose last week's competitor prices a level is carried to
    (`from_position`): a reprice job reads the day it started. `carried` (per product; None:
    read here): the factor a job carried each level by, as it stored it
    (`Recommendation.level_carried`; NaN or None: 1), taken instead of reading the competitor's
    weeks again: a page that redraws a job's curve shows the job's figures whatever was
    imported since."""
    import numpy as np

    from .models import Elasticity
    from .science.curve import DemandCurve

    ids = [int(pk) for pk in product_ids]
    n = len(ids)
    rows = (
        Elasticity.objects.none()
        if version is None
        else Elasticity.objects.filter(model_version=version)
    )
    if n <= 1000:
        rows = rows.filter(product_id__in=ids)
    elif within is not None:
        rows = rows.filter(product_id__gte=within[0], product_id__lt=within[1])
    names = ("elasticity", "elasticity_se", "units_per_day", "typical_price", "curvature",
             "price_low", "price_high", "from_prior", "competitor_slope", "competitor_slope_se",
             "curvature_se", "gap_low", "gap_high", "slope_hinge_corr", "promo_lift",
             "gap_today", "competitor_then", "competitor_then_readings")  # fmt: skip
    fits = {
        r[0]: dict(zip(names, r[1:], strict=True)) for r in rows.values_list("product_id", *names)
    }
    known = np.array([pk in fits for pk in ids], dtype=bool)

    def get(name: str, default: float = np.nan) -> np.ndarray:
        return np.array(
            [
                default if pk not in fits or fits[pk][name] is None else float(fits[pk][name])
                for pk in ids
            ]
        )

    e, se, rate = get("elasticity"), get("elasticity_se"), get("units_per_day", 0.0)
    typical, curv = get("typical_price", 1.0), get("curvature", 0.0)
    hinge, hinge_se = get("competitor_slope", 0.0), get("competitor_slope_se")
    # no s.e. stored: a hinge kept by an older version (a fact then: s.e. 0), else none known
    hinge_se = np.where(np.isnan(hinge_se), np.where(hinge < 0, 0.0, np.inf), hinge_se)
    # the jitter the hinge's ramp was fitted over (none stored: a sharp kink, as it was fitted)
    trained = version.metrics.get(version.trainer, {}) if version is not None else {}
    ramp_sd = float(trained.get("ramp_sd", 0.0) or 0.0) if isinstance(trained, dict) else 0.0
    # the spread of the catalog's hinges over every SKU, as the fit measured it (none where it
    # found too few hinges: each hinge read is judged on its own and one its days cannot read
    # on the fit's prior, `unread_hinge`; alike for one product, a block of a partitioned job
    # and the whole catalog)
    # (the mixture with its share of SKUs without a hinge; one normal spread where a version
    # stored only that)
    trained = trained if isinstance(trained, dict) else {}
    spread = trained.get("hinge_mixture") or trained.get("hinge_prior")
    spread = tuple(float(v) for v in spread) if spread else False
    # a version trained before the spread was stored (no key at all, not a null one) judged an
    # unread hinge as none: it keeps doing so until the tenant retrains, rather than every
    # raise near a competitor's price being judged on the fit's prior at once
    if "hinge_prior" not in trained:
        hinge_se = np.where(np.isinf(hinge_se), 0.0, hinge_se)
    if not known.all():
        metrics = version.metrics.get(version.trainer, {}) if version is not None else {}
        pooled = float(metrics.get("pooled_elasticity", -1.5))
        pooled = pooled if pooled < 0 else -1.5
        cats = list(categories) if categories is not None else [""] * n
        by_category: dict[str, list[float]] = {}
        for i in np.flatnonzero(known):
            by_category.setdefault(cats[i], []).append(e[i])
        means = (
            {cat: float(np.mean(values)) for cat, values in by_category.items()}
            if category_means is None
            else category_means
        )
        for i in np.flatnonzero(~known):
            prior = means.get(cats[i])
            e[i] = prior if prior is not None else pooled
            se[i], rate[i], typical[i], curv[i] = 1.0, 0.0, 1.0, 0.0
    price = np.asarray(prices, dtype=float)
    typical = np.where(known, typical, price)
    curve = DemandCurve.from_estimates(
        price,
        rate,
        e,
        typical,
        curv,
        elasticity_se=se,
        competitor_price=competitor_price,
        competitor_slope=hinge,
        competitor_slope_se=hinge_se,
        curvature_se=get("curvature_se", 0.0),
        slope_hinge_corr=get("slope_hinge_corr", 0.0),
        evidence_low=get("price_low"),
        evidence_high=get("price_high"),
        borrowed=get("from_prior", 0.0) > 0,
        gap_low=get("gap_low"),
        gap_high=get("gap_high"),
        ramp_sd=ramp_sd,
        hinge_spread=spread,
        competitor_sd=competitor_sd,
        promo_lift=get("promo_lift", 1.0),
    )
    if carried is not None:  # (as a job carried it: no week read again)
        factor = np.array([np.nan if v is None else float(v) for v in carried], float)
        factor = np.where(known & np.isfinite(factor) & (factor > 0), factor, 1.0)
        curve.units_ref, curve.level_carried = curve.units_ref * factor, factor
        return curve, known
    # The fit read each level at its position then against the competitor; where a hinge is
    # used and the competitor's price or today's has moved since, the level is carried to
    # today's position through it (a competitor that raised past the product sells it more at
    # once). The competitor's price today is read in the terms the fit read (and stored) its
    # week in (the median of the last week's lowest readings: ml.panel.competitor_today), so a
    # position that has not moved moves nothing, whatever level the curve's kink stands at.
    then = get("gap_today")
    carry = np.flatnonzero(
        known
        & np.isfinite(then)
        & (curve.competitor_slope < 0)
        & np.isfinite(curve.competitor_price)  # (none today: no kink to carry the level by)
    )
    if carry.size:
        from zoneinfo import ZoneInfo

        from django.utils import timezone

        from tenants.context import require_current_tenant

        zone = ZoneInfo(require_current_tenant().timezone)
        each, first, back = np.unique(
            np.asarray(ids, np.int64)[carry], return_index=True, return_inverse=True
        )
        # (its readings matched against today's price, as the fit matched them)
        day = as_of if as_of is not None else timezone.localdate(timezone=zone)
        read, k_now = _week_of(each, price[carry][first], day, carry, back, n)
        # the competitor's week as the fit read it (stored with the estimates): its move since
        # is the competitor's, the rest of the position's the product's own price's
        read_then = get("competitor_then")
        k_then = np.nan_to_num(get("competitor_then_readings", 0.0)).astype(int)
        lacking = carry[~np.isfinite(read_then[carry])]
        fit_day = reading_day_of_version(version)
        if lacking.size and fit_day is not None:
            # (a version that stored no week: its SKUs' read again on the fit's reading day)
            those, at, to = np.unique(
                np.asarray(ids, np.int64)[lacking], return_index=True, return_inverse=True
            )
            again, k_again = _week_of(those, price[lacking][at], fit_day, lacking, to, n)
            read_then[lacking], k_then[lacking] = again[lacking], k_again[lacking]
        # (a version that did not say its day either: its week unknown, every move counts)
        with np.errstate(all="ignore"):
            now = np.log(price / read)
        counted = _counted(now - then, read, read_then, k_now, k_then, ramp_sd)
        factor = np.exp(curve.from_position(then, price / np.exp(then + counted)))
        curve.units_ref = curve.units_ref * factor
        curve.position_now = now
        curve.position_then, curve.level_carried = np.where(np.isfinite(read), then, np.nan), factor
    return curve, known


def reading_day_of_version(version: ModelVersion | None):
    """The day (a date) a demand version's fit read the competitor's week up to
    (`metrics["reading_day"]`; None: not said, or not a date)."""
    stored = version.metrics if version is not None else None
    return _day_of(stored.get("reading_day") if isinstance(stored, dict) else None)


def _day_of(value):
    """A stored ISO date as a date (None: none, or not a date)."""
    import datetime as dt

    try:
        return dt.date.fromisoformat(str(value)) if value else None
    except (TypeError, ValueError):
        return None


def _week_of(each, typical, day, carry, back, n: int):
    """Per SKU of a curve (`carry` those to read, `back` their rows among the unique ids
    `each`), the competitor's week up to `day` (`ml.panel.competitor_today`) and the number of
    readings it is the median of (NaN and 0 for the others)."""
    import numpy as np

    from .panel import competitor_today

    median, count = competitor_today(each.tolist(), typical, day.toordinal(), readings=True)
    out, k = np.full(n, np.nan), np.zeros(n, int)
    out[carry], k[carry] = median[back], count[back]
    return out, k


def _counted(move, read, read_then, k_now, k_then, ramp_sd: float):
    """The part of each position's move (log(price / competitor's week), today's less the
    fit's) a carry counts: the product's own price's move whole (exact), the competitor's move
    (log of its week today over its week then, as the fit stored it; where the fit's week is
    unknown, none can be told apart and every move counts) only beyond its readings' jitter:
    times 1 - its noise's variance over its square, never below 0 (the positive part of the
    shrinkage toward no move). Each week's median of k days' readings holds sigma^2 / k of a
    reading's variance (pi/2 sigma^2 / k from 3 readings on), sigma the readings' jitter the
    hinge's ramp was fitted over (the ramp's s.d. / RAMP_SCALE). A week on with nothing
    changed, a steep hinge moved the level by x0.81-1.20 counting every move."""
    import numpy as np

    from .science.demand import RAMP_SCALE

    sigma = float(np.nan_to_num(ramp_sd)) / RAMP_SCALE

    def held(k):  # a median's share of a reading's variance
        k = np.maximum(k, 1)
        return np.where(k >= 3, np.pi / 2, 1.0) / k

    with np.errstate(all="ignore"):
        competitor = np.log(read / read_then)
        known = np.isfinite(competitor)
        noisy = np.where(known, -competitor, 0.0)  # (a dearer competitor: a lower position)
        exact = np.where(known, move + competitor, move)
        noise = sigma**2 * (held(k_now) + held(k_then))
        kept = np.where(noisy != 0, np.clip(1 - noise / (noisy * noisy), 0.0, 1.0), 0.0)
        counted = exact + noisy * kept
    return np.where(np.isfinite(counted), counted, 0.0)


def category_prior_means(version: ModelVersion | None, products) -> dict[str, float]:
    """Per category, the mean elasticity `version` estimated for `products` (a queryset of
    products: a reprice's catalog): what demand_curve gives a product without an estimate."""
    import numpy as np

    from .models import Elasticity

    if version is None:
        return {}
    sums: dict[str, list[float]] = {}
    rows = (
        Elasticity.objects.filter(model_version=version, product_id__in=products.values("pk"))
        .order_by("product_id")
        .values_list("product__category", "elasticity")
    )  # catalog order
    for category, value in rows.iterator(chunk_size=20_000):
        sums.setdefault(category, []).append(value)
    return {category: float(np.mean(values)) for category, values in sums.items()}
