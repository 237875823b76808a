"""Where the oracle's lift goes: the share of it each part of the decision gives up, measured on
the same simulated markets and the same trained demand model as benchmarks/decision_quality.py.

    .venv/bin/python benchmarks/decision_decomposition.py [--skus 200] [--days 365] [--seeds 0,1]
        [--reports orders,daily] [--traps] [--competitor-every 7] [--price-every 1]

Per market (each demand-form mix, seed and report): CSV import -> training -> reprice, then the
decision is re-run on the same estimates with one part taken away at a time, and every price
is scored on the true curve (the same oracle as decision_quality.py: the true best inside the
margin floor and ±20 %). The chain, from the oracle down to the product's price:

- O_free: the oracle.
- O_evidence: the true best inside the oracle's range and the evidence range (the prices the SKU
  was seen at, and its positions against the competitor, widened by `evidence_margin`).
  (a) evidence range = O_free - O_evidence.
- O_rules: the true best inside the range the product searched (every rule: also the step, the
  window and the wait). (b) step / window = O_evidence - O_rules.
- D_point: the decision on the point estimate (gain_z 0, no risk budget or test, no minimum
  gain, no shrinkage by the sign's certainty) inside the same range. (e) estimation error =
  O_rules - D_point (split into SKUs the point estimate moves the wrong way or keeps where the
  truth moves, and SKUs moved the right way by the wrong size).
- D_robust: the product's search (at the gain's gain_z-s.e. lower end: 0 by default, the point
  estimate, so this part is 0 unless a variant searches pessimistically), every candidate
  accepted (no risk budget or test, no minimum gain), no shrinkage by the sign's certainty.
  (d1) pessimistic search = D_point - D_robust.
- D_search: the same with the shrinkage by the sign's certainty (2 Phi(|e| / s.e.) - 1).
  (d2) sign shrinkage = D_robust - D_search; (d) pessimistic curve shrinking the move =
  (d1) + (d2).
- D_product: the product's decision (the minimum gain and the risk budget on top; the per-SKU
  test where a variant sets `loss_budget=none`). (c) minimum gain and risk budget =
  D_search - D_product.
- (f) endings: the benchmark's rule sets have no price ending, so 0 here (cents only).

The ceiling of the estimates (`--ceiling`): the decision on the point estimate again, with the
curve's slope at today's price replaced by the true one (D_true_slope), and also its bend
(D_true_curve: the true second derivative of log units at today's price, inside the model's
range); the level, the hinge and the curve's family stay as estimated. What those capture bounds
what any decision rule can reach with slopes and bends as well estimated as these markets allow.
On markets with anchoring, also the hinge above the competitor and the competitor's price today
as facts (D_true_hinge): what better hinges could add.

Each share is of the oracle's lift (O_free - today), summed over SKUs; captured + (a..e) = 1.
The order matters (a part measured after the ones above it); the table says it. Its last
column, the interval coverage, is the share of SKUs whose stated 95 % interval of the slope at
today's price (the curve's local elasticity +- 1.96 s.e.) holds the true slope there. A last
table: the 95 % interval of each change's units that a published change's forecast carries
(`DemandCurve.units_interval`, from today's price to the recommended one) against the true
change in expected units, beside the slope's interval alone.
"""

from __future__ import annotations

import argparse
import csv
import os
import secrets
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")


def best_in(market, lo: np.ndarray, hi: np.ndarray, points: int = 2001) -> np.ndarray:
    """The true best price inside [lo, hi] per SKU (the oracle's grid)."""
    steps = np.linspace(0, 1, points)
    best = np.empty(len(market.sku))
    for i in range(len(market.sku)):
        grid = lo[i] + (hi[i] - lo[i]) * steps
        best[i] = grid[np.argmax(market.profit(np.full(points, i), grid))]
    return best


