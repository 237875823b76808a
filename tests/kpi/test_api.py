"""The KPI API (`pricing_saas/kpi/api.py`): `GET /api/v1/kpis/daily/` for viewers, its filters,
its errors, and tenant isolation from both sides."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tenants.roles import Role
from tests.factories import PriceChangeFactory, RepriceJobFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/kpis/daily/"
WINDOW = {"from": "2024-03-01", "to": "2024-03-03"}


def test_a_viewer_reads_the_series_totals_and_markers(refreshed):
    job = RepriceJobFactory(tenant=refreshed.tenant)
    PriceChangeFactory(
        tenant=refreshed.tenant,
        product_id=refreshed.ids["TEA-A"],
        job=job,
        published_at="2024-03-02T10:00:00Z",
    )
    response = refreshed.api(Role.VIEWER).get(URL, WINDOW)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["filters"] == {**WINDOW, "category": None, "job": None}
    assert body["currency"] == "USD"
    assert body["series"][0] == {
        "date": "2024-03-01",
        "units": 5,
        "revenue": "54.00",
        "profit": "30.00",
        "revenue_with_cost": "54.00",
        "margin": pytest.approx(30 / 54),
        "profit_derived": "12.00",
        "price_index": pytest.approx(10 / 9),
    }
    assert body["totals"]["units"] == 7 and body["totals"]["revenue"] == "84.00"
    assert body["totals"]["derived_share"] == pytest.approx(24 / 64)
    assert "date" not in body["totals"]
    assert body["changes"] == [
        {
            "date": "2024-03-02",
            "job": job.pk,
            "kind": "recommendation",
            "count": 1,
            "rises": 1,
            "cuts": 0,
            "mean_change": pytest.approx(0.05),
        }
    ]


def test_filters_by_category_and_job(refreshed):
    job = RepriceJobFactory(tenant=refreshed.tenant)
    PriceChangeFactory(
        tenant=refreshed.tenant,
        product_id=refreshed.ids["COF-C"],
        job=job,
        published_at="2024-03-01T10:00:00Z",
    )
    client = refreshed.api(Role.VIEWER)
    coffee = client.get(URL, {**WINDOW, "category": "coffee"}).json()
    assert [(p["date"], p["revenue"]) for p in coffee["series"]] == [("2024-03-02", "20.00")]
    by_job = client.get(URL, {**WINDOW, "job": job.pk}).json()
    assert by_job["filters"]["job"] == job.pk
    assert by_job["series"] == coffee["series"]
    both = client.get(URL, {**WINDOW, "job": job.pk, "category": "tea"}).json()
    assert both["series"] == [] and both["totals"]["revenue"] == "0.00"


def test_malformed_filters_answer_400_with_the_field(refreshed):
    response = refreshed.api(Role.VIEWER).get(URL, {"from": "03/01/2024"})
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error" and response.json()["attr"] == "from"


@pytest.mark.parametrize("job", ["NaN", "0x10", "1_0", "2.5", str(10**30)])
def test_a_job_filter_that_is_not_a_whole_number_in_range_is_a_400_naming_it(refreshed, job):
    response = refreshed.api(Role.VIEWER).get(URL, {"job": job})
    assert response.status_code == 400 and response.json()["attr"] == "job", response.json()


def test_another_tenants_job_answers_as_a_missing_one(refreshed, other_shop):
    theirs = RepriceJobFactory(tenant=other_shop.tenant)
    client = refreshed.api(Role.VIEWER)
    response = client.get(URL, {"job": theirs.pk})
    control = client.get(URL, {"job": 10**9})
    assert response.status_code == control.status_code == 404
    assert response.json()["detail"].replace(str(theirs.pk), "N") == control.json()[
        "detail"
    ].replace(str(10**9), "N")


def test_each_tenant_sees_only_its_own_figures(refreshed, other_shop):
    ours = refreshed.api(Role.VIEWER).get(URL, WINDOW).json()
    theirs = other_shop.api(Role.VIEWER).get(URL, WINDOW).json()
    assert ours["totals"]["units"] == 7 and theirs["totals"]["units"] == 70
    # B's session user naming A's tenant gets B's figures (or nothing), never A's.
    session = APIClient()
    session.force_login(other_shop.users[Role.OWNER])
    response = session.get(URL, WINDOW, HTTP_X_TENANT=refreshed.tenant.slug)
    assert response.status_code in (403, 404) or response.json()["totals"]["units"] == 70


def test_anonymous_callers_and_writes_are_refused(refreshed, api_client):
    assert api_client.get(URL).status_code in (401, 403)
    assert refreshed.api(Role.VIEWER).post(URL, {}).status_code == 403
    assert refreshed.api(Role.ADMIN).post(URL, {}).status_code == 405


def test_the_route_is_in_the_openapi_schema(db, api_client):
    schema = api_client.get("/api/v1/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/kpis/daily/"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"category", "job", "from", "to"}
