"""The OpenAPI schema (`pricing_saas/web/schema.py`, drf-spectacular): served, and valid
without warnings."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_openapi_schema_is_served(db):
    response = APIClient().get("/api/v1/schema/")
    assert response.status_code == 200
    assert b"/api/v1/api-keys/" in response.content


def test_openapi_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "ApiKeyAuth" in text and "/api/v1/members/{id}/" in text


@pytest.fixture
def document(db) -> dict:
    return APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()


def test_request_bodies_are_json_but_the_file_import(document, world_a):
    bodies = {
        (path, media)
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for media in operation.get("requestBody", {}).get("content", {})
        if media != "application/json"
    }
    assert bodies == {("/api/v1/imports/", "multipart/form-data")}
    form = world_a.api("admin").post("/api/v1/kill-switch/", {"on": "true"}, format="multipart")
    assert form.status_code == 415
