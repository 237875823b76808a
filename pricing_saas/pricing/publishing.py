"""Publishing approved prices, retries, price history and rollback.

publish() turns approved recommendations into pending PriceChanges of one Publication and
queues it on the `publish` queue; run_publication() pushes them through the tenant's publisher
(pricing_saas.integrations.publishers) and, for every change the publisher confirms, moves the
product to its new price. A rollback is a new audited change back to the previous price,
published the same way. The kill switch stops all of it.
"""

from __future__ import annotations

import logging
from collections import namedtuple

from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from pricing_saas.catalog.models import Product
from pricing_saas.integrations.publishers import (
    ChangeRow,
    PushResult,
    TransientPublishError,
    get_publisher,
)
from pricing_saas.web.errors import ConflictError, NotFoundError, ServiceError
from tenants import audit
from tenants.context import get_current_actor, require_current_tenant

from .approvals import named_in_status, policy, require_confirmed, require_switch_off
from .models import PriceChange, PriceLock, Publication, Recommendation, RepriceJob

logger = logging.getLogger(__name__)
# Changes of a publication still waiting for an answer: pending, or sent to a shop whose
# confirmation has not come back (the answer was lost; the task retries them).
UNANSWERED = [PriceChange.Status.PENDING, PriceChange.Status.SENT]
_Target = namedtuple("_Target", "pk product_id old_price new_price status reverted kind")
_Change = namedtuple(
    "_Change", "pk product_id old_price new_price kind recommendation_id reverts_id status"
)


def _enqueue(publication: Publication) -> None:
    from .tasks import publish as publish_task

    tenant_id, pk = publication.tenant_id, publication.pk
    transaction.on_commit(lambda: publish_task.delay(tenant_id, pk))


_INSERT = """INSERT INTO {table} (tenant_id, product_id, kind, status, old_price, new_price,
    recommendation_id, job_id, publication_id, reverts_id, reverted, error, created_by, created_at)
    """


def in_flight_recommendations() -> set[int]:
    """Recommendations already handed to a publication: pending, or failed (those go again
    through a retry, never through a second publication)."""
    return set(
        PriceChange.objects.filter(
            status__in=[
                PriceChange.Status.PENDING,
                PriceChange.Status.SENT,
                PriceChange.Status.FAILED,
            ],
            recommendation_id__isnull=False,
        ).values_list("recommendation_id", flat=True)
    )


def _new_publication(kind: str, select_sql: str, params: dict, enqueue: bool) -> Publication:
    """A publication and its pending changes, inserted set-based from `select_sql` (its columns
    follow _INSERT; %(publication)s, %(actor)s, %(tenant)s and `params` are bound)."""
    _user, actor = get_current_actor()
    publication = Publication.objects.create(
        tenant=require_current_tenant(), publisher=policy().publisher, kind=kind, created_by=actor
    )
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT.format(table=PriceChange._meta.db_table) + select_sql,
            {
                **params,
                "publication": publication.pk,
                "actor": actor,
                "tenant": publication.tenant_id,
            },
        )
        publication.changes = cursor.rowcount
    publication.save(update_fields=["changes"])
    if enqueue:
        _enqueue(publication)
    return publication


# An approved recommendation as publish() reads it: what goes out, and the forecast a summary
# of it sums (pricing_saas.pricing.selectors.publish_preview).
Publishable = namedtuple(
    "Publishable",
    "pk product_id job_id approved_price recommended_price current_price change profit_delta "
    "expected_revenue expected_revenue_now",
)
PUBLISH_CHANGED = (
    "the approved prices changed since the summary (an approval, a rejection, a reprice, "
    "another publication or a new publisher): nothing was published"
)


def publish_action() -> str:
    """The action a publish summary confirms: publishing through today's publisher."""
    return f"publish:{policy().publisher}"


def publish_token_rows(rows: list[Publishable]) -> list[tuple]:
    """The (pk, price going out) of each row, in pk order: what a confirmation names."""
    return [(r.pk, new_price_of(r)) for r in rows]


def new_price_of(row: Publishable):
    return row.approved_price if row.approved_price is not None else row.recommended_price


