"""Reprice jobs: from the database to stored recommendations, one tenant at a time."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from ml import panel as ml_panel
from ml import selectors as ml_selectors
from ml import services as ml_services
from ml.models import ModelVersion, ReferencePrice
from ml.science import competitor as competitor_science
from ml.science.demand import RAMP_SCALE, PooledFitError
from ml.science.optimizer import RULES, Rules, optimise, rule_names
from pricing_saas.catalog.models import CompetitorOffer, Product, SalesRecord
from pricing_saas.web.errors import ConflictError, ServiceError
from tenants import audit
from tenants.bulk import copy_insert
from tenants.context import get_current_actor, require_current_tenant
from tenants.jobs import connection_lost, fail_once_the_database_answers

from . import approvals
from .models import PriceChange, PriceLock, Recommendation, RepriceJob, RuleSet
from .rules import resolve

logger = logging.getLogger(__name__)
# Today's competitor price: an observation holds this long, as it does in the demand model.
COMPETITOR_WINDOW = timedelta(days=ml_panel.COMPETITOR_CARRY_DAYS)
# One plain sentence per rule that shaped a price (see explain()).
RULE_WORDS = {
    "restores_rule": "Today's price breaks a rule; this is the smallest move that restores it.",
    "min_margin": "The minimum margin over cost sets the lowest allowed price.",
    "map": "The minimum advertised price (MAP) sets the lowest allowed price.",
    "min_price": "The minimum price set for it holds the price up.",
    "max_price": "The maximum price set for it caps the price.",
    "competitor": "The competitor position (how far above the lowest competitor it may be) "
    "caps the price.",
    "max_step": "The step limit caps how far one reprice may move the price.",
    "evidence": "The price stays near the prices it has sold at, where demand is known.",
    "window": "The limit on the total change within the window caps the move.",
    "wait": "It moved this way recently, so it goes no further this way until a week of sales at "
    "that price has been seen.",
    "ending": "The price ends in the ending the rules ask for.",
    "uncertainty": "The move is smaller than the estimate alone suggests, because the "
    "estimate is uncertain.",
    "competitor_hinge": "Demand may fall away faster above the lowest competitor's price than "
    "below it, so the price is not raised past it.",
    "no_cost": "The product has no cost, so revenue was maximised instead of profit.",
    "min_units": "The price is held down to keep the minimum units (a volume floor or stock "
    "clearance).",
    "min_revenue": "The price is held to keep the minimum revenue.",
}
RULE_ORDER = tuple(RULE_WORDS)


@transaction.atomic
def start_reprice(*, trigger: str = "manual", enqueue: bool = True) -> RepriceJob:
    """Queue a reprice job; never two at once for one tenant (the running one is returned; one
    past the task's time limit is marked lost and a new one queued)."""
    active = RepriceJob.lock_active()
    if active is not None:
        return active
    try:
        with transaction.atomic():
            job = RepriceJob.objects.create(
                tenant=require_current_tenant(), trigger=trigger, started_by=get_current_actor()[1]
            )
    except IntegrityError:  # another request created it a moment ago
        active = RepriceJob.objects.filter(status__in=RepriceJob.states.active).first()
        if active is None:
            raise  # not that race: a real integrity error, never a job of None
        return active
    audit.record("reprice.started", target=job, summary=f"reprice job #{job.pk} ({trigger})")
    if enqueue:
        from .tasks import reprice

        tenant_id, job_id = job.tenant_id, job.pk
        transaction.on_commit(lambda: reprice.delay(tenant_id, job_id))
    return job


def run_reprice(*, job_id: int) -> RepriceJob | None:
    job, claimed = RepriceJob.claim(job_id)
    if not claimed:
        return job
    try:
        _reprice(job)
    except JobCancelled:
        job.cancel("cancelled by a user")
        _log(job, "cancelled")
        return job
    except Exception as exc:
        logger.exception("reprice %s failed", job.pk)
        if connection_lost(exc):  # a database restart: no row can be written until it is back
            fail_once_the_database_answers(job, exc)
            raise
        job.refresh_from_db()  # its parts may have ended it (run here by a command's --sync)
        if job.status in job.states.active:
            job.fail(str(exc))
            _log(job, f"failed: {exc.__class__.__name__}: {exc}")
        raise
    return job


class JobCancelled(Exception):
    pass


@transaction.atomic
def cancel_reprice(*, job: RepriceJob) -> RepriceJob:
    """A queued job is cancelled at once; a running one stops at its next step."""
    job = RepriceJob.objects.select_for_update().get(pk=job.pk)
    if not job.request_cancel():
        raise ConflictError(
            f"reprice job {job.pk} has {job.status}: nothing to cancel", code="not_active"
        )
    return job


def _log(job: RepriceJob, line: str, progress: float | None = None) -> None:
    """Add a line to the job's log (with `progress`, also the share done and the phase); a
    running job asked to stop stops here."""
    local = timezone.localtime(timezone.now(), ZoneInfo(require_current_tenant().timezone))
    values = {"log": [*job.log, f"{local:%H:%M:%S} {line}"]}  # the tenant's time, as the page
    if progress is not None:
        values.update(progress=progress, phase=line[:64])
    job.set_progress(**values)
    if job.status == RepriceJob.Status.RUNNING and job.cancel_was_requested():
        raise JobCancelled()


def locked_products():
    """The products no reprice may change today (a running price test holds their prices)."""
    return PriceLock.objects.filter(until__gte=_local_today()).values("product_id")


def _local_today():
    from zoneinfo import ZoneInfo

    return timezone.now().astimezone(ZoneInfo(require_current_tenant().timezone)).date()


@dataclass
class Catalog:
    """The active products of a reprice, as named per-product arrays (one row per product)."""

    ids: np.ndarray
    price: np.ndarray
    cost: np.ndarray
    min_price: np.ndarray
    max_price: np.ndarray
    map_price: np.ndarray
    stock: np.ndarray
    category: list[str]
    sku: list[str]
    brand: list[str]

    @classmethod
    def load(cls, within: tuple[int, int] | None = None) -> Catalog:
        """The active products (with `within`, only those with ids in [low, high))."""
        products = Product.objects.filter(active=True)
        if within is not None:
            products = products.filter(pk__gte=within[0], pk__lt=within[1])
        rows = list(
            products.exclude(pk__in=locked_products())
            .order_by("pk")
            .values_list(
                "pk",
                "price",
                "cost",
                "min_price",
                "max_price",
                "map_price",
                "stock",
                "category",
                "sku",
                "brand",
            )
        )
        col = lambda i: np.array([np.nan if r[i] is None else float(r[i]) for r in rows])  # noqa: E731
        return cls(
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            price=col(1),
            cost=col(2),
            min_price=col(3),
            max_price=col(4),
            map_price=col(5),
            stock=col(6),
            category=[r[7] for r in rows],
            sku=[r[8] for r in rows],
            brand=[r[9] for r in rows],
        )

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Market:
    """What the reprice knows of the market per product: the lowest competitor and the
    reference-price model's interval."""

    # the lowest competitor's price level today (ml.science.competitor.level: its readings
    # since it last re-priced; the latest reading where readings are exact)
    competitor_price: np.ndarray
    competitor_name: list[str]
    reference: dict[int, Decimal]
    reference_low: np.ndarray
    reference_high: np.ndarray
    competitor_sd: float = 0.0  # how far one competitor reading may be off (log price)
    # per product, the weight of readings behind competitor_price (1: its latest reading alone)
    competitor_readings: np.ndarray | None = None
    # per product, the lowest latest reading of its competitors (what a merchant sees in its
    # feed): the competitor position rule caps against the lower of it and the level
    competitor_reading: np.ndarray | None = None
    competitor_reading_name: list[str] | None = None  # whose reading that is
    noise: competitor_science.Noise | None = None
    # per product, a competitor's latest reading taken for another item and left out
    # (ml.science.competitor.matches; the first competitor by name: "" where none), as the
    # explanation names it
    competitor_ignored: list[str] | None = None
    # per product, the jitter of the level's seller (its own noise's, `Noise.for_seller`;
    # None: the tenant's for all)
    competitor_jitter: np.ndarray | None = None
    # per product, where its own price is in doubt (ml.science.competitor.own_price_doubt:
    # every competitor, two or more agreeing, prices it over MATCH_RATIO times it or under
    # 1 / MATCH_RATIO of it), what the explanation and the flag say of it, naming their
    # latest readings ("" where not): today's price is kept and the product flagged
    price_doubt: list[str] | None = None

    @classmethod
    def load(
        cls,
        ids: np.ndarray,
        within: tuple[int, int] | None = None,
        noise=None,
        price: np.ndarray | None = None,
    ) -> Market:
        """What the market says of `ids` (with `within`, the products with ids in [low, high)
        only are read; `noise`: the tenant's competitor noise, read once by a partitioned
        reprice, as ml.science.competitor.Noise.of reads it)."""
        noise = tenant_competitor_noise() if noise is None else competitor_science.Noise.of(noise)
        since = timezone.now() - COMPETITOR_WINDOW
        among = "" if within is None else " AND product_id >= %s AND product_id < %s"
        # Each competitor's readings in the window, the latest first, up to its first one out
        # of stock (a competitor out of stock now is not today's market); its price level
        # today from them; then the lowest level per SKU, and whose it is: an old low price a
        # competitor has since left is not today's market.
        with connection.cursor() as cur:  # a feed may have many sellers: one row per seller
            cur.execute(
                "SELECT product_id, competitor,"
                " (array_agg(CASE WHEN in_stock THEN price::float8 END"
                "  ORDER BY observed_at DESC, price))[1:%s] FROM "
                + CompetitorOffer._meta.db_table
                + " WHERE tenant_id = %s AND observed_at >= %s"
                + among
                + " GROUP BY product_id, competitor ORDER BY product_id, competitor",
                [COMPETITOR_READINGS, require_current_tenant().pk, since, *(within or ())],
            )
            series = cur.fetchall()
        readings = np.full((len(series), COMPETITOR_READINGS), np.nan)
        for row, (_pk, _name, prices) in enumerate(series):
            values = [np.nan if p is None else p for p in prices]
            readings[row, : len(values)] = values
        # a reading far from the product's own price is of another item (a wrong match in the
        # feed: an accessory, a multipack): left out of its competitor's run, which goes on
        # past it (a gap, out of stock, ends a run; this is no news of the competitor's price)
        own = {} if price is None else dict(zip(ids.tolist(), price.tolist(), strict=True))
        mine = np.array([own.get(pk, np.nan) for pk, _name, _prices in series], dtype=float)
        other = np.isfinite(readings) & ~competitor_science.matches(readings, mine[:, None])
        group = np.array([pk for pk, _name, _prices in series], dtype=np.int64)
        doubt: dict[int, str] = {}
        in_doubt = competitor_science.own_price_doubt(readings[:, 0], mine, group)
        if in_doubt.any():
            starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
            ends = np.r_[starts[1:], len(group)]
            ratio = competitor_science.MATCH_RATIO
            for start, end in zip(starts[in_doubt], ends[in_doubt], strict=True):
                rows = [row for row in range(start, end) if np.isfinite(readings[row, 0])]
                named = ", ".join(
                    f"{series[row][1][:40]} at {readings[row, 0]:.2f}" for row in rows[:3]
                ) + (f" and {len(rows) - 3} more" if len(rows) > 3 else "")
                side = (
                    f"over {ratio:g} times"
                    if readings[rows[0], 0] > mine[start]
                    else f"under {1 / ratio:.0%} of"
                )
                # the side first: a flag is cut at 200 characters
                doubt[int(group[start])] = (
                    f"every competitor prices this product {side} its price ({named})"
                )
        ignored: dict[int, str] = {}
        for row in np.flatnonzero(other[:, 0]):  # named where the latest reading is one
            pk, name = series[row][0], series[row][1]
            ignored.setdefault(pk, f"{name} at {readings[row, 0]:.2f}")
        readings = np.take_along_axis(readings, np.argsort(other, axis=1, kind="stable"), axis=1)
        readings[np.arange(COMPETITOR_READINGS)[None, :] >= (~other).sum(axis=1)[:, None]] = np.nan
        with np.errstate(invalid="ignore"):  # a gap (out of stock) ends the series' run
            broken = np.cumsum(~np.isfinite(readings), axis=1) > 0
        runs = np.where(broken, np.nan, readings)
        level, weight = competitor_science.level(runs, noise)
        by_seller = dict(noise.sellers)  # a seller with its own noise: read again with it
        if by_seller:
            rows_of: dict[str, list[int]] = {}
            for row, (_pk, name, _prices) in enumerate(series):
                if name in by_seller:
                    rows_of.setdefault(name, []).append(row)
            for name, rows in rows_of.items():
                level[rows], weight[rows] = competitor_science.level(runs[rows], by_seller[name])
        lowest: dict[int, tuple[str, float, float]] = {}
        shown: dict[int, tuple[float, str]] = {}  # the lowest latest reading of any competitor
        for row in np.argsort(level, kind="stable"):  # NaN last: no level, no competitor
            pk, name = series[row][0], series[row][1]  # (ties: the competitor first by name)
            if not np.isfinite(level[row]):
                continue
            if pk not in lowest:
                lowest[pk] = (name, float(level[row]), float(weight[row]))
            if float(readings[row, 0]) < shown.get(pk, (np.inf, ""))[0]:
                shown[pk] = (float(readings[row, 0]), name)
        seller_jitter = None  # the level's seller's own jitter, where sellers have their own
        if by_seller:
            seller_jitter = np.array(
                [by_seller[lowest[pk][0]].jitter if lowest.get(pk, ("",))[0] in by_seller
                 else noise.jitter for pk in ids.tolist()]
            )  # fmt: skip
        # a reference far outside its category's prices is not used
        usable = ReferencePrice.objects.filter(outside_category_range=False)
        if within is not None:
            usable = usable.filter(product_id__gte=within[0], product_id__lt=within[1])
        references = {
            pk: (price_, low, high)
            for pk, price_, low, high in usable.values_list("product_id", "price", "low", "high")
        }
        pick = lambda table, j, empty=np.nan: np.array(  # noqa: E731
            [float(table[pk][j]) if pk in table else empty for pk in ids.tolist()]
        )
        return cls(
            competitor_sd=noise.sd,
            competitor_price=pick(lowest, 1),
            competitor_name=[lowest[pk][0] if pk in lowest else "" for pk in ids.tolist()],
            competitor_readings=pick(lowest, 2, 1.0),
            competitor_jitter=seller_jitter,
            competitor_reading=pick(shown, 0),
            competitor_reading_name=[shown[pk][1] if pk in shown else "" for pk in ids.tolist()],
            noise=noise,
            competitor_ignored=[ignored.get(pk, "") for pk in ids.tolist()],
            price_doubt=[doubt.get(pk, "") for pk in ids.tolist()],
            reference={pk: r[0] for pk, r in references.items()},
            reference_low=pick(references, 1),
            reference_high=pick(references, 2),
        )

    def doubted(self) -> np.ndarray:
        """Per product, 1.0 where its own price is in doubt (`price_doubt`), else 0.0."""
        n = len(self.competitor_price)
        if self.price_doubt is None:
            return np.zeros(n)
        return np.array([1.0 if text else 0.0 for text in self.price_doubt], dtype=float)

    def cap_named(self, i: int) -> tuple[float, str]:
        """The price the competitor position rule caps product `i` against and whose it is:
        the level's competitor's, or the seller whose latest reading is lower."""
        level, name = float(self.competitor_price[i]), self.competitor_name[i]
        if self.competitor_reading is None or self.competitor_reading_name is None:
            return level, name
        reading = float(self.competitor_reading[i])
        if np.isfinite(reading) and not reading >= level:
            return reading, self.competitor_reading_name[i]
        return level, name

    def competitor_cap(self) -> np.ndarray:
        """The competitor's price the competitor position rule caps against: the lower of the
        level and the lowest latest reading of any competitor (a rule a merchant sets holds
        against the prices its feed shows too, e.g. a competitor's cut read once)."""
        if self.competitor_reading is None:
            return self.competitor_price
        return np.fmin(self.competitor_price, self.competitor_reading)

    def competitor_doubt(self, idx) -> np.ndarray:
        """How far the price buyers meet at the competitor may be off competitor_price (log
        price s.d.) for the products at `idx`: the day's jitter around the level, as the
        fit's ramp has it (RAMP_SCALE x the robust jitter `competitor_sd` is the day's beside
        one reading's), and the level's own error (the fitted jitter, `Noise.jitter`, the
        level's seller's own where it has one, over the root of the readings' weight). Where
        the level is one reading and the fitted
        jitter is the robust one, that is the ramp's sqrt 2 x the jitter; a jitter fitted
        below the robust one (re-prices inflate the median) narrows only the level's part."""
        n = len(self.competitor_price)
        weight = np.ones(n) if self.competitor_readings is None else self.competitor_readings
        jitter = self.competitor_sd if self.noise is None else self.noise.jitter
        if self.competitor_jitter is not None:  # the level's seller's own
            jitter = self.competitor_jitter[idx]
        day = (RAMP_SCALE**2 - 1.0) * self.competitor_sd**2
        with np.errstate(divide="ignore"):
            level = np.where(weight[idx] > 0, jitter**2 / weight[idx], jitter**2)
        return np.sqrt(day + level)


# The most readings of one competitor the level of its price today is read from (within
# COMPETITOR_WINDOW; a daily feed's last 8 days).
COMPETITOR_READINGS = 8


def tenant_competitor_noise() -> competitor_science.Noise:
    """How the tenant's competitor readings behave over COMPETITOR_JITTER_DAYS: one reading's
    jitter, and the share and size of real re-prices (ml.panel.competitor_noise)."""
    return ml_panel.competitor_noise(
        timezone.now() - timedelta(days=ml_panel.COMPETITOR_JITTER_DAYS)
    )


MIN_EVIDENCE_DAYS = 7  # days of sales after a change before the price moves that way again


@dataclass
class History:
    """Per product, from the published price changes: the bounds of the cumulative change
    allowed in each product's window, and whether it waits for evidence before moving up or
    down again."""

    window_low: np.ndarray
    window_high: np.ndarray
    hold_up: np.ndarray
    hold_down: np.ndarray
    # The price before the last change, where it was a recommendation and no sales at the new
    # price have been seen yet (NaN: none): its risk still counts in the optimiser's budget.
    unverified_from: np.ndarray
    # ... and the chance its recommendation was charged (NaN: unknown, or an approver's own
    # price: judged again on today's curve).
    unverified_chance: np.ndarray

    @classmethod
    def load(cls, catalog: Catalog, window_change, window_days) -> History:
        """The prices each product had within its window (today's, and both sides of every
        change published in it) bound the next one: all of them stay within window_change of
        each other. The last change holds its direction until MIN_EVIDENCE_DAYS of sales at the
        new price exist; a rollback holds the direction of the change it undid for the window."""
        n = len(catalog)
        now = timezone.now()
        index = {int(pk): i for i, pk in enumerate(catalog.ids.tolist())}
        days = np.nan_to_num(np.asarray(window_days, float), nan=28.0)
        since = now - timedelta(days=float(days.max()) if n else 28.0)
        changes = PriceChange.objects.filter(
            status=PriceChange.Status.PUBLISHED, published_at__gte=since
        ).order_by("product_id", "published_at")
        if n:  # the catalog's product ids only (a partitioned reprice reads its block's)
            first_id, last_id = int(catalog.ids.min()), int(catalog.ids.max())
            changes = changes.filter(product_id__gte=first_id, product_id__lte=last_id)
        low_seen, high_seen = catalog.price.copy(), catalog.price.copy()
        last_at: dict[int, object] = {}
        last_dir = np.zeros(n)
        last_old = np.full(n, np.nan)
        last_new = np.full(n, np.nan)
        last_rec: dict[int, int] = {}  # product index -> its last change's recommendation
        undone = np.zeros(n)  # direction of a change a rollback in the window undid
        for pk, old, new, at, kind, rec in changes.values_list(
            "product_id", "old_price", "new_price", "published_at", "kind", "recommendation_id"
        ).iterator(chunk_size=5000):
            i = index.get(pk)
            if i is None or at < now - timedelta(days=float(days[i])):
                continue
            old, new = float(old), float(new)
            low_seen[i] = min(low_seen[i], old, new)
            high_seen[i] = max(high_seen[i], old, new)
            last_at[i], last_dir[i] = at, np.sign(new - old)
            # the product's own recommended change carries risk the budget counts (a change
            # made in the shop or a rollback is the merchant's, not the optimiser's bet)
            last_old[i] = old if kind == PriceChange.Kind.RECOMMENDATION else np.nan
            last_new[i] = new
            if kind == PriceChange.Kind.RECOMMENDATION and rec is not None:
                last_rec[i] = rec
            else:
                last_rec.pop(i, None)
            undone[i] = -np.sign(new - old) if kind == PriceChange.Kind.ROLLBACK else 0.0
        limit = np.nan_to_num(np.asarray(window_change, float), nan=np.inf)
        with np.errstate(invalid="ignore"):
            low, high = high_seen * (1 - limit), low_seen * (1 + limit)
        waiting = np.zeros(n, dtype=bool)
        if last_at:
            waiting[list(last_at)] = _sales_days_since(catalog.ids, last_at) < MIN_EVIDENCE_DAYS
        rolled_back = undone != 0
        unverified = waiting & ~rolled_back & np.isfinite(last_old)
        # the chance each unverified change was charged, where the price published is the one
        # recommended (read for those recommendations only: no join over the window's changes)
        last_chance = np.full(n, np.nan)
        wanted = {rec: i for i, rec in last_rec.items() if unverified[i]}
        ids = list(wanted)
        for start in range(0, len(ids), 5000):
            for rec, chance, recommended in Recommendation.objects.filter(
                pk__in=ids[start : start + 5000]
            ).values_list("pk", "loss_chance", "recommended_price"):
                i = wanted[rec]
                same = recommended is not None and abs(float(recommended) - last_new[i]) < 0.005
                if chance is not None and same:
                    last_chance[i] = chance
        up = (waiting & ~rolled_back & (last_dir > 0)) | (rolled_back & (undone > 0))
        down = (waiting & ~rolled_back & (last_dir < 0)) | (rolled_back & (undone < 0))
        return cls(
            window_low=np.where(np.isfinite(low), low, np.nan),
            window_high=np.where(np.isfinite(high), high, np.nan),
            hold_up=up.astype(float),
            hold_down=down.astype(float),
            unverified_from=np.where(unverified, last_old, np.nan),
            unverified_chance=last_chance,
        )


def _sales_days_since(ids: np.ndarray, last_at: dict) -> np.ndarray:
    """Per product index in `last_at`, the days with a sales row after its last change."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(require_current_tenant().timezone)
    since = {int(ids[i]): at.astimezone(zone).date() for i, at in last_at.items()}
    counts = _count_days_after(since)
    return np.array([counts.get(int(ids[i]), 0) for i in last_at], dtype=np.int64)


def _count_days_after(since: dict) -> dict[int, int]:
    """Days with sales after each product's own date (one query, all products)."""
    if not since:
        return {}
    with connection.cursor() as cur:
        cur.execute(
            "SELECT s.product_id, COUNT(DISTINCT s.date) FROM "
            f"{SalesRecord._meta.db_table} s JOIN unnest(%s::bigint[], %s::date[]) AS c(pk, d) "
            "ON s.product_id = c.pk AND s.date > c.d WHERE s.tenant_id = %s GROUP BY 1",
            [list(since), list(since.values()), require_current_tenant().pk],
        )
        return dict(cur.fetchall())


def _reprice(job: RepriceJob) -> None:
    from . import partitioned

    if partitioned.wanted():
        partitioned.start(job)  # its parts run as tasks of their own
        return
    _reprice_catalog(job, _demand_model(job))


def _demand_model(job: RepriceJob):
    """The demand model in force; none in force: one trained here first (None when there is
    not enough history to learn a price response)."""
    demand = ml_selectors.promoted_version(ModelVersion.Kind.DEMAND)
    if demand is None:
        _log(job, "no demand model in force: training one first", 0.05)
        version = ml_services.start_training(kind=ModelVersion.Kind.DEMAND, enqueue=False)
        if version.status != ModelVersion.Status.QUEUED:
            raise ServiceError(
                f"a demand model (v{version.version}) is training elsewhere: reprice again once "
                "it is ready"
            )
        # The job names the run it trains in its own process: should this worker die, the run
        # is marked lost with the job (RepriceJob.mark_lost), never left blocking the next one.
        job.set_progress(demand_version=version)
        try:
            trained = ml_services.run_training(version_id=version.pk, sync=True)
        except PooledFitError as exc:  # the run is failed, saying so; nothing was stored
            raise ServiceError(f"demand training failed: {exc}") from exc
        if trained is not None:  # a fit in parts may have ended in tasks run here (--sync)
            trained.refresh_from_db()
        if trained is not None and trained.status == ModelVersion.Status.TRAINING:
            parts = (trained.progress or {}).get("parts", "several")
            raise ServiceError(
                f"the demand model (v{trained.version}) is being trained in {parts} parts: "
                "reprice again once it is ready"
            )
        if trained is None or trained.status != ModelVersion.Status.PROMOTED:
            reason = trained.message if trained else "no result"
            if trained is None or not reason.startswith(ml_services.NOT_ENOUGH_HISTORY):
                raise ServiceError(f"demand training failed: {reason}")
            # Too little history to learn a price response: every price is kept, with why.
            _log(job, f"not enough sales history to price on ({reason}): prices kept", 0.1)
        else:
            demand = trained
    return demand


def _reprice_catalog(job: RepriceJob, demand) -> None:
    catalog = Catalog.load()
    version_name = f"v{demand.version}" if demand else "none"
    _log(job, f"{len(catalog)} active products; demand model {version_name}", 0.4)
    if not len(catalog):
        _finish(job, demand, 0, 0, 0, Decimal(0), Decimal(0), "no active products")
        return
    market = Market.load(catalog.ids, price=catalog.price)
    curve, known = ml_selectors.demand_curve(
        demand,
        catalog.ids,
        catalog.price,
        catalog.category,
        market.competitor_price,
        as_of=job.reading_day(demand),
    )
    if demand is not None and not known.all():
        _log(job, f"{int((~known).sum())} SKUs without an estimate from {version_name}: priors")
    if demand is None:  # no model: no price response to act on, and no cold-start guidance
        curve.elasticity[:] = np.nan
        market.reference_low[:] = np.nan
        market.reference_high[:] = np.nan
    resolved = resolve(
        list(RuleSet.objects.filter(active=True)),
        skus=catalog.sku,
        categories=catalog.category,
        brands=catalog.brand,
    )
    history = History.load(
        catalog, resolved.values["window_change"], resolved.values["window_days"]
    )
    _log(job, "rules resolved; optimising", 0.6)
    current = approvals.policy()
    rec = _optimise_by_rules(
        catalog, curve, market, history, resolved, current.no_cost_fallback,
        approvals.risk(current),
    )  # fmt: skip
    _log(job, f"optimised {len(catalog)} SKUs; {len(rec.conflicts)} with contradictory rules", 0.75)
    _store(job, demand, catalog, curve, market, rec, resolved, no_model=demand is None)
    _approve_and_publish(job)


def reprice_block(
    job: RepriceJob,
    demand,
    within,
    category_means,
    competitor_noise,
    no_cost: str | None = None,
    risk: dict | None = None,
) -> Staged:
    """A partitioned reprice's part: _reprice_catalog for the active products with ids in
    `within` ([low, high)), with the tenant-wide facts the plan read once (the category priors
    over the whole catalog, the competitor readings' jitter, the policy's fallback for products
    without a cost and its risk settings: the policy's now where a plan has none). Reads only;
    the reduce writes."""
    catalog = Catalog.load(within)
    if not len(catalog):
        return Staged([], [], [], 0, 0, 0.0, 0.0)
    market = Market.load(catalog.ids, within, competitor_noise, price=catalog.price)
    curve, _known = ml_selectors.demand_curve(
        demand,
        catalog.ids,
        catalog.price,
        catalog.category,
        market.competitor_price,
        within=within,
        category_means=category_means,
        as_of=job.reading_day(demand),
    )
    if demand is None:  # no model: no price response to act on, and no cold-start guidance
        curve.elasticity[:] = np.nan
        market.reference_low[:] = np.nan
        market.reference_high[:] = np.nan
    resolved = resolve(
        list(RuleSet.objects.filter(active=True)),
        skus=catalog.sku,
        categories=catalog.category,
        brands=catalog.brand,
    )
    history = History.load(
        catalog, resolved.values["window_change"], resolved.values["window_days"]
    )
    if no_cost is None or risk is None:
        current = approvals.policy()
        no_cost, risk = no_cost or current.no_cost_fallback, risk or approvals.risk(current)
    rec = _optimise_by_rules(catalog, curve, market, history, resolved, no_cost, risk)
    return _rows(job, catalog, curve, market, rec, resolved, no_model=demand is None)


def _approve_and_publish(job: RepriceJob) -> None:
    """After a job's recommendations are stored: what the policy approves (and publishes)."""
    approved = approvals.auto_approve(job)
    _log(job, f"{approved} auto-approved by the policy", 1.0)
    RepriceJob.objects.filter(pk=job.pk).update(auto_approved=approved)
    job.auto_approved = approved
    current = approvals.policy()
    if approved and current.auto_publish and not current.kill_switch:
        from .publishing import publish

        ids = list(
            Recommendation.objects.filter(
                job=job, status=Recommendation.Status.APPROVED
            ).values_list("pk", flat=True)
        )
        publication = publish(recommendation_ids=ids)
        _log(job, f"auto-publish: publication {publication.pk} queued")


def _optimise_by_rules(
    catalog: Catalog,
    curve,
    market: Market,
    history: History,
    resolved,
    no_cost="revenue",
    risk: dict | None = None,
):
    """The optimiser per group of SKUs that share an objective and a price ending (each group
    vectorised); the product's own min / max / MAP combine with the rule sets' (the stricter
    wins). `risk`: the policy's risk settings (`approvals.risk`; the `Rules` defaults where
    None)."""
    v = resolved.values
    units, price = curve.units_ref, catalog.price
    # Volume floors: a share of today's expected units or revenue, or the daily units that sell
    # today's stock within the clearance days (where the stock is known): every day's units,
    # of which a shelf day's (what the curve gives) is the share without the SKU's promotions.
    with np.errstate(all="ignore"):
        clear = catalog.stock / v["clearance_days"] / curve.all_days
    min_units = np.fmax(v["min_units_share"] * units, np.where(clear > 0, clear, np.nan))
    min_revenue = v["min_revenue_share"] * units * price
    min_price = np.fmax(catalog.min_price, v["min_price"])
    max_price = np.fmin(catalog.max_price, v["max_price"])
    map_price = np.fmax(catalog.map_price, v["map_price"])
    n = len(price)
    out = None
    doubted, cap = market.doubted(), market.competitor_cap()
    keys = np.array([f"{o}|{x}" for o, x in zip(v["objective"], v["ending"], strict=True)])
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        objective, ending = key.split("|")
        part_curve = curve.subset(idx)
        rules = Rules(
            min_margin=v["min_margin"][idx],
            max_step=v["max_step"][idx],
            min_price=min_price[idx],
            max_price=max_price[idx],
            map_price=map_price[idx],
            competitor_price=market.competitor_price[idx],
            # today's competitor price is the level of its readings: off the price buyers meet
            # by the level's error and the day's jitter, as the fit's ramp has it
            competitor_sd=market.competitor_doubt(idx),
            competitor_cap=cap[idx],
            ramp_sd=part_curve.ramp_sd,
            max_above_competitor=v["max_above_competitor"][idx],
            ending=None if ending == "nan" else float(ending),
            objective=objective,
            min_units=min_units[idx],
            min_revenue=min_revenue[idx],
            reference_low=market.reference_low[idx],
            reference_high=market.reference_high[idx],
            no_cost=no_cost,
            evidence_low=part_curve.evidence_low,
            evidence_high=part_curve.evidence_high,
            evidence_margin=v["evidence_margin"][idx],
            gap_low=part_curve.gap_low,
            gap_high=part_curve.gap_high,
            window_low=history.window_low[idx],
            window_high=history.window_high[idx],
            hold_up=history.hold_up[idx],
            hold_down=history.hold_down[idx],
            unverified_from=history.unverified_from[idx],
            unverified_chance=history.unverified_chance[idx],
            min_gain_abs=v["min_gain_abs"][idx],
            min_gain_rel=v["min_gain_rel"][idx],
            price_in_doubt=doubted[idx],
            **(risk or {}),
        )
        part = optimise(
            price[idx],
            catalog.cost[idx],
            part_curve.units_ref,
            part_curve.elasticity,
            part_curve.elasticity_se,
            rules,
            curvature=part_curve.curvature,
            competitor_slope=part_curve.hinge_raw,
            competitor_slope_se=part_curve.hinge_se,
            curvature_se=part_curve.curvature_se,
            hinge_spread=part_curve.hinge_spread,
            slope_hinge_corr=part_curve.slope_hinge_corr,
        )
        if out is None:
            out = OptimiserResult.empty(n)
        out.put(idx, part)
    return out


class OptimiserResult:
    """The optimiser's per-SKU arrays, assembled from several groups."""

    ARRAYS = ("price", "binding", "units_now", "units_new", "revenue_now", "revenue_new",
              "profit_now", "profit_new", "floor", "ceiling", "low", "high", "value_now",
              "value_new", "by_revenue", "loss_chance")  # fmt: skip

    @classmethod
    def empty(cls, n: int) -> OptimiserResult:
        self = cls()
        for name in cls.ARRAYS:
            kind = {"binding": np.int64, "by_revenue": bool}.get(name, np.float64)
            setattr(self, name, np.zeros(n, dtype=kind))
        self.conflicts = []
        return self

    def put(self, idx, part) -> None:
        for name in self.ARRAYS:
            getattr(self, name)[idx] = getattr(part, name)
        self.conflicts.extend(part.conflicts)

    def rules_of(self, i: int) -> list[str]:
        return rule_names(self.binding[i])


def _share(value: float) -> str:
    """A percentage a merchant can read: one decimal below 1 %, none above."""
    value = abs(value)
    return f"{value:.1%}" if value < 0.01 else f"{value:.0%}"


def explain(
    i: int,
    rec,
    e: float,
    se: float,
    competitor: float,
    price: float,
    competitor_name: str = "",
    no_model: bool = False,
    borrowed: bool = False,
    ignored: str = "",
    doubt: str = "",
    cap: tuple[float, str, float] | None = None,
) -> str:
    """One plain sentence per reason: what happens to the price, why, and what binds it
    (`ignored`: a competitor listing left out as another item, "NAME at PRICE"; `doubt`: the
    competitors' readings that put today's price itself in doubt, "NAME at PRICE, ..."; `cap`:
    the price the competitor position rule holds against, whose it is and the rule's share
    above it)."""
    flags = set(rec.rules_of(i))
    if "conflict" in flags:
        return (
            f"No recommendation: the lowest price the rules allow ({rec.floor[i]:.2f}, from the "
            f"minimum margin, minimum price or MAP) is above the highest ({rec.ceiling[i]:.2f}). "
            "Fix the rules or the product."
        )
    new = rec.price[i]
    change = new / price - 1 if price else 0.0
    sentences = []
    if abs(new - price) < 0.005:
        if no_model:
            sentences.append(
                "Today's price is kept: there is not enough sales history yet to "
                "learn how demand responds to price."
            )
        elif "no_estimate" in flags:
            sentences.append(
                "Today's price is kept: there is no usable estimate of how demand "
                "responds to this product's price."
            )
        elif "price_doubt" in flags:
            said = doubt or "every competitor prices this product far from it"
            sentences.append(
                f"Today's price is kept: {said}, so its own price is most likely wrong; check it "
                "(or the competitors' matches)."
            )
            doubt = ""  # said
        elif "no_cost_kept" in flags:
            sentences.append(
                "Today's price is kept: the product has no cost, and the policy keeps such prices."
            )
        elif "wait" in flags:
            sentences.append(
                "Today's price is kept: it was changed recently, and the system "
                "waits for a week of sales at that price before moving it again "
                "the same way."
            )
        elif "competitor_hinge" in flags:
            sentences.append(_hinge_words(competitor, competitor_name, kept=True))
        elif "min_gain" in flags:
            sentences.append(
                "Today's price is kept: no allowed price is expected to earn "
                "clearly more than it (the minimum gain) without too great a chance "
                "of losing money, given how uncertain the estimate of how demand "
                "reacts to price is."
            )
        elif rec.units_now[i] == 0:
            sentences.append("Today's price is kept: the product has no sales history yet.")
        else:
            sentences.append("Today's price is kept: it is already the best price the rules allow.")
    else:
        direction = "Raise" if change > 0 else "Lower"
        sentences.append(
            f"{direction} the price by {_share(change)}, from {price:.2f} to {new:.2f}."
        )
        if "reference" in flags:
            sentences.append(
                "The product has no sales yet: the price moves toward what the "
                "market pays for similar items."
            )
        else:
            gain = rec.value_new[i] - rec.value_now[i]
            what = "revenue" if rec.by_revenue[i] else "profit"
            if np.isfinite(gain) and abs(gain) >= 0.005:
                sentences.append(f"Expected {what}: {gain:+,.2f} a day.")
    if borrowed and not no_model and "no_estimate" not in flags:
        sentences.append(
            "This product's own sales show demand rising with its price (promotions or seasons "
            f"at work), so its category's response is used: about {abs(e):.1f} % fewer units "
            "for each 1 % on the price, with a wide uncertainty."
        )
    elif np.isfinite(e) and e < 0 and not no_model and "no_estimate" not in flags:
        kind = "falls less than the price rises" if e > -1 else "falls more than the price rises"
        low, high = e - 1.96 * se, e + 1.96 * se
        sentences.append(
            f"Demand {kind}: each 1 % on the price changes units by about {abs(e):.1f} % "
            f"(95 % sure between {abs(high):.1f} % and {abs(low):.1f} %)."
            if np.isfinite(se) and high < 0
            else f"Demand {kind}: each 1 % on the price changes units by about {abs(e):.1f} %, "
            "but the data leave this uncertain."
        )
    if np.isfinite(competitor) and competitor > 0:
        gap = price / competitor - 1
        who = competitor_name or "the lowest competitor"
        if abs(gap) < 0.005:
            sentences.append(f"Today's price matches {who}.")
        else:
            where = "above" if gap > 0 else "below"
            sentences.append(f"Today's price is {_share(gap)} {where} {who}.")
    moved = abs(new - price) >= 0.005
    if doubt:  # kept for another reason first (no model yet), or a hard rule's restore moved it
        sentences.append(
            f"{doubt[0].upper()}{doubt[1:]}, so its own price is most likely wrong; check it"
            + (": nothing but the rule moves it." if moved else ".")
        )
    if ignored and "price_doubt" not in flags and not doubt:
        sentences.append(
            f"A competitor's latest reading ({ignored}) is left out: a price under "
            f"{1 / competitor_science.MATCH_RATIO:.0%} of this product's or over "
            f"{competitor_science.MATCH_RATIO:g} times it is most likely of another item (or "
            "this product's own price is wrong); check the match in the competitor feed."
        )
    if "max_step" in flags:
        flags.discard("window")  # the same bound said twice
    for name in RULE_ORDER:
        if name in flags and (moved or name in ("restores_rule",)):
            if name == "competitor" and cap:
                sentences.append(_capped(cap))
            elif name == "competitor_hinge":
                sentences.append(_hinge_words(competitor, competitor_name))
            else:
                sentences.append(RULE_WORDS[name])
    return " ".join(sentences)


def _hinge_words(competitor: float, who: str, kept: bool = False) -> str:
    """The sentence of a raise held at the competitor's price by a possible collapse of demand
    above it (the rule `competitor_hinge`), naming whose price it is and the price; for a
    price kept for it, why it is kept."""
    known = np.isfinite(competitor) and competitor > 0
    where = f"{who or 'the lowest competitor'} at {competitor:.2f}" if known else ""
    if kept:
        where = where or "the lowest competitor's price"
        return (
            f"Today's price is kept: demand may fall away faster above {where} than below it, "
            "and no price up to that is expected to earn clearly more."
        )
    if not known:
        return RULE_WORDS["competitor_hinge"]
    return (
        f"Demand may fall away faster above {where} than below it, so the price is not raised "
        "past it."
    )


def _capped(cap: tuple[float, str, float]) -> str:
    """The competitor position rule's sentence naming the reading it held against: (price,
    seller, the rule's share above it)."""
    price, who, above = cap
    if not (np.isfinite(price) and np.isfinite(above)):
        return RULE_WORDS["competitor"]
    if abs(above) < 0.0005:
        rule = "no higher than the lowest competitor"
    elif above > 0:
        rule = f"at most {_share(above)} above the lowest competitor"
    else:
        rule = f"at least {_share(above)} below the lowest competitor"
    return (
        f"The competitor position ({rule}) caps the price: {who or 'a competitor'} at {price:.2f}."
    )


@transaction.atomic
def _store(
    job, demand, catalog: Catalog, curve, market: Market, rec, resolved, no_model: bool = False
) -> None:
    _write(job, demand, [_rows(job, catalog, curve, market, rec, resolved, no_model)])


@dataclass
class Staged:
    """A reprice's recommendations for some products, ready to write (_write): the rows, the
    approvals they make stale, the kept approvals they differ from, and their totals."""

    objects: list[dict]
    stale: list[int]
    differ: list[tuple]
    changed: int
    conflicts: int
    profit_now: float
    profit_new: float


def _doubt_of(market: Market, n: int) -> np.ndarray:
    """Per product, how far the competitor's price may be off its level as the decision judged
    it (`Market.competitor_doubt`); NaN where no competitor is read or the doubt is not a finite
    number."""
    with np.errstate(invalid="ignore"):
        doubt = np.asarray(market.competitor_doubt(np.arange(n)), float)
        known = np.isfinite(market.competitor_price) & np.isfinite(doubt) & (doubt >= 0)
    return np.where(known, doubt, np.nan)


def _carried(curve, n: int, no_model) -> dict:
    """The columns of where the level was carried (`Recommendation.level_carried`): null where
    the curve carried nothing (a factor of 1 within rounding, no position known, no model)."""
    if curve.level_carried is None or curve.position_then is None or curve.position_now is None:
        return {"level_carried": [None] * n, "position_then": [None] * n,
                "position_now": [None] * n}  # fmt: skip
    factor = np.asarray(curve.level_carried, float)
    then, now = np.asarray(curve.position_then, float), np.asarray(curve.position_now, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        shown = ~np.asarray(no_model, bool) & np.isfinite(then) & np.isfinite(now)
        shown &= np.isfinite(factor) & (np.abs(np.log(factor)) >= 1e-4)
    out = {}
    for name, values in (("level_carried", factor), ("position_then", then), ("position_now", now)):
        out[name] = [None if not keep else float(v) for v, keep in zip(values, shown, strict=True)]
    return out


def _rows(
    job, catalog: Catalog, curve, market: Market, rec, resolved, no_model: bool = False
) -> Staged:
    """The recommendation rows of `catalog`'s products (read-only: _write writes them)."""
    tenant = require_current_tenant()
    # A newer job supersedes the pending recommendations. An approved price not yet handed to
    # a publication is a decision: it is kept, and flagged (on both sides) where the new job
    # recommends something else; the new one is never auto-approved over it.
    from .publishing import in_flight_recommendations

    in_flight = in_flight_recommendations()
    sending = set(
        Recommendation.objects.filter(pk__in=in_flight).values_list("product_id", flat=True)
    )
    approved = Recommendation.objects.filter(status=Recommendation.Status.APPROVED)
    if len(catalog):  # the catalog's products (a partitioned reprice's block)
        approved = approved.filter(
            product_id__gte=int(catalog.ids.min()), product_id__lte=int(catalog.ids.max())
        )
    waiting = {
        product: (pk, job_id, price, made_at)
        for pk, product, job_id, price, made_at in approved.exclude(pk__in=in_flight)
        .annotate(final=Coalesce("approved_price", "recommended_price"))
        .order_by("product_id", "pk")
        .values_list("pk", "product_id", "job_id", "final", "current_price")
    }
    ids, p0s = catalog.ids.tolist(), catalog.price
    # An approval made against a price that has moved since, or that breaks the rules now in
    # force, cannot be sent as it is: it is superseded (the new job's recommendation stands).
    position = {pk: i for i, pk in enumerate(ids)}
    stale = []
    for product, (pk, _job, price, made_at) in list(waiting.items()):
        i = position.get(product)
        if i is None:
            continue
        value, floor, ceiling = float(price), rec.floor[i], rec.ceiling[i]
        if (
            abs(float(made_at) - float(p0s[i])) > 0.005
            or (np.isfinite(floor) and value < floor - 0.005)
            or (np.isfinite(ceiling) and value > ceiling + 0.005)
        ):
            stale.append(pk)
            del waiting[product]
    candidates = {
        pk: (float(p0s[i]), float(rec.price[i]), bool(rec.binding[i] & RULES["competitor"]))
        for i, pk in enumerate(ids)
        if np.isfinite(rec.price[i]) and abs(rec.price[i] - float(p0s[i])) > 0.005
    }
    current_policy = approvals.policy()
    flags = approvals.price_war_flags(candidates, current_policy)
    max_rel_se = float(current_policy.auto_approve_max_relative_se)
    # Every per-SKU figure as a plain Python list once (numpy scalars one at a time cost most
    # of a 100,000-SKU job); money rounded to the column's 4 decimals, None where unknown.
    n = len(ids)

    def money(values) -> list:  # Python's round (correctly rounded), as the column had it
        return [
            round(v, 4) if math.isfinite(v) else None for v in np.asarray(values, float).tolist()
        ]

    def nulls(values) -> list:
        return [None if v != v else v for v in np.asarray(values, float).tolist()]  # NaN: NULL

    e_, se_ = curve.local_elasticity()  # what a small move from today's price does
    conflict = (rec.binding & RULES["conflict"]) > 0
    moved = ~conflict & (np.abs(rec.price - p0s) > 0.005)
    profit_known = np.isfinite(rec.profit_now) & np.isfinite(catalog.cost)
    confident = (
        np.isfinite(e_)
        & (e_ < 0)
        & np.isfinite(se_)
        & (se_ <= max_rel_se * np.abs(e_))
        & (e_ + 1.96 * se_ < 0)
        & ((rec.binding & RULES["no_estimate"]) == 0)
        & ~curve.borrowed  # a category's elasticity is no confident estimate of this SKU's
    )
    profit_new = np.nan_to_num(rec.profit_new)
    with np.errstate(invalid="ignore", divide="ignore"):
        change = np.where(moved, rec.price / p0s - 1, 0.0)
    estimated = np.isfinite(e_) & ~no_model
    columns = {
        "recommended_price": money(rec.price),
        "elasticity": nulls(np.where(estimated, e_, np.nan)),
        "elasticity_low": nulls(np.where(estimated, e_ - 1.96 * se_, np.nan)),
        "elasticity_high": nulls(np.where(estimated, e_ + 1.96 * se_, np.nan)),
        "expected_units_now": np.nan_to_num(rec.units_now).tolist(),
        "expected_units": np.nan_to_num(rec.units_new).tolist(),
        "expected_revenue_now": np.nan_to_num(rec.revenue_now).tolist(),
        "expected_revenue": np.nan_to_num(rec.revenue_new).tolist(),
        "expected_profit_now": nulls(np.where(profit_known, rec.profit_now, np.nan)),
        "expected_profit": nulls(np.where(profit_known, profit_new, np.nan)),
        "profit_delta": nulls(np.where(profit_known, profit_new - rec.profit_now, np.nan)),
        "loss_chance": nulls(np.where(no_model, np.nan, rec.loss_chance)),
        "competitor_price": money(market.competitor_price),
        # the doubt of where the competitor's price is, as the decision judged it (the stored
        # forecast's interval holds it: publishing.store_forecasts)
        "competitor_sd": nulls(_doubt_of(market, n)),
        # every day's units over the shelf day's the expected units are
        "promo_lift": nulls(np.where(no_model | ~(curve.units_ref > 0), np.nan, curve.all_days)),
        # the level carried to the job's position against the competitor (the SKU page says so)
        **_carried(curve, n, no_model),
        "price_floor": money(rec.floor),
        "price_ceiling": money(rec.ceiling),
        "change": change.tolist(),
        "confident": confident.tolist(),
    }
    names_of = {int(mask): rule_names(mask) for mask in np.unique(rec.binding)}
    binding = rec.binding.tolist()
    status = np.where(
        conflict,
        Recommendation.Status.CONFLICT,
        np.where(moved, Recommendation.Status.PENDING, Recommendation.Status.NO_CHANGE),
    ).tolist()
    moved_list, changed = moved.tolist(), int(moved.sum())
    objects, differ = [], []
    for i in range(n):
        pk, price = ids[i], float(p0s[i])
        row = {name: values[i] for name, values in columns.items()}
        flag = flags.get(pk, "") if moved_list[i] else ""
        if pk in sending:
            flag = "a price change for this product is being published; decide after it"
        if pk in waiting:
            old_pk, old_job, old_price, _made_at = waiting[pk]
            new_price = row["recommended_price"] if moved_list[i] else price
            if new_price is not None and abs(float(old_price) - new_price) > 0.005:
                differ.append((old_pk, job.pk, new_price))
                flag = (
                    f"an approved price {float(old_price):.2f} (job {old_job}) waits to be "
                    "published" + ("; approving this one replaces it" if moved_list[i] else "")
                )
        if market.price_doubt and market.price_doubt[i]:  # first: it is what to act on
            doubt = f"check this product's price: {market.price_doubt[i]}"
            flag = f"{doubt}; {flag}" if flag else doubt
        row.update(
            tenant_id=tenant.pk,
            job_id=job.pk,
            product_id=pk,
            status=status[i],
            current_price=Decimal(str(price)),
            reference_price=market.reference.get(pk),
            binding_rules=names_of[binding[i]],
            rule_sets=[x for x in str(resolved.names[i]).split(", ") if x],
            competitor_name=market.competitor_name[i][:200],
            explanation=explain(
                i,
                rec,
                e_[i].item(),
                se_[i].item(),
                float(market.competitor_price[i]),
                price,
                market.competitor_name[i],
                no_model=no_model,
                borrowed=bool(curve.borrowed[i]),
                ignored=market.competitor_ignored[i] if market.competitor_ignored else "",
                doubt=market.price_doubt[i] if market.price_doubt else "",
                cap=(*market.cap_named(i), float(resolved.values["max_above_competitor"][i])),
            ),
            flag=flag[:200],
        )
        objects.append(row)
    ok = np.isfinite(rec.profit_new) & np.isfinite(rec.profit_now)
    return Staged(
        objects=objects,
        stale=stale,
        differ=differ,
        changed=changed,
        conflicts=len(rec.conflicts),
        profit_now=float(rec.profit_now[ok].sum()),
        profit_new=float(rec.profit_new[ok].sum()),
    )


def _write(job, demand, parts) -> None:
    """Write a job's recommendations (`parts`: Staged, one at a time; a partitioned reprice
    reads each block's from storage as it comes) and end the job succeeded: in the caller's
    transaction, so all of them or none become visible."""
    # (a locked product was not repriced: its recommendation, a price test's treatment price,
    # stays as it is)
    Recommendation.objects.filter(status=Recommendation.Status.PENDING).exclude(
        product_id__in=locked_products()
    ).exclude(job=job).update(status=Recommendation.Status.SUPERSEDED)
    from .publishing import in_flight_recommendations

    skus = changed = conflicts = differs = 0
    profit_now = profit_new = 0.0
    # A part decided on the approvals of its moment; a partitioned job's reduce comes later, and
    # a publication may have taken some of them since: only approvals still waiting (approved,
    # not being sent) are superseded or flagged now.
    in_flight = in_flight_recommendations()
    waiting = Recommendation.objects.filter(status=Recommendation.Status.APPROVED).exclude(
        pk__in=in_flight
    )
    for part in parts:
        if part.stale:
            waiting.filter(pk__in=part.stale).update(
                status=Recommendation.Status.SUPERSEDED,
                flag=f"superseded by job {job.pk}: the price or the rules changed since the "
                "approval",
            )
        copy_insert(Recommendation, part.objects)
        for old_pk, new_job, new_price in part.differ:  # the kept approval says what changed
            waiting.filter(pk=old_pk).update(
                flag=f"job {new_job} now recommends {new_price:.2f}"[:200]
            )
        skus, changed = skus + len(part.objects), changed + part.changed
        conflicts, differs = conflicts + part.conflicts, differs + len(part.differ)
        profit_now, profit_new = profit_now + part.profit_now, profit_new + part.profit_new
    _finish(
        job,
        demand,
        skus,
        changed,
        conflicts,
        Decimal(str(round(profit_now, 2))),
        Decimal(str(round(profit_new, 2))),
        f"{changed} price changes recommended for {skus} SKUs"
        + (
            f"; {differs} approved prices wait to be published and differ from the new "
            "recommendation"
            if differs
            else ""
        ),
    )


def _finish(job, demand, skus, changed, conflicts, now, new, message) -> None:
    job.finish(
        message=message,
        skus=skus,
        changed=changed,
        conflicts=conflicts,
        expected_profit_now=now,
        expected_profit_new=new,
        demand_version=demand,
        progress=1.0,
        phase="done",
    )
    _log(job, message)
