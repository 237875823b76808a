"""The competitor view (`pricing_saas/kpi/competitors.py`) and undercut alerts
(`pricing_saas/kpi/undercuts.py`) on a small market worked out by hand (the `market` fixture in
conftest.py):

World A (UTC), today's date T:
    GREEN  our price 10.00, revenue 300 in the last 90 days
    BLACK  our price 20.00, revenue 100
Offers:
    GREEN  Rival X 9.00 (T-2 days), then 8.00 (T-1 day, a move of -11.1 %)
    GREEN  Rival Z 9.80 (T-1 day): 2 % below us, inside a 5 % threshold
    GREEN  Rival Y 5.00 (T-20 days): no longer in force
    BLACK  Rival X 22.00 (T-1 day), in stock
Our change: GREEN 10.50 -> 10.00 published 2 hours after X's move, from a recommendation that
named Rival X: it followed the move and cites X. Before it GREEN was 10.50.

Rival X today: GREEN 8.00 / 10.00 = 0.80 (weight 300), BLACK 22 / 20 = 1.10 (weight 100):
index (0.80 x 300 + 1.10 x 100) / 400 = 0.875.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Response

from pricing_saas.kpi import alerts, competitors, undercuts
from pricing_saas.kpi.models import UndercutAlert
from tenants.context import tenant_context
from tests.factories import CompetitorOfferFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]

D = Decimal


def test_the_offers_in_force_are_each_competitors_latest_of_the_last_14_days(world_a, market):
    with tenant_context(world_a.tenant):
        rows = [(o.product.sku, o.competitor, o.price) for o in competitors.offers_in_force()]
    assert rows == [
        ("BLACK", "Rival X", D("22.00")),
        ("GREEN", "Rival X", D("8.00")),  # not its older 9.00
        ("GREEN", "Rival Z", D("9.80")),  # Rival Y's 20-day-old 5.00 is not in force
    ]


@pytest.mark.parametrize(
    ("ours", "theirs", "words"),
    [
        ("10", "8", "20 % cheaper than us"),
        ("20", "22", "10 % dearer than us"),
        ("10", "10", "same price as us"),
        ("10", "9.95", "0.5 % cheaper than us"),
        (None, "9", "—"),
        # too far from ours to be the same item: said, as the reprice and the alerts leave it out
        ("10", "2.5", "75 % cheaper than us: most likely another item (check the match), left out"),
        ("10", "31", "210 % dearer than us: most likely another item (check the match), left out"),
        ("10", "29", "190 % dearer than us"),
    ],
)
def test_the_gap_is_said_in_plain_words(ours, theirs, words):
    assert competitors.gap_words(ours, theirs) == words
    assert competitors.same_item(ours, theirs) == ("another item" not in words)


def test_the_summary_counts_skus_and_weighs_the_index_by_revenue(world_a, market):
    with tenant_context(world_a.tenant):
        rows = {r["competitor"]: r for r in competitors.summary()}
    assert set(rows) == {"Rival X", "Rival Z"}
    x = rows["Rival X"]
    assert (x["skus"], x["in_stock"], x["cheaper"], x["dearer"]) == (2, 2, 1, 1)
    assert x["price_index"] == pytest.approx(0.875)
    assert x["price_index_words"] == "12.5 % cheaper than us on average"
    assert x["moves"] == 1  # GREEN 9.00 -> 8.00
    assert rows["Rival Z"]["price_index"] == pytest.approx(0.98)


def test_a_listing_of_another_item_is_in_no_index_and_no_count_of_cheaper(world_a, market):
    """Rival X reads GREEN (ours 10.00) at 2.50 today: too far under ours to be the same
    item, as the reprice reads it; X's index today is BLACK's alone (22 / 20)."""
    with tenant_context(world_a.tenant):
        CompetitorOfferFactory(tenant=world_a.tenant, product=market["green"],
                               competitor="Rival X", price="2.50",
                               observed_at=timezone.now())  # fmt: skip
        x = {r["competitor"]: r for r in competitors.summary()}["Rival X"]
        series = competitors.index_series(days=2, competitor="Rival X")["Rival X"]
    assert (x["skus"], x["in_stock"], x["cheaper"], x["dearer"]) == (2, 2, 0, 1)
    assert x["price_index"] == pytest.approx(1.10)
    today = {p["date"]: p for p in series}[timezone.localdate()]
    assert today["skus"] == 1 and today["index"] == pytest.approx(1.10, abs=1e-4)


def test_the_index_over_time_uses_the_price_we_had_that_day(world_a, market):
    """Two days ago GREEN was still 10.50 (the change came later) and X asked 9.00; yesterday
    X moved to 8.00 and we followed to 10.00 the same day."""
    with tenant_context(world_a.tenant):
        series = competitors.index_series(days=5, competitor="Rival X")
    assert list(series) == ["Rival X"]
    points = {p["date"]: p for p in series["Rival X"]}
    today = timezone.now().date()
    two_days_ago, yesterday = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    assert points[two_days_ago]["skus"] == 1  # BLACK was not observed yet
    assert points[two_days_ago]["index"] == pytest.approx(9.0 / 10.5, abs=1e-4)
    if market["change"].published_at.date() == yesterday:  # not across midnight
        assert points[yesterday]["index"] == pytest.approx(0.875, abs=1e-4)
    assert points[today]["index"] == pytest.approx(0.875, abs=1e-4)
    assert today - dt.timedelta(days=3) not in points  # no offer in force then


def test_a_move_links_the_change_of_ours_that_followed_and_cites_the_competitor(world_a, market):
    with tenant_context(world_a.tenant):
        moves = competitors.Moves(competitors.MoveFilters(days=30))
        assert moves.count() == 1
        (move,) = moves[0:10]
        assert move["sku"] == "GREEN" and move["competitor"] == "Rival X"
        assert (move["old_price"], move["new_price"]) == (D("9.00"), D("8.00"))
        followed = move["followed_by"]
        assert followed["price_change"] == market["change"].pk
        assert followed["cites_competitor"] is True
        assert followed["job"] == market["job"].pk
        # filters: another competitor, or only moves nobody followed: none
        assert competitors.Moves(competitors.MoveFilters(competitor="Rival Z")).count() == 0
        assert competitors.Moves(competitors.MoveFilters(followed=False)).count() == 0
        assert competitors.Moves(competitors.MoveFilters(sku="GREEN", followed=True)).count() == 1


def test_an_undercut_opens_one_alert_per_sku_and_competitor_until_it_clears(world_a, market):
    now = timezone.now()
    with tenant_context(world_a.tenant):
        first = undercuts.evaluate()
        assert len(first.opened) == 1 and first.cleared == []
        alert = UndercutAlert.objects.get()
        assert (alert.product_id, alert.competitor) == (market["green"].pk, "Rival X")
        assert alert.gap == D("0.2000") and alert.threshold == D("0.050")
        assert alert.url == "https://x.example.com/green"
        # checked again: the same alert, updated, not a second one
        CompetitorOfferFactory(tenant=world_a.tenant, product=market["green"],
                               competitor="Rival X", price="8.50", observed_at=now)  # fmt: skip
        again = undercuts.evaluate()
        assert (again.opened, again.still_open, again.cleared) == ([], 1, [])
        alert.refresh_from_db()
        assert alert.their_price == D("8.50") and alert.gap == D("0.1500")
        # X comes within 5 %: cleared, with the reason
        CompetitorOfferFactory(tenant=world_a.tenant, product=market["green"],
                               competitor="Rival X", price="9.70",
                               observed_at=now + dt.timedelta(seconds=1))  # fmt: skip
        cleared = undercuts.evaluate()
        assert cleared.cleared == [alert.pk]
        alert.refresh_from_db()
        assert (
            alert.status == "resolved" and alert.resolution == "the gap is within the threshold now"
        )
        # a new undercut later is a new alert; the old one stays as history
        CompetitorOfferFactory(tenant=world_a.tenant, product=market["green"],
                               competitor="Rival X", price="7.00",
                               observed_at=now + dt.timedelta(seconds=2))  # fmt: skip
        assert len(undercuts.evaluate().opened) == 1
        assert UndercutAlert.objects.count() == 2
        assert UndercutAlert.objects.filter(status="open").count() == 1


def test_a_price_too_far_under_ours_to_be_the_same_item_is_no_undercut(world_a, market):
    """GREEN sells at 10.00: Rival X read at 3.00 (under a third) is another item, a wrong
    match, as the reprice reads it; the open alert clears saying so, and nothing reopens."""
    now = timezone.now()
    with tenant_context(world_a.tenant):
        assert len(undercuts.evaluate().opened) == 1  # X at 8.00: an undercut
        CompetitorOfferFactory(tenant=world_a.tenant, product=market["green"],
                               competitor="Rival X", price="3.00", observed_at=now)  # fmt: skip
        result = undercuts.evaluate()
        assert result.opened == [] and len(result.cleared) == 1
        alert = UndercutAlert.objects.get()
        assert alert.status == "resolved" and "same item" in alert.resolution
        assert undercuts.evaluate().opened == []
        CompetitorOfferFactory(tenant=world_a.tenant, product=market["green"],
                               competitor="Rival X", price="3.40",
                               observed_at=now + dt.timedelta(seconds=1))  # fmt: skip
        assert len(undercuts.evaluate().opened) == 1  # 3.40: over a third, an undercut


def test_a_lower_threshold_catches_more_and_none_switches_them_off(world_a, market):
    with tenant_context(world_a.tenant):
        alerts.save_policy(undercut_threshold="0.01")  # re-evaluated on commit (at once here)
        open_ = set(
            UndercutAlert.objects.filter(status="open").values_list("competitor", flat=True)
        )
        assert open_ == {"Rival X", "Rival Z"}  # Z's 2 % now counts
        alerts.save_policy(undercut_threshold="")
        assert not UndercutAlert.objects.filter(status="open").exists()
        assert set(UndercutAlert.objects.values_list("resolution", flat=True)) == {
            "undercut alerts were switched off"
        }


@pytest.mark.parametrize("value", ["0", "-0.1", "0.95", "abc", "NaN"])
def test_a_bad_threshold_is_refused_naming_the_field(world_a, value):
    from pricing_saas.web.errors import ServiceError

    with tenant_context(world_a.tenant), pytest.raises(ServiceError) as caught:
        alerts.save_policy(undercut_threshold=value)
    assert caught.value.attr == "undercut_threshold"


def test_an_out_of_stock_or_inactive_offer_raises_nothing(world_a, market):
    with tenant_context(world_a.tenant):
        CompetitorOfferFactory(tenant=world_a.tenant, product=market["green"],
                               competitor="Rival X", price="1.00", in_stock=False,
                               observed_at=timezone.now())  # fmt: skip
        assert undercuts.evaluate().opened == []
        market["black"].price = D("50.00")
        market["black"].active = False
        market["black"].save()
        assert undercuts.evaluate().opened == []


@pytest.fixture
def local_webhooks(settings):
    settings.ALERT_WEBHOOK_ALLOW_HTTP = True
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True


def test_new_undercuts_are_e_mailed_once_and_sent_to_the_signed_webhook(
    world_a, market, httpserver: HTTPServer, local_webhooks
):
    received = []

    def handler(request):
        received.append((request.get_data(), dict(request.headers)))
        return Response("ok", status=200)

    httpserver.expect_request("/hooks", method="POST").respond_with_handler(handler)
    with tenant_context(world_a.tenant):
        policy = alerts.save_policy(webhook_url=httpserver.url_for("/hooks"))
        undercuts.evaluate()
        undercuts.evaluate()  # nothing new: nothing sent again
        alert = UndercutAlert.objects.get()
        assert alert.emailed_at is not None and alert.webhook_status == "sent"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert set(message.to) == {world_a.users["owner"].email, world_a.users["admin"].email}
    assert "1 competitor undercut" in message.subject
    assert "GREEN" in message.body and "Rival X" in message.body and "20.0 %" in message.body
    assert len(received) == 1
    body, headers = received[0]
    assert alerts.verify(policy.signing_key(), body, headers["X-Pricing-Signature"])
    event = json.loads(body)
    assert event["type"] == "undercut.opened" and event["tenant"] == world_a.tenant.slug
    assert [(u["sku"], u["competitor"], u["gap"]) for u in event["undercuts"]] == [
        ("GREEN", "Rival X", "0.2000")
    ]


def test_a_competitor_import_evaluates_the_undercuts(world_a, market):
    """The KPI refresh that follows every import (kpi.signals) checks the undercuts too."""
    from pricing_saas.catalog.importer import import_rows

    with tenant_context(world_a.tenant):
        import_rows(
            kind="competitor_prices",
            rows=[{"sku": "BLACK", "competitor": "Rival W", "price": "15.00",
                   "observed_at": timezone.now().isoformat()}],
        )  # fmt: skip
        from pricing_saas.kpi.tasks import refresh

        result = refresh.apply(args=[world_a.tenant.pk]).get()
        assert result["undercuts"]["opened"] == 2  # GREEN by X, BLACK by W
        assert set(UndercutAlert.objects.values_list("competitor", flat=True)) == {
            "Rival X",
            "Rival W",
        }


def test_another_tenants_offers_raise_nothing_here(world_a, world_b, market):
    with tenant_context(world_b.tenant):
        result = undercuts.evaluate()
        assert result.opened == [] and not UndercutAlert.objects.exists()
        assert competitors.summary() == []
        assert competitors.Moves(competitors.MoveFilters()).count() == 0
        assert competitors.index_series() == {}
