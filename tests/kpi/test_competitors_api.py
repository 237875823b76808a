"""The competitor view's API: offers in force, the competitor list, the price index, the moves
and the undercut alerts, on the `market` of conftest.py (worked out in test_competitors.py);
paginated, filtered, bad parameters refused by name, tenant B sees none of A's and A's own
works."""

from __future__ import annotations

import pytest

from pricing_saas.kpi import undercuts
from pricing_saas.kpi.models import UndercutAlert
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_the_offers_in_force_say_the_gap_and_filter_by_sku_competitor_and_undercut(world_a, market):
    with tenant_context(world_a.tenant):
        undercuts.evaluate()
    api = world_a.api("viewer")
    body = api.get("/api/v1/competitors/offers/", format="json").json()
    rows = [(r["sku"], r["competitor"], r["price"], r["gap_words"], r["undercut"])
            for r in body["results"]]  # fmt: skip
    assert rows == [
        ("BLACK", "Rival X", "22.0000", "10 % dearer than us", False),
        ("GREEN", "Rival X", "8.0000", "20 % cheaper than us", True),
        ("GREEN", "Rival Z", "9.8000", "2 % cheaper than us", False),
    ]
    green_x = body["results"][1]
    assert green_x["url"] == "https://x.example.com/green" and green_x["our_price"] == "10.00"
    assert green_x["gap"] == pytest.approx(0.2)
    only = api.get("/api/v1/competitors/offers/", {"sku": "GREEN", "competitor": "Rival Z"})
    assert [r["competitor"] for r in only.json()["results"]] == ["Rival Z"]
    undercut = api.get("/api/v1/competitors/offers/", {"undercut": "true"}).json()
    assert [r["sku"] for r in undercut["results"]] == ["GREEN"]
    assert api.get(f"/api/v1/competitors/offers/{green_x['id']}/").json()["price"] == "8.0000"
    bad = api.get("/api/v1/competitors/offers/", {"undercut": "maybe"})
    assert bad.status_code == 400 and bad.json()["attr"] == "undercut"
    assert all(r["same_item"] for r in body["results"])


def test_an_offer_too_far_from_our_price_says_it_is_most_likely_another_item(world_a, market):
    """Rival X now reads GREEN (ours 10.00) at 2.50: listed as read, said to be most likely
    another item, and no undercut alert is opened for it."""
    from django.utils import timezone

    from tests.factories import CompetitorOfferFactory

    with tenant_context(world_a.tenant):
        CompetitorOfferFactory(tenant=world_a.tenant, product=market["green"],
                               competitor="Rival X", price="2.50",
                               observed_at=timezone.now())  # fmt: skip
        undercuts.evaluate()
    api = world_a.api("viewer")
    body = api.get("/api/v1/competitors/offers/", {"sku": "GREEN"}, format="json").json()
    x = {r["competitor"]: r for r in body["results"]}["Rival X"]
    assert x["price"] == "2.5000" and x["same_item"] is False and x["undercut"] is False
    assert x["gap_words"].endswith("most likely another item (check the match), left out")


def test_the_competitor_list_is_paginated_and_filterable(world_a, market):
    api = world_a.api("viewer")
    body = api.get("/api/v1/competitors/", {"page_size": 1}).json()
    assert body["count"] == 2 and len(body["results"]) == 1
    first = body["results"][0]
    assert first["competitor"] == "Rival X" and first["skus"] == 2
    assert first["price_index"] == pytest.approx(0.875)
    assert first["moves"] == 1
    z = api.get("/api/v1/competitors/", {"competitor": "Rival Z"}).json()
    assert [r["competitor"] for r in z["results"]] == ["Rival Z"]


def test_the_index_and_the_moves_answer_with_their_filters(world_a, market):
    api = world_a.api("viewer")
    index = api.get("/api/v1/competitors/index/", {"days": 7, "competitor": "Rival X"}).json()
    assert [s["competitor"] for s in index["results"]] == ["Rival X"]
    assert index["results"][0]["points"][-1]["index"] == pytest.approx(0.875, abs=1e-4)
    moves = api.get("/api/v1/competitors/moves/", {"followed": "true"}).json()
    assert moves["count"] == 1
    (move,) = moves["results"]
    assert (move["sku"], move["old_price"], move["new_price"]) == ("GREEN", "9.00", "8.00")
    assert move["followed_by"]["price_change"] == market["change"].pk
    assert move["followed_by"]["cites_competitor"] is True
    assert api.get("/api/v1/competitors/moves/", {"sku": "BLACK"}).json()["count"] == 0


