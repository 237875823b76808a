"""The Competitors page, the undercut alerts page and the SKU page's competitor section, on the
`market` of conftest.py: what a merchant reads, who may change the threshold, and nothing of
another tenant."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from pricing_saas.kpi import undercuts
from pricing_saas.kpi.models import AlertPolicy, UndercutAlert
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_the_competitors_page_summarises_charts_and_lists_the_moves(world_a, market):
    page = world_a.portal(Client(), "viewer").get("/kpi/competitors/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Rival X" in html and "Rival Z" in html
    assert "12.5 % cheaper than us on average" in html  # X's index 0.875 in words
    assert "Price index" in html  # the technical term, in the header's tooltip
    chart = json.loads(re.search(r'id="index-data"[^>]*>(.*?)</script>', html, re.S).group(1))
    x = next(line for line in chart["lines"] if line["label"] == "Rival X")
    assert x["data"][-1] == 87.5 and len(x["data"]) == len(chart["labels"]) == 90
    # the move 9.00 -> 8.00 and the change of ours that followed it, linked
    assert "9.00" in html and "8.00" in html and "cites them" in html
    assert f"/pricing/jobs/{market['job'].pk}/" in html
    # a viewer reads the threshold but gets no form
    assert 'name="undercut_threshold"' not in html and "more than 5 % below" in html


def test_the_moves_filter_by_competitor_and_by_whether_we_followed(world_a, market):
    client = world_a.portal(Client(), "viewer")
    html = client.get("/kpi/competitors/", {"competitor": "Rival Z"}).content.decode()
    assert "No price moves in the last 30 days by Rival Z" in html
    html = client.get("/kpi/competitors/", {"followed": "no"}).content.decode()
    assert "No price moves in the last 30 days." in html  # the one move was followed
    html = client.get("/kpi/competitors/", {"followed": "yes"}).content.decode()
    assert "· cites them" in html


def test_an_admin_sets_the_threshold_as_a_percentage_and_a_viewer_may_not(world_a, market):
    admin = world_a.portal(Client(), "admin")
    response = admin.post("/kpi/competitors/", {"undercut_threshold": "1"})
    assert response.status_code == 302
    with tenant_context(world_a.tenant):
        assert str(AlertPolicy.objects.get().undercut_threshold) == "0.010"
        assert UndercutAlert.objects.filter(status="open").count() == 2  # X and Z
    bad = admin.post("/kpi/competitors/", {"undercut_threshold": "abc"}, follow=True)
    assert "undercut_threshold" in bad.content.decode()
    viewer = world_a.portal(Client(), "viewer")
    assert viewer.post("/kpi/competitors/", {"undercut_threshold": "50"}).status_code == 403
    admin.post("/kpi/competitors/", {"undercut_threshold": ""})
    with tenant_context(world_a.tenant):
        assert AlertPolicy.objects.get().undercut_threshold is None


def test_the_undercut_page_lists_and_filters_the_alerts(world_a, market):
    with tenant_context(world_a.tenant):
        undercuts.evaluate()
    client = world_a.portal(Client(), "viewer")
    html = client.get("/kpi/competitors/undercuts/").content.decode()
    assert "GREEN" in html and "20 % cheaper than us" in html and "1 alert" in html
    # the nav's badge counts the open ones
    assert re.search(r'id="open-undercuts"[^>]*>1<', html)
    assert (
        "0 alerts"
        in client.get("/kpi/competitors/undercuts/", {"competitor": "Rival Z"}).content.decode()
    )
    assert "0 alerts" in client.get("/kpi/competitors/undercuts/", {"q": "black"}).content.decode()
    assert (
        "1 alert" in client.get("/kpi/competitors/undercuts/", {"q": "green tea"}).content.decode()
    )
    assert (
        "0 alerts"
        in client.get("/kpi/competitors/undercuts/", {"status": "resolved"}).content.decode()
    )
    assert client.post("/kpi/competitors/undercuts/").status_code == 403  # a viewer's check
    checked = world_a.portal(Client(), "admin").post("/kpi/competitors/undercuts/", follow=True)
    assert "Checked: 0 new, 1 still open, 0 cleared." in checked.content.decode()


def test_the_sku_section_shows_the_offers_in_force_and_the_alert(world_a, market):
    with tenant_context(world_a.tenant):
        undercuts.evaluate()
    client = world_a.portal(Client(), "viewer")
    green = market["green"]
    fragment = client.get(f"/kpi/competitors/sku/{green.pk}/", HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert "<html" not in html  # loaded into the SKU page
    rows = re.findall(r"<tr[^>]*>.*?</tr>", html.split('id="sku-offers"')[1], re.S)[1:]
    assert len(rows) == 2  # X and Z; Y's 20-day-old offer is not in force
    assert (
        "Rival X" in rows[0] and "20 % cheaper than us" in rows[0] and "undercut alert" in rows[0]
    )
    assert "https://x.example.com/green" in rows[0]
    assert "Rival Z" in rows[1] and "2 % cheaper than us" in rows[1]
    assert "Rival Y" not in html
    # without JavaScript: a page of its own
    assert "<html" in client.get(f"/kpi/competitors/sku/{green.pk}/").content.decode()
    # the SKU page loads it
    sku_page = client.get(f"/pricing/sku/{green.pk}/").content.decode()
    assert f'hx-get="/kpi/competitors/sku/{green.pk}/"' in sku_page


def test_another_tenant_sees_nothing_of_the_competitors_and_a_sees_its_own(
    world_a, world_b, market
):
    with tenant_context(world_a.tenant):
        undercuts.evaluate()
    b = world_b.portal(Client(), "owner")
    for path in ("/kpi/competitors/", "/kpi/competitors/undercuts/?status=all"):
        html = b.get(path).content.decode()
        assert "Rival X" not in html and "GREEN" not in html, path
        assert "Rival X" in world_a.portal(Client(), "viewer").get(path).content.decode(), path
    assert b.get(f"/kpi/competitors/sku/{market['green'].pk}/").status_code == 404
    b.post("/kpi/competitors/undercuts/")  # B's check leaves A's alert alone
    with tenant_context(world_a.tenant):
        assert UndercutAlert.objects.get().status == "open"
