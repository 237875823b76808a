"""The pricing workflow through the service layer: rules -> reprice -> approve -> publish ->
rollback, with the kill switch, the price-war guard, schedules and the audit log."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from pricing_saas.catalog.models import Product
from pricing_saas.integrations import publishers
from pricing_saas.pricing import approvals, publishing, rules, schedules, services
from pricing_saas.pricing.models import PriceChange, Publication, Recommendation
from tenants.context import actor_context, tenant_context
from tenants.models import AuditEvent
from tenants.services import ConflictError, NotFoundError, ServiceError

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def reprice():
    job = services.start_reprice(enqueue=False)
    return services.run_reprice(job_id=job.pk)


def test_rule_sets_resolve_by_precedence_and_shape_recommendations(shop):
    with tenant_context(shop.tenant), actor_context(None, "ana@shop.test"):
        base = rules.save_rule_set(values={"name": "Default", "max_step": "0.10"})
        rules.save_rule_set(
            values={"name": "Category a", "scope": "category", "scope_values": "a",
                    "max_step": "0.06", "ending": "0.99"}
        )  # fmt: skip
        rules.save_rule_set(rule_set=base, values={"max_step": "0.05"})  # a new version
        reprice()
        recs = {r.product.sku: r for r in Recommendation.objects.select_related("product")}
        base.refresh_from_db()
        assert base.version == 2 and base.versions.count() == 2
        assert Decimal(base.versions.get(version=1).data["max_step"]) == Decimal("0.1")
        assert AuditEvent.objects.filter(action="rules.update", actor="ana@shop.test").exists()
    p0, p15 = recs["P0"], recs["P15"]  # category a (6 % step, .99) and b (5 % from Default)
    assert p0.rule_sets == ["Default", "Category a"] and p15.rule_sets == ["Default"]
    assert abs(p0.recommended_price / p0.current_price - 1) <= Decimal("0.06")
    # inelastic: raised to the ending inside the step (20.99), never cut to 19.99
    assert p0.recommended_price == Decimal("20.99") and "ending" in p0.binding_rules
    assert abs(p15.recommended_price / p15.current_price - 1) <= Decimal("0.0501")


@pytest.mark.parametrize(
    "values, attr",
    [
        ({"name": ""}, "name"),
        ({"name": "x", "scope": "brand"}, "scope_values"),
        ({"name": "x", "max_step": "2"}, "max_step"),
        ({"name": "x", "ending": "abc"}, "ending"),
        ({"name": "x", "min_price": "10", "max_price": "5"}, "min_price"),
        ({"name": "x", "objective": "market share"}, "objective"),
        ({"name": "x", "min_gain_abs": "-0.5"}, "min_gain_abs"),
        ({"name": "x", "min_gain_rel": "NaN"}, "min_gain_rel"),
        ({"name": "x", "evidence_margin": "-1"}, "evidence_margin"),
        ({"name": "x", "window_change": "inf"}, "window_change"),
        ({"name": "x", "window_days": "2.5"}, "window_days"),
    ],
)
def test_bad_rule_sets_name_the_field(world_a, values, attr):
    with tenant_context(world_a.tenant), pytest.raises(ServiceError) as err:
        rules.save_rule_set(values=values)
    assert err.value.attr == attr


def test_full_path_approve_publish_and_roll_back(shop):
    with tenant_context(shop.tenant), actor_context(None, "ana@shop.test"):
        approvals.update_policy(auto_approve=False)
        job = reprice()
        pending = list(Recommendation.objects.filter(job=job, status="pending").order_by("pk"))
        assert len(pending) >= 5
        first, second, third, *rest = pending
        edited = approvals.decide(
            recommendation=first, approve=True, price=first.price_floor or first.current_price,
            comment="round number",
        )  # fmt: skip
        assert edited.approved_price is not None and edited.decided_by == "ana@shop.test"
        approvals.decide(recommendation=second, approve=False, comment="not now")
        with pytest.raises(ConflictError):  # already rejected
            approvals.decide(recommendation=second, approve=True)
        assert (
            approvals.bulk_decide(approve=True, ids=[third.pk] + [r.pk for r in rest])
            == len(rest) + 1
        )
        publication = publishing.publish()
        publication.refresh_from_db()
        assert publication.status == "succeeded", publication.message
        assert publication.published == len(rest) + 2
        rows = list(csv.DictReader(io.StringIO(publication.file.read().decode())))
        assert {r["sku"] for r in rows} == {
            c.product.sku for c in PriceChange.objects.filter(publication=publication)
        }
        product = Product.objects.get(pk=third.product_id)
        assert product.price == third.recommended_price  # the catalog follows the shop
        assert Recommendation.objects.get(pk=third.pk).status == "published"
        with pytest.raises(ConflictError):  # nothing approved left
            publishing.publish()

        back = publishing.rollback(job=job, comment="bad day")
        back.refresh_from_db()
        assert back.kind == "rollback" and back.status == "succeeded"
        product.refresh_from_db()
        assert product.price == third.current_price
        history = list(
            PriceChange.objects.filter(product=product, status="published").order_by("pk")
        )
        assert [c.kind for c in history] == ["recommendation", "rollback"]
        with pytest.raises(ConflictError):  # rolled back already
            publishing.rollback(job=job)
        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "policy.update", "recommendation.approve", "recommendation.reject",
        "recommendation.bulk_approve", "publication.create", "publication.finish",
        "rollback.create",
    } <= actions  # fmt: skip


def test_rolling_back_a_change_never_published_is_refused(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        job = reprice()
        with pytest.raises(ConflictError) as err:
            publishing.rollback(job=job)
        assert err.value.code == "not_published"
        rec = Recommendation.objects.filter(status="pending").first()
        approvals.decide(recommendation=rec, approve=True)
        publication = publishing.publish(enqueue=False)  # queued, not yet pushed
        change = PriceChange.objects.get(publication=publication)
        with pytest.raises(ConflictError) as err:
            publishing.rollback(change_ids=[change.pk])
        assert err.value.code == "not_published"
        with pytest.raises(NotFoundError):
            publishing.rollback(change_ids=[change.pk + 10_000])


def test_edited_price_must_keep_the_rules(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        reprice()
        rec = Recommendation.objects.filter(status="pending", price_floor__isnull=False).first()
        with pytest.raises(ServiceError) as err:
            approvals.decide(recommendation=rec, approve=True, price=rec.price_floor / 2)
        assert err.value.code == "breaks_rule"
        assert Recommendation.objects.get(pk=rec.pk).status == "pending"


def test_auto_approval_within_policy_and_superseded_cannot_be_approved(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve_max_change=Decimal("0.20"))
        job = reprice()
        auto = Recommendation.objects.filter(job=job, auto_approved=True)
        assert job.auto_approved == auto.count() > 0
        assert all(abs(r.change) <= 0.20 + 1e-9 and r.confident for r in auto)
        assert all(r.profit_delta > 0 for r in auto)  # never a change without a gain
        assert not Recommendation.objects.filter(
            job=job, status="pending", confident=True, change__gte=-0.20, change__lte=0.20,
            flag="", profit_delta__gt=0,
        ).exists()  # fmt: skip
        old = Recommendation.objects.filter(job=job, status="pending").first()
        reprice()
        old.refresh_from_db()
        assert old.status == "superseded"
        with pytest.raises(ConflictError) as err:
            approvals.decide(recommendation=old, approve=True)
        assert "superseded" in err.value.detail


def test_kill_switch_stops_auto_approval_and_publishing(shop):
    with tenant_context(shop.tenant), actor_context(None, "owner@shop.test"):
        approvals.set_kill_switch(on=True, reason="bad feed")
        job = reprice()
        assert job.auto_approved == 0
        rec = Recommendation.objects.filter(job=job, status="pending").first()
        approvals.decide(recommendation=rec, approve=True)  # people may still approve
        with pytest.raises(ConflictError) as err:
            publishing.publish()
        assert err.value.code == "kill_switch_on"
        assert not Publication.objects.exists()
        approvals.set_kill_switch(on=False)
        publication = publishing.publish()
        publication.refresh_from_db()
        assert publication.status == "succeeded"
        events = list(AuditEvent.objects.filter(action__startswith="kill_switch").order_by("pk"))
    assert [e.action for e in events] == ["kill_switch.on", "kill_switch.off"]
    assert events[0].actor == "owner@shop.test" and "bad feed" in events[0].summary


def test_price_war_guard_flags_repeated_competitor_cuts_and_oscillation(shop):
    with tenant_context(shop.tenant):
        policy = approvals.policy()
        product = Product.objects.get(sku="P1")
        wobble = Product.objects.get(sku="P2")
        now = timezone.now()
        for i, (old, new) in enumerate([(22, 21), (21, 20)]):
            PriceChange.objects.create(
                product=product, old_price=old, new_price=new, status="published",
                published_at=now - timedelta(days=3 - i),
            )  # fmt: skip
        for i, (old, new) in enumerate([(20, 21), (21, 20), (20, 21)]):
            PriceChange.objects.create(
                product=wobble, old_price=old, new_price=new, status="published",
                published_at=now - timedelta(days=5 - i),
            )  # fmt: skip
        flags = approvals.price_war_flags(
            {product.pk: (20.0, 19.0, True), wobble.pk: (21.0, 20.0, False)}, policy
        )
        assert "price war: cut 3 times" in flags[product.pk]
        assert "oscillating" in flags[wobble.pk]
        # a cut that does not follow a competitor, or outside the window, is not a war
        assert product.pk not in approvals.price_war_flags(
            {product.pk: (20.0, 19.0, False)}, policy
        )


def test_bulk_actions_by_filter_and_foreign_ids_change_nothing(shop, world_b):
    with tenant_context(world_b.tenant):
        from tests.factories import ProductFactory

        foreign = Recommendation.objects.create(
            job=services.start_reprice(enqueue=False), product=ProductFactory(),
            current_price=10, recommended_price=11,
        )  # fmt: skip
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        job = reprice()
        mine = list(Recommendation.objects.filter(status="pending").values_list("pk", flat=True))
        with pytest.raises(NotFoundError):
            approvals.bulk_decide(approve=True, ids=[*mine, foreign.pk])
        assert Recommendation.objects.filter(status="pending").count() == len(mine)
        small = approvals.bulk_decide(
            approve=True, where=approvals.BulkFilter(category="a", max_change=0.5, job_id=job.pk)
        )
        assert small == Recommendation.objects.filter(status="approved").count() > 0
        assert (
            not Recommendation.objects.filter(status="approved")
            .exclude(product__category="a")
            .exists()
        )
    with tenant_context(world_b.tenant):
        assert Recommendation.objects.get(pk=foreign.pk).status == "pending"


def test_schedules_validate_and_mirror_into_celery_beat(world_a):
    with tenant_context(world_a.tenant):
        schedule = schedules.save_schedule(
            values={"cron": "30 6 * * 1-5", "timezone": "Asia/Kolkata"}
        )
        task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
        assert task.task == "pricing.scheduled_reprice" and task.queue == "reprice"
        assert task.crontab.hour == "6" and str(task.crontab.timezone) == "Asia/Kolkata"
        assert schedules.next_run(schedule).hour == 6
        for values, code in [
            ({"cron": "61 * * * *"}, "invalid_cron"),
            ({"cron": "every day"}, "invalid_cron"),
            ({"cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "invalid_timezone"),
        ]:
            with pytest.raises(ServiceError) as err:
                schedules.save_schedule(schedule=schedule, values=values)
            assert err.value.code == code
        schedule.refresh_from_db()
        assert schedule.cron == "30 6 * * 1-5"
        schedules.save_schedule(schedule=schedule, values={"enabled": False})
        assert not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
        schedules.delete_schedule(schedule=schedule)
        assert not PeriodicTask.objects.filter(
            name__startswith=f"tenant-{world_a.tenant.pk}-"
        ).exists()


def test_scheduled_task_runs_a_job_for_its_tenant(shop):
    from pricing_saas.pricing.tasks import scheduled_reprice

    assert scheduled_reprice.apply(args=[shop.tenant.pk]).get() == "succeeded"
    with tenant_context(shop.tenant):
        assert services.RepriceJob.objects.get().trigger == "schedule"


def test_cancel_a_queued_job(shop):
    with tenant_context(shop.tenant):
        job = services.start_reprice(enqueue=False)
        services.cancel_reprice(job=job)
        job.refresh_from_db()
        assert job.status == "cancelled"
        assert services.run_reprice(job_id=job.pk).status == "cancelled"  # never runs
        with pytest.raises(ConflictError):
            services.cancel_reprice(job=job)


class FlakyPublisher(publishers.Publisher):
    """A shop connector stand-in: the first push times out, then one SKU is refused."""

    name, label = "flaky-test", "flaky"

    def __init__(self):
        self.calls = 0
        self.refused = set()

    def push(self, rows, *, reference):
        self.calls += 1
        if self.calls == 1:
            raise publishers.TransientPublishError("shop API timed out")
        refused = rows[0].change_id if not self.refused else None
        self.refused.add(refused)
        return publishers.PushOutcome(
            results=[publishers.PushResult(r.change_id, r.change_id != refused, "unknown SKU")
                     for r in rows]
        )  # fmt: skip


def test_a_failing_publisher_is_retried_and_partial_failures_can_be_sent_again(shop):
    flaky = FlakyPublisher()
    publishers.register(flaky)
    try:
        with tenant_context(shop.tenant):
            approvals.update_policy(auto_approve=False, publisher="flaky-test")
            reprice()
            approvals.bulk_decide(
                approve=True, ids=list(Recommendation.objects.filter(status="pending")
                                       .values_list("pk", flat=True)[:3]),
            )  # fmt: skip
            publication = publishing.publish(enqueue=False)
            with pytest.raises(publishers.TransientPublishError):
                publishing.run_publication(publication_id=publication.pk)
            publication.refresh_from_db()
            assert publication.status == "queued" and publication.attempts == 1  # for the retry
            publishing.run_publication(publication_id=publication.pk)
            publication.refresh_from_db()
            assert publication.status == "partial" and (
                publication.published,
                publication.failed,
            ) == (2, 1)
            failed = PriceChange.objects.get(publication=publication, status="failed")
            assert failed.error == "unknown SKU"
            product = Product.objects.get(pk=failed.product_id)
            assert product.price == failed.old_price  # the catalog keeps the shop's price
            retry = publishing.retry_publication(publication=publication, enqueue=False)
            publishing.run_publication(publication_id=retry.pk)
            retry.refresh_from_db()
            assert retry.status == "succeeded" and retry.published == 1
    finally:
        publishers.PUBLISHERS.pop("flaky-test", None)


def test_flagged_skus_are_never_auto_approved(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(
            auto_approve_max_change=Decimal("1"), auto_approve_max_relative_se=Decimal("10")
        )
        product = Product.objects.get(sku="P2")
        now = timezone.now()
        for i, (old, new) in enumerate([(20, 21), (21, 20), (20, 21), (21, 20)]):
            PriceChange.objects.create(
                product=product, old_price=old, new_price=new, status="published",
                published_at=now - timedelta(days=6 - i),
            )  # fmt: skip
        job = reprice()
        rec = Recommendation.objects.get(job=job, product=product)
    assert rec.flag and rec.status == "pending" and not rec.auto_approved


def test_auto_publish_sends_auto_approved_prices_unless_the_kill_switch_is_on(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_publish=True, auto_approve_max_change=Decimal("0.20"))
        job = reprice()
        publication = Publication.objects.get()
        assert publication.published == job.auto_approved > 0
        approvals.set_kill_switch(on=True)
        reprice()
        assert Publication.objects.count() == 1


def test_deleting_a_tenant_removes_its_beat_schedules(world_a, world_b):
    from tenants.services import delete_tenant

    for world in (world_a, world_b):
        with tenant_context(world.tenant):
            schedules.save_schedule(values={"cron": "0 4 * * *"})
    delete_tenant(tenant=world_a.tenant)
    names = list(PeriodicTask.objects.values_list("name", flat=True))
    assert not [n for n in names if n.startswith(f"tenant-{world_a.tenant.pk}-")]
    assert [n for n in names if n.startswith(f"tenant-{world_b.tenant.pk}-")]


def test_clearance_and_volume_floors_through_the_reprice_job(shop):
    """Inelastic SKUs (P0-P9) would rise; a volume floor holds them, a clearance rule cuts the
    price of an overstocked SKU until its expected sales clear the stock in time."""
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        Product.objects.filter(sku="P1").update(stock=100_000)  # years of stock
        rules.save_rule_set(values={
            "name": "Keep volume", "scope": "skus", "scope_values": ["P0"],
            "min_units_share": "0.99",
        })  # fmt: skip
        rules.save_rule_set(values={
            "name": "Clear P1", "scope": "skus", "scope_values": ["P1"], "clearance_days": 30,
        })  # fmt: skip
        job = reprice()
        recs = {
            r.product.sku: r
            for r in Recommendation.objects.filter(job=job).select_related("product")
        }
    free, kept, cleared = recs["P2"], recs["P0"], recs["P1"]
    assert free.recommended_price > free.current_price  # inelastic: up
    assert kept.expected_units >= 0.99 * kept.expected_units_now - 1e-6
    assert "min_units" in kept.binding_rules and "volume floor" in kept.explanation
    assert cleared.recommended_price < cleared.current_price  # clearance: down (to the step)
    assert "min_units" in cleared.binding_rules


def test_clearance_days_must_be_whole(world_a):
    with tenant_context(world_a.tenant), pytest.raises(ServiceError) as err:
        rules.save_rule_set(values={"name": "x", "clearance_days": "2.5"})
    assert err.value.attr == "clearance_days"


def test_a_product_without_sales_moves_into_its_reference_interval(shop):
    from tests.factories import ModelVersionFactory, ReferencePriceFactory

    with tenant_context(shop.tenant):
        new = Product.objects.get(sku="NEW")  # 30.00, no sales
        version = ModelVersionFactory(tenant=shop.tenant)
        ReferencePriceFactory(
            tenant=shop.tenant, product=new, model_version=version, price="20.00", low="18.00",
            high="22.00",
        )  # fmt: skip
        job = reprice()
        rec = Recommendation.objects.get(job=job, product=new)
        other = Recommendation.objects.get(job=job, product__sku="BAD")  # conflict, untouched
    # toward 22.00, held by the 20 % step (and the cumulative change of 20 % per 28 days)
    assert rec.recommended_price == Decimal("24.00")
    assert "reference" in rec.binding_rules and "max_step" in rec.binding_rules
    assert "no sales yet" in rec.explanation
    assert other.status == "conflict"


def test_a_product_without_sales_or_reference_keeps_its_price(shop):
    with tenant_context(shop.tenant):
        job = reprice()
        rec = Recommendation.objects.get(job=job, product__sku="NEW")
    assert rec.recommended_price == rec.current_price and "no_estimate" in rec.binding_rules


# --- found in review: double sends, stale approvals, stuck jobs ------------------------------


def _approve_some(count: int = 3) -> list[int]:
    ids = list(
        Recommendation.objects.filter(status="pending").order_by("pk").values_list("pk", flat=True)
    )[:count]
    approvals.bulk_decide(approve=True, ids=ids)
    return ids


def test_a_newer_job_keeps_approved_prices_not_yet_sent_and_flags_a_difference(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        reprice()
        old = _approve_some()
        # the merchant changes a rule: the next job recommends other prices for some SKUs
        rules.save_rule_set(values={"name": "Tighter", "max_step": "0.03"})
        job = reprice()
        kept = Recommendation.objects.filter(pk__in=old)
        assert {r.status for r in kept} == {"approved"}  # the decision is not lost
        assert all(r.flag.startswith(f"job {job.pk} now recommends") for r in kept)
        newer = Recommendation.objects.filter(job=job, product_id__in=[r.product_id for r in kept])
        assert all("waits to be published" in r.flag for r in newer)
        assert not any(r.auto_approved for r in newer)
        # approving the newer recommendation replaces the older approval, never both sent
        approvals.decide(recommendation=newer[0], approve=True)
        older = kept.get(product_id=newer[0].product_id)
        assert older.status == "superseded"
        publication = publishing.publish()
        sent = PriceChange.objects.filter(publication=publication)
        assert sent.count() == 3 and sent.filter(recommendation=newer[0]).exists()


def test_a_price_change_in_flight_or_failed_is_never_sent_twice(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        reprice()
        _approve_some()
        first = publishing.publish(enqueue=False)  # queued, not pushed yet
        with pytest.raises(ConflictError):
            publishing.publish(enqueue=False)
        publishing.give_up(publication_id=first.pk, reason="shop API down")
        first.refresh_from_db()
        assert first.status == "failed" and "gave up" in first.message
        assert set(PriceChange.objects.values_list("status", flat=True)) == {"failed"}
        with pytest.raises(ConflictError):  # failed changes go again through a retry only
            publishing.publish(enqueue=False)
        retry = publishing.retry_publication(publication=first, enqueue=False)
        publishing.run_publication(publication_id=retry.pk)
        retry.refresh_from_db()
        assert retry.status == "succeeded" and retry.published == 3


def test_a_change_against_a_moved_price_fails_instead_of_overwriting_it(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        reprice()
        ids = _approve_some(1)
        publication = publishing.publish(enqueue=False)
        rec = Recommendation.objects.get(pk=ids[0])
        Product.objects.filter(pk=rec.product_id).update(price=Decimal("99.00"))  # moved since
        publishing.run_publication(publication_id=publication.pk)
        change = PriceChange.objects.get(publication=publication)
        assert change.status == "failed" and "price changed" in change.error
        assert Product.objects.get(pk=rec.product_id).price == Decimal("99.00")


def test_a_second_rollback_of_the_same_change_is_refused_while_the_first_is_on_its_way(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        job = reprice()
        _approve_some(2)
        publishing.publish()
        publishing.rollback(job=job, enqueue=False)
        with pytest.raises(ConflictError) as err:
            publishing.rollback(job=job, enqueue=False)
        assert err.value.code == "rollback_pending"


def test_a_job_whose_worker_died_does_not_block_the_tenant(shop):
    with tenant_context(shop.tenant):
        stuck = services.start_reprice(enqueue=False)
        services.RepriceJob.objects.filter(pk=stuck.pk).update(
            status="running", started_at=timezone.now() - timedelta(hours=2)
        )
        fresh = services.start_reprice(enqueue=False)
        stuck.refresh_from_db()
    assert fresh.pk != stuck.pk and fresh.status == "queued"
    assert stuck.status == "failed" and "stopped" in stuck.message


def test_bulk_by_filter_respects_flagged_only(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        reprice()
        flagged = Recommendation.objects.filter(status="pending").first()
        Recommendation.objects.filter(pk=flagged.pk).update(flag="price war: test")
        count = approvals.bulk_decide(approve=False, where=approvals.BulkFilter(flagged=True))
        assert count == 1 and Recommendation.objects.get(pk=flagged.pk).status == "rejected"
        assert Recommendation.objects.filter(status="pending").count() > 0


def test_a_publication_left_running_by_a_dead_worker_is_pushed_again(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        reprice()
        _approve_some(2)
        publication = publishing.publish(enqueue=False)
        Publication.objects.filter(pk=publication.pk).update(
            status="running", started_at=timezone.now() - timedelta(minutes=5)
        )
        publishing.run_publication(publication_id=publication.pk)  # still within its time
        assert Publication.objects.get(pk=publication.pk).status == "running"
        Publication.objects.filter(pk=publication.pk).update(
            started_at=timezone.now() - timedelta(hours=1)
        )
        publishing.run_publication(publication_id=publication.pk)
        publication.refresh_from_db()
    assert publication.status == "succeeded" and publication.published == 2


def test_a_bad_policy_value_names_its_field_and_changes_nothing(world_a):
    with tenant_context(world_a.tenant):
        with pytest.raises(ServiceError) as err:
            approvals.update_policy(auto_publish=True, auto_approve_max_change=Decimal("2"))
        assert err.value.attr == "auto_approve_max_change"
        assert approvals.policy().auto_publish is False


def test_products_without_a_cost_follow_the_policys_fallback(shop):
    with tenant_context(shop.tenant), actor_context(None, "owner@shop.test"):
        Product.objects.filter(sku__in=["P0", "P15"]).update(cost=None)
        approvals.update_policy(no_cost_fallback="keep")
        job = reprice()
        kept = Recommendation.objects.filter(job=job, product__sku__in=["P0", "P15"])
        assert {r.recommended_price for r in kept} == {Decimal("20")}
        assert all(r.binding_rules == ["no_cost_kept"] for r in kept)
        assert all("no cost" in r.explanation and "kept" in r.explanation for r in kept)
        other = Recommendation.objects.get(job=job, product__sku="P16")
        assert other.recommended_price != other.current_price  # costed products still move
        approvals.update_policy(no_cost_fallback="revenue")
        job = reprice()
        moved = Recommendation.objects.get(job=job, product__sku="P15")  # elastic: revenue
        assert "no_cost" in moved.binding_rules and moved.recommended_price < Decimal("20")
        assert "revenue was maximised" in moved.explanation
        with pytest.raises(ServiceError) as err:
            approvals.update_policy(no_cost_fallback="guess")
        assert err.value.attr == "no_cost_fallback"
        assert approvals.policy().no_cost_fallback == "revenue"
        event = AuditEvent.objects.filter(action="policy.update").order_by("-created_at").first()
        assert event.before["no_cost_fallback"] == "keep"
        assert event.after["no_cost_fallback"] == "revenue"


def test_rollbacks_go_while_the_kill_switch_is_on_and_new_prices_do_not(shop):
    """The switch is pulled because bad prices went out: the way back must stay open (an
    operator should not have to turn the switch off, and let auto-publish loose, to undo)."""
    with tenant_context(shop.tenant), actor_context(None, "ops@shop.test"):
        approvals.update_policy(auto_approve=False)
        job = reprice()
        ids = _approve_some(3)
        publishing.publish()
        published = Recommendation.objects.filter(pk__in=ids)
        assert {r.status for r in published} == {"published"}
        queued = _approve_some(2)  # approved, about to go out when the switch is pulled
        in_flight = publishing.publish(enqueue=False)
        approvals.set_kill_switch(on=True, reason="prices look wrong")
        publishing.run_publication(publication_id=in_flight.pk)
        in_flight.refresh_from_db()
        assert in_flight.published == 0 and "kill switch" in in_flight.message
        back = publishing.rollback(job=job, comment="undo while stopped")
        back.refresh_from_db()
        assert back.kind == "rollback" and back.status == "succeeded" and back.published == 3
        for rec in published:
            assert Product.objects.get(pk=rec.product_id).price == rec.current_price
        assert not Product.objects.filter(
            pk__in=Recommendation.objects.filter(pk__in=queued).values("product_id"),
            price__in=Recommendation.objects.filter(pk__in=queued).values("recommended_price"),
        ).exists()  # the stopped publication sent nothing
        with pytest.raises(ConflictError) as err:
            publishing.retry_publication(publication=in_flight)  # new prices: still refused
        assert err.value.code == "kill_switch_on"
        assert AuditEvent.objects.filter(action="rollback.create", actor="ops@shop.test").exists()


def test_under_the_kill_switch_a_rollback_is_never_undone(shop):
    """Rolling a rollback back publishes again the price it removed: refused while the switch
    is on, and one queued before the switch was turned on does not go either (found in
    review: an idempotent 'roll back these SKUs' call repeated twice did it)."""
    with tenant_context(shop.tenant), actor_context(None, "ops@shop.test"):
        approvals.update_policy(auto_approve=False)
        reprice()
        ids = _approve_some(2)
        publishing.publish()
        skus = list(
            Recommendation.objects.filter(pk__in=ids).values_list("product__sku", flat=True)
        )
        approvals.set_kill_switch(on=True)
        back = publishing.rollback(change_ids=publishing.latest_changes_of(skus))
        back.refresh_from_db()
        assert back.status == "succeeded"
        prices = dict(Product.objects.filter(sku__in=skus).values_list("sku", "price"))
        with pytest.raises(ConflictError) as err:  # the same call again: now a rollback's
            publishing.rollback(change_ids=publishing.latest_changes_of(skus))
        assert err.value.code == "kill_switch_on"
        approvals.set_kill_switch(on=False)
        redo = publishing.rollback(
            change_ids=publishing.latest_changes_of(skus[:1]), enqueue=False
        )  # queued while the switch is off ...
        approvals.set_kill_switch(on=True)  # ... and the switch goes on before it is pushed
        publishing.run_publication(publication_id=redo.pk)
        redo.refresh_from_db()
        assert redo.published == 0
        change = PriceChange.objects.get(publication=redo)
        assert change.status == "failed" and "undo a rollback" in change.error
        assert dict(Product.objects.filter(sku__in=skus).values_list("sku", "price")) == prices


def test_nightly_runs_without_new_data_never_ratchet_a_price(shop):
    """Every change approved and published, then the job again with no new sales: a SKU moved
    up waits for sales at its new price before it moves up again (and likewise down)."""
    with tenant_context(shop.tenant), actor_context(None, "ops@shop.test"):
        approvals.update_policy(auto_approve=False)
        start = dict(Product.objects.values_list("pk", "price"))
        for _night in range(3):
            job = reprice()
            if not Recommendation.objects.filter(job=job, status="pending").exists():
                break
            approvals.bulk_decide(approve=True, where=approvals.BulkFilter(job_id=job.pk))
            publication = publishing.publish(enqueue=False)
            publishing.run_publication(publication_id=publication.pk)
        end = dict(Product.objects.values_list("pk", "price"))
        later = Recommendation.objects.filter(job=job)
        moved = [pk for pk in start if end[pk] != start[pk]]
        assert moved  # the first night did move prices
        for rec in later.filter(product_id__in=moved):
            first_way = end[rec.product_id] - start[rec.product_id]
            again = (rec.recommended_price or rec.current_price) - rec.current_price
            assert again * first_way <= 0, (rec.product_id, first_way, again)  # not the same way
        assert all(abs(end[pk] / start[pk] - 1) <= Decimal("0.2001") for pk in start)


def test_a_tenant_with_one_day_of_sales_keeps_every_price_and_says_why(world_a):
    from pricing_saas.catalog.importer import import_rows

    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=[
            {"sku": f"S{i}", "title": f"Item {i}", "price": 10 + i, "cost": 5} for i in range(40)
        ])  # fmt: skip
        import_rows(kind="sales", rows=[
            {"date": "2026-11-30", "sku": f"S{i}", "units": 3, "price": 10 + i} for i in range(40)
        ])  # fmt: skip
        job = reprice()
        recs = list(Recommendation.objects.filter(job=job))
    assert job.status == "succeeded" and len(recs) == 40
    assert all(r.recommended_price == r.current_price for r in recs)
    assert all("not enough sales history" in r.explanation for r in recs)


def test_a_kept_approval_whose_price_moved_since_is_superseded_not_sent(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        reprice()
        old = _approve_some(1)
        rec = Recommendation.objects.get(pk=old[0])
        Product.objects.filter(pk=rec.product_id).update(price=Decimal("26.00"))  # shop moved
        reprice()
        rec.refresh_from_db()
        assert rec.status == "superseded" and "changed since" in rec.flag


def test_auto_approval_replaces_an_older_approval_of_the_same_product(shop):
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        job = reprice()
        old = _approve_some(20)
        approvals.update_policy(auto_approve=True, auto_approve_max_change=Decimal("0.5"))
        Recommendation.objects.filter(pk__in=old).update(flag="")
        newer = reprice()
        auto = Recommendation.objects.filter(job=newer, auto_approved=True)
        for rec in auto:
            assert (
                not Recommendation.objects.filter(product_id=rec.product_id, status="approved")
                .exclude(pk=rec.pk)
                .exists()
            )
        assert job.pk != newer.pk


def test_without_a_demand_model_no_price_moves_toward_a_reference(world_a):
    from pricing_saas.catalog.importer import import_rows
    from tests.factories import ModelVersionFactory, ReferencePriceFactory

    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=[{"sku": "A", "title": "A", "price": 20, "cost": 5}])
        import_rows(kind="sales", rows=[
            {"date": f"2026-11-{d:02d}", "sku": "A", "units": 3, "price": 20} for d in (1, 2, 3)
        ])  # fmt: skip
        product = Product.objects.get(sku="A")
        version = ModelVersionFactory(tenant=world_a.tenant)
        ReferencePriceFactory(tenant=world_a.tenant, product=product, model_version=version,
                              price="30.00", low="28.00", high="32.00")  # fmt: skip
        job = reprice()
        rec = Recommendation.objects.get(job=job)
    assert rec.recommended_price == rec.current_price and "not enough sales" in rec.explanation


def test_after_a_rollback_the_undone_direction_waits_for_the_window(shop):
    with tenant_context(shop.tenant), actor_context(None, "ops@shop.test"):
        product = Product.objects.get(sku="P0")
        up = PriceChange.objects.create(
            tenant=shop.tenant, product=product, old_price=Decimal("20"),
            new_price=Decimal("24"), status="published",
            published_at=timezone.now() - timedelta(days=20),
        )  # fmt: skip
        PriceChange.objects.create(
            tenant=shop.tenant, product=product, kind="rollback", old_price=Decimal("24"),
            new_price=Decimal("20"), status="published", reverts=up,
            published_at=timezone.now() - timedelta(days=10),
        )  # fmt: skip
        job = reprice()
        rec = Recommendation.objects.get(job=job, product=product)
    assert rec.recommended_price <= rec.current_price  # the undone raise is not proposed again
