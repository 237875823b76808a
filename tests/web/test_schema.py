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


def test_every_operation_documents_its_errors_in_the_one_error_shape(document):
    from pricing_saas.web.errors import error_body

    error = document["components"]["schemas"]["Error"]
    assert set(error["properties"]) == set(error_body(type_="t", code="c", detail="d"))
    assert error["properties"]["attr"]["nullable"] is True
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            expected = {"401", "404", "429"}
            if method != "get":
                expected |= {"400", "403", "409"}
            if any(p["in"] == "query" for p in operation.get("parameters", [])):
                expected.add("400")
            if "requestBody" in operation:
                expected.add("415")
            assert expected <= codes, f"{method.upper()} {path}: {sorted(expected - codes)}"
            for code in codes & {"400", "401", "403", "404", "409", "415", "429"}:
                content = operation["responses"][code]["content"]
                assert content == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }


def test_reads_that_every_role_may_do_document_no_403(document):
    assert "403" not in document["paths"]["/api/v1/products/"]["get"]["responses"]
    assert "403" in document["paths"]["/api/v1/audit-events/"]["get"]["responses"]  # owners


def test_fields_that_may_be_null_say_so(document):
    schemas = document["components"]["schemas"]
    for component, name in [
        ("OfferOut", "url"),
        ("ModelVersionOut", "rmsle"),
        ("ScheduleOut", "next_run"),
        ("PublicationOut", "download"),
    ]:
        assert schemas[component]["properties"][name]["nullable"] is True, (component, name)


def test_lists_and_files_are_declared_as_they_are_answered(document):
    paths = document["paths"]
    versions = paths["/api/v1/rule-sets/{id}/versions/"]["get"]["responses"]["200"]
    assert versions["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PaginatedRuleSetVersionOutList"
    )
    accuracy = paths["/api/v1/price-changes/accuracy/"]["get"]
    assert accuracy["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
    assert [p["name"] for p in accuracy["parameters"]] == ["window"]
    download = paths["/api/v1/publications/{id}/download/"]["get"]["responses"]["200"]
    assert {"text/csv", "application/octet-stream"} < set(download["content"])
    assert set(paths["/api/v1/exports/{kind}/"]["get"]["responses"]["200"]["content"]) == {
        "text/csv"
    }
