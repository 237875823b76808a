"""The merchant-data API (`pricing_saas/catalog/api.py`): bulk upserts, file imports with
polling, exports."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from pricing_saas.catalog.models import Product
from tenants.context import tenant_context
from tenants.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_bulk_upsert_is_idempotent(world_a, analyst):
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


def test_bulk_invalid_rows_name_index_and_field_and_write_nothing(world_a, analyst):
    rows = [{"sku": "OK", "title": "Fine", "price": 1}, {"sku": "BAD", "title": "Bad", "price": -3}]
    response = analyst(world_a).post("/api/v1/products/bulk/", rows, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error" and body["code"] == "invalid_rows"
    assert body["attr"] == "1.price" and body["errors"][0]["row"] == 1
    with tenant_context(world_a.tenant):
        assert Product.objects.count() == 0


@pytest.mark.parametrize("value", ["0x10", "0b11", "NaN", "Infinity", "1e400", "99999999999"])
def test_bulk_price_that_is_not_a_storable_decimal_names_row_and_field_and_writes_nothing(
    world_a, analyst, value
):
    rows = [
        {"sku": "OK", "title": "Fine", "price": 1},
        {"sku": "H", "title": "Hex", "price": value},
    ]
    response = analyst(world_a).post("/api/v1/products/bulk/", rows, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["attr"] == "1.price" and response.json()["errors"][0]["reason"]
    with tenant_context(world_a.tenant):
        assert Product.objects.count() == 0


@pytest.mark.parametrize("value", ["1_000", "12_50.00"])
def test_bulk_price_with_digit_separators_names_row_and_field_and_writes_nothing(
    world_a, analyst, value
):
    """Python's float("1_000") is 1000.0: the separator must be refused, not read."""
    rows = [
        {"sku": "OK", "title": "Fine", "price": 1},
        {"sku": "S", "title": "Separated", "price": value},
    ]
    response = analyst(world_a).post("/api/v1/products/bulk/", rows, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["attr"] == "1.price" and body["errors"][0]["row"] == 1
    assert "digit separators" in body["errors"][0]["reason"]
    with tenant_context(world_a.tenant):
        assert Product.objects.count() == 0

    response = analyst(world_a).post(
        "/api/v1/products/bulk/",
        data='[{"sku": "B", "title": "Big", "price": 1e400}]',
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["attr"] == "0.price"
    assert response.json()["errors"][0]["reason"] == "is too large"


@pytest.mark.parametrize("offset", ["+16:00", "-16:00", "+23:00"])
def test_observed_from_with_an_offset_of_16_hours_or_more_is_a_400_naming_it(world_a, offset):
    response = world_a.api(Role.VIEWER).get(
        "/api/v1/competitor-offers/", {"observed_from": f"2024-01-01T10:00:00{offset}"}
    )
    assert response.status_code == 400, response.json()
    assert response.json()["attr"] == "observed_from" and "offset" in response.json()["detail"]


def test_a_client_finds_the_readings_it_pushed_by_its_own_spelling_of_the_competitor(
    world_a, analyst
):
    # Another client's spelling came first ("Rival"): the readings pushed as "rival  " are
    # stored as "Rival", and the filter by the pusher's spelling still finds them.
    client = analyst(world_a)
    client.post("/api/v1/products/bulk/", [{"sku": "A", "title": "A", "price": 10}], format="json")
    for name, at in (("Rival", "2024-03-01T10:00:00Z"), ("rival  ", "2024-03-02T10:00:00Z")):
        row = {"sku": "A", "competitor": name, "price": 9, "observed_at": at}
        response = client.post("/api/v1/competitor-offers/bulk/", [row], format="json")
        assert response.status_code in (200, 201), response.json()
    for spelt in ("rival  ", "\tRIVAL\u00a0"):
        found = client.get("/api/v1/competitor-offers/", {"competitor": spelt}).json()
        assert sorted(o["competitor"] for o in found["results"]) == ["Rival", "Rival"]
    assert client.get("/api/v1/competitor-offers/", {"competitor": "Other"}).json()["results"] == []


def test_bulk_limits_and_shape(world_a, analyst):
    client = analyst(world_a)
    too_many = [{"sku": str(i), "title": "t", "price": 1} for i in range(10_001)]
    response = client.post("/api/v1/products/bulk/", too_many, format="json")
    assert response.status_code == 400 and response.json()["code"] == "too_many_rows"
    assert client.post("/api/v1/products/bulk/", {"sku": "x"}, format="json").status_code == 400
    assert client.post("/api/v1/products/bulk/", [], format="json").status_code == 400
    assert client.post("/api/v1/products/bulk/", ["nope"], format="json").status_code == 400


def test_sales_bulk_with_stub_option(world_a, analyst):
    rows = [{"date": "2024-01-01", "sku": "NEW", "units": 2, "price": "3.50"}]
    client = analyst(world_a)
    response = client.post("/api/v1/sales/bulk/", rows, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["value"] == "NEW"
    response = client.post("/api/v1/sales/bulk/?create_missing_products=true", rows, format="json")
    assert response.status_code == 200 and response.json()["created"] == 1
    listed = client.get("/api/v1/sales/?sku=NEW").json()
    assert listed["count"] == 1 and listed["results"][0]["revenue"] == "7.0000"


def test_file_upload_creates_a_job_that_can_be_polled(world_a, analyst):
    client = analyst(world_a)
    upload = SimpleUploadedFile("products.csv", b"sku,title,price\nU1,Uploaded,5\n")
    response = client.post(
        "/api/v1/imports/", {"kind": "products", "file": upload}, format="multipart"
    )
    assert response.status_code == 202, response.json()
    job = client.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "succeeded" and job["created"] == 1  # eager Celery in tests


def test_upload_with_bad_rows_reports_them(world_a, analyst):
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


def test_upload_needing_a_mapping_then_mapped(world_a, analyst):
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
def test_upload_bad_files(world_a, name, content, code, analyst):
    upload = SimpleUploadedFile(name, content)
    response = analyst(world_a).post(
        "/api/v1/imports/", {"kind": "products", "file": upload}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["code"] in (code, "empty")


NUL_FILES = [
    # (content, row, column): in the header, in a previewed cell, far beyond the sniffed head
    (b"sku,ti\x00tle,price\nU1,Uploaded,5\n", 1, "title"),
    (b"sku,title,price\nU1,Up\x00loaded,5\n", 2, "title"),
    (
        b"sku,title,price\n"
        + b"".join(b"U%d,Product %d,5\n" % (i, i) for i in range(5000))
        + b"X1,Bad,5\x00\n",
        5002,
        None,
    ),
]


@pytest.mark.parametrize("content, row, column", NUL_FILES)
def test_upload_with_a_nul_byte_fails_naming_row_and_reason_and_keeps_no_file(
    world_a, analyst, stored_uploads, content, row, column
):
    before = stored_uploads()
    client = analyst(world_a)
    upload = SimpleUploadedFile("nul.csv", content)
    response = client.post(
        "/api/v1/imports/", {"kind": "products", "file": upload}, format="multipart"
    )
    assert response.status_code == 202, response.json()
    job = client.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "failed" and job["error_count"] == 1
    error = job["errors"][0]
    assert error["row"] == row and "NUL byte" in error["reason"], error
    assert error["column"] == column
    assert stored_uploads() == before
    with tenant_context(world_a.tenant):
        assert Product.objects.count() == 0


def test_an_upload_that_crashes_keeps_no_file(world_a, analyst, stored_uploads, monkeypatch):
    from pricing_saas.catalog import services

    def crash(job, options):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services, "_inspect", crash)
    before = stored_uploads()
    upload = SimpleUploadedFile("p.csv", b"sku,title,price\nU1,Uploaded,5\n")
    response = analyst(world_a).post(
        "/api/v1/imports/", {"kind": "products", "file": upload}, format="multipart"
    )
    assert response.status_code == 500
    assert stored_uploads() == before


def test_an_import_that_fails_in_the_task_keeps_no_file(world_a, analyst, stored_uploads):
    before = stored_uploads()
    upload = SimpleUploadedFile("p.csv", b"sku,title,price\nU1,Ok,5\nU2,Bad,zero\n")
    response = analyst(world_a).post(
        "/api/v1/imports/", {"kind": "products", "file": upload}, format="multipart"
    )
    assert response.status_code == 202
    job = analyst(world_a).get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "failed" and job["errors"][0]["row"] == 3
    assert stored_uploads() == before


def test_upload_unknown_kind(world_a, analyst):
    upload = SimpleUploadedFile("p.csv", b"a,b\n1,2\n")
    response = analyst(world_a).post(
        "/api/v1/imports/", {"kind": "stock", "file": upload}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["attr"] == "kind"


def test_api_export_is_canonical_csv(world_a, analyst):
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


def test_a_workbook_upload_reads_only_its_head_in_the_request(world_a, monkeypatch, analyst):
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
