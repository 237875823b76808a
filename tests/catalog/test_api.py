"""The merchant-data API (bulk upserts, file imports with polling, exports) and portal pages."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from pricing_saas.catalog.models import ImportJob, Product, SalesRecord
from tenants.context import tenant_context
from tenants.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def analyst(world):
    return world.api(Role.ANALYST)


def test_bulk_upsert_is_idempotent(world_a):
    rows = [{"sku": f"B{i}", "title": f"Bulk {i}", "price": 10 + i} for i in range(50)]
    first = analyst(world_a).post("/api/v1/products/bulk/", rows, format="json")
    assert first.status_code == 200, first.json()
    assert first.json()["created"] == 50
    second = analyst(world_a).post("/api/v1/products/bulk/", rows, format="json")
    assert second.json() | {"errors": []} == {
        "rows": 50,
        "created": 0,
        "updated": 0,
        "unchanged": 50,
        "skipped": 0,
        "errors": [],
    }


def test_bulk_invalid_rows_name_index_and_field_and_write_nothing(world_a):
    rows = [{"sku": "OK", "title": "Fine", "price": 1}, {"sku": "BAD", "title": "Bad", "price": -3}]
    response = analyst(world_a).post("/api/v1/products/bulk/", rows, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error" and body["code"] == "invalid_rows"
    assert body["attr"] == "1.price" and body["errors"][0]["row"] == 1
    with tenant_context(world_a.tenant):
        assert Product.objects.count() == 0


def test_bulk_limits_and_shape(world_a):
    client = analyst(world_a)
    too_many = [{"sku": str(i), "title": "t", "price": 1} for i in range(10_001)]
    response = client.post("/api/v1/products/bulk/", too_many, format="json")
    assert response.status_code == 400 and response.json()["code"] == "too_many_rows"
    assert client.post("/api/v1/products/bulk/", {"sku": "x"}, format="json").status_code == 400
    assert client.post("/api/v1/products/bulk/", [], format="json").status_code == 400
    assert client.post("/api/v1/products/bulk/", ["nope"], format="json").status_code == 400


def test_sales_bulk_with_stub_option(world_a):
    rows = [{"date": "2024-01-01", "sku": "NEW", "units": 2, "price": "3.50"}]
    client = analyst(world_a)
    response = client.post("/api/v1/sales/bulk/", rows, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["value"] == "NEW"
    response = client.post("/api/v1/sales/bulk/?create_missing_products=true", rows, format="json")
    assert response.status_code == 200 and response.json()["created"] == 1
    listed = client.get("/api/v1/sales/?sku=NEW").json()
    assert listed["count"] == 1 and listed["results"][0]["revenue"] == "7.0000"


def test_file_upload_creates_a_job_that_can_be_polled(world_a):
    client = analyst(world_a)
    upload = SimpleUploadedFile("products.csv", b"sku,title,price\nU1,Uploaded,5\n")
    response = client.post(
        "/api/v1/imports/", {"kind": "products", "file": upload}, format="multipart"
    )
    assert response.status_code == 202, response.json()
    job = client.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "succeeded" and job["created"] == 1  # eager Celery in tests


def test_upload_with_bad_rows_reports_them(world_a):
    upload = SimpleUploadedFile("p.csv", b"sku,title,price\nU1,Ok,5\nU2,Bad,zero\n")
    response = analyst(world_a).post(
        "/api/v1/imports/", {"kind": "products", "file": upload}, format="multipart"
    )
    job = analyst(world_a).get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "failed" and job["error_count"] == 1
    assert job["errors"][0] == {
        "row": 3,
        "column": "price",
        "value": "zero",
        "reason": job["errors"][0]["reason"],
    }


def test_upload_needing_a_mapping_then_mapped(world_a):
    client = analyst(world_a)
    upload = SimpleUploadedFile("p.csv", b"Article,Name,Cost EUR\nM1,Mapped,5\n")
    job = client.post(
        "/api/v1/imports/", {"kind": "products", "file": upload}, format="multipart"
    ).json()
    assert job["status"] == "needs_mapping" and job["headers"] == ["Article", "Name", "Cost EUR"]
    response = client.post(
        f"/api/v1/imports/{job['id']}/mapping/",
        {"column_map": {"Article": "sku", "Name": "title", "Cost EUR": "price"}},
        format="json",
    )
    assert response.status_code == 202
    assert client.get(f"/api/v1/imports/{job['id']}/").json()["status"] == "succeeded"
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="M1").title == "Mapped"


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [("p.pdf", b"%PDF", "unsupported_file"), ("p.csv", b"", "empty_file")],
)
def test_upload_bad_files(world_a, name, content, code):
    upload = SimpleUploadedFile(name, content)
    response = analyst(world_a).post(
        "/api/v1/imports/", {"kind": "products", "file": upload}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["code"] in (code, "empty")


def test_upload_unknown_kind(world_a):
    upload = SimpleUploadedFile("p.csv", b"a,b\n1,2\n")
    response = analyst(world_a).post(
        "/api/v1/imports/", {"kind": "stock", "file": upload}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["attr"] == "kind"


def test_api_export_is_canonical_csv(world_a):
    analyst(world_a).post(
        "/api/v1/products/bulk/", [{"sku": "E1", "title": "=cmd", "price": 2}], format="json"
    )
    response = analyst(world_a).get("/api/v1/exports/products/")
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("sku,title,") and "E1,'=cmd," in text
    assert analyst(world_a).get("/api/v1/exports/nothing/").status_code == 404


def test_viewer_reads_but_cannot_import(world_a):
    viewer = world_a.api(Role.VIEWER)
    assert viewer.get("/api/v1/products/").status_code == 200
    response = viewer.post(
        "/api/v1/products/bulk/", [{"sku": "V", "title": "v", "price": 1}], format="json"
    )
    assert response.status_code == 403


# --- portal --------------------------------------------------------------------------------------


def test_portal_upload_mapping_progress_and_report(world_a):
    client = Client()
    client.force_login(world_a.users[Role.ANALYST])
    upload = SimpleUploadedFile("shop.csv", b"Article;Name;Price\nP1;Portal product;4,50\n")
    response = client.post(
        "/catalog/imports/", {"kind": "products", "file": upload, "decimal_comma": "on"}
    )
    assert response.status_code == 302
    detail = client.get(response["Location"]).content.decode()
    assert "Map your columns" in detail and "Portal product" in detail  # preview
    job_id = int(re.search(r"/catalog/imports/(\d+)/", response["Location"]).group(1))
    client.post(
        f"/catalog/imports/{job_id}/mapping/", {"map_0": "sku", "map_1": "title", "map_2": "price"}
    )
    detail = client.get(f"/catalog/imports/{job_id}/").content.decode()
    assert "Succeeded" in detail and "created" in detail
    with tenant_context(world_a.tenant):
        assert str(Product.objects.get(sku="P1").price) == "4.5000"
    fragment = client.get(f"/catalog/imports/{job_id}/progress/").content.decode()
    assert "Succeeded" in fragment
    history = client.get("/catalog/imports/").content.decode()
    assert "shop.csv" in history
    catalog = client.get("/catalog/?q=Portal").content.decode()
    assert "P1" in catalog


def test_portal_progress_fragment_polls_while_running(world_a):
    with tenant_context(world_a.tenant):
        job = ImportJob.objects.create(
            tenant=world_a.tenant, kind="sales", status="running", phase="reading", progress=0.4
        )
    client = Client()
    client.force_login(world_a.users[Role.VIEWER])
    fragment = client.get(f"/catalog/imports/{job.pk}/progress/").content.decode()
    assert 'hx-trigger="every 1s"' in fragment and "<progress" in fragment


def test_portal_report_lists_errors(world_a):
    client = Client()
    client.force_login(world_a.users[Role.ANALYST])
    upload = SimpleUploadedFile("bad.csv", b"date,sku,units,price\n2024-02-30,X,1,1\n")
    response = client.post("/catalog/imports/", {"kind": "sales", "file": upload})
    page = client.get(response["Location"]).content.decode()
    assert "Validation report" in page and "2024-02-30" in page and "not a valid date" in page
    with tenant_context(world_a.tenant):
        assert SalesRecord.objects.count() == 0


def test_portal_exports(world_a):
    analyst(world_a).post(
        "/api/v1/products/bulk/", [{"sku": "X1", "title": "@risky", "price": 2}], format="json"
    )
    client = Client()
    client.force_login(world_a.users[Role.VIEWER])
    csv_text = b"".join(client.get("/catalog/exports/products.csv").streaming_content).decode()
    assert "X1,'@risky" in csv_text
    xlsx = b"".join(client.get("/catalog/exports/products.xlsx").streaming_content)
    assert xlsx.startswith(b"PK")
    assert client.get("/catalog/exports/other.csv").status_code == 404


def test_viewer_cannot_upload_in_portal(world_a):
    client = Client()
    client.force_login(world_a.users[Role.VIEWER])
    upload = SimpleUploadedFile("p.csv", b"sku,title,price\nV1,v,1\n")
    assert client.post("/catalog/imports/", {"kind": "products", "file": upload}).status_code == 403
    assert "Upload a file" not in client.get("/catalog/imports/").content.decode()


def test_a_workbook_upload_reads_only_its_head_in_the_request(world_a, monkeypatch):
    """The web request reads the header and a preview; the whole sheet is converted by the
    import task (a large workbook used to be converted in full inside the request)."""
    import io

    from openpyxl import Workbook

    from pricing_saas.catalog import importer, services

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["sku", "title", "price"])
    for i in range(300):
        sheet.append([f"W{i}", f"Workbook item {i}", 5 + i])
    buffer = io.BytesIO()
    workbook.save(buffer)
    reads = []
    real = importer.xlsx_to_csv

    def spy(source, target, kind="", max_rows=None):
        reads.append(max_rows)
        return real(source, target, kind, max_rows)

    monkeypatch.setattr(services, "xlsx_to_csv", spy)
    upload = SimpleUploadedFile("products.xlsx", buffer.getvalue())
    client = analyst(world_a)
    response = client.post(
        "/api/v1/imports/", {"kind": "products", "file": upload}, format="multipart"
    )
    assert response.status_code == 202, response.json()
    job = client.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "succeeded" and job["created"] == 300  # the task read it all
    assert reads == [services.PREVIEW_ROWS + 1, None]  # request: the head; task: the sheet