@pytest.mark.parametrize(
    ("path", "params", "attr"),
    [
        ("/api/v1/competitors/index/", {"days": "0"}, "days"),
        ("/api/v1/competitors/index/", {"days": "abc"}, "days"),
        ("/api/v1/competitors/index/", {"days": ""}, "days"),
        ("/api/v1/competitors/moves/", {"days": "366"}, "days"),
        ("/api/v1/competitors/moves/", {"followed": "maybe"}, "followed"),
        ("/api/v1/competitors/", {"limit": "x"}, "limit"),
        ("/api/v1/undercut-alerts/", {"status": "gone"}, "status"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(world_a, path, params, attr):
    response = world_a.api("viewer").get(path, params)
    assert response.status_code == 400, response.content
    assert response.json()["attr"] == attr


def test_undercut_alerts_are_listed_filtered_and_checked_by_those_who_manage_settings(
    world_a, market
):
    viewer, admin = world_a.api("viewer"), world_a.api("admin")
    assert viewer.post("/api/v1/undercut-alerts/check/", format="json").status_code == 403
    checked = admin.post("/api/v1/undercut-alerts/check/", format="json")
    assert checked.status_code == 200 and checked.json() == {
        "opened": 1,
        "still_open": 0,
        "cleared": 0,
    }
    body = viewer.get("/api/v1/undercut-alerts/", {"status": "open"}).json()
    (alert,) = body["results"]
    assert (alert["sku"], alert["competitor"], alert["gap"]) == ("GREEN", "Rival X", "0.2000")
    assert alert["gap_words"] == "20 % cheaper than us"
    assert viewer.get("/api/v1/undercut-alerts/", {"competitor": "Rival Z"}).json()["count"] == 0
    assert viewer.get("/api/v1/undercut-alerts/", {"sku": "GREEN"}).json()["count"] == 1
    assert viewer.get(f"/api/v1/undercut-alerts/{alert['id']}/").json()["id"] == alert["id"]


def test_the_alert_policy_api_sets_the_undercut_threshold(world_a, market):
    admin = world_a.api("admin")
    saved = admin.patch("/api/v1/alert-policy/", {"undercut_threshold": "0.01"}, format="json")
    assert saved.status_code == 200 and saved.json()["undercut_threshold"] == "0.010"
    with tenant_context(world_a.tenant):  # re-checked at once with the new threshold
        assert UndercutAlert.objects.filter(status="open").count() == 2
    bad = admin.patch("/api/v1/alert-policy/", {"undercut_threshold": "0"}, format="json")
    assert bad.status_code == 400 and bad.json()["attr"] == "undercut_threshold"
    off = admin.patch("/api/v1/alert-policy/", {"undercut_threshold": None}, format="json")
    assert off.status_code == 200 and off.json()["undercut_threshold"] is None


def test_tenant_b_sees_none_of_as_competitors_and_a_sees_its_own(world_a, world_b, market):
    with tenant_context(world_a.tenant):
        undercuts.evaluate()
        alert = UndercutAlert.objects.get()
        offer = market["move"]
    b = world_b.api("admin")
    for path in (
        "/api/v1/competitors/",
        "/api/v1/competitors/index/",
        "/api/v1/competitors/moves/",
        "/api/v1/competitors/offers/",
        "/api/v1/undercut-alerts/",
    ):
        body = b.get(path).json()
        assert body["count"] == 0 and body["results"] == [], path
        assert world_a.api("viewer").get(path).json()["count"] >= 1, path
    assert b.get(f"/api/v1/undercut-alerts/{alert.pk}/").status_code == 404
    assert b.get(f"/api/v1/competitors/offers/{offer.pk}/").status_code == 404
    # B's check opens nothing for A's offers, and leaves A's alert as it was
    assert b.post("/api/v1/undercut-alerts/check/", format="json").json()["opened"] == 0
    with tenant_context(world_a.tenant):
        assert UndercutAlert.objects.get().status == "open"
