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


def test_a_test_run_outside_is_recorded_with_its_own_arms_file(world_a, tmp_path):
    level = _catalog(world_a, days=90)
    start = dt.date.today() - dt.timedelta(28)
    # the merchant's own split: even SKUs were the treatment, at 22.00 instead of 20.00
    arms = tmp_path / "arms.csv"
    arms.write_text(
        "sku,arm,price_test\n"
        + "".join(
            f"E{i},{'treatment' if i % 2 == 0 else 'control'},{'22.00' if i % 2 == 0 else ''}\n"
            for i in range(N)
        )
    )
    slug = world_a.tenant.slug
    pk = int(_run("start", slug, "--name", "Outside", "--arms-file", str(arms), "--days", "28",
                  "--start", start.isoformat()).strip())  # fmt: skip
    rows = {r["sku"]: r for r in csv.DictReader(io.StringIO(_run("assignments", slug, str(pk))))}
    assert all(rows[f"E{i}"]["arm"] == ("treatment" if i % 2 == 0 else "control") for i in range(N))
    assert rows["E0"]["price_test"] == "22.00"
    # the control keeps its price before: the median of its daily prices before the start
    assert rows["E1"]["price_test"] == rows["E1"]["price_before"] != "20.00"
    with tenant_context(world_a.tenant):
        experiment = Experiment.objects.get(pk=pk)
        assert experiment.recorded and experiment.share == 0.5
    assert level is not None
    # its result says the arms were the merchant's, not randomised (the text and the JSON)
    assert "(not randomised" in _run("report", slug, str(pk))
    report = json.loads(_run("report", slug, str(pk), "--json"))
    assert report["randomised"] is False and report["assignment"].startswith("not randomised")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sku,arm\nE0,treatment\nE1,placebo\n",
            "arms row 2 (E1): arm must be treatment or control",
        ),
        ("sku,arm\nE0,treatment\nE0,control\n", "arms row 2: E0 is listed twice"),
        (
            "sku,arm,price_test\nE0,treatment,abc\n",
            "arms row 1 (E0): price_test must be a positive",
        ),
        ("sku,arm\nNOPE,treatment\nE1,control\n", "unknown SKUs: NOPE"),
        ("sku,group\nE0,a\n", "the header needs sku and arm"),
    ],
)
def test_a_bad_arms_file_names_the_row_and_creates_nothing(world_a, tmp_path, text, message):
    _catalog(world_a, days=30)
    arms = tmp_path / "arms.csv"
    arms.write_text(text)
    start = (dt.date.today() - dt.timedelta(14)).isoformat()
    with pytest.raises(CommandError, match="arms") as caught:
        _run("start", world_a.tenant.slug, "--name", "X", "--arms-file", str(arms),
             "--days", "14", "--start", start)  # fmt: skip
    assert message in str(caught.value)
    with tenant_context(world_a.tenant):
        assert not Experiment.objects.exists()


def test_arms_are_refused_for_a_test_that_starts_now(world_a, tmp_path):
    _catalog(world_a, days=30)
    arms = tmp_path / "arms.csv"
    arms.write_text("sku,arm\nE0,treatment\nE1,control\n")
    with pytest.raises(CommandError, match="--arms: arms are given only for a test that already"):
        _run("start", world_a.tenant.slug, "--name", "X", "--arms-file", str(arms), "--days", "14")
