"""The catalog pages of the portal (`pricing_saas/catalog/views.py`): upload, column
mapping, progress, validation report, exports; viewers read only."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from pricing_saas.catalog.models import ImportJob, Product, SalesRecord
from tenants.context import tenant_context
from tenants.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


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


def test_portal_exports(world_a, analyst):
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


def test_portal_upload_with_a_nul_byte_reports_row_and_reason_and_keeps_no_file(
    world_a, stored_uploads
):
    client = Client()
    client.force_login(world_a.users[Role.ANALYST])
    before = stored_uploads()
    upload = SimpleUploadedFile("nul.csv", b"sku,title,price\nU1,Up\x00loaded,5\n")
    response = client.post("/catalog/imports/", {"kind": "products", "file": upload})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "NUL byte" in page and "title" in page
    with tenant_context(world_a.tenant):
        job = ImportJob.objects.get()
    assert job.status == "failed" and job.errors[0]["row"] == 2 and not job.file
    assert stored_uploads() == before
