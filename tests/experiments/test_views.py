"""The price-test pages (`pricing_saas/experiments/views.py`): the list, a result with its
verdict, and writes only for those who run tests."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from pricing_saas.experiments import services
from pricing_saas.experiments.models import Experiment
from tenants.context import tenant_context

from .test_services import _catalog

pytestmark = pytest.mark.django_db


def test_the_pages_show_a_result_and_only_runners_stop_a_test(world_a):
    _catalog(world_a, days=60)
    with tenant_context(world_a.tenant):
        experiment = services.start_experiment(
            name="Page test", days=14, categories=["x", "y"],
            start=dt.date.today() - dt.timedelta(days=7),
        )  # fmt: skip
    viewer = world_a.portal(Client(), "viewer")
    assert "Page test" in viewer.get("/experiments/").content.decode()
    assert viewer.post(f"/experiments/{experiment.pk}/stop/").status_code == 403
    analyst = world_a.portal(Client(), "analyst")
    assert analyst.post(f"/experiments/{experiment.pk}/report/").status_code == 302
    page = analyst.get(f"/experiments/{experiment.pk}/").content.decode()
    assert "after 7 of 14 days" in page and "Keep running" in page
    assert analyst.post(f"/experiments/{experiment.pk}/stop/").status_code == 302
    with tenant_context(world_a.tenant):
        assert Experiment.objects.get(pk=experiment.pk).status == Experiment.Status.STOPPED
