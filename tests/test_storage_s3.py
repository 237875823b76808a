"""Stored files in an S3-compatible bucket (`MEDIA_STORAGE=s3`, django-storages), as every host
of a multi-host deployment uses them: uploads (CSV and workbook), model artifacts and
publication files go to the bucket and come back from it, and this host's MEDIA_ROOT stays
empty (no host reads another's disk). The bucket is moto's S3 server on 127.0.0.1.
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook

from pricing_saas.catalog import services as catalog_services
from pricing_saas.catalog.files import local_file, storage_path
from pricing_saas.catalog.models import ImportJob, Product
from tenants.context import tenant_context
from tenants.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]
KEYS = {"aws_access_key_id": "test-key", "aws_secret_access_key": "test-secret"}


def _answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def s3_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _answers(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("moto's S3 server did not start")
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def bucket(s3_server, settings, tmp_path):
    """A fresh bucket as the default storage; this host's MEDIA_ROOT is an empty folder."""
    name = f"media-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", **KEYS)
    client.create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_server,
                "region_name": "us-east-1",
                "access_key": KEYS["aws_access_key_id"],
                "secret_key": KEYS["aws_secret_access_key"],
                "location": "media",
                "file_overwrite": False,
                "default_acl": None,
            },
        },
    }
    media = tmp_path / "media-of-this-host"
    media.mkdir()
    settings.MEDIA_ROOT = str(media)
    settings.ML_MODEL_CACHE = str(tmp_path / "model-cache")

    def keys() -> list[str]:
        listed = client.list_objects_v2(Bucket=name).get("Contents", [])
        return sorted(item["Key"] for item in listed)

    return keys, media


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_uploads_model_artifacts_and_publication_files_live_in_the_bucket(shop, bucket):
    keys, media = bucket
    products = (
        "sku,title,price,cost\nP0,Product 0 renamed,20.00,8\nS3NEW,Stored in a bucket,12.50,5\n"
    )
    book = Workbook()
    sheet = book.active
    sheet.append(["date", "sku", "units", "price"])
    sheet.append(["2024-06-01", "P1", 4, 19.5])
    sheet.append(["2024-06-02", "P1", 6, 18.0])
    workbook = io.BytesIO()
    book.save(workbook)
    with tenant_context(shop.tenant):
        csv_job = catalog_services.create_import_job(
            kind="products",
            upload=SimpleUploadedFile("catalog.csv", products.encode(), "text/csv"),
            options=catalog_services.options_from({}),
        )
        xlsx_job = catalog_services.create_import_job(
            kind="sales",
            upload=SimpleUploadedFile("sales.xlsx", workbook.getvalue()),
            options=catalog_services.options_from({}),
        )
        for job in (csv_job, xlsx_job):
            job.refresh_from_db()
            assert job.status == ImportJob.Status.SUCCEEDED, (job.message, job.errors)
            assert storage_path(job.file) is None  # no local path: read through the storage
        assert Product.objects.get(sku="S3NEW").title == "Stored in a bucket"
        with local_file(csv_job.file) as copy:
            assert copy.read_text() == products  # what was uploaded, fetched back
        assert not copy.exists()  # the temporary copy is gone after the block

    analyst, approver = shop.api(Role.ANALYST), shop.api(Role.APPROVER)
    shop.api(Role.ADMIN).patch("/api/v1/pricing-policy/", {"auto_approve": False}, format="json")
    first = analyst.post("/api/v1/reprice-jobs/run/")  # trains the demand model, stores it
    assert first.status_code == 202
    again = analyst.post("/api/v1/reprice-jobs/run/")  # reads the stored model back
    job = analyst.get(f"/api/v1/reprice-jobs/{again.json()['id']}/").json()
    assert job["status"] == "succeeded", job
    pending = approver.get(f"/api/v1/recommendations/?job={job['id']}&status=pending").json()
    ids = [r["id"] for r in pending["results"]]
    assert ids
    approver.post("/api/v1/recommendations/bulk/", {"action": "approve", "ids": ids}, format="json")
    published = approver.post("/api/v1/publications/", {}, format="json")
    pub = approver.get(f"/api/v1/publications/{published.json()['id']}/").json()
    assert pub["status"] == "succeeded", pub
    download = approver.get(pub["download"])
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert len(rows) == len(ids)

    stored = keys()
    for prefix in ("media/imports/", "media/models/", "media/publications/"):
        assert any(key.startswith(prefix) for key in stored), (prefix, stored)
    assert _files_under(media) == []  # nothing on this host's disk


def test_a_failed_upload_leaves_nothing_in_the_bucket(shop, bucket):
    keys, media = bucket
    with tenant_context(shop.tenant):
        job = catalog_services.create_import_job(
            kind="products",
            upload=SimpleUploadedFile("bad.csv", b"sku,title,price\nX1,Broken,not-a-price\n"),
            options=catalog_services.options_from({}),
        )
        job.refresh_from_db()
        assert job.status == ImportJob.Status.FAILED and job.error_count == 1
    assert not any(key.startswith("media/imports/") for key in keys())
    assert _files_under(media) == []
