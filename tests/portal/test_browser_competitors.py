"""The competitor view in a real browser (the system Chromium through Playwright), at a desktop
width and at a phone's: the Competitors page with its price-index chart and moves, the undercut
threshold set as a percentage, the undercut alerts filtered, the SKU page's offers in force;
never wider than the screen, tables scrolling in their card, the technical terms shown on
keyboard focus. Screenshots go to SCREENSHOT_DIR (benchmarks/out by default, not committed)."""

from __future__ import annotations

import datetime as dt

import pytest

from tenants.roles import Role
from tests.portal.test_browser import PHONE, SHOTS, page  # noqa: F401  (the browser fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rivals(world_a):
    """GREEN at 10.00 undercut by Rival X (9.00, then 8.00) and barely by Rival Z (9.80);
    BLACK at 20.00 where X asks 22.00; our GREEN change followed X's move."""
    from django.utils import timezone

    from tests.factories import (
        CompetitorOfferFactory,
        PriceChangeFactory,
        ProductFactory,
        RecommendationFactory,
        RepriceJobFactory,
        SalesRecordFactory,
    )

    t, now = world_a.tenant, timezone.now()
    day = dt.timedelta(days=1)
    green = ProductFactory(tenant=t, sku="GREEN", title="Green tea", price="10.00")
    black = ProductFactory(tenant=t, sku="BLACK", title="Black tea", price="20.00")
    for product, revenue in ((green, "300.00"), (black, "100.00")):
        SalesRecordFactory(tenant=t, product=product, date=now.date() - 3 * day, revenue=revenue)
    offer = CompetitorOfferFactory
    offer(tenant=t, product=green, competitor="Rival X", price="9.00", observed_at=now - 2 * day)
    move = offer(tenant=t, product=green, competitor="Rival X", price="8.00",
                 observed_at=now - day, url="https://x.example.com/green")  # fmt: skip
    offer(tenant=t, product=green, competitor="Rival Z", price="9.80", observed_at=now - day)
    offer(tenant=t, product=black, competitor="Rival X", price="22.00", observed_at=now - day)
    job = RepriceJobFactory(tenant=t)
    rec = RecommendationFactory(tenant=t, job=job, product=green, current_price="10.50",
                                recommended_price="10.00", competitor_name="Rival X")  # fmt: skip
    PriceChangeFactory(tenant=t, product=green, recommendation=rec, job=job, old_price="10.50",
                       new_price="10.00", published_at=move.observed_at + dt.timedelta(hours=2))  # fmt: skip
    return green


def _log_in(tab, user):
    tab.goto(tab.base + "/accounts/login/")
    tab.fill("input[name=username]", user.email)
    tab.fill("input[name=password]", "correct horse battery")
    tab.click("button[type=submit]")
    tab.wait_for_selector("h1:has-text('Alpha Store')")


def _fits(tab, width: int, what: str) -> None:
    wide = tab.evaluate("document.documentElement.scrollWidth")
    culprits = tab.evaluate(
        f"""[...document.querySelectorAll('body *')].filter(e => {{
            if (e.getBoundingClientRect().right <= {width + 1}) return false;
            for (let p = e.parentElement; p; p = p.parentElement)
                if (getComputedStyle(p).overflowX !== 'visible') return false;
            return true;
        }}).slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className)"""
    )
    assert wide <= width + 1, f"{what} is {wide}px wide on a {width}px screen: {culprits}"


@pytest.mark.parametrize("width", [1400, PHONE["width"]])
def test_admin_reads_the_competitors_sets_the_threshold_and_finds_the_undercut(
    world_a,
    rivals,
    width,
    page,  # noqa: F811
):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": 900 if width > 500 else PHONE["height"]})
    _log_in(page, world_a.users[Role.ADMIN])

    page.click("nav >> text=Competitors")
    page.wait_for_selector("h1:has-text('Competitors')")
    page.wait_for_function("typeof Chart === 'function'", timeout=10_000)
    page.wait_for_function("Chart.getChart('index-chart') !== undefined", timeout=10_000)
    lines = page.evaluate(
        "Chart.getChart('index-chart').data.datasets.map(d => [d.label, d.data.at(-1)])"
    )
    assert dict(lines) == {"Rival X": 87.5, "Rival Z": 98.0}
    x_row = page.locator("#competitors-table tbody tr", has_text="Rival X")
    assert "12.5 % cheaper than us on average" in x_row.text_content()
    _fits(page, width, "the Competitors page")
    # the plain-words header shows its technical term on keyboard focus
    term = page.locator("abbr.cv-term", has_text="Their prices against ours")
    term.focus()
    shown = term.evaluate("el => getComputedStyle(el, '::after').content")
    assert "Price index" in shown
    # the move and the change of ours that followed it
    move = page.locator("#moves-table tbody tr", has_text="GREEN")
    assert "cites them" in move.text_content() and "10.50 → 10.00" in move.text_content()
    page.screenshot(path=str(SHOTS / f"competitors_{width}.png"), full_page=True)

    # the threshold, typed as a percentage in its labelled field
    page.get_by_label("Alert when a competitor's in-stock offer is more than").fill("1")
    page.click("#save-threshold")
    page.wait_for_selector(".messages li.success:has-text('Undercut alerts above 1 %')")
    page.wait_for_selector("#open-undercuts:has-text('2')")  # X and Z, in the nav's badge

    page.click("main > p a:has-text('Undercut alerts')")
    page.wait_for_selector("#undercuts-table")
    assert page.locator("#undercuts-table tbody tr").count() == 2
    page.select_option("#uc-competitor", "Rival Z")
    page.click("#undercut-filters button[type=submit]")
    page.wait_for_selector("#undercuts-table tbody tr:has-text('2 % cheaper than us')")
    assert page.locator("#undercuts-table tbody tr").count() == 1
    _fits(page, width, "the undercut alerts")
    page.screenshot(path=str(SHOTS / f"competitors_undercuts_{width}.png"), full_page=True)

    # the SKU page loads its offers in force, the undercut marked
    page.click("#undercuts-table tbody a:has-text('GREEN')")
    page.wait_for_selector("#sku-offers tbody tr")
    rows = page.locator("#sku-offers tbody tr")
    assert rows.count() == 2
    assert "20 % cheaper than us" in rows.nth(0).text_content()
    assert "undercut alert" in rows.nth(0).text_content()
    assert "2 % cheaper than us" in rows.nth(1).text_content()
    _fits(page, width, "the SKU page")
    if width == PHONE["width"]:  # the table scrolls inside its card, not the page
        box = page.evaluate(
            "(() => { const s = document.querySelector('#competitor-offers .scroll');"
            " return [s.scrollWidth, s.clientWidth]; })()"
        )
        assert box[0] > box[1], box
    page.locator("#competitor-offers").screenshot(path=str(SHOTS / f"sku_offers_{width}.png"))


def test_the_competitor_pages_are_reached_and_used_by_keyboard(world_a, rivals, page):  # noqa: F811
    _log_in(page, world_a.users[Role.VIEWER])
    page.goto(page.base + "/kpi/competitors/")
    page.wait_for_selector("#moves-table")
    # Tab reaches the moves filter; a choice and Enter filter the moves
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "move-competitor":
            break
    else:
        pytest.fail("Tab never reached the competitor filter")
    page.keyboard.press("ArrowDown")  # "all" -> the first competitor
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Show"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "competitor=Rival+X" in page.url
    assert page.locator("#moves-table tbody tr", has_text="GREEN").count() == 1
    assert page.locator("#undercut-threshold").count() == 0  # a viewer has no form
