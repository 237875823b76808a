"""The one error shape (`pricing_saas/web/errors.py`): every failure, a bad key, no
credentials or an unknown route, answers with the same keys."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


ERROR_KEYS = {"type", "code", "detail", "attr"}


@pytest.mark.parametrize(
    "header",
    [
        "Api-Key nonsense",
        "Api-Key pk_000000000000.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "Bearer " + "x" * 5000,
        "Api-Key ",
        "Api-Key pk_zzzz'; DROP TABLE tenants_apikey; --.secret",
    ],
)
def test_malformed_or_unknown_key_is_401_with_error_shape(world_a, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/tenant/")
    assert response.status_code == 401
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["type"] == "client_error"


def test_no_credentials_is_401_or_403(db):
    response = APIClient().get("/api/v1/members/")
    assert response.status_code in (401, 403)
    assert set(response.json()) == ERROR_KEYS


def test_unknown_api_route_is_json_404(world_a):
    response = world_a.api().get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert set(response.json()) == ERROR_KEYS


def test_a_form_of_too_many_fields_is_a_400_not_a_server_error(world_a):
    body = "&".join(f"f{i}=1" for i in range(1500))  # DATA_UPLOAD_MAX_NUMBER_FIELDS is 1,000
    response = world_a.api("analyst").post(
        "/api/v1/imports/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert set(response.json()) == ERROR_KEYS
