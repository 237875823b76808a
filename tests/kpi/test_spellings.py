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
from pricing_saas.kpi import spellings as kpi_spellings
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


@pytest.fixture
def refreshes(monkeypatch):
    """The KPI refreshes a merge asks for: their `since`."""
    asked = []
    monkeypatch.setattr(kpi_spellings, "request_refresh", lambda since: asked.append(since))
    return asked


def test_readings_of_every_spelling_go_under_the_tenants_one_and_a_moments_reading_stays_one(
    world_a, world_b, spelt, refreshes
):
    with tenant_context(world_a.tenant):
        done = merge_competitor_spellings()
    # the days' competitor prices are computed again from the oldest reading moved on
    assert refreshes == [dt.date(2024, 2, 29)]
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
    assert len(refreshes) == 1  # (nothing moved: no refresh)
    # B's readings are B's: untouched by A's merge, and B's merge leaves A's as they are
    assert readings(world_b.tenant) == [("P1", t[0], "rival ", Decimal("5.0000"))]
    before = readings(world_a.tenant)
    with tenant_context(world_b.tenant):
        assert merge_competitor_spellings()["readings"] == 1
        assert list(CompetitorName.objects.values_list("name", flat=True)) == ["rival"]
    assert readings(world_b.tenant) == [("P1", t[0], "rival", Decimal("5.0000"))]
    assert readings(world_a.tenant) == before


def test_the_alerts_and_the_cited_names_follow_and_one_alert_stays_open(
    world_a, spelt, monkeypatch, settings, refreshes
):
    from pricing_saas.kpi import alerts as kpi_alerts
    from pricing_saas.kpi.tasks import deliver_undercut_webhook

    settings.ALERT_WEBHOOK_ALLOW_HTTP = settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    sent = []
    monkeypatch.setattr(deliver_undercut_webhook, "delay", lambda *args: sent.append(args))
    a, p1, p2 = world_a.tenant, spelt["p1"], spelt["p2"]
    with tenant_context(a):
        kpi_alerts.save_policy(webhook_url="http://127.0.0.1:9/hooks")
        kept = UndercutAlertFactory(tenant=a, product=p1, competitor="Rival")
        twin = UndercutAlertFactory(tenant=a, product=p1, competitor="rival ")
        other = UndercutAlertFactory(tenant=a, product=p2, competitor="RIVAL")
        old = UndercutAlertFactory(tenant=a, product=p2, competitor="rival ", status="resolved",
                                   resolved_at=T0, resolution="the gap is within the threshold now")  # fmt: skip
        job = RepriceJobFactory(tenant=a)
        cited = RecommendationFactory(tenant=a, job=job, product=p1, competitor_name="RIVAL")
        # spellings no reading carries any more: merged by the competitor they name
        ghost = UndercutAlertFactory(tenant=a, product=p1, competitor="rIvAl\t", status="resolved",
                                     resolved_at=T0)  # fmt: skip
        lone = RecommendationFactory(tenant=a, job=job, product=p2, competitor_name=" acme")
        unknown = RecommendationFactory(tenant=a, job=job, product=p2, competitor_name="Gone")
        plain = RecommendationFactory(tenant=a, job=job, product=p2, competitor_name="")
        dry = merge_competitor_spellings(dry_run=True)
        assert CompetitorOffer.objects.filter(competitor="RIVAL").exists()  # nothing changed
        assert not CompetitorName.objects.filter(key="acme").exists()
        done = merge_competitor_spellings()
        assert done == dry and (done["alerts"], done["alerts_resolved"]) == (4, 1)
        assert done["recommendations"] == 2
        alerts = {x.pk: x for x in UndercutAlert.objects.all()}
        assert [(alerts[x.pk].competitor, alerts[x.pk].status) for x in (kept, twin, other, old)] == [
            ("Rival", "open"), ("Rival", "resolved"), ("Rival", "open"), ("Rival", "resolved"),
        ]  # fmt: skip
        assert alerts[twin.pk].resolution == kpi_spellings.MERGED
        assert sent == [(a.pk, [twin.pk], "undercut.resolved")]  # the webhook hears of it
        assert alerts[old.pk].resolution == "the gap is within the threshold now"
        names = dict(Recommendation.objects.values_list("pk", "competitor_name"))
        assert (names[cited.pk], names[plain.pk]) == ("Rival", "")
        assert (names[lone.pk], names[unknown.pk]) == ("Acme", "Gone")  # no readings: as it was
        assert alerts[ghost.pk].competitor == "Rival"


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


def test_two_other_spellings_of_one_moment_keep_the_latest_written(world_a):
    a = world_a.tenant
    with tenant_context(a):
        p = ProductFactory(tenant=a, sku="P1", price="10.00")
        offer = CompetitorOfferFactory
        offer(tenant=a, product=p, competitor="Zed ", price="5.00", observed_at=T0)
        offer(tenant=a, product=p, competitor="ZED", price="5.50", observed_at=T0)
        offer(tenant=a, product=p, competitor="Zed", price="6.00", observed_at=T0 + HOUR)
        dry = merge_competitor_spellings(dry_run=True)
        done = merge_competitor_spellings()
    assert dry == done and (done["spellings"], done["duplicates"], done["readings"]) == (2, 1, 1)
    assert readings(a) == [  # "Zed" is 2 readings of 3 (read as an import reads them)
        ("P1", T0.isoformat(), "Zed", Decimal("5.5000")),
        ("P1", (T0 + HOUR).isoformat(), "Zed", Decimal("6.0000")),
    ]


