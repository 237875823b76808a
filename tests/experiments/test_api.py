"""The experiments API (`pricing_saas/experiments/api.py`): create, report, assignments, stop;
bad input names the field; another tenant's experiment is not there."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from pricing_saas.experiments.models import Experiment
from tenants.context import tenant_context

from .test_services import _catalog

pytestmark = pytest.mark.django_db


def test_create_report_assignments_and_isolation(world_a, world_b):
    _catalog(world_a, days=60)
    client = world_a.api("analyst")
    start = (dt.date.today() - dt.timedelta(14)).isoformat()
    made = client.post("/api/v1/experiments/", {"name": "API test", "days": 14,
                       "categories": ["x", "y"], "start": start, "seed": 2}, format="json")  # fmt: skip
    assert made.status_code == 201, made.content
    pk = made.json()["id"]
    assert made.json()["n_treatment"] + made.json()["n_control"] == 60
    report = client.post(f"/api/v1/experiments/{pk}/report/").json()
    assert report["result"]["days_observed"] == 14 and report["looks"] == [14]
    csv_text = world_a.api("viewer").get(f"/api/v1/experiments/{pk}/assignments/")
    assert csv_text.content.decode().startswith("sku,arm,price_before,price_test")
    # the viewer reads, but does not start tests
    viewer = world_a.api("viewer").post("/api/v1/experiments/", {"name": "no"}, format="json")
    assert viewer.status_code == 403
    other = world_b.api("admin")
    assert other.get(f"/api/v1/experiments/{pk}/").status_code == 404
    assert other.post(f"/api/v1/experiments/{pk}/report/").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"share": 0}, "share"),
        ({"share": 1}, "share"),
        ({"share": "NaN"}, "share"),
        ({"share": "1e400"}, "share"),
        ({"days": "0x10"}, "days"),
        ({"seed": "Infinity"}, "seed"),
        ({"days": 5}, "days"),
        ({"categories": [], "skus": []}, "skus"),
        ({"skus": ["E1", "GONE"], "categories": []}, "skus"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(world_a, body, field):
    _catalog(world_a, days=30)
    payload = {"name": "Bad", "days": 14, "categories": ["x"], **body}
    got = world_a.api("analyst").post("/api/v1/experiments/", payload, format="json")
    assert 400 <= got.status_code < 500 and got.json()["attr"] == field, got.content
    with tenant_context(world_a.tenant):
        assert not Experiment.objects.exists()


def test_roll_out_releases_the_controls_and_reprices_through_approvals(world_a):
    _catalog(world_a, days=60)
    client = world_a.api("admin")
    start = (dt.date.today() - dt.timedelta(14)).isoformat()
    made = client.post("/api/v1/experiments/", {"name": "Done", "days": 14,
                       "categories": ["x", "y"], "start": start}, format="json").json()  # fmt: skip
    assert client.post(f"/api/v1/experiments/{made['id']}/report/").status_code == 200
    # the analyst may not roll out (it sends prices to approval), the approver may
    assert (
        world_a.api("analyst").post(f"/api/v1/experiments/{made['id']}/roll-out/").status_code
        == 403
    )
    out = world_a.api("approver").post(f"/api/v1/experiments/{made['id']}/roll-out/")
    assert out.status_code == 202 and out.json()["reprice_job"] > 0


def test_a_recorded_test_takes_its_own_arms_and_names_a_bad_row(world_a, world_b):
    _catalog(world_a, days=60)
    client = world_a.api("analyst")
    start = (dt.date.today() - dt.timedelta(14)).isoformat()
    arms = [{"sku": f"E{i}", "arm": "treatment" if i < 20 else "control"} for i in range(40)]
    made = client.post("/api/v1/experiments/", {"name": "Outside", "days": 14, "start": start,
                       "arms": arms}, format="json")  # fmt: skip
    assert made.status_code == 201, made.content
    assert (made.json()["n_treatment"], made.json()["n_control"]) == (20, 20)
    assert made.json()["randomised"] is False  # labelled: the merchant's own split
    page = world_a.portal(Client(), "viewer").get(f"/experiments/{made.json()['id']}/")
    assert 'id="not-randomised"' in page.content.decode()
    bad = [*arms[:3], {"sku": "E3", "arm": "maybe"}]
    got = client.post("/api/v1/experiments/", {"name": "Bad", "days": 14, "start": start,
                      "arms": bad}, format="json")  # fmt: skip
    assert got.status_code == 400 and got.json()["attr"] == "arms"
    assert "arms row 4 (E3)" in got.json()["detail"]
    # another tenant's SKUs are unknown there
    other = world_b.api("analyst").post("/api/v1/experiments/", {"name": "B", "days": 14,
                                        "start": start, "arms": arms}, format="json")  # fmt: skip
    assert other.status_code == 400 and other.json()["attr"] == "arms"
    assert "unknown SKUs: E0" in other.json()["detail"]
