"""The API's JSON parser (`pricing_saas/web/parsers.py`): nesting and number limits, on every
view."""

from __future__ import annotations

import pytest
from rest_framework.parsers import FormParser, MultiPartParser

from pricing_saas.web import parsers
from tenants.roles import Role

from ..isolation.routes import all_routes

ERROR_KEYS = {"type", "code", "detail", "attr"}
JSON_ENDPOINTS = [
    "/api/v1/recommendations/bulk/",
    "/api/v1/products/bulk/",
    "/api/v1/rule-sets/",
    "/api/v1/experiments/",
]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.django_db
@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_too_deep_is_a_400_in_the_error_shape(world_a, path, depth):
    response = world_a.api(Role.ADMIN).post(
        path, data=_nested(depth), content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert set(body) == ERROR_KEYS and body["code"] == "too_deep"
    assert "64 levels" in body["detail"]


@pytest.mark.django_db
def test_json_nested_too_deep_inside_a_string_is_not_counted(world_a):
    """Brackets inside strings are text: a deep-looking comment is an ordinary value."""
    response = world_a.api(Role.APPROVER).post(
        "/api/v1/recommendations/bulk/",
        {"action": "approve", "ids": [1], "comment": "[{" * 200},
        format="json",
    )
    assert response.status_code == 404  # parsed; recommendation 1 does not exist


def test_json_nested_ten_deep_parses():
    text = '{"a": ' * 5 + "[" * 5 + "1" + "]" * 5 + "}" * 5
    value = parsers.loads(text)
    for _ in range(5):
        value = value["a"]
    assert value == [[[[[1]]]]]


@pytest.mark.parametrize("depth, counted", [(1, 1), (64, 64), (65, 65), (10**5, 65)])
def test_nesting_depth_stops_counting_past_the_limit(depth, counted):
    assert parsers.nesting_depth(_nested(depth)) == counted


def test_json_number_beyond_a_float_stays_text_for_its_field_to_refuse():
    assert parsers.loads('{"a": 1e400, "b": -1e400, "c": 1.5}') == {
        "a": "1e400",
        "b": "-1e400",
        "c": 1.5,
    }


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_and_infinity_are_not_json(constant):
    with pytest.raises(parsers.ParseError, match="not valid JSON"):
        parsers.loads(f'{{"a": {constant}}}')


def test_every_api_view_parses_json_with_the_limits():
    allowed = {parsers.JSONParser, FormParser, MultiPartParser}
    for route in all_routes():
        cls = route.view_class
        if cls is None or not route.is_api or not hasattr(cls, "parser_classes"):
            continue
        classes = set(cls.parser_classes)
        for name in dir(cls):  # @action(parser_classes=...) overrides
            kwargs = getattr(getattr(cls, name, None), "kwargs", None)
            if isinstance(kwargs, dict) and "parser_classes" in kwargs:
                classes |= set(kwargs["parser_classes"])
        assert classes <= allowed, (route.name, classes - allowed)
