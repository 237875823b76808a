"""The demo's set-up path (without serving): a real grocer imported, both models trained, rules,
policy and schedule created, a reprice job run and auto-approved; running it again changes
nothing."""

from __future__ import annotations

import io

import pytest

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