@contextmanager
def decided_with(overrides: dict, sign_weight: bool = True):
    """The reprice job's optimiser with these Rules fields replaced (and, if not
    `sign_weight`, no shrinkage by the sign's certainty)."""
    from ml.science import optimizer
    from ml.science.curve import hinge_prior
    from pricing_saas.pricing import services

    plain, ndtr = services.optimise, optimizer.ndtr

    fields_ = dict(overrides)
    scale = fields_.pop("competitor_sd_scale", None)  # the kink's doubt, scaled
    # each unclear hinge judged on its own noise (as before the catalog's spread was used): a
    # spread so wide that every hinge's posterior is its own estimate
    own_hinges = bool(fields_.pop("own_hinges", 0.0))
    # the catalog's hinges pictured as one normal spread (no share without a hinge), measured
    # on the same estimates
    normal_hinges = bool(fields_.pop("normal_hinges", 0.0))

    def patched(*args, **kwargs):
        args = list(args)
        rules = args[5] if len(args) > 5 else kwargs["rules"]
        rules = replace(rules, **fields_)
        if scale is not None:
            rules = replace(rules, competitor_sd=np.asarray(rules.competitor_sd) * scale)
        if len(args) > 5:
            args[5] = rules
        else:
            kwargs["rules"] = rules
        if own_hinges:
            kwargs["hinge_spread"] = (0.0, 1e300)
        elif normal_hinges and kwargs.get("hinge_spread"):
            slope, se = kwargs["competitor_slope"], kwargs["competitor_slope_se"]
            known = np.isfinite(np.broadcast_to(rules.competitor_price, np.shape(slope)))
            kwargs["hinge_spread"] = (
                hinge_prior(np.where(known, slope, np.nan), se, mixture=False) or False
            )
        return plain(*args, **kwargs)

    services.optimise = patched
    if not sign_weight:
        optimizer.ndtr = lambda z: np.ones_like(np.asarray(z, dtype=np.float64))
    try:
        yield
    finally:
        services.optimise, optimizer.ndtr = plain, ndtr


def parse_variants(text: str) -> dict[str, dict]:
    """`name:field=value,field=value;name:...` -> {name: Rules overrides}; an unknown field
    is refused here, before any market is trained."""
    from dataclasses import fields

    from ml.science.optimizer import Rules

    known = {f.name for f in fields(Rules)} | {"competitor_sd_scale", "own_hinges", "normal_hinges"}
    out = {}
    for spec in filter(None, (part.strip() for part in text.split(";"))):
        name, _, body = spec.partition(":")
        fields_ = {}
        for item in filter(None, body.split(",")):
            key, _, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if key not in known:
                raise SystemExit(f"--variants: {key!r} is not a field of Rules")
            if key == "shrink_to_pass":
                fields_[key] = value.lower() in ("1", "true")
            elif value.lower() == "none":
                fields_[key] = None
            else:
                fields_[key] = float(value)
        out[name.strip()] = fields_
    return out