def publishable(queryset) -> tuple[list[Publishable], list[int], dict[int, object]]:
    """What publishing the approved recommendations of `queryset` sends: one change per
    product (its newest approval; none already handed to a publication), of products that
    still exist. Returns those rows in pk order, the older approvals the newest replace, and
    the products' prices today. Locks the rows when `queryset` does (publish); a summary reads
    the same without locking, so both name the same set."""
    # Lock first, then look for changes in flight: a concurrent publish of the same rows waits
    # here and, once the first commits, sees its pending changes (no price is sent twice).
    locked = list(queryset.order_by("pk").values_list("pk", "product_id"))
    in_flight = in_flight_recommendations()
    newest: dict[int, int] = {}  # one change per product: the newest recommendation wins
    for pk, product_id in locked:
        if pk not in in_flight:
            newest[product_id] = max(pk, newest.get(product_id, 0))
    ids = sorted(newest.values())
    # An older approval of a product whose newer one goes out now is replaced, never sent later.
    older = [
        pk
        for pk, product_id in locked
        if pk not in in_flight and newest.get(product_id) not in (None, pk)
    ]
    # Plain arrays, no join: a join over freshly loaded tables can get a nested-loop plan from
    # stale statistics (seen: 40 s for 20,000 rows); unnest() is linear whatever the stats.
    rows: list[Publishable] = []
    for chunk in _chunks(ids):
        rows += [
            Publishable(*row)
            for row in Recommendation.objects.filter(pk__in=chunk).values_list(*Publishable._fields)
        ]
    prices = {}
    for chunk in _chunks([r.product_id for r in rows]):
        prices.update(Product.objects.filter(pk__in=chunk).values_list("pk", "price"))
    rows = sorted((r for r in rows if r.product_id in prices), key=lambda r: r.pk)
    return rows, older, prices


def approved(recommendation_ids: list[int] | None = None, *, lock: bool = False):
    """The approved recommendations, all of them or the ids named (every one this tenant's
    and approved, else a NotFoundError or ConflictError naming them); locked with `lock`."""
    queryset = Recommendation.objects.filter(status=Recommendation.Status.APPROVED)
    if lock:
        queryset = queryset.select_for_update()
    if recommendation_ids is None:
        return queryset
    named_in_status(
        recommendation_ids,
        status=Recommendation.Status.APPROVED,
        refusal="only approved recommendations can be published; not: ",
        code="not_approved",
    )
    return queryset.filter(pk__in=set(recommendation_ids))


@transaction.atomic
def publish(
    *,
    recommendation_ids: list[int] | None = None,
    enqueue: bool = True,
    expect: str | None = None,
) -> Publication:
    """Publish approved recommendations (all of them, or the ids named). With `expect` (the
    token of a summary a person confirmed, selectors.publish_preview), only if what would go
    out is still exactly what was summarised, through the same publisher; otherwise a
    ConflictError (code "changed") and nothing is published."""
    require_switch_off("publishing")
    rows, older, _prices = publishable(approved(recommendation_ids, lock=True))
    require_confirmed(
        action=publish_action(),
        rows=publish_token_rows(rows),
        expect=expect,
        detail=PUBLISH_CHANGED,
    )
    if older:
        Recommendation.objects.filter(pk__in=older).update(status=Recommendation.Status.SUPERSEDED)
    if not rows:
        raise ConflictError(
            "nothing approved is waiting to be published", code="nothing_to_publish"
        )
    publication = _new_publication(
        "approval",
        """SELECT %(tenant)s, v.product_id, 'recommendation', 'pending', v.old_price, v.new_price,
                  v.rec_id, v.job_id, %(publication)s, NULL, false, '', %(actor)s, now()
           FROM unnest(%(rec_ids)s::bigint[], %(product_ids)s::bigint[], %(job_ids)s::bigint[],
                       %(old)s::numeric[], %(new)s::numeric[])
                AS v(rec_id, product_id, job_id, old_price, new_price)
           ORDER BY v.rec_id""",
        {
            "rec_ids": [r.pk for r in rows],
            "product_ids": [r.product_id for r in rows],
            "job_ids": [r.job_id for r in rows],
            # the price the recommendation was made against: if the shop's price moved since,
            # the push refuses it ("the price changed since") instead of sending a stale price
            "old": [r.current_price for r in rows],
            "new": [new_price_of(r) for r in rows],
        },
        enqueue,
    )
    store_forecasts(publication=publication)
    audit.record(
        "publication.create",
        target=publication,
        summary=f"{publication.changes} approved prices sent to the {publication.publisher} "
        "publisher",
        after={"recommendations": [r.pk for r in rows][:1000], "count": publication.changes},
    )
    return publication


