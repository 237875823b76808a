"""Publishing approved prices, retries, price history and rollback.

publish() turns approved recommendations into pending PriceChanges of one Publication and
queues it on the `publish` queue; run_publication() pushes them through the tenant's publisher
(pricing_saas.integrations.publishers) and, for every change the publisher confirms, moves the
product to its new price. A rollback is a new audited change back to the previous price,
published the same way. The kill switch stops all of it.
"""

from __future__ import annotations

import logging

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from pricing_saas.catalog.models import Product
from pricing_saas.integrations.publishers import ChangeRow, TransientPublishError, get_publisher
from tenants import audit
from tenants.context import get_current_actor, require_current_tenant
from tenants.services import ConflictError, NotFoundError, ServiceError

from .approvals import policy, require_switch_off
from .models import PriceChange, Publication, Recommendation, RepriceJob

logger = logging.getLogger(__name__)


def _enqueue(publication: Publication) -> None:
    from .tasks import publish as publish_task

    tenant_id, pk = publication.tenant_id, publication.pk
    transaction.on_commit(lambda: publish_task.delay(tenant_id, pk))


def _new_publication(kind: str, changes: list[PriceChange], enqueue: bool) -> Publication:
    _user, actor = get_current_actor()
    publication = Publication.objects.create(
        tenant=require_current_tenant(),
        publisher=policy().publisher,
        kind=kind,
        changes=len(changes),
        created_by=actor,
    )
    for change in changes:
        change.publication = publication
    PriceChange.objects.bulk_create(changes, batch_size=5000)
    if enqueue:
        _enqueue(publication)
    return publication


@transaction.atomic
def publish(*, recommendation_ids: list[int] | None = None, enqueue: bool = True) -> Publication:
    """Publish approved recommendations (all of them, or the ids named)."""
    require_switch_off("publishing")
    queryset = Recommendation.objects.select_for_update().filter(
        status=Recommendation.Status.APPROVED
    )
    if recommendation_ids is not None:
        wanted = set(recommendation_ids)
        found = dict(Recommendation.objects.filter(pk__in=wanted).values_list("pk", "status"))
        missing = sorted(wanted - set(found))
        if missing:
            raise NotFoundError(f"no such recommendation: {', '.join(map(str, missing[:20]))}")
        not_approved = sorted(pk for pk, s in found.items() if s != Recommendation.Status.APPROVED)
        if not_approved:
            raise ConflictError(
                "only approved recommendations can be published; not: "
                + ", ".join(f"{pk} ({found[pk]})" for pk in not_approved[:20]),
                code="not_approved",
            )
        queryset = queryset.filter(pk__in=wanted)
    # Approved but already handed to a publication that has not finished: not twice.
    in_flight = set(
        PriceChange.objects.filter(status=PriceChange.Status.PENDING).values_list(
            "recommendation_id", flat=True
        )
    )
    recs = [r for r in queryset.order_by("pk") if r.pk not in in_flight]
    if not recs:
        raise ConflictError(
            "nothing approved is waiting to be published", code="nothing_to_publish"
        )
    prices = dict(
        Product.objects.filter(pk__in=[r.product_id for r in recs]).values_list("pk", "price")
    )
    _user, actor = get_current_actor()
    changes = [
        PriceChange(
            tenant=require_current_tenant(),
            product_id=r.product_id,
            old_price=prices[r.product_id],
            new_price=r.final_price,
            recommendation=r,
            job_id=r.job_id,
            created_by=actor,
        )
        for r in recs
        if r.product_id in prices
    ]
    publication = _new_publication("approval", changes, enqueue)
    audit.record(
        "publication.create",
        target=publication,
        summary=f"{len(changes)} approved prices sent to the {publication.publisher} publisher",
        after={"recommendations": [r.pk for r in recs][:1000], "count": len(changes)},
    )
    return publication


def run_publication(*, publication_id: int) -> Publication | None:
    """Push a queued publication (idempotent: only a queued one runs)."""
    with transaction.atomic():
        publication = Publication.objects.select_for_update().filter(pk=publication_id).first()
        if publication is None or publication.status != Publication.Status.QUEUED:
            return publication
        publication.status = Publication.Status.RUNNING
        publication.attempts += 1
        publication.save(update_fields=["status", "attempts"])
    changes = list(
        PriceChange.objects.filter(publication=publication, status=PriceChange.Status.PENDING)
        .select_related("product")
        .order_by("pk")
    )
    if policy().kill_switch:
        _finish(publication, changes, {}, "stopped: the kill switch was turned on")
        return publication
    rows = [
        ChangeRow(
            change_id=c.pk,
            sku=c.product.sku,
            title=c.product.title,
            old_price=c.old_price,
            new_price=c.new_price,
            currency=c.product.currency,
            kind=c.kind,
        )
        for c in changes
    ]
    publisher = get_publisher(publication.publisher)
    try:
        outcome = publisher.push(rows, reference=f"{publication.tenant.slug}-{publication.pk}")
        confirmed = {r.change_id: r for r in publisher.confirm(rows)}
    except TransientPublishError:
        with transaction.atomic():
            publication.status = Publication.Status.QUEUED
            publication.save(update_fields=["status"])
        raise  # the task retries with backoff
    results = {}
    for result in outcome.results:
        if result.ok and result.change_id in confirmed and not confirmed[result.change_id].ok:
            result = confirmed[result.change_id]
        results[result.change_id] = result
    if outcome.file_bytes:
        publication.file.save(outcome.file_name, ContentFile(outcome.file_bytes), save=False)
    _finish(publication, changes, results, "")
    return publication


