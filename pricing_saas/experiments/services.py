"""A/B price tests, every write: start an experiment (stratified randomisation of the chosen
SKUs, their prices held by locks), read its report (the stopping rule counts every look), stop
it, roll the winning prices out or the test prices back. The statistics are pure:
ml.science.experiments.

Treatment SKUs get their recommended price through the usual approvals and publishing; control
SKUs keep today's price (their pending recommendations are rejected); both are locked against
other reprices until the test ends. A test with a past start records one that ran outside the
platform: nothing is published or locked, its outcome comes from the imported sales.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from pricing_saas.catalog.models import Product, SalesRecord
from pricing_saas.pricing.models import PriceChange, PriceLock, Recommendation
from pricing_saas.web.errors import ConflictError, ServiceError
from tenants import audit
from tenants.context import get_current_actor, require_current_tenant

from .models import Experiment, ExperimentUnit

MIN_SKUS = 6
MAX_LEAD_DAYS = 30  # how far ahead a test may be scheduled to start
PRE_DAYS = 28  # the pre-period: its metric stratifies the assignment and reduces the variance
MIN_DAYS = 7
MAX_SKUS = 100_000


def today() -> dt.date:
    return timezone.now().astimezone(ZoneInfo(require_current_tenant().timezone)).date()


def metric_per_day(metric: str, product_ids: list[int], start: dt.date, end: dt.date) -> dict:
    """Per product: the metric summed over [start, end) divided by its days (days without a
    sales row count as zero)."""
    days = max((end - start).days, 1)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.product_id, SUM(s.units * s.price), SUM(s.units), "
            f"SUM(s.units * COALESCE(p.cost, 0)) FROM {SalesRecord._meta.db_table} s "
            f"JOIN {Product._meta.db_table} p ON p.id = s.product_id "
            "WHERE s.tenant_id = %s AND s.date >= %s AND s.date < %s AND s.product_id = ANY(%s) "
            "GROUP BY 1",
            [require_current_tenant().pk, start, end, product_ids],
        )
        rows = cursor.fetchall()
    pick = {
        "revenue": lambda r, u, c: r,
        "units": lambda r, u, c: u,
        "profit": lambda r, u, c: r - c,
    }[metric]
    out = dict.fromkeys(product_ids, 0.0)
    for pk, revenue, units, cost in rows:
        out[pk] = float(pick(revenue or 0, units or 0, cost or 0)) / days
    return out


def median_daily_price(product_ids: list[int], start: dt.date, end: dt.date) -> dict:
    """Per product: the median over the days of [start, end) with a sales row of the day's
    listed price (channels of one day averaged); a product without such a day is absent."""
    if not product_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT product_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY day_price) FROM ("
            f"  SELECT product_id, date, avg(price) AS day_price FROM {SalesRecord._meta.db_table}"
            "   WHERE tenant_id = %s AND date >= %s AND date < %s AND product_id = ANY(%s)"
            "     AND price > 0 GROUP BY 1, 2"
            ") d GROUP BY 1",
            [require_current_tenant().pk, start, end, product_ids],
        )
        return {
            pk: Decimal(str(price)).quantize(Decimal("0.0001")) for pk, price in cursor.fetchall()
        }


def _refuse(detail: str, attr: str, code: str = "invalid") -> ServiceError:
    return ServiceError(detail, code=code, attr=attr)


@transaction.atomic
def start_experiment(
    *,
    name: str,
    days: int,
    categories: list[str] | None = None,
    skus: list[str] | None = None,
    share: float = 0.5,
    seed: int = 0,
    start: dt.date | None = None,
    metric: str = Experiment.Metric.PROFIT,
    arms: list[dict] | None = None,
) -> Experiment:
    """Randomise the chosen SKUs (by category, or a list; both: their intersection) into the
    arms. Refused, with nothing created, when an input is wrong (the field is named).

    `arms` records a test that already ran outside the platform (`start` in the past): its
    own assignment, one {"sku", "arm" (treatment | control), "price_test" (optional: the price
    the SKU had during the test; default the median of its daily prices over the test's days
    so far, else its price)} per SKU, instead of a randomisation here; the experiment is then
    labelled not randomised. Every given SKU must be testable: one that would be left out is
    refused, its row named.

    A recorded test's `price_before` is the median of the SKU's daily listed prices over the
    PRE_DAYS before the start (today's price may have moved since); a SKU without a sale in
    those days is left out (refused, if given)."""
    from ml.science.experiments import assign

    if not name or len(name) > 200:
        raise _refuse("name must be 1-200 characters", "name")
    if not isinstance(days, int) or days < MIN_DAYS or days > 365:
        raise _refuse(f"days must be a whole number of {MIN_DAYS}-365 days", "days")
    if not isinstance(share, int | float) or not 0 < share < 1:
        raise _refuse("share must be strictly between 0 and 1", "share")
    if metric not in Experiment.Metric.values:
        raise _refuse(f"metric must be one of {', '.join(Experiment.Metric.values)}", "metric")
    current = today()
    start = start or current
    if start > current + dt.timedelta(MAX_LEAD_DAYS):
        raise _refuse(f"start must be at most {MAX_LEAD_DAYS} days ahead", "start")
    if start < current - dt.timedelta(365):
        raise _refuse("start must be within the last year", "start")
    if not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise _refuse("seed must be a whole number from 0 to 2147483647", "seed")
    given = None
    if arms is not None:
        if start >= current:
            raise _refuse(
                "arms are given only for a test that already ran (a start in the past); a "
                "test from today on is randomised here",
                "arms",
            )
        given = _given_arms(arms)
        skus = list(given)
    products = Product.objects.filter(active=True)
    if categories:
        products = products.filter(category__in=categories)
    if skus is not None:
        wanted = {s.strip() for s in skus if s and s.strip()}
        found = set(Product.objects.filter(sku__in=wanted).values_list("sku", flat=True))
        unknown = sorted(wanted - found)
        if unknown:  # another tenant's SKU is unknown here, like one that does not exist
            field = "skus" if given is None else "arms"
            raise _refuse(f"unknown SKUs: {', '.join(unknown[:20])}", field, "not_found")
        products = products.filter(sku__in=wanted)
        if given is not None:  # a given SKU is never dropped in silence
            chosen = set(products.values_list("sku", flat=True))
            for sku in sorted(wanted - chosen, key=lambda s: given[s][2]):
                why = "the product is inactive"
                if categories and sku in found:
                    why += " or outside the categories chosen"
                raise _refuse(f"arms row {given[sku][2]} ({sku}): {why}", "arms")
    rows = list(products.order_by("pk").values_list("pk", "sku", "category", "price", "cost"))
    if not rows:
        raise _refuse("no SKUs chosen: give categories or a list of SKUs", "skus")
    if len(rows) > MAX_SKUS:
        raise _refuse(f"at most {MAX_SKUS} SKUs per experiment", "skus")
    ids = [r[0] for r in rows]
    # Two starts on the same SKUs at once: the product rows are locked first (in one order),
    # so the second waits here and then sees the first's SKUs as busy.
    list(Product.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))
    busy = sorted(
        set(busy_units().filter(product_id__in=ids).values_list("product__sku", flat=True))
    )
    if busy:
        raise ConflictError(
            f"already in a running experiment: {', '.join(busy[:20])}", code="busy", attr="skus"
        )
    recorded = start < current
    if not recorded:
        sending = sorted(
            PriceChange.objects.filter(
                product_id__in=ids,
                status__in=[
                    PriceChange.Status.PENDING,
                    PriceChange.Status.SENT,
                    PriceChange.Status.FAILED,
                ],
            ).values_list("product__sku", flat=True)
        )
        if sending:
            raise ConflictError(
                "a price change is on its way for: "
                + ", ".join(sending[:20])
                + " (publish or retract it first)",
                code="in_flight",
                attr="skus",
            )
    excluded: list[dict] = []
    recs: dict[int, Recommendation] = {}
    if not recorded:
        for rec in Recommendation.objects.filter(
            product_id__in=ids,
            status__in=[Recommendation.Status.PENDING, Recommendation.Status.APPROVED],
        ).order_by("product_id", "-created_at"):
            recs.setdefault(rec.product_id, rec)
    before: dict = {}
    during: dict = {}
    if recorded:
        before = median_daily_price(ids, start - dt.timedelta(PRE_DAYS), start)
        during = median_daily_price(ids, start, min(start + dt.timedelta(days), current))
    keep = []
    for pk, sku, category, price, cost in rows:
        reason = ""
        if metric == Experiment.Metric.PROFIT and not cost:
            reason = "no cost: profit unknown"
        elif recorded and pk not in before:
            reason = f"no sale in the {PRE_DAYS} days before the start: its price then is unknown"
        rec = recs.get(pk)
        test = rec and (rec.approved_price or rec.recommended_price)
        if not reason and not recorded and (test is None or abs(test - price) < Decimal("0.005")):
            reason = "no recommended price change to test"
        if reason:
            if given is not None:
                raise _refuse(f"arms row {given[sku][2]} ({sku}): {reason}", "arms")
            excluded.append({"sku": sku, "reason": reason})
            continue
        if recorded:
            price = before[pk]
            test = price
        if given is not None:
            test = given[sku][1] if given[sku][1] is not None else during.get(pk, price)
        keep.append((pk, sku, category, price, test))
    kept_ids = [k[0] for k in keep]
    strata_count = len({k[2] for k in keep})
    needed = max(MIN_SKUS, strata_count + 4)  # what the analysis needs: 2 per arm and a slope
    if len(keep) < needed:
        raise _refuse(
            f"{len(keep)} SKUs can be tested ({len(excluded)} left out: "
            f"{excluded[0]['reason'] if excluded else 'none'}); at least {needed} are needed "
            f"for {strata_count} categories",
            "skus",
        )
    pre = metric_per_day(metric, kept_ids, start - dt.timedelta(PRE_DAYS), start)
    cats = sorted({k[2] for k in keep})
    strata = np.array([cats.index(k[2]) for k in keep])
    if given is not None:
        treated = np.array([given[k[1]][0] == ExperimentUnit.Arm.TREATMENT for k in keep])
        if treated.sum() < 2 or (~treated).sum() < 2:
            raise _refuse("arms: each arm needs at least 2 SKUs that can be tested", "arms")
        share = float(treated.mean())
    else:
        try:
            treated = assign(strata, np.array([pre[k[0]] for k in keep]), share=share, seed=seed)
        except ValueError as exc:
            raise _refuse(str(exc), "share") from exc
    experiment = Experiment.objects.create(
        tenant=require_current_tenant(),
        name=name,
        metric=metric,
        share=share,
        seed=seed,
        start=start,
        days=days,
        recorded=recorded,
        randomised=given is None,
        excluded=excluded[:1000],
        created_by=get_current_actor()[1],
    )
    units = [
        ExperimentUnit(
            tenant=experiment.tenant,
            experiment=experiment,
            product_id=pk,
            arm=ExperimentUnit.Arm.TREATMENT if treated[i] else ExperimentUnit.Arm.CONTROL,
            stratum=category,
            price_before=price,
            price_test=test if treated[i] else price,
            pre_metric=pre[pk],
            recommendation=recs.get(pk) if treated[i] else None,
        )
        for i, (pk, _sku, category, price, test) in enumerate(keep)
    ]
    ExperimentUnit.objects.bulk_create(units, batch_size=5000)
    end = start + dt.timedelta(days)
    if not recorded:
        PriceLock.objects.bulk_create(
            [
                PriceLock(
                    tenant=experiment.tenant,
                    product_id=u.product_id,
                    until=end - dt.timedelta(1),
                    reason=f"price test {experiment.pk}",
                    allow_recommendation=u.recommendation,  # the treatment price may go out
                )
                for u in units
            ],
            batch_size=5000,
        )
        control = [u.product_id for u in units if u.arm == ExperimentUnit.Arm.CONTROL]
        Recommendation.objects.filter(
            product_id__in=control,
            status__in=[Recommendation.Status.PENDING, Recommendation.Status.APPROVED],
        ).update(status=Recommendation.Status.REJECTED)
    audit.record(
        "experiment.start",
        target=experiment,
        summary=f"{name}: {int(treated.sum())} treatment, {int((~treated).sum())} control SKUs "
        f"for {days} days from {start}",
    )
    return experiment


def _given_arms(arms) -> dict[str, tuple[str, Decimal | None, int]]:
    """A merchant's own assignment, checked row by row (the row is named: 1 is the first)."""
    if not isinstance(arms, list) or not arms:
        raise _refuse("arms must be a non-empty list of {sku, arm, price_test}", "arms")
    if len(arms) > MAX_SKUS:
        raise _refuse(f"at most {MAX_SKUS} SKUs per experiment", "arms")
    out: dict[str, tuple[str, Decimal | None, int]] = {}  # sku: (arm, price_test, row)
    for row_number, row in enumerate(arms, start=1):
        where = f"arms row {row_number}"
        if not isinstance(row, dict):
            raise _refuse(f"{where}: must be an object with sku and arm", "arms")
        sku = str(row.get("sku") or "").strip()
        arm = str(row.get("arm") or "").strip().lower()
        if not sku:
            raise _refuse(f"{where}: sku is missing", "arms")
        if arm not in ExperimentUnit.Arm.values:
            raise _refuse(f"{where} ({sku}): arm must be treatment or control, not {arm!r}",
                          "arms")  # fmt: skip
        if sku in out:
            raise _refuse(f"{where}: {sku} is listed twice", "arms")
        price = row.get("price_test")
        if price in (None, ""):
            out[sku] = (arm, None, row_number)
            continue
        try:
            value = Decimal(str(price).strip())
        except (InvalidOperation, ValueError):
            value = Decimal("NaN")
        if not value.is_finite() or not Decimal("0") < value < Decimal("1e9"):
            raise _refuse(f"{where} ({sku}): price_test must be a positive number", "arms")
        out[sku] = (arm, value.quantize(Decimal("0.01")), row_number)
    return out


def report(*, experiment: Experiment, look: bool = True):
    """The experiment's result so far (ml.science.experiments.analyse). `look`: this reading
    counts as a look for the stopping rule (a person or a script read it); the last report is
    stored on the experiment."""
    from ml.science.experiments import analyse

    if experiment.status == Experiment.Status.STOPPED:
        raise ConflictError(
            f"experiment {experiment.pk} was stopped: its last report stands", code="stopped"
        )
    units = list(experiment.units.order_by("pk").values_list("product_id", "arm", "pre_metric"))
    end = experiment.start + dt.timedelta(experiment.days)
    observed_end = min(end, today())
    observed = (observed_end - experiment.start).days
    if observed < 1:
        raise ConflictError("the test has not started yet: no day to report", code="not_started")
    ids = [u[0] for u in units]
    post = metric_per_day(experiment.metric, ids, experiment.start, observed_end)
    treated = np.array([u[1] == ExperimentUnit.Arm.TREATMENT for u in units])
    strata = list(experiment.units.order_by("pk").values_list("stratum", flat=True))
    earlier = [d for d in experiment.looks if d < observed]
    try:
        result = analyse(
            np.array([post[pk] for pk in ids]),
            np.array([u[2] for u in units]),
            treated,
            days_observed=observed,
            planned_days=experiment.days,
            strata=strata,
            metric=experiment.metric,
            looks=earlier,
        )
    except ValueError as exc:  # e.g. a look after the final one, an arm that lost its SKUs
        raise ConflictError(f"cannot report: {exc}", code="cannot_report") from exc
    prices = compliance(experiment, observed_end)
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if look and observed not in locked.looks:
            locked.looks = sorted([*locked.looks, observed])
        locked.result = (
            {k: _plain(v) for k, v in vars(result).items()} | prices | assignment(locked)
        )
        if observed >= locked.days and locked.status == Experiment.Status.RUNNING:
            locked.status = Experiment.Status.FINISHED
        locked.save(update_fields=["looks", "result", "status"])
    experiment.refresh_from_db()
    return result


def assignment(experiment: Experiment) -> dict:
    """How the arms were formed, for every reader of the result."""
    if experiment.randomised:
        return {"randomised": True, "assignment": "randomised"}
    return {
        "randomised": False,
        "assignment": "not randomised: the arms are the merchant's own split of a test run "
        "outside the platform; the interval holds only if that split was as good as random "
        "(not chosen by sales, season or price)",
    }


PRICE_TOLERANCE = 0.02  # at most this far from its price, a SKU sold "at" it
COMPLIANCE_WARNING = 0.9  # below this share of an arm at its price, the report says so


def compliance(experiment: Experiment, until: dt.date) -> dict:
    """Whether each arm really sold at its price, read from the sales: the median of the SKU's
    daily listed prices (channels of a day averaged) from the day its test price went live
    (the publication's day; a recorded test's start) for a treatment SKU, from the start for a
    control SKU. A treatment SKU is at its test price when that median is nearer its test price
    than its price before and within min(2 %, half the step) of it; a control SKU within 2 % of
    its price before. A treatment SKU whose price was never published is off ("never
    published").

    The analysis stays intention-to-treat (the arms as assigned): whether a price goes live
    can depend on the SKU (an approval rule, a shop that refused it), so dropping the SKUs that
    did not follow would compare unlike groups. Non-compliance dilutes the lift toward zero;
    the report gives the share that complied and names the SKUs that did not."""
    units = list(
        experiment.units.values_list("product_id", "product__sku", "arm", "price_before",
                                     "price_test", "recommendation_id")
    )  # fmt: skip
    tz = ZoneInfo(require_current_tenant().timezone)
    live_from: dict[int, dt.date] = {}
    if not experiment.recorded:
        published = PriceChange.objects.filter(
            recommendation_id__in=[u[5] for u in units if u[5]],
            status=PriceChange.Status.PUBLISHED,
        ).values_list("product_id", "published_at")
        for pk, at in published:
            day = max(at.astimezone(tz).date(), experiment.start)
            live_from[pk] = min(live_from.get(pk, day), day)
    paid: dict[int, Decimal] = median_daily_price([u[0] for u in units], experiment.start, until)
    # a treatment SKU published later than the start: its median from that day on
    late: dict[dt.date, list[int]] = {}
    for pk, day in live_from.items():
        if day > experiment.start:
            late.setdefault(day, []).append(pk)
    for day, pks in late.items():
        since = median_daily_price(pks, day, until)
        for pk in pks:  # no sale since it went live: nothing to check yet
            paid[pk] = since.get(pk)
    out: dict = {}
    off: list[str] = []
    labelled: list[dict] = []
    for arm, label in ((ExperimentUnit.Arm.TREATMENT, "treatment"), (ExperimentUnit.Arm.CONTROL,
                                                                       "control")):  # fmt: skip
        checked = at_price = 0
        for pk, sku, unit_arm, before, test, _rec in units:
            if unit_arm != arm:
                continue
            treated = arm == ExperimentUnit.Arm.TREATMENT
            reason = ""
            median = paid.get(pk)
            if treated and not experiment.recorded and pk not in live_from:
                reason = "never published"
            elif median is None:
                continue  # no sale to read its price from
            else:
                target, other = (float(test), float(before)) if treated else (float(before), None)
                step = abs(target / other - 1) if other else 0.0
                tolerance = min(PRICE_TOLERANCE, step / 2) if step else PRICE_TOLERANCE
                if abs(float(median) / target - 1) > tolerance:
                    reason = f"sold at {float(median):.2f} (median a day), not {target:.2f}"
            checked += 1
            if not reason:
                at_price += 1
                continue
            if len(off) < 20:
                off.append(sku)
            if len(labelled) < 200:
                labelled.append({"sku": sku, "arm": label, "reason": reason})
        out[f"{label}_checked"] = checked
        out[f"{label}_at_price"] = at_price
    share = (
        out["treatment_at_price"] / out["treatment_checked"] if out["treatment_checked"] else None
    )
    shares = [
        out[f"{label}_at_price"] / out[f"{label}_checked"]
        for label in ("treatment", "control")
        if out[f"{label}_checked"]
    ]
    warning = ""
    if shares and min(shares) < COMPLIANCE_WARNING:
        warning = (
            f"Only {out['treatment_at_price']} of {out['treatment_checked']} treatment SKUs sold "
            f"at their test price and {out['control_at_price']} of {out['control_checked']} "
            "control SKUs at their price before: the arms did not get the prices they were "
            "assigned, so the lift (of the arms as assigned: intention-to-treat) is diluted "
            f"toward zero (e.g. {', '.join(off[:5])}). Check that the treatment prices were "
            "approved and published."
        )
    return {
        "prices": out,
        "prices_off": off,
        "non_compliant": labelled,
        "compliance": None if share is None else round(share, 4),
        "analysis": "intention-to-treat",
        "warning": warning,
    }


def _plain(value):
    """A JSON-safe value: numpy scalars as Python ones, an infinite bound (a look too early to
    spend any error rate) as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@transaction.atomic
def stop(*, experiment: Experiment) -> Experiment:
    """End a running test now: its locks go, its prices stay where they are."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != Experiment.Status.RUNNING:
        raise ConflictError(f"experiment {experiment.pk} is {experiment.status}", code="finished")
    PriceLock.objects.filter(reason=f"price test {experiment.pk}").delete()
    experiment.status = Experiment.Status.STOPPED
    experiment.save(update_fields=["status"])
    audit.record("experiment.stop", target=experiment, summary=f"{experiment.name} stopped")
    return experiment


def _ended(experiment: Experiment) -> Experiment:
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status == Experiment.Status.RUNNING:
        if experiment.start + dt.timedelta(experiment.days) > today():
            raise ConflictError(
                f"price test {experiment.pk} is still running: stop it or let it finish first",
                code="running",
            )
        experiment.status = Experiment.Status.FINISHED
        experiment.save(update_fields=["status"])
    PriceLock.objects.filter(reason=f"price test {experiment.pk}").delete()
    return experiment


@transaction.atomic
def roll_out(*, experiment: Experiment):
    """The treatment won: its SKUs keep their prices, and the control SKUs are released and
    repriced (a reprice job is queued; its prices go through the usual approvals)."""
    from pricing_saas.pricing import services as pricing

    experiment = _ended(experiment)
    job = pricing.start_reprice(trigger="experiment")
    audit.record(
        "experiment.roll_out",
        target=experiment,
        summary=f"{experiment.name}: control SKUs released, reprice job {job.pk} queued",
    )
    return job


@transaction.atomic
def roll_back(*, experiment: Experiment, enqueue: bool = True):
    """The control won: the treatment's published test prices go back to the prices before."""
    from pricing_saas.pricing import publishing

    experiment = _ended(experiment)
    recs = (
        experiment.units.filter(arm=ExperimentUnit.Arm.TREATMENT)
        .exclude(recommendation=None)
        .values_list("recommendation_id", flat=True)
    )
    live = list(
        PriceChange.objects.filter(
            recommendation_id__in=list(recs),
            status=PriceChange.Status.PUBLISHED,
            reverted=False,
        ).values_list("pk", flat=True)
    )
    if not live:
        raise ConflictError("no published test price to roll back", code="nothing_published")
    publication = publishing.rollback(
        change_ids=live, comment=f"price test {experiment.pk} rolled back", enqueue=enqueue
    )
    audit.record(
        "experiment.roll_back",
        target=experiment,
        summary=f"{experiment.name}: {len(live)} test prices rolled back",
    )
    return publication


def busy_units():
    """The units of tests still running (a test whose days are over frees its SKUs even if
    nobody read its final report)."""
    return ExperimentUnit.objects.filter(experiment__status=Experiment.Status.RUNNING).exclude(
        experiment__in=[
            e.pk
            for e in Experiment.objects.filter(status=Experiment.Status.RUNNING)
            if e.start + dt.timedelta(e.days) <= today()
        ]
    )


def assignments(experiment: Experiment):
    """(sku, arm, price_before, price_test) per SKU, in a stable order."""
    return experiment.units.order_by("pk").values_list(
        "product__sku", "arm", "price_before", "price_test"
    )
