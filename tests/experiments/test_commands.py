"""`manage.py experiment start | assignments | report` (`pricing_saas/experiments/management/`)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command

from pricing_saas.experiments.models import Experiment
from tenants.context import tenant_context

from .test_services import N, _catalog

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command("experiment", *args, stdout=out)
    return out.getvalue()


def test_start_assignments_and_a_json_report(world_a, tmp_path):
    _catalog(world_a, days=70)
    start = (dt.date.today() - dt.timedelta(21)).isoformat()
    skus = tmp_path / "skus.csv"
    skus.write_text("sku\n" + "\n".join(f"E{i}" for i in range(40)) + "\n")
    slug = world_a.tenant.slug
    pk = int(_run("start", slug, "--name", "Cmd", "--skus-file", str(skus), "--days", "21",
                  "--share", "0.5", "--seed", "4", "--start", start).strip())  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(_run("assignments", slug, str(pk)))))
    assert len(rows) == 40 and set(rows[0]) == {"sku", "arm", "price_before", "price_test"}
    assert {r["arm"] for r in rows} == {"treatment", "control"}
    report = json.loads(_run("report", slug, str(pk), "--json"))
    for key in ("metric", "days_observed", "n_treatment", "n_control", "lift_per_sku_day",
                "ci_low", "ci_high", "lift_pct", "verdict"):  # fmt: skip
        assert key in report
    assert report["days_observed"] == 21 and report["n_treatment"] + report["n_control"] == 40
    assert report["ci_low"] <= report["lift_per_sku_day"] <= report["ci_high"]


def test_bad_arguments_name_the_option_and_create_nothing(world_a):
    _catalog(world_a, days=30)
    slug = world_a.tenant.slug
    with pytest.raises(CommandError, match="--share"):
        _run("start", slug, "--name", "X", "--category", "x", "--days", "14", "--share", "1")
    with pytest.raises(CommandError, match="--days"):
        _run("start", slug, "--name", "X", "--category", "x", "--days", "3")
    with pytest.raises(CommandError, match="--start"):
        _run("start", slug, "--name", "X", "--category", "x", "--days", "14", "--start", "soon")
    with pytest.raises(CommandError, match="id"):
        _run("report", slug, "999999")
    with tenant_context(world_a.tenant):
        assert not Experiment.objects.exists()
    assert N == 60
