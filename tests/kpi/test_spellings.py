"""A competitor's spellings as one: readings stored under another spelling merged under the
tenant's (`kpi.spellings.merge_competitor_spellings`, the `merge_competitor_spellings`
command), and every filter of the competitor view reading a name as an import does
(`catalog.spellings`). Tenant B's spellings are B's own, from both sides."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from pricing_saas.catalog.models import CompetitorName, CompetitorOffer
from pricing_saas.catalog.spellings import spelling
from pricing_saas.kpi import undercuts
from pricing_saas.kpi.models import UndercutAlert
from pricing_saas.kpi.spellings import merge_competitor_spellings
from pricing_saas.pricing.models import Recommendation
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.factories import (
    CompetitorNameFactory,
    CompetitorOfferFactory,
    ProductFactory,
    RecommendationFactory,
    RepriceJobFactory,
    UndercutAlertFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]

T0 = dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def readings(tenant) -> list[tuple[str, str, str, Decimal]]:
    with tenant_context(tenant):
        rows = CompetitorOffer.objects.order_by("product__sku", "observed_at", "competitor")
        return [(o.product.sku, o.observed_at.isoformat(), o.competitor, o.price) for o in rows]


@pytest.fixture
def spelt(world_a, world_b):
    """A: "Rival" registered; its readings also under "rival ", "RIVAL" and "rival\\u00a0 ",
    one of them at the same moment as a "Rival" reading (9.00 kept, 8.50 dropped); "Acme" never
    registered, read as "Acme" and "Acme " (2 once read) and "ACME" (1). B: "rival " alone."""
    a, b = world_a.tenant, world_b.tenant
    with tenant_context(a):
        CompetitorNameFactory(tenant=a, key="rival", name="Rival")
        p1 = ProductFactory(tenant=a, sku="P1", price="10.00")
        p2 = ProductFactory(tenant=a, sku="P2", price="10.00")
        offer = CompetitorOfferFactory
        offer(tenant=a, product=p1, competitor="Rival", price="9.00", observed_at=T0)
        offer(tenant=a, product=p1, competitor="rival ", price="8.50", observed_at=T0)
        offer(tenant=a, product=p1, competitor="RIVAL", price="8.00", observed_at=T0 + HOUR)
        offer(tenant=a, product=p2, competitor="rival\u00a0 ", price="7.00", observed_at=T0)
        offer(tenant=a, product=p2, competitor="Acme", price="6.00", observed_at=T0)
        offer(tenant=a, product=p2, competitor="Acme ", price="6.10", observed_at=T0 + HOUR)
        offer(tenant=a, product=p2, competitor="ACME", price="6.20", observed_at=T0 + 2 * HOUR)
    with tenant_context(b):
        pb = ProductFactory(tenant=b, sku="P1", price="10.00")
        CompetitorOfferFactory(tenant=b, product=pb, competitor="rival ", price="5.00",
                               observed_at=T0)  # fmt: skip
    return {"p1": p1, "p2": p2, "pb": pb}


def test_readings_of_every_spelling_go_under_the_tenants_one_and_a_moments_reading_stays_one(
    world_a, world_b, spelt
):
    with tenant_context(world_a.tenant):
        done = merge_competitor_spellings()
    assert done == {"spellings": 5, "readings": 4, "duplicates": 1, "registered": 1,
                    "alerts": 0, "alerts_resolved": 0, "recommendations": 0}  # fmt: skip
    t = [T0.isoformat(), (T0 + HOUR).isoformat(), (T0 + 2 * HOUR).isoformat()]
    assert readings(world_a.tenant) == [
        ("P1", t[0], "Rival", Decimal("9.0000")),  # the tenant's spelling's reading stays
        ("P1", t[1], "Rival", Decimal("8.0000")),
        ("P2", t[0], "Acme", Decimal("6.0000")),  # "Acme" and "Acme " are 2 readings of 3
        ("P2", t[0], "Rival", Decimal("7.0000")),
        ("P2", t[1], "Acme", Decimal("6.1000")),
        ("P2", t[2], "Acme", Decimal("6.2000")),
    ]
    with tenant_context(world_a.tenant):
        assert dict(CompetitorName.objects.values_list("key", "name")) == {
            "rival": "Rival",
            "acme": "Acme",
        }
        event = AuditEvent.objects.get(action="catalog.competitor_spellings_merged")
        assert event.after["renamed"]["rival\u00a0 "] == "Rival"
        assert merge_competitor_spellings() == dict.fromkeys(done, 0)  # idempotent
    # B's readings are B's: untouched by A's merge, and B's merge leaves A's as they are
    assert readings(world_b.tenant) == [("P1", t[0], "rival ", Decimal("5.0000"))]
    before = readings(world_a.tenant)
    with tenant_context(world_b.tenant):
        assert merge_competitor_spellings()["readings"] == 1
        assert list(CompetitorName.objects.values_list("name", flat=True)) == ["rival"]
    assert readings(world_b.tenant) == [("P1", t[0], "rival", Decimal("5.0000"))]
    assert readings(world_a.tenant) == before


def test_the_alerts_and_the_cited_names_follow_and_one_alert_stays_open(world_a, spelt):
    a, p1, p2 = world_a.tenant, spelt["p1"], spelt["p2"]
    with tenant_context(a):
        kept = UndercutAlertFactory(tenant=a, product=p1, competitor="Rival")
        twin = UndercutAlertFactory(tenant=a, product=p1, competitor="rival ")
        other = UndercutAlertFactory(tenant=a, product=p2, competitor="RIVAL")
        old = UndercutAlertFactory(tenant=a, product=p2, competitor="rival ", status="resolved",
                                   resolved_at=T0, resolution="the gap is within the threshold now")  # fmt: skip
        job = RepriceJobFactory(tenant=a)
        cited = RecommendationFactory(tenant=a, job=job, product=p1, competitor_name="RIVAL")
        plain = RecommendationFactory(tenant=a, job=job, product=p2, competitor_name="")
        dry = merge_competitor_spellings(dry_run=True)
        assert CompetitorOffer.objects.filter(competitor="RIVAL").exists()  # nothing changed
        assert not CompetitorName.objects.filter(key="acme").exists()
        done = merge_competitor_spellings()
        assert done == dry and (done["alerts"], done["alerts_resolved"]) == (3, 1)
        assert done["recommendations"] == 1
        alerts = {x.pk: x for x in UndercutAlert.objects.all()}
        assert [(alerts[x.pk].competitor, alerts[x.pk].status) for x in (kept, twin, other, old)] == [
            ("Rival", "open"), ("Rival", "resolved"), ("Rival", "open"), ("Rival", "resolved"),
        ]  # fmt: skip
        assert alerts[twin.pk].resolution == "the same competitor as Rival, whose alert stays open"
        assert alerts[old.pk].resolution == "the gap is within the threshold now"
        names = dict(Recommendation.objects.values_list("pk", "competitor_name"))
        assert (names[cited.pk], names[plain.pk]) == ("Rival", "")


def test_the_command_merges_the_named_tenants_or_all_and_refuses_an_unknown_one(
    world_a, world_b, spelt, capsys
):
    call_command("merge_competitor_spellings", world_b.tenant.slug, "--dry-run")
    assert "would move 1 readings" in capsys.readouterr().out
    assert readings(world_b.tenant)[0][2] == "rival "
    call_command("merge_competitor_spellings", world_b.tenant.slug)
    assert readings(world_b.tenant)[0][2] == "rival"
    assert {r[2] for r in readings(world_a.tenant)} == {"Rival", "rival ", "RIVAL",
                                                          "rival\u00a0 ", "Acme", "Acme ", "ACME"}  # fmt: skip
    call_command("merge_competitor_spellings")
    out = capsys.readouterr().out
    assert f"{world_a.tenant.slug}: 5 spellings; moved 4 readings, 1 duplicates removed" in out
    assert {r[2] for r in readings(world_a.tenant)} == {"Rival", "Acme"}
    with pytest.raises(CommandError, match="unknown tenant 'nobody'"):
        call_command("merge_competitor_spellings", "nobody")


def test_a_name_is_read_as_an_import_reads_it_and_as_the_tenant_spells_it(world_a, world_b):
    with tenant_context(world_a.tenant):
        CompetitorNameFactory(tenant=world_a.tenant, key="rival x", name="Rival X")
        assert spelling("  rival\t\u00a0X ") == "Rival X"
        assert spelling("Other  Shop ") == "Other Shop"  # no spelling of its own: as read
        assert spelling(" \t") == ""
    with tenant_context(world_b.tenant):  # A's spelling is A's
        assert spelling("rival x") == "rival x"


def test_every_competitor_filter_finds_the_competitor_in_any_spelling(world_a, world_b, market):
    with tenant_context(world_a.tenant):
        CompetitorNameFactory(tenant=world_a.tenant, key="rival x", name="Rival X")
        undercuts.evaluate()
    api, asked = world_a.api("viewer"), {"competitor": " rival\u00a0 x"}
    summary = api.get("/api/v1/competitors/", asked).json()
    assert [r["competitor"] for r in summary["results"]] == ["Rival X"]
    index = api.get("/api/v1/competitors/index/", {**asked, "days": 7}).json()
    assert [r["competitor"] for r in index["results"]] == ["Rival X"]
    moves = api.get("/api/v1/competitors/moves/", asked).json()
    assert moves["count"] >= 1 and {r["competitor"] for r in moves["results"]} == {"Rival X"}
    offers = api.get("/api/v1/competitors/offers/", asked).json()
    assert [r["sku"] for r in offers["results"]] == ["BLACK", "GREEN"]
    assert api.get("/api/v1/undercut-alerts/", asked).json()["count"] == 1
    assert api.get("/api/v1/competitor-offers/", asked).json()["count"] == 3
    portal = world_a.portal(Client(), "viewer")
    page = portal.get("/kpi/competitors/undercuts/", asked).content.decode()
    assert "GREEN" in page and '<option value="Rival X" selected>' in page
    page = portal.get("/kpi/competitors/", asked).content.decode()
    assert '<option value="Rival X" selected>' in page
    # tenant B: A's spelling finds nothing there
    b = world_b.api("viewer")
    assert b.get("/api/v1/competitors/offers/", asked).json()["count"] == 0
    blank = api.get("/api/v1/competitors/moves/", {"competitor": "  "})
    assert blank.status_code == 400 and blank.json()["attr"] == "competitor"
