"""The ml REST API (`ml/api.py`): train, list, promote, roll back, predict reference
prices; bad input and roles."""

from __future__ import annotations

import pytest

from tenants.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_api_train_list_promote_rollback_predict(stocked):
    client = stocked.api(Role.ANALYST)
    response = client.post("/api/v1/model-versions/train/", {"trainer": "baseline"}, format="json")
    assert response.status_code == 202
    listed = client.get("/api/v1/model-versions/").json()["results"]
    assert listed[0]["status"] == "promoted" and listed[0]["rmsle"] is not None
    prediction = stocked.api(Role.VIEWER).post(
        "/api/v1/predictions/reference-prices/",
        {"products": [{"sku": "X", "title": "zenith laptop model 4"}]},
        format="json",
    )
    assert (
        prediction.status_code == 200 and prediction.json()["predictions"][0]["predicted_price"] > 0
    )
    assert (
        client.post("/api/v1/model-versions/rollback/", {}, format="json").status_code == 400
    )  # nothing earlier
    assert (
        stocked.api(Role.VIEWER)
        .post("/api/v1/model-versions/train/", {}, format="json")
        .status_code
        == 403
    )


def test_api_bad_input(stocked):
    client = stocked.api(Role.ANALYST)
    assert (
        client.post(
            "/api/v1/model-versions/train/", {"trainer": "magic"}, format="json"
        ).status_code
        == 400
    )
    assert (
        client.post("/api/v1/model-versions/train/", {"epochs": 0}, format="json").status_code
        == 400
    )
    for epochs in ("NaN", "0x10", "1e400"):
        response = client.post("/api/v1/model-versions/train/", {"epochs": epochs}, format="json")
        assert response.status_code == 400 and response.json()["attr"] == "epochs", epochs
    response = client.post("/api/v1/predictions/reference-prices/", {"products": []}, format="json")
    assert response.status_code == 400 and response.json()["attr"] == "products"
