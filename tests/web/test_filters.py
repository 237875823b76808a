"""The API's query filters (`pricing_saas/web/filters.py`): a boolean filter takes true, false,
1 or 0; a number, date, choice or id is not given empty; a malformed one is a 400 naming it."""

from __future__ import annotations

import pytest

from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def products(world_a):
    ProductFactory(tenant=world_a.tenant, sku="ON", active=True)
    ProductFactory(tenant=world_a.tenant, sku="OFF", active=False)
    return world_a.api("viewer")


@pytest.mark.parametrize(
    ("value", "skus"),
    [("true", ["ON"]), ("True", ["ON"]), ("1", ["ON"]), ("false", ["OFF"]), ("0", ["OFF"])],
)
def test_a_boolean_filter_reads_true_false_1_and_0(products, value, skus):
    results = products.get(f"/api/v1/products/?active={value}").json()["results"]
    assert [p["sku"] for p in results] == skus


@pytest.mark.parametrize("value", ["maybe", "null", "", "yes", "2"])
def test_any_other_boolean_is_a_400_naming_the_filter(products, value):
    response = products.get(f"/api/v1/products/?active={value}")
    assert response.status_code == 400
    assert response.json()["attr"] == "active"


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/recommendations/?flagged=null",  # a method filter
        "/api/v1/recommendations/?job=",  # an id
        "/api/v1/recommendations/?min_change=",  # a number
        "/api/v1/reprice-jobs/?status=",  # a choice (filterset_fields)
        "/api/v1/sales/?date_from=",  # a date
        "/api/v1/sales/?promo=maybe",
        "/api/v1/products/bulk/?skip_invalid=maybe",  # the bulk flags
        "/api/v1/kpis/daily/?to=",
        "/api/v1/price-changes/accuracy/?window=",
    ],
)
def test_a_blank_or_malformed_typed_parameter_is_a_400_naming_it(world_a, query):
    path, _, params = query.partition("?")
    name = params.split("=")[0]
    client = world_a.api("admin")
    if path.endswith("/bulk/"):
        response = client.post(query, [], format="json")
    else:
        response = client.get(query)
    assert response.status_code == 400, response.content
    assert response.json()["attr"] == name


def test_an_empty_text_filter_is_no_filter(products):
    assert products.get("/api/v1/products/?sku=").json()["count"] == 2
