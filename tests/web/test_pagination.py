"""Limit/offset pagination (`pricing_saas/web/pagination.py`) and repeated query parameters
(`pricing_saas/web/base.py`): a value the API cannot read is a 400 naming the parameter, never a
silent fallback to another page."""

from __future__ import annotations

import pytest

from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("query", "attr"),
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=-5", "limit"),
        ("limit=", "limit"),
        ("limit=1.5", "limit"),
        ("limit=%C2%B2", "limit"),  # a superscript two: a digit to str.isdigit, not to int()
        ("offset=null", "offset"),
        ("offset=-1", "offset"),
        ("offset=", "offset"),
        ("offset=99999999999999999999", "offset"),
        ("limit=5&limit=6", "limit"),
        ("offset=1&offset=1", "offset"),
    ],
)
def test_a_malformed_limit_or_offset_is_a_400_naming_it(world_a, query, attr):
    response = world_a.api("viewer").get(f"/api/v1/products/?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["attr"] == attr
    assert response.json()["type"] == "validation_error"


def test_limit_and_offset_page_and_a_large_limit_is_cut_to_the_maximum(world_a):
    for i in range(3):
        ProductFactory(tenant=world_a.tenant, sku=f"P{i}")
    client = world_a.api("viewer")
    page = client.get("/api/v1/products/?limit=1&offset=1").json()
    assert page["count"] == 3 and [p["sku"] for p in page["results"]] == ["P1"]
    assert len(client.get("/api/v1/products/?limit=5000").json()["results"]) == 3


def test_a_repeated_parameter_is_a_400_on_any_operation(world_a):
    response = world_a.api("viewer").get("/api/v1/kpis/daily/?category=a&category=b")
    assert response.status_code == 400
    assert response.json()["attr"] == "category"


def test_the_schema_bounds_limit_and_offset(world_a):
    schema = world_a.api().get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/products/"]["get"]["parameters"]}
    assert parameters["limit"]["schema"]["minimum"] == 1
    assert parameters["offset"]["schema"]["minimum"] == 0
