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


def test_page_size_is_another_name_for_limit_with_the_same_maximum(world_a):
    from pricing_saas.web.pagination import LimitOffsetPagination

    for i in range(3):
        ProductFactory(tenant=world_a.tenant, sku=f"P{i}")
    client = world_a.api("viewer")
    page = client.get("/api/v1/products/?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2
    assert "page_size=2" in page["next"] and "offset=2" in page["next"]
    assert "limit" not in page["next"]  # followed, the link is the next page, not a 400
    second = client.get(page["next"]).json()
    assert [p["sku"] for p in second["results"]] == ["P2"]
    assert "page_size=2" in second["previous"] and "limit" not in second["previous"]
    assert len(client.get("/api/v1/products/?page_size=1&offset=1").json()["results"]) == 1
    # capped as limit is: more than the maximum returns the maximum
    paginator = LimitOffsetPagination()
    capped = client.get(f"/api/v1/products/?page_size={paginator.max_limit + 1}")
    assert capped.status_code == 200 and len(capped.json()["results"]) == 3


@pytest.mark.parametrize(
    ("query", "attr"),
    [
        ("page_size=abc", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=-1", "page_size"),
        ("page_size=", "page_size"),
        ("page_size=2&page_size=3", "page_size"),
        ("page_size=2&limit=3", "page_size"),  # one name or the other, never two answers
    ],
)
def test_a_malformed_page_size_is_a_400_naming_it(world_a, query, attr):
    response = world_a.api("viewer").get(f"/api/v1/products/?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["attr"] == attr


def test_page_size_is_capped_at_the_maximum(world_a, monkeypatch):
    from pricing_saas.web.pagination import LimitOffsetPagination

    monkeypatch.setattr(LimitOffsetPagination, "max_limit", 2)
    for i in range(3):
        ProductFactory(tenant=world_a.tenant, sku=f"P{i}")
    client = world_a.api("viewer")
    for name in ("page_size", "limit"):
        page = client.get(f"/api/v1/products/?{name}=1000").json()
        assert len(page["results"]) == 2 and page["count"] == 3, name


def test_the_schema_documents_page_size_with_the_limits_bounds(world_a):
    schema = world_a.api().get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/v1/products/", "/api/v1/recommendations/", "/api/v1/publications/"):
        parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        assert parameters["page_size"]["schema"]["minimum"] == 1, path
        assert "Another name for limit" in parameters["page_size"]["description"]
        assert "1000" in parameters["page_size"]["description"]