def truth_in(market, skus: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The true slope of log units at today's price (the competitor's price held at today's
    level, its daily jitter averaged over: `Market.expected_demand`) and half its second
    derivative (the curve's `curvature`), per SKU in the order of `skus`."""
    at = {s: i for i, s in enumerate(market.sku)}
    i = np.array([at[s] for s in skus])
    p0 = np.round(market.price_today[i], 2)
    h = 0.02
    log_q = lambda m: np.log(market.expected_demand(i, p0 * np.exp(m)))  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        bend = (log_q(h) - 2 * log_q(0.0) + log_q(-h)) / (2 * h * h)
    return market.local_elasticity(i, p0), bend


def with_truth(curve, slope: np.ndarray, bend: np.ndarray | None = None, hinge=None):
    """The estimated curve with its slope at today's price (and its bend; and its hinge above
    the competitor, where the competitor's price is, as facts) set to the truth."""
    from ml.science.curve import CURVATURE_FLOOR

    if hinge is not None:
        hinge_at, competitor = hinge
        known = np.isfinite(curve.competitor_price)
        fact = np.where(known, hinge_at, 0.0)
        curve = replace(
            curve,
            competitor_price=np.where(known, competitor, curve.competitor_price),
            competitor_slope=np.minimum(fact, 0.0),
            hinge_raw=fact,
            hinge_se=np.where(known, 0.0, np.inf),
            competitor_sd=np.zeros(len(curve)),
        )
    estimated, _ = curve.local_elasticity()
    shift = np.where(np.isfinite(slope), slope - estimated, 0.0)
    out = replace(curve, elasticity=curve.elasticity + shift)
    if bend is not None:
        known = np.isfinite(bend)
        out = replace(
            out, curvature=np.where(known, np.clip(bend, CURVATURE_FLOOR, 0.0), out.curvature)
        )
    return out


# The lowest and highest value each trap takes (others: from 0, no top); a cost share or an
# elasticity of 0 is no market (nothing to lose; demand flat), above 10 a linear curve sells
# nothing over today's price
TRAP_LIMITS = {
    "shock_rho": (0.0, 0.999),
    "anchored_share": (0.0, 1.0),
    "promo_depth": (0.0, 0.95),
    "cost_share": (0.05, 0.99),
    "elasticity": (0.1, 10.0),
}


def positive(text: str) -> float:
    """An argparse type: a finite number above 0."""
    value = float(text)
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number above 0")
    return value


def parse_traps(items: list[str]) -> dict:
    """`--trap NAME=VALUE` items as `make_market` keywords: a number, or a range `low:high`."""
    from ml.science.simulator import TRAPS

    out: dict = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in TRAPS:
            raise SystemExit(f"--trap {item!r}: use NAME=VALUE, NAME one of {', '.join(TRAPS)}")
        try:
            parts = tuple(float(v) for v in value.split(":"))
        except ValueError:
            raise SystemExit(f"--trap {item!r}: {value!r} is not a number or low:high") from None
        ranged = isinstance(TRAPS[name], tuple)
        if ranged != (len(parts) == 2) or len(parts) > 2:
            wants = "low:high" if ranged else "one number"
            raise SystemExit(f"--trap {item!r}: {name} takes {wants}")
        floor, top = TRAP_LIMITS.get(name, (0.0, np.inf))
        if not all(np.isfinite(v) and floor <= v <= top for v in parts) or parts[0] > parts[-1]:
            raise SystemExit(
                f"--trap {item!r}: {name} takes finite values from {floor:g}"
                + ("" if np.isinf(top) else f" to {top:g}")
                + (", low no higher than high" if ranged else "")
            )
        if name in out:
            raise SystemExit(f"--trap {item!r}: {name} is set twice")
        out[name] = parts if len(parts) == 2 else parts[0]
    return out


def trained_before(market, folder: Path, days: int, seed: int, ago: int) -> None:
    """The demand model trained `ago` days before the history's end, on what the tenant knew
    then (its sales and competitor readings before that day, its shelf prices of that day),
    and promoted; the files in `folder` are then left to the whole history, which the
    reprice reads without training again (a nightly reprice between two trainings: the
    simulated competitor is back at today's price for the last two weeks, and the merchant
    half way with it)."""
    from ml import services as ml_services
    from ml.models import ModelVersion
    from ml.science.simulator import simulate
    from pricing_saas.catalog.importer import import_file

    cut = (date.today() - timedelta(days=ago)).isoformat()
    shelf = None
    for today in simulate(market, days, seed, True):
        if today.day.isoformat() < cut:
            shelf = today.shelf
    then = folder / "then"
    then.mkdir()
    with open(folder / "products.csv") as src, open(then / "products.csv", "w") as out:
        rows = list(csv.reader(src))
        at = rows[0].index("price")
        for i, row in enumerate(rows[1:]):
            row[at] = f"{float(shelf[i]):.2f}"
        csv.writer(out).writerows(rows)
    for kind, column in (("sales", "date"), ("competitor_prices", "observed_at")):
        with open(folder / f"{kind}.csv") as src, open(then / f"{kind}.csv", "w") as out:
            rows = list(csv.reader(src))
            at = rows[0].index(column)
            csv.writer(out).writerows([rows[0], *(r for r in rows[1:] if r[at][:10] < cut)])
    for kind in ("products", "sales", "competitor_prices"):
        import_file(kind=kind, path=then / f"{kind}.csv")
    version = ml_services.start_training(kind=ModelVersion.Kind.DEMAND, enqueue=False)
    version = ml_services.run_training(version_id=version.pk, sync=True)
    if version is None or version.status != ModelVersion.Status.PROMOTED:
        raise SystemExit(f"the model trained {ago} days before was not promoted")


def decompose(
    forms,
    seed: int,
    skus: int,
    days: int,
    daily: bool,
    traps: bool,
    variants=None,
    ceiling: bool = False,
    switches: dict | None = None,
    reading_every: int = 7,
    price_every: float = 1.0,
    volume: float = 1.0,
    dump: Path | None = None,
    trained_ago: int = 0,
) -> dict:
    from ml import selectors as ml_selectors
    from ml.models import ModelVersion
    from ml.science.simulator import FORMS, losing, make_market, score, write_csv
    from pricing_saas.catalog.importer import import_file
    from pricing_saas.pricing import approvals
    from pricing_saas.pricing import services as pricing
    from pricing_saas.pricing.models import Recommendation, RuleSet
    from pricing_saas.pricing.rules import resolve
    from tenants.context import tenant_context
    from tenants.services import create_tenant, delete_tenant

    market = make_market(
        skus,
        forms,
        seed,
        traps=traps,
        price_every=price_every,
        volume=volume,
        **(switches or {}),
    )
    tenant = create_tenant(name="Decomposition", slug=f"dd-{secrets.token_hex(4)}")
    try:
        with tempfile.TemporaryDirectory() as tmp, tenant_context(tenant):
            write_csv(
                market,
                Path(tmp),
                days,
                seed,
                zero_days=daily,
                competitor_moves=True,
                reading_every=reading_every,
            )
            if trained_ago:
                trained_before(market, Path(tmp), days, seed, trained_ago)
            for kind in ("products", "sales", "competitor_prices"):
                import_file(kind=kind, path=Path(tmp) / f"{kind}.csv")
            job = pricing.start_reprice(enqueue=False)
            pricing.run_reprice(job_id=job.pk)
            stored = dict(
                Recommendation.objects.filter(job=job).values_list(
                    "product__sku", "recommended_price"
                )
            )
            # the doubt of where the competitor's price is, as the job stored it (a published
            # change's forecast interval holds it: publishing.store_forecasts)
            stored_sd = dict(
                Recommendation.objects.filter(job=job).values_list("product__sku", "competitor_sd")
            )
            demand = ml_selectors.promoted_version(ModelVersion.Kind.DEMAND)
            catalog = pricing.Catalog.load()
            known = pricing.Market.load(catalog.ids)
            curve, _ = ml_selectors.demand_curve(
                demand, catalog.ids, catalog.price, catalog.category, known.competitor_price
            )
            resolved = resolve(
                list(RuleSet.objects.filter(active=True)),
                skus=catalog.sku,
                categories=catalog.category,
                brands=catalog.brand,
            )
            history = pricing.History.load(
                catalog, resolved.values["window_change"], resolved.values["window_days"]
            )
            no_cost = approvals.policy().no_cost_fallback

            def decide(overrides: dict, sign_weight: bool = True, on=None):
                with decided_with(overrides, sign_weight):
                    return pricing._optimise_by_rules(
                        catalog, curve if on is None else on, known, history, resolved, no_cost
                    )

            product = decide({})
            free_range = decide(
                {"max_step": 1.0, "window_low": np.nan, "window_high": np.nan,
                 "hold_up": 0.0, "hold_down": 0.0}
            )  # fmt: skip
            # every move taken as searched: no risk budget, no test, no minimum gain
            free = {"loss_budget": None, "test_z": 0.0, "min_gain_abs": 0.0, "min_gain_rel": 0.0}
            searched = decide(free)
            robust = decide(free, sign_weight=False)
            point = decide({**free, "gain_z": 0.0}, sign_weight=False)
            tried = {name: decide(over) for name, over in (variants or {}).items()}
            if ceiling:
                plain = {**free, "gain_z": 0.0}
                slope, bend = truth_in(market, list(catalog.sku))
                tried["ceiling: true slope"] = decide(plain, False, with_truth(curve, slope))
                tried["ceiling: true slope and bend"] = decide(
                    plain, False, with_truth(curve, slope, bend)
                )
                if market.anchor_slope is not None:
                    at = {s: i for i, s in enumerate(market.sku)}
                    i = np.array([at[s] for s in catalog.sku])
                    truth = (-market.anchor_slope[i], market.competitor_today[i])
                    tried["ceiling: true slope, bend and hinge"] = decide(
                        plain, False, with_truth(curve, slope, bend, truth)
                    )
    finally:
        delete_tenant(tenant=tenant)
    at = {s: i for i, s in enumerate(catalog.sku)}
    order = np.array([at[s] for s in market.sku])
    of_market = {s: i for i, s in enumerate(market.sku)}
    order_of = np.array([of_market[s] for s in catalog.sku])  # catalog row -> market SKU
    idx = np.arange(len(market.sku))
    p0, cost = np.round(market.price_today, 2), np.round(market.cost, 2)
    floor = np.maximum(cost * 1.1, p0 * 0.8)
    ceiling = np.maximum(p0 * 1.2, floor)
    exported = np.array([float(stored[s]) for s in market.sku])
    mismatch = int(np.sum(np.abs(product.price[order] - exported) > 0.005))

    def clip(rec):
        low, high = rec.low[order], rec.high[order]
        low = np.fmax(np.where(np.isnan(low), floor, low), floor)
        high = np.fmin(np.where(np.isnan(high), ceiling, high), ceiling)
        return low, np.maximum(high, low)

    profit = lambda price: market.profit(idx, price)  # noqa: E731
    today = profit(market.price_today)
    prices = {
        "O_free": best_in(market, floor, ceiling),
        "O_evidence": best_in(market, *clip(free_range)),
        "O_rules": best_in(market, *clip(product)),
        "D_point": point.price[order],
        "D_robust": robust.price[order],
        "D_search": searched.price[order],
        "D_product": product.price[order],
    }
    value = {k: profit(v) for k, v in prices.items()}
    # estimation error: SKUs the point estimate moves the wrong way (or keeps where the truth
    # moves), and SKUs it moves the right way by the wrong size
    truth_move = np.sign(np.round(prices["O_rules"] - p0, 2))
    point_move = np.sign(np.round(prices["D_point"] - p0, 2))
    wrong = truth_move != point_move
    estimation = value["O_rules"] - value["D_point"]
    out = {k: float(np.sum(v - today)) for k, v in value.items()}
    out["est_wrong_way"] = float(np.sum(estimation[wrong]))
    out["est_wrong_size"] = float(np.sum(estimation[~wrong]))
    out["wrong_way_skus"] = int(np.sum(wrong))
    # the interval the product states (the slope at today's price +- 1.96 s.e.) against the
    # true slope there, as decision_quality.py scores the exported one
    slope_true, bend_true = truth_in(market, list(catalog.sku))
    slope, slope_se = curve.local_elasticity()
    stated = np.isfinite(slope) & np.isfinite(slope_se) & np.isfinite(slope_true)
    out["covered"] = int(np.sum(np.abs(slope - slope_true)[stated] <= 1.96 * slope_se[stated]))
    out["stated"] = int(np.sum(stated))
    out["mismatch"] = mismatch
    # the forecast each published change would carry (pricing_saas.pricing.publishing): the 95 %
    # interval of the change in units from today's price to the recommended one, against the
    # true change there; beside the slope's interval alone (the forecast's before 2026-12-05)
    moved = np.flatnonzero(np.abs(product.price - catalog.price) > 0.005)
    if len(moved):
        part, new = curve.subset(moved), product.price[moved]
        sd = [stored_sd.get(sku) for sku in np.asarray(catalog.sku)[moved]]
        part = replace(part, competitor_sd=np.array([0.0 if v is None else v for v in sd]))
        true_ratio = market.expected_demand(order_of[moved], new) / market.expected_demand(
            order_of[moved], catalog.price[moved]
        )
        units, low, high = part.units_interval(new, 1.959963984540054)
        e, se = part.elasticity, np.nan_to_num(part.elasticity_se, nan=0.0)
        ends = [part.units(new, elasticity=e + z * 1.959963984540054 * se) for z in (-1, 1)]
        ref = part.units_ref
        with np.errstate(all="ignore"):
            inside = (true_ratio >= low / ref) & (true_ratio <= high / ref)
            alone = (true_ratio >= np.fmin(*ends) / ref) & (true_ratio <= np.fmax(*ends) / ref)
        fine = np.isfinite(units) & (ref > 0) & np.isfinite(high)  # (an unknown one: none)
        out["fc_changes"] = int(np.sum(fine))
        out["fc_covered"] = int(np.sum(inside & fine))
        out["fc_slope_alone"] = int(np.sum(alone & fine))
    else:
        out["fc_changes"] = out["fc_covered"] = out["fc_slope_alone"] = 0
    # the product's own chances of losing money against the changes that did (by bins of the
    # chance charged): is a budget of 1 % of SKUs a 1 % that happens?
    chance = np.nan_to_num(product.loss_chance[order], nan=0.0)
    mine = value["D_product"]
    # the gain each change shows (its recommendation's expected objective over today's, on the
    # card and in the export) against what it earns on the true curve; and, for the changes
    # whose shown units are not the curve's own (`DemandCurve.expected_units`: a hinge
    # mixture's, or averaged over where the competitor's price is near a kink), what the
    # curve's own units would have shown
    changed = np.abs(product.price[order] - p0) > 0.005
    shown = (product.value_new - product.value_now)[order]
    with np.errstate(all="ignore"):
        own_units = curve.units(product.price)[order]
        own = (
            np.where(
                product.units_new[order] > 0,
                product.value_new[order] * own_units / product.units_new[order],
                product.value_new[order],
            )
            - product.value_now[order]
        )
    mixed = changed & (np.abs(own - shown) > 1e-9 * np.maximum(np.abs(own), 1.0))
    earned = mine - today
    out["shown_changes"] = int(np.sum(changed))
    out["shown_gain"] = float(np.nansum(shown[changed]))
    out["earned_gain"] = float(np.sum(earned[changed]))
    # over the 28 days after the history's end (the product's level is its last eight weeks':
    # their season, not the year's average day the true curves are scored on)
    out["earned_ahead"] = out["earned_gain"] * market.season_ahead(28)
    out["mixed_changes"] = int(np.sum(mixed))
    out["mixed_shown"] = float(np.nansum(shown[mixed]))
    out["mixed_own"] = float(np.nansum(own[mixed]))
    out["mixed_earned"] = float(np.sum(earned[mixed]))
    lost = losing(today, mine)
    bet = chance > 0
    for k, (low, high) in enumerate(pairwise(CHANCE_BINS)):
        sel = bet & (chance > low) & (chance <= high)
        out[f"bin{k}:changes"] = int(np.sum(sel))
        out[f"bin{k}:charged"] = float(np.sum(chance[sel]))
        out[f"bin{k}:lost"] = int(np.sum(lost & sel))
    out["lost_unbet"] = int(np.sum(lost & ~bet))
    if dump is not None:  # each SKU of the market, to read the changes that lost money
        rows = {
            "sku": market.sku,
            "form": np.asarray(FORMS)[market.form],
            "anchored": market.anchored.astype(int),
            "price_today": p0,
            "competitor_today": market.competitor_today,
            "recommended": prices["D_product"],
            "oracle": prices["O_free"],
            "point": prices["D_point"],
            "slope_true": np.asarray(slope_true)[order],
            "slope": slope[order],
            "slope_se": slope_se[order],
            # the curve's bend at today's price (half the second derivative of log units in
            # log price): as read, its s.e., and the truth's
            "bend": curve.curvature[order],
            "bend_se": (
                np.full(len(idx), np.nan)
                if curve.curvature_se is None
                else curve.curvature_se[order]
            ),
            "bend_true": np.asarray(bend_true)[order],
            "loss_chance": chance,
            "gain_true": mine - today,
            "gain_shown": shown,
            "value_now_shown": product.value_now[order],
            "units_now_shown": product.units_now[order],
            "units_now_true": market.expected_demand(idx, market.price_today),
            # the hinge above the competitor: the curve's (a clear one), as read, its s.e.,
            # and the truth's extra slope (0: not anchored)
            "hinge_used": curve.competitor_slope[order],
            "hinge_read": np.nan if curve.hinge_raw is None else curve.hinge_raw[order],
            "hinge_se": np.nan if curve.hinge_se is None else curve.hinge_se[order],
            "hinge_true": (
                np.zeros(len(idx)) if market.anchor_slope is None else market.anchor_slope[idx]
            ),
            "profit_today": today,
            "lost": lost.astype(int),
        }
        dump.parent.mkdir(parents=True, exist_ok=True)
        with dump.open("w", newline="") as f:
            out_csv = csv.writer(f)
            out_csv.writerow(rows)
            out_csv.writerows(zip(*rows.values(), strict=True))
    out["skus"] = len(idx)
    for name, rec in tried.items():
        got = score(market, rec.price[order], floor, ceiling)
        # what the product's own risk model expected: the summed chance of losing money it
        # states for its changes (`loss_chance`; a change it did not bet on states 0)
        charged = float(np.nansum(rec.loss_chance)) / len(idx)
        out[f"variant:{name}"] = (got["captured"], got["losing_share"], charged)
    return out


# bins of the chance of losing money the product charged a change (its `loss_chance`)
CHANCE_BINS = (0.0, 0.001, 0.01, 0.03, 0.06, 1.0)


def shares(total: dict) -> dict:
    lift = total["O_free"]
    return {
        "evidence": (total["O_free"] - total["O_evidence"]) / lift,
        "step_window": (total["O_evidence"] - total["O_rules"]) / lift,
        "estimation": (total["O_rules"] - total["D_point"]) / lift,
        "est_wrong_way": total["est_wrong_way"] / lift,
        "est_wrong_size": total["est_wrong_size"] / lift,
        "shrinking": (total["D_point"] - total["D_search"]) / lift,
        "search": (total["D_point"] - total["D_robust"]) / lift,
        "sign": (total["D_robust"] - total["D_search"]) / lift,
        "gain_test": (total["D_search"] - total["D_product"]) / lift,
        "captured": total["D_product"] / lift,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--reports", default="orders,daily")
    parser.add_argument("--traps", action="store_true", help="trap markets (all four traps)")
    parser.add_argument(
        "--anchored-share",
        type=float,
        default=None,
        help="the share of SKUs whose demand collapses above the competitor (the anchoring "
        "trap's; with --traps 0.4 by default): e.g. 0.02, a catalog where few SKUs do",
    )
    parser.add_argument(
        "--trap",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one trap's strength, named as in the simulator's TRAPS (repeatable; on top of "
        "--traps or of a clean market), e.g. overdispersion=1.5, shock_sd=0.5, "
        "anchor_slope=1.0:2.0 (a range: low:high), cost_share=0.85:0.95 (thin margins), "
        "elasticity=2:5 (very elastic goods): markets of strengths no setting was chosen on",
    )
    parser.add_argument(
        "--competitor-every",
        type=int,
        default=7,
        help="days between the competitor's readings (7: weekly, as always; 1: a daily feed)",
    )
    parser.add_argument(
        "--price-every",
        type=float,
        default=1.0,
        help="days between the merchant's own shelf-price changes on average (1: a new price "
        "every day, as always; e.g. 30: sticky prices, as most real merchants keep)",
    )
    parser.add_argument(
        "--volume",
        type=positive,
        default=1.0,
        help="every SKU's units a day scaled by this (1: about 5 at the reference price on "
        "average, as always; 0.1: a catalog of slow movers)",
    )
    parser.add_argument(
        "--variants",
        default="",
        help="decision rules to score on the same estimates, e.g. "
        "'now:;per-sku:loss_budget=none,gain_z=1' (Rules fields, and competitor_sd_scale=X "
        "or own_hinges=1: each unclear hinge on its own noise, not the catalog's spread; "
        "normal_hinges=1: the catalog's hinges as one normal spread (no share without one); "
        "captured share and SKUs losing money for each, scored as decision_quality.py does)",
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also the point decision on the true slope (and bend) at today's price: what "
        "better estimates could reach",
    )
    parser.add_argument(
        "--dump",
        type=Path,
        default=None,
        help="a folder: each market's SKUs written to a CSV there (form, true and estimated "
        "slope, the product's price and chance of losing money, the true gain, lost or not)",
    )
    parser.add_argument(
        "--trained-days-ago",
        type=int,
        default=0,
        help="the demand model trained this many days before the history's end and not "
        "again (0: at the reprice, as always): the reprice reads a level fitted at the "
        "competitor's and its own prices then (e.g. 14: the simulated competitor's price moved "
        "back to today's since, and the merchant's half way)",
    )
    args = parser.parse_args()
    if not 0 <= args.trained_days_ago < args.days:
        parser.error(
            f"--trained-days-ago: {args.trained_days_ago} is not a number of days from 0 to "
            f"{args.days - 1} (the model is trained on part of the {args.days} days of history)"
        )
    variants = parse_variants(args.variants)
    switches = parse_traps(args.trap)
    if args.anchored_share is not None:
        if "anchored_share" in switches:
            raise SystemExit("--anchored-share and --trap anchored_share=: give one of them")
        switches["anchored_share"] = args.anchored_share
    import django

    django.setup()
    cases = [("constant",), ("linear",), ("logit",), ("constant", "linear", "logit")]
    label = "trap markets" if args.traps else "clean markets"
    if args.anchored_share is not None:
        label += f", {args.anchored_share:.0%} of SKUs anchored to the competitor"
    for name, value in switches.items():
        if name != "anchored_share" or args.anchored_share is None:
            label += f", {name} {value}"
    if args.price_every > 1:
        label += f", own prices changed every {args.price_every:g} days on average"
    if args.volume != 1:
        label += f", units a day x {args.volume:g}"
    if args.trained_days_ago:
        label += f", the demand model trained {args.trained_days_ago} days before the reprice"
    print(f"{args.skus} SKUs, {args.days} days of history, {label}\n")
    cols = ("evidence", "step_window", "estimation", "shrinking", "gain_test", "captured")
    print("| demand forms | seed | report | " + " | ".join(cols) + " | wrong-way SKUs |")
    print("| --- | --- | --- |" + " --- |" * (len(cols) + 1))
    totals: dict[str, dict] = {}
    tried: dict[tuple, list] = {}
    for forms in cases:
        for seed in (int(s) for s in args.seeds.split(",")):
            for report in args.reports.split(","):
                got = decompose(
                    forms,
                    seed,
                    args.skus,
                    args.days,
                    report == "daily",
                    args.traps,
                    variants,
                    args.ceiling,
                    switches,
                    args.competitor_every,
                    args.price_every,
                    args.volume,
                    None
                    if args.dump is None
                    else args.dump / f"{'+'.join(forms)}-{seed}-{report}.csv",
                    args.trained_days_ago,
                )
                named = [k.partition(":")[2] for k in got if k.startswith("variant:")]
                for name in named:
                    captured, losing, charged = got.pop(f"variant:{name}")
                    tried.setdefault((report, name), []).append((captured, losing, charged))
                    print(
                        f"  variant {name} ({report}): captured {captured:.3f}, "
                        f"losing {losing:.2%} (expected {charged:.2%})",
                        flush=True,
                    )
                if got["mismatch"]:
                    print(f"warning: {got['mismatch']} prices differ from the stored job's")
                share = shares(got)
                print(
                    f"| {'+'.join(forms)} | {seed} | {report} | "
                    + " | ".join(f"{share[c]:.3f}" for c in cols)
                    + f" | {got['wrong_way_skus']} |",
                    flush=True,
                )
                total = totals.setdefault(report, {})
                for key, v in got.items():
                    total[key] = total.get(key, 0) + v
    print("\nshares of the oracle's lift, summed over the markets of each report:\n")
    print(
        "| report | (a) evidence range | (b) step / window | (e) estimation: wrong way | "
        "(e) estimation: wrong size | (d1) pessimistic search | (d2) sign shrinkage | "
        "(c) minimum gain and risk budget | (f) endings | captured | wrong-way SKUs | "
        "interval coverage |"
    )
    print("| --- |" + " --- |" * 11)
    for report, total in totals.items():
        s = shares(total)
        print(
            f"| {report} | {s['evidence']:.3f} | {s['step_window']:.3f} | "
            f"{s['est_wrong_way']:.3f} | {s['est_wrong_size']:.3f} | {s['search']:.3f} | "
            f"{s['sign']:.3f} | "
            f"{s['gain_test']:.3f} | 0 | {s['captured']:.3f} | "
            f"{total['wrong_way_skus'] / total['skus']:.1%} | "
            f"{total['covered'] / max(total['stated'], 1):.3f} |"
        )
    print(
        "\nthe product's chances of losing money against the changes that lost money (summed "
        "over the markets of each report; a change a rule forced or no estimate priced is "
        "charged 0):\n"
    )
    print("| report | chance charged | changes | expected to lose | lost |")
    print("| --- | --- | --- | --- | --- |")
    for report, total in totals.items():
        for k, (low, high) in enumerate(pairwise(CHANCE_BINS)):
            print(
                f"| {report} | ({low:g}, {high:g}] | {total[f'bin{k}:changes']} | "
                f"{total[f'bin{k}:charged']:.2f} | {total[f'bin{k}:lost']} |"
            )
        print(f"| {report} | 0 (kept, or not bet on) | | | {total['lost_unbet']} |")
    print(
        "\nthe 95 % forecast interval of each change's units (from today's price to the "
        "recommended one, as a published change carries it) against the true change:\n"
    )
    print("| report | changes | interval holds the truth | the slope's interval alone |")
    print("| --- | --- | --- | --- |")
    for report, total in totals.items():
        n = max(total["fc_changes"], 1)
        print(
            f"| {report} | {total['fc_changes']} | {total['fc_covered'] / n:.3f} | "
            f"{total['fc_slope_alone'] / n:.3f} |"
        )
    print(
        "\nthe gain the changes show (their expected objective over today's) against what they "
        "earn on the true curves, per day, summed over the markets of each report; and the "
        "changes whose shown gain is not the curve's own (a possible collapse above the "
        "competitor weighed as the hinge's mixture, or the units near a kink averaged over "
        "where the competitor's price is), with what the curve's own would show; earned on "
        "the year's average day, and over the 28 days after the history (their season):\n"
    )
    print(
        "| report | changes | shown | earned | earned, next 28 days | shown / earned, next 28 "
        "days | changes not on the curve's own | shown | on the curve's own | earned |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for report, total in totals.items():
        ahead = total["earned_ahead"]
        print(
            f"| {report} | {total['shown_changes']} | {total['shown_gain']:.1f} | "
            f"{total['earned_gain']:.1f} | {ahead:.1f} | "
            f"{total['shown_gain'] / ahead if ahead else float('nan'):.2f} | "
            f"{total['mixed_changes']} | "
            f"{total['mixed_shown']:.1f} | {total['mixed_own']:.1f} | "
            f"{total['mixed_earned']:.1f} |"
        )
    if args.dump is not None:
        print(f"\neach market's SKUs written to {args.dump}")
    if tried:
        print(
            "\n| report | variant | mean captured share | mean share of SKUs losing money | "
            "expected by the product's own loss chances |"
        )
        print("| --- | --- | --- | --- | --- |")
        for (report, name), runs in tried.items():
            got = np.array(runs)
            print(
                f"| {report} | {name} | {got[:, 0].mean():.3f} | {got[:, 1].mean():.2%} | "
                f"{got[:, 2].mean():.2%} |"
            )


if __name__ == "__main__":
    main()