@transaction.atomic
def _finish(publication, changes, results, stopped: str) -> None:
    now = timezone.now()
    done, failed = [], []
    for change in changes:
        result = results.get(change.pk)
        if result is not None and result.ok:
            change.status, change.published_at = PriceChange.Status.PUBLISHED, now
            done.append(change)
        else:
            change.status = PriceChange.Status.FAILED
            change.error = stopped or (result.error if result else "no answer from the publisher")
            failed.append(change)
    PriceChange.objects.bulk_update(changes, ["status", "published_at", "error"], batch_size=5000)
    for change in done:  # the shop now has the new price: so does the catalog
        Product.objects.filter(pk=change.product_id).update(price=change.new_price)
    Recommendation.objects.filter(
        pk__in=[c.recommendation_id for c in done if c.recommendation_id]
    ).update(status=Recommendation.Status.PUBLISHED)
    PriceChange.objects.filter(pk__in=[c.reverts_id for c in done if c.reverts_id]).update(
        reverted=True
    )
    publication.published, publication.failed = len(done), len(failed)
    publication.status = (
        Publication.Status.SUCCEEDED
        if not failed
        else Publication.Status.PARTIAL
        if done
        else Publication.Status.FAILED
    )
    publication.message = stopped or (
        f"{len(done)} published" + (f", {len(failed)} failed" if failed else "")
    )
    publication.finished_at = now
    publication.save()
    audit.record(
        "publication.finish",
        target=publication,
        summary=publication.message,
        after={"status": publication.status, "published": len(done), "failed": len(failed)},
    )


@transaction.atomic
def retry_publication(*, publication: Publication, enqueue: bool = True) -> Publication:
    """Send a publication's failed changes again, as a new publication."""
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


@transaction.atomic
def rollback(
    *,
    job: RepriceJob | None = None,
    change_ids: list[int] | None = None,
    comment: str = "",
    enqueue: bool = True,
) -> Publication:
    """Revert published changes (all of a job's, or the ids named) to the previous price."""
    require_switch_off("publishing (and so rolling back)")
    if (job is None) == (change_ids is None):
        raise ServiceError("name a job or the price changes to roll back", attr="change_ids")
    if job is not None:
        targets = list(
            PriceChange.objects.select_for_update().filter(
                job=job,
                status=PriceChange.Status.PUBLISHED,
                reverted=False,
                kind=PriceChange.Kind.RECOMMENDATION,
            )
        )
        if not targets:
            raise ConflictError(
                f"reprice job {job.pk} has no published price changes to roll back",
                code="not_published",
            )
    else:
        wanted = set(change_ids)
        targets = list(PriceChange.objects.select_for_update().filter(pk__in=wanted))
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
    prices = dict(
        Product.objects.filter(pk__in=[c.product_id for c in targets]).values_list("pk", "price")
    )
    moved = [c for c in targets if prices.get(c.product_id) != c.new_price]
    if moved:
        raise ConflictError(
            "the price changed again since; roll back the newer change first: "
            + ", ".join(f"change {c.pk}" for c in moved[:20]),
            code="changed_since",
        )
    _user, actor = get_current_actor()
    reverts = [
        PriceChange(
            tenant=require_current_tenant(),
            product_id=c.product_id,
            kind=PriceChange.Kind.ROLLBACK,
            old_price=c.new_price,
            new_price=c.old_price,
            reverts=c,
            job=c.job,
            created_by=actor,
        )
        for c in targets
    ]
    publication = _new_publication("rollback", reverts, enqueue)
    audit.record(
        "rollback.create",
        target=publication,
        summary=(f"job {job.pk}: " if job else "")
        + f"{len(reverts)} prices back to the previous"
        + (f" ({comment})" if comment else ""),
        before={"changes": [c.pk for c in targets][:1000]},
        after={"publication": publication.pk, "comment": comment},
    )
    return publication
