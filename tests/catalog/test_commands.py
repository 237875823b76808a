"""The catalog management commands: `import_csv` and `export_csv`."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from pricing_saas.catalog.models import ImportJob, Product

pytestmark = pytest.mark.django_db


def test_import_csv_command_exit_codes_and_counts(shop, tmp_path, capsys, write):
    good = write(tmp_path, "sku,title,price\nA1,Shirt,1\n", "good.csv")
    call_command("import_csv", "shop", "products", str(good))
    assert "created 1, updated 0, unchanged 0" in capsys.readouterr().out
    bad = write(tmp_path, "sku,title,price\nA2,Shirt,1\nA3,Shirt,0\n", "bad.csv")
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_csv", "shop", "products", str(bad))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert (
        "row 3, column price ('0'): must be greater than 0" in err and "nothing was imported" in err
    )
    assert not Product.objects.filter(sku__in=["A2", "A3"]).exists()  # not even the valid row


def test_import_csv_command_leaves_an_import_job_like_an_upload(
    shop, tmp_path, write, django_capture_on_commit_callbacks
):
    good = write(tmp_path, "sku,title,price\nA1,Shirt,1\nA2,Shirt,2\n", "good.csv")
    with django_capture_on_commit_callbacks() as queued:
        call_command("import_csv", "shop", "products", str(good), stdout=io.StringIO())
    # run in the command, not queued for a worker (only the KPI refresh that follows any
    # finished import is queued; the job's own metrics are recorded after the commit too)
    tasks = [c.__qualname__.split(".")[0] for c in queued if c.__module__ != "tenants.jobs"]
    assert tasks in ([], ["import_saved"])
    job = ImportJob.objects.get()
    assert (job.kind, job.source, job.original_name) == ("products", "command", "good.csv")
    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.rows, job.created, job.updated, job.unchanged, job.error_count) == (2, 2, 0, 0, 0)
    assert job.message == "products: 2 rows, 2 created, 0 updated, 0 unchanged"
    assert job.started_at and job.finished_at and job.phase == "done" and job.progress == 1.0

    bad = write(tmp_path, "sku,title,price\nA1,Shirt,5\nA9,Shirt,0\n", "bad.csv")
    with pytest.raises(SystemExit):
        call_command("import_csv", "shop", "products", str(bad), stderr=io.StringIO())
    job = ImportJob.objects.latest("pk")
    assert (job.original_name, job.status, job.error_count) == ("bad.csv", "failed", 1)
    assert job.errors == [
        {"row": 3, "column": "price", "value": "0", "reason": "must be greater than 0"}
    ]
    assert job.message == "1 error(s); nothing was imported."
    assert (job.created, job.updated) == (0, 0) and job.phase == "failed"
    assert Product.objects.get(sku="A1").price == 1  # the valid row was not written either
    assert not ImportJob.objects.filter(status__in=ImportJob.states.active).exists()


def test_import_csv_command_with_skip_invalid_reports_the_skipped_rows(
    shop, tmp_path, capsys, write
):
    text = "sku,title,price\nA1,Shirt,1\nA2,Shirt,0\nA3,Shirt,3\n"
    path = write(tmp_path, text, "mixed.csv")
    call_command("import_csv", "shop", "products", str(path), "--skip-invalid")
    out, err = capsys.readouterr()
    assert "created 2, updated 0, unchanged 0, skipped 1" in out
    assert "skipped: row 3, column price ('0'): must be greater than 0" in err
    job = ImportJob.objects.get()
    assert job.options["skip_invalid"] and job.status == "succeeded"
    assert (job.rows, job.created, job.skipped, job.error_count) == (3, 2, 1, 1)


@pytest.mark.parametrize(
    "crash, message",
    [
        (RuntimeError("boom"), "internal error: RuntimeError"),
        (KeyboardInterrupt(), "interrupted; nothing was imported."),
    ],
)
def test_import_csv_command_that_crashes_or_is_stopped_fails_its_job(
    shop, tmp_path, write, monkeypatch, crash, message
):
    from pricing_saas.catalog import importer

    def import_file(**kwargs):
        raise crash

    monkeypatch.setattr(importer, "import_file", import_file)
    path = write(tmp_path, "sku,title,price\nA1,Shirt,1\n")
    with pytest.raises(type(crash)):
        call_command("import_csv", "shop", "products", str(path))
    job = ImportJob.objects.get()
    assert (job.status, job.message) == ("failed", message)


def test_import_csv_command_refuses_a_missing_file_or_kind_without_a_job(shop, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_csv", "shop", "products", str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match="unknown kind"):
        call_command("import_csv", "shop", "prices", str(tmp_path / "missing.csv"))
    assert not ImportJob.objects.exists()


def test_export_csv_command_writes_canonical_csv(shop, tmp_path, base_products):
    base_products(tmp_path)
    out = io.StringIO()
    call_command("export_csv", "shop", "products", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sku,title,description,category,brand,cost,price,currency,stock")
    assert lines[1].startswith("A1,Red shirt,")
