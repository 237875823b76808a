"""The Performance page (`pricing_saas/kpi/views.py`): viewers see the figures, the charts' data
and the change markers; filters by category and job; another tenant's job is a 404; the
refresh button needs the import permission."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from pricing_saas.kpi.models import DailyKpi
from tenants.context import tenant_context
from tenants.roles import Role
from tests.factories import PriceChangeFactory, RepriceJobFactory

pytestmark = pytest.mark.django_db

URL = "/kpi/performance/"
WINDOW = {"from": "2024-03-01", "to": "2024-03-03"}


def page(world, role=Role.VIEWER, **params):
    client = Client()
    client.force_login(world.users[role])
    return client.get(URL, {**WINDOW, **params})


def chart_data(response) -> dict:
    found = re.search(
        r'<script id="chart-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    return json.loads(found.group(1))


@pytest.fixture
def job(refreshed):
    job = RepriceJobFactory(tenant=refreshed.tenant)
    PriceChangeFactory(
        tenant=refreshed.tenant,
        product_id=refreshed.ids["TEA-A"],
        job=job,
        published_at="2024-03-02T10:00:00Z",
    )
    return job


def test_a_viewer_sees_the_figures_charts_and_markers(refreshed, job):
    response = page(refreshed)
    assert response.status_code == 200
    text = response.content.decode()
    assert 'href="/kpi/performance/" aria-current="page">Performance</a>' in text
    assert "vendor/chartjs/chart.umd.min.js" in text
    assert ">84</span><span>revenue (USD)" in text and ">36</span><span>gross profit" in text
    assert "56.3 %" in text  # the margin, 36 / 64 = 56.25 %
    assert "(partly derived)" in text and 'cost is <span class="derived">derived</span>' in text
    assert "Recompute all KPI facts" not in text  # a viewer imports nothing
    data = chart_data(response)
    assert data["labels"] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert data["revenue"] == [54.0, 30.0, 0.0] and data["units"] == [5, 2, 0]
    assert data["profit"] == [30.0, 6.0, 0.0] and data["margin"] == [55.56, 60.0, None]
    assert data["price_index"] == [1.1111, 1.25, None]
    assert data["markers"] == [
        {"date": "2024-03-02", "text": f"1 price change (job #{job.pk}): 1 up, 0 down"}
    ]


def test_days_without_sales_are_gaps_on_the_chart(refreshed):
    data = chart_data(page(refreshed, to="2024-03-05"))
    assert data["labels"][-2:] == ["2024-03-04", "2024-03-05"]
    assert data["revenue"][-2:] == [None, None]


def test_filters_by_category_and_job(refreshed, job):
    coffee = chart_data(page(refreshed, category="coffee"))
    assert coffee["revenue"] == [None, 20.0, None] and coffee["markers"] == []
    by_job = page(refreshed, job=job.pk)
    assert "the 1 SKUs of reprice job" in by_job.content.decode()
    assert chart_data(by_job)["revenue"] == [30.0, 10.0, None]


def test_another_tenants_job_is_a_404(refreshed, other_shop):
    theirs = RepriceJobFactory(tenant=other_shop.tenant)
    assert page(refreshed, job=theirs.pk).status_code == 404
    assert page(refreshed, job=10**9).status_code == 404


def test_a_malformed_filter_is_said_and_the_defaults_shown(refreshed):
    response = page(refreshed, **{"from": "someday"})
    assert response.status_code == 200
    assert "from: not a date" in response.content.decode()


def test_the_page_shows_only_the_current_tenants_figures(refreshed, other_shop):
    ours, theirs = chart_data(page(refreshed)), chart_data(page(other_shop))
    assert ours["units"] == [5, 2, 0] and theirs["units"] == [50, 20, 0]


def test_no_facts_says_how_they_come(small_shop):
    text = page(small_shop, role=Role.ANALYST).content.decode()
    assert 'id="no-facts"' in text and "Recompute all KPI facts" in text


def test_the_refresh_needs_the_import_permission_and_recomputes(small_shop, run_on_commit_at_once):
    client = Client()
    client.force_login(small_shop.users[Role.VIEWER])
    assert client.post("/kpi/performance/refresh/").status_code == 403
    client.force_login(small_shop.users[Role.ANALYST])
    response = client.post("/kpi/performance/refresh/")
    assert response.status_code == 302 and response["Location"] == URL
    with tenant_context(small_shop.tenant):
        assert DailyKpi.objects.count() == 5
    assert client.get("/kpi/performance/refresh/").status_code == 405