Z95 = 1.959963984540054  # the forecast's 95 % interval


def store_forecasts(*, publication: Publication) -> int:
    """Each change's forecast as it goes out, from its job's demand model (the one curve,
    anchored at the old price): expected units per day at the new price and at the old one
    (the counterfactual; every day's, a shelf day's times the SKU's promotion lift, as the
    realised lift counts them), the new price's 95 % interval (every uncertain part of the
    curve, the competitor's position as its recommendation judged it:
    `DemandCurve.units_interval`; 0 to infinity where the slope's s.e. is unknown), and the
    unit cost then. Changes without an estimate (no model, a cold start) keep no forecast.
    Returns how many were stored."""
    import numpy as np

    from ml.models import ModelVersion
    from ml.selectors import demand_curve

    changes = list(
        PriceChange.objects.filter(publication=publication, kind=PriceChange.Kind.RECOMMENDATION)
        .exclude(job=None)
        .values_list("pk", "product_id", "job_id", "old_price", "new_price", "recommendation_id")
    )
    if not changes:
        return 0
    versions = dict(
        RepriceJob.objects.filter(pk__in={c[2] for c in changes}).values_list(
            "pk", "demand_version"
        )
    )
    products = {}
    for chunk in _chunks([c[1] for c in changes]):
        products.update(
            (pk, rest)
            for pk, *rest in Product.objects.filter(pk__in=chunk).values_list(
                "pk", "cost", "category", "attributes__cost_source"
            )
        )
    competitor = {}  # the competitor's price and its doubt as the decision judged them
    for chunk in _chunks([c[5] for c in changes]):
        competitor.update(
            (pk, rest)
            for pk, *rest in Recommendation.objects.filter(pk__in=chunk).values_list(
                "pk", "competitor_price", "competitor_sd"
            )
        )
    out: list[tuple] = []
    for version_id in {versions.get(c[2]) for c in changes} - {None}:
        version = ModelVersion.objects.get(pk=version_id)
        part = [c for c in changes if versions.get(c[2]) == version_id and c[1] in products]
        old = np.array([float(c[3]) for c in part])
        new = np.array([float(c[4]) for c in part])
        comp = [competitor.get(c[5]) or (None, None) for c in part]
        level = np.array([np.nan if v[0] is None else float(v[0]) for v in comp])
        doubt = np.array([0.0 if v[1] is None else float(v[1]) for v in comp])
        curve, known = demand_curve(
            version, [c[1] for c in part], old, [products[c[1]][1] for c in part], level,
            competitor_sd=doubt,
        )  # fmt: skip
        # the interval holds the curve's doubt: the slope, the bend, the hinge above the
        # competitor and where the competitor's price really is, as the decision judged it
        units_new, low, high = curve.units_interval(new, Z95)
        # a day as the KPIs count it: every day, the SKU's promotions going on as they went
        # (the curve's are a shelf day's; their ratio, what the forecast's accuracy reads, is
        # the same either way)
        days = curve.all_days
        for i, c in enumerate(part):
            if not known[i] or not np.isfinite(units_new[i]) or not curve.units_ref[i] > 0:
                continue
            cost, _category, source = products[c[1]]
            out.append((
                c[0], float(units_new[i] * days[i]), float(curve.units_ref[i] * days[i]),
                float(low[i] * days[i]), float(high[i] * days[i]), cost,
                str(source or "").startswith("derived"), version_id,
            ))  # fmt: skip
    if out:
        columns = list(zip(*out, strict=True))
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE {PriceChange._meta.db_table} AS c SET forecast_units_new = v.new,
                    forecast_units_old = v.old, forecast_units_new_low = v.low,
                    forecast_units_new_high = v.high, forecast_unit_cost = v.cost,
                    forecast_cost_derived = v.derived, forecast_version_id = v.version
                FROM unnest(%s::bigint[], %s::float8[], %s::float8[], %s::float8[],
                            %s::float8[], %s::numeric[], %s::boolean[], %s::bigint[])
                     AS v(pk, new, old, low, high, cost, derived, version)
                WHERE c.id = v.pk AND c.tenant_id = %s""",
                [*[list(col) for col in columns], publication.tenant_id],
            )
    return len(out)


def run_publication(*, publication_id: int) -> Publication | None:
    """Push a queued publication (idempotent: only a queued one runs, or one left running by a
    worker that died: past the task's time limit its pending changes are pushed again; setting
    a price twice is harmless)."""
    publication, claimed = Publication.claim(publication_id, reclaim_stale=True)
    if not claimed:
        return publication
    changes = [  # plain tuples: a publication may carry 100,000 changes
        _Change(*row)
        for row in PriceChange.objects.filter(publication=publication, status__in=UNANSWERED)
        .order_by("pk")
        .values_list(*_Change._fields)
    ]
    products = {
        pk: (sku, title, currency, price)
        for chunk in _chunks([c.product_id for c in changes])
        for pk, sku, title, currency, price in Product.objects.filter(pk__in=chunk).values_list(
            "pk", "sku", "title", "currency", "price"
        )
    }
    # A change made against a price that has moved since (a retry days later, a second
    # rollback) would overwrite the newer price: it fails instead, and says why.
    # A change already sent whose new price the catalog has taken since (the shop applied it,
    # its answer was lost, and a sync or the shop's webhook brought the price back) is not
    # stale: the publisher reads the shop's live price and confirms it without sending again.
    stale = {
        c.pk
        for c in changes
        if (now := products.get(c.product_id, (0, 0, 0, None))[3]) != c.old_price
        and not (c.status == PriceChange.Status.SENT and now == c.new_price)
    }
    # A price test holds its SKUs' prices: only the test's own treatment price goes out.
    held = _held_by_locks(changes)
    # The kill switch stops new prices; a rollback (restoring the prices before) still goes:
    # it is how an operator undoes the damage the switch was pulled for.
    switched_off = policy().kill_switch
    if switched_off and publication.kind != "rollback":
        _finish(publication, changes, {}, "stopped: the kill switch was turned on")
        return publication
    # Nor does the undoing of a rollback (it would publish again the price the rollback
    # removed), even if it was queued before the switch was turned on.
    forward = set()
    if switched_off:
        for chunk in _chunks([c.pk for c in changes]):
            forward.update(
                PriceChange.objects.filter(
                    pk__in=chunk, reverts__kind=PriceChange.Kind.ROLLBACK
                ).values_list("pk", flat=True)
            )
    rows = [
        ChangeRow(
            change_id=c.pk,
            sku=products[c.product_id][0],
            title=products[c.product_id][1],
            old_price=c.old_price,
            new_price=c.new_price,
            currency=products[c.product_id][2],
            kind=c.kind,
        )
        for c in changes
    ]
    rows = [r for r in rows if r.change_id not in stale and r.change_id not in forward | set(held)]
    publisher = get_publisher(publication.publisher)
    if publisher.remote and rows:
        _mark_sent([r.change_id for r in rows])
    try:
        outcome = publisher.push(rows, reference=f"{publication.tenant.slug}-{publication.pk}")
        confirmed = {r.change_id: r for r in publisher.confirm(rows)}
    except TransientPublishError:
        with transaction.atomic():
            publication.status = Publication.Status.QUEUED
            publication.save(update_fields=["status"])
        raise  # the task retries with backoff
    except Exception as exc:  # a shop's answer nobody foresaw: nothing stays sent for ever
        logger.exception("publication %s: the publisher failed", publication.pk)
        _finish(
            publication,
            changes,
            {},
            f"stopped by an internal error ({type(exc).__name__}); retry the failed changes: "
            "the shop's live prices are read first, so nothing is sent twice",
        )
        return publication
    results = {
        pk: PushResult(pk, False, "the price changed since this change was made; not sent")
        for pk in stale
    }
    for pk, reason in held.items():
        results[pk] = PushResult(pk, False, f"not sent: the price is held by {reason}")
    for pk in forward:
        results[pk] = PushResult(
            pk, False, "stopped: the kill switch is on and this change would undo a rollback"
        )
    for result in outcome.results:
        if result.ok and result.change_id in confirmed and not confirmed[result.change_id].ok:
            result = confirmed[result.change_id]
        results[result.change_id] = result
    if outcome.file_bytes:
        publication.file.save(outcome.file_name, ContentFile(outcome.file_bytes), save=False)
    _finish(publication, changes, results, "")
    return publication


def _mark_sent(ids: list[int]) -> None:
    """Say, committed before the shop is called, which changes are on their way: a person
    watching sees them sent; a worker lost mid-push leaves them sent (the retry reads the
    shop's live prices first, so nothing goes out twice)."""
    now = timezone.now()
    with transaction.atomic():
        for chunk in _chunks(ids):
            PriceChange.objects.filter(pk__in=chunk, status=PriceChange.Status.PENDING).update(
                status=PriceChange.Status.SENT, sent_at=now
            )


def _held_by_locks(changes) -> dict[int, str]:
    """The changes a price lock holds back (the product is locked today and the change is not
    the one the lock allows), with the lock's reason."""
    from .services import _local_today

    locks: dict[int, list] = {}
    for chunk in _chunks([c.product_id for c in changes]):
        for product_id, allowed, reason in PriceLock.objects.filter(
            product_id__in=chunk, until__gte=_local_today()
        ).values_list("product_id", "allow_recommendation_id", "reason"):
            locks.setdefault(product_id, []).append((allowed, reason))
    return {
        c.pk: held[0][1]
        for c in changes
        if (
            held := [lock for lock in locks.get(c.product_id, []) if lock[0] != c.recommendation_id]
        )
    }


def _chunks(items: list, size: int = 20_000):
    for start in range(0, len(items), size):
        yield items[start : start + size]


@transaction.atomic
def _finish(publication, changes, results, stopped: str) -> None:
    """Record the outcome set-based (a publication may carry 100,000 changes)."""
    now = timezone.now()
    done, failed = [], {}
    for change in changes:
        result = results.get(change.pk)
        if result is not None and result.ok:
            done.append(change)
        else:
            error = stopped or (result.error if result else "no answer from the publisher")
            failed.setdefault(error[:2000], []).append(change.pk)
    for chunk in _chunks([c.pk for c in done]):
        PriceChange.objects.filter(pk__in=chunk).update(
            status=PriceChange.Status.PUBLISHED, published_at=now
        )
    for error, ids in failed.items():
        for chunk in _chunks(ids):
            PriceChange.objects.filter(pk__in=chunk).update(
                status=PriceChange.Status.FAILED, error=error
            )
    if done:  # the shop now has the new prices: so does the catalog (set-based, under RLS)
        with connection.cursor() as cursor:
            for chunk in _chunks(done):
                cursor.execute(
                    f"""UPDATE {Product._meta.db_table} AS p
                        SET price = v.price, updated_at = %s
                        FROM unnest(%s::bigint[], %s::numeric[]) AS v(id, price)
                        WHERE p.id = v.id""",
                    [now, [c.product_id for c in chunk], [c.new_price for c in chunk]],
                )
    for chunk in _chunks([c.recommendation_id for c in done if c.recommendation_id]):
        Recommendation.objects.filter(pk__in=chunk).update(status=Recommendation.Status.PUBLISHED)
    for chunk in _chunks([c.reverts_id for c in done if c.reverts_id]):
        PriceChange.objects.filter(pk__in=chunk).update(reverted=True)
    n_failed = sum(len(ids) for ids in failed.values())
    status = (
        Publication.Status.SUCCEEDED
        if not n_failed
        else Publication.Status.PARTIAL
        if done
        else Publication.Status.FAILED
    )
    message = stopped or (f"{len(done)} published" + (f", {n_failed} failed" if n_failed else ""))
    publication.finish(
        status=status, message=message, published=len(done), failed=n_failed, finished_at=now
    )
    audit.record(
        "publication.finish",
        target=publication,
        summary=publication.message,
        after={"status": publication.status, "published": len(done), "failed": n_failed},
    )


def give_up(*, publication_id: int, reason: str) -> Publication | None:
    """The publisher kept failing: the publication's pending and sent changes fail (retry them
    later)."""
    with transaction.atomic():
        publication = Publication.objects.select_for_update().filter(pk=publication_id).first()
        if publication is None or not publication.is_active:
            return publication
        changes = [
            _Change(*row)
            for row in PriceChange.objects.filter(
                publication=publication, status__in=UNANSWERED
            ).values_list(*_Change._fields)
        ]
        _finish(
            publication, changes, {}, f"gave up after {publication.attempts} attempts: {reason}"
        )
    return publication


@transaction.atomic
def retry_publication(*, publication: Publication, enqueue: bool = True) -> Publication:
    """Send a publication's failed changes again, as a new publication (a rollback's also
    while the kill switch is on)."""
    if publication.kind != "rollback":
        require_switch_off("publishing")
    failed = list(
        PriceChange.objects.select_for_update().filter(
            publication=publication, status=PriceChange.Status.FAILED
        )
    )
    if not failed:
        raise ConflictError(
            f"publication {publication.pk} has no failed changes to retry", code="nothing_to_retry"
        )
    retry = Publication.objects.create(
        tenant=require_current_tenant(),
        publisher=policy().publisher,
        kind=publication.kind,
        changes=len(failed),
        created_by=get_current_actor()[1],
        retry_of=publication,
    )
    PriceChange.objects.filter(pk__in=[c.pk for c in failed]).update(
        publication=retry, status=PriceChange.Status.PENDING, error=""
    )
    if enqueue:
        _enqueue(retry)
    audit.record(
        "publication.retry",
        target=retry,
        summary=f"{len(failed)} failed changes of publication {publication.pk} sent again",
    )
    return retry


def latest_changes_of(skus: list[str]) -> list[int]:
    """The latest published change of each SKU (for "roll these SKUs back"); NotFoundError names
    SKUs that do not exist or have no published change."""
    found = dict(Product.objects.filter(sku__in=set(skus)).values_list("sku", "pk"))
    latest = dict(
        PriceChange.objects.filter(
            product_id__in=found.values(), status=PriceChange.Status.PUBLISHED
        )
        .order_by("product_id", "-published_at", "-pk")
        .distinct("product_id")
        .values_list("product_id", "pk")
    )
    missing = [sku for sku in skus if found.get(sku) not in latest]
    if missing:
        raise NotFoundError(
            "no published price change for SKU: " + ", ".join(missing[:20]), attr="skus"
        )
    return [latest[found[sku]] for sku in dict.fromkeys(skus)]


ROLLBACK_CHANGED = (
    "the published prices of this job changed since the summary (a rollback, a publication or "
    "a price changed in the shop): nothing was rolled back"
)


def rollback_action(job: RepriceJob) -> str:
    """The action a summary of rolling back a whole job confirms."""
    return f"rollback:job:{job.pk}"


def rollback_token_rows(targets) -> list[tuple]:
    """The (pk, price now, price it returns to) of each change, in pk order."""
    return sorted((c.pk, c.new_price, c.old_price) for c in targets)


def rollback_targets(
    *, job: RepriceJob | None = None, change_ids: list[int] | None = None, lock: bool = False
) -> list:
    """The published changes a rollback of `job` (all its live recommendation changes) or of
    `change_ids` returns to their previous prices, each (pk, product_id, old_price, new_price,
    status, reverted, kind), after every check a rollback makes: a NotFoundError or
    ConflictError says why it would be refused. Locked when `lock` (rollback); a summary reads
    the same without locking."""
    if (job is None) == (change_ids is None):
        raise ServiceError("name a job or the price changes to roll back", attr="change_ids")
    queryset = PriceChange.objects.select_for_update() if lock else PriceChange.objects.all()
    if job is not None:
        targets = [
            _Target(*row)
            for row in queryset.filter(
                job=job,
                status=PriceChange.Status.PUBLISHED,
                reverted=False,
                kind=PriceChange.Kind.RECOMMENDATION,
            ).values_list(*_Target._fields)
        ]
        if not targets:
            raise ConflictError(
                f"reprice job {job.pk} has no published price changes to roll back",
                code="not_published",
            )
    else:
        wanted = set(change_ids)
        targets = [
            _Target(*row) for row in queryset.filter(pk__in=wanted).values_list(*_Target._fields)
        ]
        missing = sorted(wanted - {c.pk for c in targets})
        if missing:
            raise NotFoundError(f"no such price change: {', '.join(map(str, missing[:20]))}")
        never = [c for c in targets if c.status != PriceChange.Status.PUBLISHED]
        if never:
            raise ConflictError(
                "only published changes can be rolled back; never published: "
                + ", ".join(str(c.pk) for c in never[:20]),
                code="not_published",
            )
        done = [c for c in targets if c.reverted]
        if done:
            raise ConflictError(
                "already rolled back: " + ", ".join(str(c.pk) for c in done[:20]),
                code="already_reverted",
            )
    # Rolling a rollback back would publish again the price it removed: not while the kill
    # switch is on (the switch lets only the way back through, never the way forward again).
    undoing = [c for c in targets if c.kind == PriceChange.Kind.ROLLBACK]
    if undoing and policy().kill_switch:
        raise ConflictError(
            "the kill switch is on: rolling back a rollback would publish again the price it "
            "removed; changes: " + ", ".join(str(c.pk) for c in undoing[:20]),
            code="kill_switch_on",
        )
    pending = set()
    for chunk in _chunks([c.pk for c in targets]):
        pending.update(
            PriceChange.objects.filter(status__in=UNANSWERED, reverts_id__in=chunk).values_list(
                "reverts_id", flat=True
            )
        )
    if pending:
        raise ConflictError(
            "a rollback of these changes is already on its way: "
            + ", ".join(f"change {pk}" for pk in sorted(pending)[:20]),
            code="rollback_pending",
        )
    prices = {}
    for chunk in _chunks([c.product_id for c in targets]):
        prices.update(Product.objects.filter(pk__in=chunk).values_list("pk", "price"))
    moved = [c for c in targets if prices.get(c.product_id) != c.new_price]
    if moved:
        raise ConflictError(
            "the price changed again since; roll back the newer change first: "
            + ", ".join(f"change {c.pk}" for c in moved[:20]),
            code="changed_since",
        )
    return targets


@transaction.atomic
def rollback(
    *,
    job: RepriceJob | None = None,
    change_ids: list[int] | None = None,
    comment: str = "",
    enqueue: bool = True,
    expect: str | None = None,
) -> Publication:
    """Revert published changes (all of a job's, or the ids named) to the previous price.
    Allowed while the kill switch is on: the switch stops new prices, not the way back. With
    `expect` (the token of a job's rollback summary a person confirmed,
    selectors.rollback_preview), only if the job's changes are still exactly those summarised;
    otherwise a ConflictError (code "changed") and nothing is rolled back."""
    if expect is not None:
        if job is None:
            raise ServiceError("a confirmed rollback names a job", attr="job")
        targets = rollback_targets(job=job, lock=True)  # a refusal names its own reason
        require_confirmed(
            action=rollback_action(job),
            rows=rollback_token_rows(targets),
            expect=expect,
            detail=ROLLBACK_CHANGED,
        )
    else:
        targets = rollback_targets(job=job, change_ids=change_ids, lock=True)
    publication = _new_publication(
        "rollback",
        f"""SELECT c.tenant_id, c.product_id, 'rollback', 'pending', c.new_price, c.old_price,
                   NULL, c.job_id, %(publication)s, c.id, false, '', %(actor)s, now()
            FROM unnest(%(ids)s::bigint[]) AS v(id)
            JOIN {PriceChange._meta.db_table} AS c ON c.id = v.id
            ORDER BY c.id""",
        {"ids": [c.pk for c in targets]},
        enqueue,
    )
    audit.record(
        "rollback.create",
        target=publication,
        summary=(f"job {job.pk}: " if job else "")
        + f"{publication.changes} prices back to the previous"
        + (f" ({comment})" if comment else ""),
        before={"changes": [c.pk for c in targets][:1000]},
        after={"publication": publication.pk, "comment": comment},
    )
    return publication