def test_a_competitor_of_the_longest_name_merges_its_alerts(world_a):
    a, name = world_a.tenant, "Rival " + "x" * 194
    with tenant_context(a):
        CompetitorNameFactory(tenant=a, key=name.lower(), name=name)
        p = ProductFactory(tenant=a, sku="P1", price="10.00")
        CompetitorOfferFactory(tenant=a, product=p, competitor=name.upper(), observed_at=T0)
        UndercutAlertFactory(tenant=a, product=p, competitor=name)
        UndercutAlertFactory(tenant=a, product=p, competitor=name.upper())
        done = merge_competitor_spellings()
        assert (done["readings"], done["alerts_resolved"]) == (1, 1)
        assert set(UndercutAlert.objects.values_list("competitor", flat=True)) == {name}


def test_the_command_goes_on_past_a_tenant_whose_merge_fails_and_names_it(
    world_a, world_b, spelt, monkeypatch, capsys
):
    from django.db import OperationalError

    from pricing_saas.kpi.management.commands import merge_competitor_spellings as command
    from tenants.context import require_current_tenant

    real = command.merge_competitor_spellings

    def merge(**kwargs):
        if require_current_tenant().pk == world_a.tenant.pk:
            raise OperationalError("a competitor import wrote a clashing reading")
        return real(**kwargs)

    monkeypatch.setattr(command, "merge_competitor_spellings", merge)
    with pytest.raises(
        CommandError, match=f"1 tenant\\(s\\) not merged \\({world_a.tenant.slug}\\)"
    ):
        call_command("merge_competitor_spellings")
    assert "not merged, nothing changed: a competitor import" in capsys.readouterr().err
    assert readings(world_b.tenant)[0][2] == "rival"  # B's went on


def test_a_filter_finds_every_spelling_stored_before_the_merge(world_a):
    a = world_a.tenant
    with tenant_context(a):
        CompetitorNameFactory(tenant=a, key="rival", name="Rival")
        p = ProductFactory(tenant=a, sku="P1", price="10.00")
        now = dt.datetime.now(dt.UTC)
        for hours, name, price in ((1, "Rival", "9.00"), (2, "RIVAL", "8.00"),
                                   (3, "Rival", "9.50")):  # fmt: skip
            CompetitorOfferFactory(tenant=a, product=p, competitor=name, price=price,
                                   observed_at=now - dt.timedelta(hours=hours))  # fmt: skip
    api = world_a.api("viewer")
    for asked in ("RIVAL", "rival", "Rival"):
        found = api.get("/api/v1/competitor-offers/", {"competitor": asked}).json()
        assert found["count"] == 3, asked
        moves = api.get("/api/v1/competitors/moves/", {"competitor": asked}).json()
        assert moves["count"] == 1, asked  # "Rival" 9.50 -> 9.00; "RIVAL" apart until merged
        listed = api.get("/api/v1/competitors/", {"competitor": asked}).json()
        assert sorted(r["competitor"] for r in listed["results"]) == ["RIVAL", "Rival"]


def test_a_name_with_a_nul_is_a_400_on_the_api_and_no_match_on_the_pages(world_a, market):
    api = world_a.api("viewer")
    for path in ("/api/v1/competitors/moves/", "/api/v1/competitors/", "/api/v1/competitors/index/",
                 "/api/v1/competitors/offers/", "/api/v1/undercut-alerts/",
                 "/api/v1/competitor-offers/"):  # fmt: skip
        response = api.get(path, {"competitor": "Rival\x00X"})
        assert response.status_code == 400, (path, response.content)
        assert response.json()["attr"] == "competitor", path
        long = api.get(path, {"competitor": "x" * 1001})
        assert long.status_code == 400 and long.json()["attr"] == "competitor", path
    portal = world_a.portal(Client(), "viewer")
    for page in ("/kpi/competitors/", "/kpi/competitors/undercuts/"):
        assert portal.get(page, {"competitor": "Rival\x00X"}).status_code == 200, page
    assert portal.get("/kpi/competitors/undercuts/", {"q": "a\x00b"}).status_code == 200


def test_a_name_of_200_characters_asked_with_more_white_space_is_found(world_a):
    a, name = world_a.tenant, "Rival " + "x" * 194
    with tenant_context(a):
        p = ProductFactory(tenant=a, sku="P1", price="10.00")
        CompetitorOfferFactory(tenant=a, product=p, competitor=name,
                               observed_at=dt.datetime.now(dt.UTC))  # fmt: skip
    api, asked = world_a.api("viewer"), {"competitor": name.replace(" ", "  \t")}
    assert api.get("/api/v1/competitor-offers/", asked).json()["count"] == 1
    assert api.get("/api/v1/competitors/", asked).json()["count"] == 1
