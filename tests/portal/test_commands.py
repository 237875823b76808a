"""The `demo` command (`pricing_saas/portal/management/commands/demo.py`): its set-up path
(without serving): a real grocer imported, both models trained, rules, policy and schedule
created, a reprice job run and auto-approved; running it again changes nothing. And the
fine-tune it queues."""

from __future__ import annotations

import io

import pytest

from ml.models import ModelVersion
from pricing_saas.catalog.models import CompetitorOffer, Product
from pricing_saas.portal.management.commands.demo import Command
from pricing_saas.pricing.models import Recommendation, RepriceJob, RepriceSchedule, RuleSet
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_demo_sets_up_the_whole_path_once():
    command = Command(stdout=io.StringIO())
    tenant = command._demo_tenant("a-long-demo-password")
    for _ in range(2):  # idempotent
        command._demo_data(tenant, 80)
        command._demo_pricing(tenant)
    out = command.stdout.getvalue()
    assert "demo data already imported" in out
    with tenant_context(tenant):
        assert Product.objects.count() == 80
        assert (
            CompetitorOffer.objects.filter(competitor="Derived market index (not observed)").count()
            == 80 * 4
        )
        assert Product.objects.filter(attributes__cost_source__startswith="derived").count() == 80
        assert RuleSet.objects.count() == 2 and RepriceSchedule.objects.count() == 1
        job = RepriceJob.objects.get()
        assert job.status == "succeeded" and job.skus == 80
        recs = Recommendation.objects.filter(job=job)
        assert recs.count() == 80
        assert job.auto_approved == recs.filter(auto_approved=True).count()
        assert recs.exclude(competitor_name="").exists()


def test_the_demo_queues_the_fine_tune_once_and_again_after_an_interrupted_run(stocked):
    from pricing_saas.portal.management.commands.demo import Command

    sent = []
    command = Command(stdout=io.StringIO())
    command._queue_central_model(stocked.tenant, {}, send=sent.append)
    assert [v.requested_trainer for v in sent] == ["finetune"] and sent[0].status == "queued"
    # A later demo finds it still queued: its worker went with the earlier demo.
    command._queue_central_model(stocked.tenant, {}, send=sent.append)
    with tenant_context(stocked.tenant):
        first = ModelVersion.objects.get(pk=sent[0].pk)
        assert first.status == "failed" and "interrupted" in first.message
        assert len(sent) == 2 and ModelVersion.objects.get(pk=sent[1].pk).status == "queued"
        ModelVersion.objects.filter(pk=sent[1].pk).update(status="ready", message="done")
    command._queue_central_model(stocked.tenant, {}, send=sent.append)  # finished: kept
    assert len(sent) == 2 and "fine-tuned reference-price model" in command.stdout.getvalue()


def test_the_demo_lab_shows_a_finished_price_test_and_what_its_prices_did(world_a):
    from pricing_saas.experiments.models import Experiment
    from pricing_saas.portal.demo_lab import TEST_DAYS, build_lab
    from pricing_saas.pricing import outcomes
    from pricing_saas.pricing.models import PriceChange
    from tenants.context import tenant_context

    with tenant_context(world_a.tenant):
        made = build_lab(world_a.tenant, skus=60, seed=1)
        experiment = Experiment.objects.get(pk=made["experiment"])
        assert experiment.status == Experiment.Status.FINISHED and experiment.recorded
        assert "Simulated" in experiment.name
        assert experiment.result["days_observed"] == TEST_DAYS
        assert made["published"] > 0
        result = outcomes.outcome(PriceChange.objects.filter(job=made["job"]), window=TEST_DAYS)
    assert len(result.changes) == made["published"] and result.total_low <= result.total_high


def test_the_demo_computes_its_tenants_kpi_facts_and_checks_their_alerts(db):
    from io import StringIO

    from pricing_saas.kpi.models import DailyKpi
    from pricing_saas.portal.demo_lab import LAB_SLUG, build_lab
    from pricing_saas.portal.management.commands.demo import Command
    from tenants.context import tenant_context
    from tenants.services import create_tenant

    lab = create_tenant(name="Lab", slug=LAB_SLUG)
    with tenant_context(lab):
        build_lab(lab, skus=40, seed=2)
        assert not DailyKpi.objects.exists()  # its rows came without import jobs
    command = Command(stdout=StringIO())
    command._demo_kpis()
    with tenant_context(lab):
        assert DailyKpi.objects.count() > 40 * 28
    out = command.stdout.getvalue()
    assert f"KPI facts of {LAB_SLUG}:" in out and "alert(s) opened" in out
    command._demo_kpis()  # again: nothing to rewrite
    assert "0 new, 0 changed" in command.stdout.getvalue().splitlines()[-1]
