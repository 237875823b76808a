"""The partitioned reprice (pricing.partitioned): the recommendations it stores are the
one-process job's; none is visible before every part is in; a cancel or a failing part ends
the job with no recommendation stored and the staged parts deleted."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing_saas.pricing import approvals, services, tasks
from pricing_saas.pricing.models import Recommendation, RepriceJob
from tenants.context import tenant_context
from tenants.parts import staged
from tests.ml.test_partitioned import PRODUCTS, market, train_demand  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]

SKIP = {"id", "job", "created_at", "decided_at"}
EAGER = "CELERY_TASK_ALWAYS_EAGER"  # the key under the Django settings' CELERY namespace
FIELDS = [f.attname for f in Recommendation._meta.concrete_fields if f.name not in SKIP]


@pytest.fixture(autouse=True)
def per_sku_risk(monkeypatch):
    """A risk budget that never binds (each SKU still within the 1-in-10 limit): the risk
    budget is spent per optimiser call, so a part of a partitioned job spends its own; with
    it out of the way, a part's recommendations are the one-process job's exactly."""
    monkeypatch.setattr(
        services.approvals,
        "risk",
        lambda current=None: {"loss_budget": 1.0, "max_loss_chance": 0.1},
    )


@pytest.fixture
def priced(market, settings):  # noqa: F811
    """The market with a demand model in force and a one-process job, nothing auto-approved."""
    settings.DEMAND_PARTITION_MIN_SKUS = 10**9
    settings.REPRICE_PARTITION_MIN_SKUS = 10**9
    assert train_demand(market).status == "promoted"
    with tenant_context(market.tenant):
        approvals.update_policy(auto_approve=False)
        job = services.start_reprice(enqueue=False)
        services.run_reprice(job_id=job.pk)
        assert RepriceJob.objects.get(pk=job.pk).status == "succeeded"
    market.first_job = job.pk
    return market


@pytest.fixture
def held(settings, monkeypatch):
    """The partitioned reprice forced (blocks of 7 products, 2 in flight), its parts and reduce
    held in a FIFO queue the test runs (`run(n)`)."""
    settings.REPRICE_PARTITION_MIN_SKUS = 0
    settings.REPRICE_PARTITION_BLOCK_SKUS = 7
    settings.PARTITION_IN_FLIGHT = 2

    class Queue(list):
        most = 0

        def run(self, n=None):
            done = 0
            while self and (n is None or done < n):
                task, args = self.pop(0)
                task.apply(args=args)
                done += 1

    queue = Queue()

    def holder(task):
        def delay(*args):
            queue.append((task, args))
            queue.most = max(queue.most, sum(1 for t, _ in queue if t is tasks.reprice_part))

        return delay

    monkeypatch.setattr(tasks.reprice_part, "delay", holder(tasks.reprice_part))
    monkeypatch.setattr(tasks.reprice_reduce, "delay", holder(tasks.reprice_reduce))
    return queue


def rows_of(world, job_id) -> dict[int, tuple]:
    with tenant_context(world.tenant):
        rows = Recommendation.objects.filter(job_id=job_id).values_list(*FIELDS)
        return {row[FIELDS.index("product_id")]: row for row in rows}


def start(world):
    with tenant_context(world.tenant):
        job = services.start_reprice(enqueue=False)
        return services.run_reprice(job_id=job.pk)


def job_of(world, job_id) -> RepriceJob:
    with tenant_context(world.tenant):
        return RepriceJob.objects.get(pk=job_id)


def test_the_partitioned_reprice_stores_the_one_process_recommendations(priced, held):
    one = rows_of(priced, priced.first_job)
    assert len(one) == PRODUCTS
    assert sum(row[FIELDS.index("status")] == "pending" for row in one.values()) > 5
    job = start(priced)
    assert job.status == "running" and job.parts["parts"] == 5
    held.run(4)
    assert rows_of(priced, job.pk) == {}  # nothing visible while parts are out
    pending = rows_of(priced, priced.first_job).values()
    assert sum(row[FIELDS.index("status")] == "pending" for row in pending) > 5
    held.run()
    job = job_of(priced, job.pk)
    assert job.status == "succeeded", job.message
    assert held.most == 2 and staged(job.parts["folder"]) == []
    assert job.skus == PRODUCTS and job.progress == 1.0
    parts = rows_of(priced, job.pk)
    assert parts.keys() == one.keys()
    for pk, row in one.items():
        assert parts[pk] == row, pk
    first = job_of(priced, priced.first_job)
    assert (job.changed, job.conflicts, job.expected_profit_new) == (
        first.changed,
        first.conflicts,
        first.expected_profit_new,
    )
    statuses = set(rows_of(priced, priced.first_job)[pk][FIELDS.index("status")] for pk in one)
    assert "pending" not in statuses  # superseded by the new job, as by a one-process one


def test_a_cancelled_partitioned_reprice_stores_nothing(priced, held):
    job = start(priced)
    held.run(2)
    with tenant_context(priced.tenant):
        services.cancel_reprice(job=RepriceJob.objects.get(pk=job.pk))
    held.run()
    job = job_of(priced, job.pk)
    assert job.status == "cancelled" and rows_of(priced, job.pk) == {}
    assert staged(job.parts["folder"]) == []
    pending = rows_of(priced, priced.first_job).values()
    assert any(row[FIELDS.index("status")] == "pending" for row in pending)  # left as they were


def test_a_failing_part_fails_the_job_with_its_reason(priced, held, monkeypatch):
    real, calls = services.reprice_block, []

    def block(job, demand, within, *args, **kwargs):
        calls.append(within)
        if len(calls) == 2:
            raise ValueError("rules unreadable")
        return real(job, demand, within, *args, **kwargs)

    monkeypatch.setattr(services, "reprice_block", block)
    job = start(priced)
    held.run()
    job = job_of(priced, job.pk)
    assert job.status == "failed" and "part 2 of 5" in job.message
    assert "ValueError: rules unreadable" in job.message
    assert rows_of(priced, job.pk) == {} and staged(job.parts["folder"]) == []


def test_a_part_staged_by_another_release_fails_the_job_naming_the_formats(priced, held):
    # A deploy between the parts: the first part staged by the release before the stamp (its
    # payload without one), the rest by this one. The reduce stores none of them.
    import gzip
    import json

    from tenants import parts as job_parts

    job = start(priced)
    held.run(2)
    plan = job_of(priced, job.pk).parts
    payload = json.loads(gzip.decompress(job_parts.read(plan, "block-0.json.gz")))
    assert payload.pop("staged_format") == 3
    job_parts.save(plan, "block-0.json.gz", gzip.compress(json.dumps(payload).encode()))
    held.run()
    job = job_of(priced, job.pk)
    assert job.status == "failed", job.message
    assert "part 1 was staged by another release of the reprice (format 1; this release " in (
        job.message
    )
    assert "reads format 3)" in job.message
    assert rows_of(priced, job.pk) == {} and staged(job.parts["folder"]) == []


def test_the_staged_format_names_what_a_part_stores():
    # A change to what a part stages (services.Staged's fields) must raise
    # partitioned.STAGED_FORMAT, and this pin with it: a reduce of this release reading a part
    # of another must fail naming the formats, not merge them.
    from pricing_saas.pricing import partitioned

    assert partitioned.STAGED_FORMAT == 3
    assert tuple(services.Staged.__dataclass_fields__) == (
        "objects", "stale", "differ", "changed", "conflicts", "profit_now", "profit_new",
    )  # fmt: skip


def test_the_reduce_never_supersedes_an_approval_published_after_its_part_ran(priced, held):
    """A part judged an approval stale (its product's price moved since); a publication sent
    it before the reduce came: the reduce leaves the published recommendation as it is."""
    from pricing_saas.catalog.models import Product

    with tenant_context(priced.tenant):
        rec = Recommendation.objects.filter(job_id=priced.first_job, status="pending").first()
        Recommendation.objects.filter(pk=rec.pk).update(status="approved")
        product = Product.objects.get(pk=rec.product_id)
        Product.objects.filter(pk=product.pk).update(price=product.price * 2)  # moved since
    job = start(priced)
    held.run(job.parts["parts"])  # every part, not the reduce
    assert [t for t, _ in held] == [tasks.reprice_reduce]
    with tenant_context(priced.tenant):
        Recommendation.objects.filter(pk=rec.pk).update(status="published")
    held.run()
    assert job_of(priced, job.pk).status == "succeeded"
    with tenant_context(priced.tenant):
        assert Recommendation.objects.get(pk=rec.pk).status == "published"


def test_a_part_delivered_twice_works_once_and_a_lost_job_leaves_no_staged_rows(
    priced, held, monkeypatch
):
    """acks_late redelivers a part whose worker died after it was counted: the second delivery
    does nothing (the reduce may be reading its file). A job marked lost (its worker gone) takes
    its staged rows with it."""
    real, calls = services.reprice_block, []

    def block(job, demand, within, *args, **kwargs):
        calls.append(within)
        return real(job, demand, within, *args, **kwargs)

    monkeypatch.setattr(services, "reprice_block", block)
    job = start(priced)
    first = held[0]
    held.run(1)
    first[0].apply(args=first[1])  # the same part again
    assert len(calls) == 1
    folder = job_of(priced, job.pk).parts["folder"]
    assert len(staged(folder)) == 1
    with tenant_context(priced.tenant):
        RepriceJob.objects.get(pk=job.pk).mark_lost()
    assert staged(folder) == []
    held.run()  # the parts still queued find the job ended
    assert job_of(priced, job.pk).status == "failed" and rows_of(priced, job.pk) == {}


def test_reprice_sync_runs_a_tenant_in_parts_whole_in_this_process(market, settings, monkeypatch):  # noqa: F811
    """`manage.py reprice --sync` for a tenant above both partition thresholds: the demand fit
    and the job run in parts here, one after another, with no worker (the command failed with
    "being trained in parts: reprice again once it is ready")."""
    import io

    from celery import current_app
    from django.core.management import call_command

    from ml.models import ModelVersion

    settings.DEMAND_PARTITION_MIN_SKUS = 0
    settings.DEMAND_PARTITION_BLOCK_SKUS = 1  # a part per product: 30 + 30 parts, as deep as
    settings.REPRICE_PARTITION_MIN_SKUS = 0  # a million-SKU tenant's chain of parts
    settings.REPRICE_PARTITION_BLOCK_SKUS = 1
    monkeypatch.setitem(current_app.conf, EAGER, False)  # as in production
    import inspect

    from ml import partitioned as ml_partitioned

    fitted, depth = [], []
    part = ml_partitioned.run_part

    def run_part(*a):
        fitted.append(a)
        depth.append(len(inspect.stack(0)))
        return part(*a)

    monkeypatch.setattr(ml_partitioned, "run_part", run_part)
    from celery.app.task import Task

    sending = Task.apply_async
    out = io.StringIO()
    call_command("reprice", market.tenant.slug, "--sync", stdout=out)
    assert Task.apply_async is sending  # tasks sent after the command go to the broker again
    with tenant_context(market.tenant):
        job = RepriceJob.objects.get()
        demand = ModelVersion.objects.get(kind="demand")
        stored = Recommendation.objects.filter(job=job).count()
    assert job.status == "succeeded", job.message
    assert job.parts["parts"] > 1 and demand.status == "promoted"
    assert len(fitted) == PRODUCTS  # the fit ran in parts too, one per product, ...
    assert max(depth) - min(depth) <= 2  # ... one after another, not each inside the last
    assert stored == PRODUCTS and "succeeded" in out.getvalue()


def test_train_sync_fits_a_tenant_in_parts_whole_in_this_process(market, settings, monkeypatch):  # noqa: F811
    import io

    from celery import current_app
    from django.core.management import call_command

    from ml.models import ModelVersion

    settings.DEMAND_PARTITION_MIN_SKUS = 0
    settings.DEMAND_PARTITION_BLOCK_SKUS = 8
    monkeypatch.setitem(current_app.conf, EAGER, False)
    out = io.StringIO()
    call_command("train", market.tenant.slug, "--model", "demand", "--sync", stdout=out)
    with tenant_context(market.tenant):
        demand = ModelVersion.objects.get(kind="demand")
    assert demand.status == "promoted" and "promoted" in out.getvalue()


def test_tasks_run_here_only_in_a_commands_main_thread():
    import threading

    from tenants.tasks import tasks_run_here

    raised = []

    def elsewhere():
        try:
            with tasks_run_here(frozenset()):
                pass
        except RuntimeError as exc:
            raised.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert raised and "main thread" in str(raised[0])


def test_every_part_prices_on_the_policy_the_job_started_with(priced, held, monkeypatch):
    """A policy changed while a partitioned job runs waits for the next job: the plan holds
    the risk settings and the fallback for products without a cost as the job started."""
    real, seen = services.reprice_block, []

    def block(job, demand, within, *args, **kwargs):
        seen.append((kwargs["risk"], kwargs["no_cost"]))
        return real(job, demand, within, *args, **kwargs)

    def risk(current=None):  # the policy's, as approvals.risk (this module's fixture fixes it)
        current = current or approvals.policy()
        return {"loss_budget": float(current.loss_budget), "max_loss_chance": 0.1}

    monkeypatch.setattr(services, "reprice_block", block)
    monkeypatch.setattr(services.approvals, "risk", risk)
    job = start(priced)
    with tenant_context(priced.tenant):
        started = {"loss_budget": 0.01, "max_loss_chance": 0.1}
        approvals.update_policy(no_cost_fallback="keep", loss_budget=Decimal("0.03"))
        assert risk() != started
    held.run()
    job = job_of(priced, job.pk)
    assert job.status == "succeeded", job.message
    assert job.parts["risk"] == started and job.parts["no_cost"] == "revenue"
    assert len(seen) == job.parts["parts"] and all(s == (started, "revenue") for s in seen)
