"""The portal in a real browser (Debian's Chromium driven by Playwright): log in, see the
team, create an API key, switch tenant. Saves screenshots for a person to look at."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from tenants.roles import Role
from tests.factories import MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
MISSING_CHROMIUM = (
    "the browser tests drive the system Chromium at {path}, which this machine lacks: install "
    "it (Debian: sudo apt-get install chromium) or set CHROMIUM_PATH to a Chromium or "
    "Chrome binary"
)
SHOTS = Path(
    os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parents[2] / "benchmarks" / "out")
)


def chromium_or_fail(path: str) -> str:
    if not os.access(path, os.X_OK):
        pytest.fail(MISSING_CHROMIUM.format(path=path), pytrace=False)
    return path


def test_without_chromium_the_browser_tests_say_what_to_install(tmp_path):
    with pytest.raises(pytest.fail.Exception, match=r"sudo apt-get install chromium"):
        chromium_or_fail(str(tmp_path / "no-chromium"))


@pytest.fixture
def owner_in_two_tenants(world_a, world_b):
    owner = world_a.users[Role.OWNER]
    MembershipFactory(tenant=world_b.tenant, user=owner, role=Role.VIEWER)
    return owner


@pytest.fixture
def page(live_server):
    """A browser page. Request this fixture last: all database set-up must happen before it,
    since Playwright's event loop in this thread would give Django a different connection."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    chromium_or_fail(CHROMIUM)
    connections.close_all()

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop runs in this thread
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.base = live_server.url
        yield page
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_owner_logs_in_creates_key_and_switches_tenant(world_b, owner_in_two_tenants, page):
    owner = owner_in_two_tenants
    SHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(page.base + "/")
    page.fill("input[name=username]", owner.email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Alpha Store')")
    # The registry-installed library loads (deferred, so wait for it rather than race it).
    page.wait_for_function("typeof htmx === 'object'", timeout=10_000)

    page.click("nav >> text=Team")
    page.wait_for_selector("#members")
    assert page.locator("#members tbody tr").count() == 5
    page.screenshot(path=str(SHOTS / "portal_team.png"), full_page=True)

    page.click("nav >> text=API keys")
    page.fill("input[name=name]", "Shopify connector")
    page.select_option("select[name=role]", "analyst")
    page.click("button:has-text('Create key')")
    key = page.text_content("#new-key").strip()
    assert key.startswith("pk_")
    page.screenshot(path=str(SHOTS / "portal_api_key.png"), full_page=True)

    with page.expect_navigation():
        page.select_option("#tenant-switch", world_b.tenant.slug)
    page.wait_for_selector("h1:has-text('Bravo Store')")
    assert "Viewer" in page.text_content(".who")
    assert page.locator("nav >> text=API keys").count() == 0  # a viewer does not manage keys


@pytest.fixture
def analyst_user(world_a):
    return world_a.users[Role.ANALYST]


def test_analyst_uploads_maps_columns_and_reads_the_report(world_a, analyst_user, page, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    csv_path = tmp_path / "shop-export.csv"
    csv_path.write_text(
        "Artikel;Name;Preis\nA-1;Wool socks;4,50\nA-2;Cotton cap;0\n", encoding="utf-8"
    )
    page.goto(page.base + "/accounts/login/")
    page.fill("input[name=username]", analyst_user.email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.click("nav >> text=Imports")
    page.select_option("select[name=kind]", "products")
    page.set_input_files("input[name=file]", str(csv_path))
    page.check("input[name=decimal_comma]")
    page.click("button:has-text('Upload and check')")
    page.wait_for_selector("h2:has-text('Map your columns')")
    assert "Wool socks" in page.text_content("body")  # the preview
    page.select_option("select[name=map_0]", "sku")
    page.select_option("select[name=map_1]", "title")
    page.select_option("select[name=map_2]", "price")
    page.screenshot(path=str(SHOTS / "portal_import_mapping.png"), full_page=True)
    page.click("button:has-text('Import with this mapping')")
    page.wait_for_selector("h2:has-text('Validation report')", timeout=20_000)
    report = page.text_content("section:has(h2:has-text('Validation report')) table")
    assert "must be greater than 0" in report and "price" in report
    page.screenshot(path=str(SHOTS / "portal_import_report.png"), full_page=True)


def test_approver_reviews_and_bulk_approves(repriced, page):
    from pricing_saas.pricing.models import Recommendation
    from tenants.context import tenant_context

    SHOTS.mkdir(parents=True, exist_ok=True)
    approver = repriced.users[Role.APPROVER]
    page.goto(page.base + "/accounts/login/")
    page.fill("input[name=username]", approver.email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("#tile-pending")
    waiting = int(page.text_content("#tile-pending .figure"))
    assert waiting > 3
    page.screenshot(path=str(SHOTS / "portal_dashboard.png"), full_page=True)

    page.click("nav >> text=Recommendations")
    page.wait_for_selector("#recommendations tbody tr")
    rows = page.locator("#recommendations tbody input[name=ids]")
    assert rows.count() == waiting
    for i in range(3):
        rows.nth(i).check()
    page.fill("#bulk-form input[name=comment]", "reviewed in the browser")
    page.screenshot(path=str(SHOTS / "portal_recommendations.png"), full_page=True)
    with page.expect_navigation():
        page.click("#bulk-approve")
    page.wait_for_selector("#bulk-summary")  # ticked rows too: the summary first
    assert int(page.text_content("#summary-count")) == 3
    assert "you ticked" in page.text_content("#summary-filters")
    with tenant_context(repriced.tenant):
        assert not Recommendation.objects.filter(status="approved").exists()
    page.click("#confirm-bulk")
    page.wait_for_selector(".messages li.success:has-text('3 recommendations approved')")
    assert page.locator("#recommendations tbody input[name=ids]").count() == waiting - 3

    with tenant_context(repriced.tenant):
        approved = list(Recommendation.objects.filter(status="approved"))
    assert len(approved) == 3
    assert {r.decided_by for r in approved} == {approver.email}
    assert {r.comment for r in approved} == {"reviewed in the browser"}

    page.goto(page.base + f"/pricing/sku/{approved[0].product_id}/")
    page.wait_for_function("typeof Chart === 'function'", timeout=10_000)
    page.wait_for_function("Chart.getChart('curve-chart') !== undefined", timeout=10_000)
    assert "Demand falls" in page.text_content("#explanation")
    page.screenshot(path=str(SHOTS / "portal_sku.png"), full_page=True)


PHONE = {"width": 390, "height": 844}


def log_in(page, user) -> None:
    page.goto(page.base + "/accounts/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")


def at_width(page, width: int):
    """Set the screen to `width` (a phone's height under 500 px) and return the check that the
    page is no wider than the screen."""
    page.set_viewport_size({"width": width, "height": 900 if width > 500 else PHONE["height"]})

    def fits():
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width + 1, f"{page.url} is {wide}px wide on a {width}px screen"

    return fits


def looked_at(page, fits, name: str) -> None:
    """The page as it stands: no wider than the screen, nothing serious for axe, and a
    screenshot for a person."""
    fits()
    assert not axe_problems(page)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_phone_sized_screen_shows_the_pages_without_widening_them(world_a, page):
    """At 390 px the navigation is a strip above the page and wide tables scroll in their own
    box: no page is wider than the screen."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(PHONE)
    page.goto(page.base + "/accounts/login/")
    page.fill("input[name=username]", world_a.users[Role.OWNER].email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Alpha Store')")
    for path in ("/", "/team/", "/audit/", "/kpi/alerts/", "/pricing/recommendations/"):
        page.goto(page.base + path)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= PHONE["width"] + 1, f"{path} is {wide}px wide on a {PHONE['width']}px screen"
        nav = page.locator("nav.sidenav").bounding_box()
        assert nav["height"] < 120, f"{path}: the navigation is {nav['height']}px tall"
    page.goto(page.base + "/team/")
    page.screenshot(path=str(SHOTS / "portal_phone_team.png"), full_page=True)


@pytest.mark.parametrize("width", [1400, PHONE["width"]])
def test_approver_sorts_searches_and_approves_all_matching_after_the_summary(repriced, width, page):
    """The review of many changes: sort by a column (its header says the order), search,
    then approve all matching only after the summary of what it does, publish them after the
    preview of what goes out, and open the publication to see its changes; at a desktop width
    and at a phone's, where the page never gets wider than the screen."""
    from pricing_saas.pricing.models import Publication, Recommendation
    from tenants.context import tenant_context

    SHOTS.mkdir(parents=True, exist_ok=True)
    fits = at_width(page, width)

    log_in(page, repriced.users[Role.APPROVER])
    page.wait_for_selector("#tile-pending")
    page.click("nav >> text=Recommendations")
    page.wait_for_selector("#recommendations tbody tr")

    with page.expect_navigation():
        page.click("#recommendations th a[data-sort=change]")
    header = page.locator("#recommendations th:has(a[data-sort=change])")
    assert header.get_attribute("aria-sort") == "descending"  # figures: the largest first
    changes = [
        float(t.strip().rstrip("%"))
        for t in page.locator("#recommendations tbody tr td:nth-child(6)").all_text_contents()
    ]
    assert changes == sorted(changes, reverse=True) and len(changes) > 3
    with page.expect_navigation():
        page.click("#recommendations th a[data-sort=change]")
    assert header.get_attribute("aria-sort") == "ascending"
    fits()

    page.fill("#filters input[name=q]", "p1")
    with page.expect_navigation():
        page.click("#filters button[type=submit]")
    skus = page.locator("#recommendations tbody tr td:nth-child(2)").all_text_contents()
    assert skus and all(s.strip().startswith("P1") for s in skus)
    assert "sort=change" in page.url and "q=p1" in page.url  # the sort survives the search
    page.screenshot(path=str(SHOTS / f"portal_recommendations_sorted_{width}.png"), full_page=True)
    fits()

    page.check("#scope-filtered")
    page.fill("#bulk-form input[name=comment]", "all of P1")
    with page.expect_navigation():
        page.click("#bulk-approve")
    page.wait_for_selector("#bulk-summary")
    assert int(page.text_content("#summary-count")) == len(skus)
    up, down = int(page.text_content("#summary-up")), int(page.text_content("#summary-down"))
    assert up + down == len(skus)
    with tenant_context(repriced.tenant):
        assert not Recommendation.objects.filter(status="approved").exists()  # not yet
    page.screenshot(path=str(SHOTS / f"portal_bulk_confirm_{width}.png"), full_page=True)
    fits()

    with page.expect_navigation():
        page.click("#confirm-bulk")
    page.wait_for_selector(f".messages li.success:has-text('{len(skus)} recommendations approved')")
    with tenant_context(repriced.tenant):
        approved = list(Recommendation.objects.filter(status="approved").select_related("product"))
    assert sorted(r.product.sku for r in approved) == sorted(s.strip() for s in skus)
    assert {r.comment for r in approved} == {"all of P1"}

    # publish with the preview: what goes out, then only on confirmation
    page.click("nav >> text=Publications")
    with page.expect_navigation():
        page.click("#publish")
    page.wait_for_selector("#publish-summary")
    assert int(page.text_content("#summary-count")) == len(approved)
    up, down = int(page.text_content("#summary-up")), int(page.text_content("#summary-down"))
    assert up + down == len(approved)
    assert "CSV file" in page.text_content("#summary-publisher")
    with tenant_context(repriced.tenant):
        assert not Publication.objects.exists()  # not yet
    page.screenshot(path=str(SHOTS / f"portal_publish_confirm_{width}.png"), full_page=True)
    fits()
    with page.expect_navigation():
        page.click("#confirm-publish")
    page.wait_for_selector(".messages li.success:has-text('Publication')")
    with tenant_context(repriced.tenant):
        publication = Publication.objects.get()
    assert publication.status == "succeeded" and publication.changes == len(approved)

    # open the publication from the list: its changes, each with its status in words
    page.click("nav >> text=Publications")
    with page.expect_navigation():
        page.click(f"#publications a[aria-label='Open publication {publication.pk}']")
    page.wait_for_selector("#changes tbody tr")
    assert page.locator("#changes tbody tr").count() == len(approved)
    skus = page.locator("#changes tbody tr td:nth-child(1)").all_text_contents()
    assert sorted(s.strip() for s in skus) == sorted(r.product.sku for r in approved)
    statuses = set(page.locator("#changes tbody .status").all_text_contents())
    assert statuses == {"Published"}
    page.screenshot(path=str(SHOTS / f"portal_publication_{width}.png"), full_page=True)
    fits()


@pytest.fixture
def connected(world_a):
    """A connected shop with a finished sync that skipped something (no shop is called)."""
    from tests.factories import ConnectionFactory, SyncRunFactory

    connection = ConnectionFactory(
        tenant=world_a.tenant, name="Alpha Tea Shop", shop_url="https://alpha-tea.myshopify.com"
    )
    SyncRunFactory(
        tenant=world_a.tenant,
        connection=connection,
        status="succeeded",
        message="1 product, 0 orders; 1 skipped (see the report)",
        products=1,
        skipped=1,
        calls=3,
        report=[{"item": "variant gid://shopify/ProductVariant/9", "reason": "no SKU"}],
    )
    return connection


def test_admin_manages_a_connection_on_a_wide_and_a_phone_screen(world_a, connected, page):
    """The Connections page at 1400 px and at 390 px: the shop's state, the webhook address,
    the publishes switch and the disconnect confirmation; no page wider than the screen and
    no credential in it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(page.base + "/accounts/login/")
    page.fill("input[name=username]", world_a.users[Role.ADMIN].email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.click("nav >> text=Connections")
    card = page.locator(f"#connection-{connected.pk}")
    card.wait_for()
    assert "Alpha Tea Shop" in card.text_content()
    webhook = page.text_content(f"#connection-{connected.pk}-webhook")
    assert webhook.endswith(f"/webhooks/shopify/{world_a.tenant.slug}/{connected.pk}/")
    assert page.locator("#connect-form input[type=password]:visible").count() == 2  # Shopify's
    page.select_option("select[name=platform]", "woocommerce")
    assert page.is_visible("input[name=consumer_key]")
    assert not page.is_visible("input[name=access_token]")
    page.click(f"#connection-{connected.pk} summary:has-text('Disconnect')")
    assert "imported from it stay" in page.text_content(f"#disconnect-{connected.pk}-warning")
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 1400 + 1, f"/connections/ is {wide}px wide on a 1400px screen"
    page.screenshot(path=str(SHOTS / "portal_connections.png"), full_page=True)

    page.click(f"#connection-{connected.pk} button:has-text('Stop publishing prices here')")
    page.wait_for_selector(".messages li.success:has-text('no longer published')")
    assert page.text_content(f"#connection-{connected.pk}-publishes").strip() == "no"

    page.set_viewport_size(PHONE)
    for path in ("/connections/", f"/connections/{connected.pk}/"):
        page.goto(page.base + path)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= PHONE["width"] + 1, f"{path} is {wide}px wide on a {PHONE['width']}px screen"
        html = page.content()
        assert "shpat_secret_bravo_token" not in html and "bravo-app-secret" not in html
    page.click("summary:has-text('What was skipped')")
    assert "no SKU" in page.text_content("#runs")
    page.screenshot(path=str(SHOTS / "portal_phone_connection.png"), full_page=True)


@pytest.fixture
def competed(world_a):
    """A product at 10.00 whose competitor moved by one cent."""
    from tests.factories import CompetitorOfferFactory, ProductFactory

    product = ProductFactory(tenant=world_a.tenant, sku="CENT", price="10.00")
    for day, price in ((1, "10.00"), (2, "10.01"), (3, "10.00")):
        CompetitorOfferFactory(
            tenant=world_a.tenant,
            product=product,
            price=price,
            observed_at=dt.datetime(2026, 3, day, tzinfo=dt.UTC),
        )
    return product


def test_a_one_cent_competitor_move_looks_like_one_cent(world_a, competed, page):
    """The competitor chart's price axis spans at least a fifth of the price, so a one-cent
    move is a ripple, not a cliff."""
    page.goto(page.base + "/accounts/login/")
    page.fill("input[name=username]", world_a.users[Role.OWNER].email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Alpha Store')")
    page.goto(page.base + f"/pricing/sku/{competed.pk}/")
    page.wait_for_function("typeof Chart === 'function'", timeout=10_000)
    page.wait_for_function("Chart.getChart('competitor-chart') !== undefined", timeout=10_000)
    low, high = page.evaluate(
        "(() => { const y = Chart.getChart('competitor-chart').scales.y; return [y.min, y.max]; })()"
    )
    assert high - low >= 2.0, (low, high)  # at least 20 % of 10.00 (was 10.00 to 10.01)
    assert low <= 10.0 <= high


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
MISSING_AXE = (
    "the accessibility checks inject axe-core from node_modules, which this checkout lacks: "
    "run `npm ci` (or `make setup`)"
)


def axe_problems(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it stands, one line each
    (the rule, what it says and the first elements it names)."""
    if not AXE.exists():
        pytest.fail(MISSING_AXE, pytrace=False)
    if not page.evaluate("typeof axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => `${v.id} (${v.impact}): ${v.help}: `"
        " + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')))"
    )
    return [f"{page.url}: {line}" for line in found]


@pytest.fixture
def furnished(repriced):
    """The repriced shop with something on every page: a published and a failed publication,
    a price test, a trained model, an import, a rule set, an alert, a connection."""
    from pricing_saas.pricing import approvals, publishing
    from pricing_saas.pricing.models import Recommendation
    from tenants.context import tenant_context
    from tests.factories import (
        AlertFactory,
        ConnectionFactory,
        ExperimentFactory,
        ImportJobFactory,
        ModelVersionFactory,
        PublicationFactory,
        RuleSetFactory,
    )

    tenant = repriced.tenant
    with tenant_context(tenant):
        ids = list(Recommendation.objects.values_list("pk", flat=True)[:3])
        approvals.bulk_decide(approve=True, ids=ids, comment="axe")
        publication = publishing.publish(enqueue=False)
        publishing.run_publication(publication_id=publication.pk)
    PublicationFactory(tenant=tenant, message="the shop was down")
    ExperimentFactory(tenant=tenant, name="Tea at 5 % more")
    ModelVersionFactory(
        tenant=tenant, kind="text", metrics={"chosen": "baseline", "baseline": {"rmsle": 0.3}}
    )
    ImportJobFactory(tenant=tenant, original_name="shop-export.csv")
    RuleSetFactory(tenant=tenant)
    AlertFactory(tenant=tenant)
    ConnectionFactory(tenant=tenant, name="Alpha Tea Shop")
    return repriced


@pytest.mark.parametrize("width", [1400, PHONE["width"]])
def test_axe_finds_no_serious_problem_on_any_page(furnished, width, page):
    """Every page of the sidebar and every kind of detail page (SKU, job, publication, price
    test, import, rule set, connection), at a desktop's and a phone's width: axe-core finds
    no serious or critical violation (contrast, labels, landmarks, names of buttons and
    links). The API docs are Swagger UI's page, not ours, and are left out."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": 900 if width > 500 else PHONE["height"]})
    page.goto(page.base + "/accounts/login/")
    assert not axe_problems(page)
    page.fill("input[name=username]", furnished.users[Role.OWNER].email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("#tile-pending")
    hrefs = page.eval_on_selector_all(
        "nav.sidenav a", "links => links.map(a => a.getAttribute('href'))"
    )
    paths = [h for h in hrefs if not h.startswith("/api/")]
    assert len(paths) >= 15, paths
    details = {
        "/pricing/recommendations/": "#recommendations a[href^='/pricing/sku/']",
        "/pricing/jobs/": "a[href^='/pricing/jobs/'][href$='/']:not([href='/pricing/jobs/'])",
        "/pricing/publications/": "#publications a[aria-label^='Open publication']",
        "/experiments/": "a[href^='/experiments/'][href$='/']:not([href='/experiments/'])",
        "/catalog/imports/": "a[href^='/catalog/imports/'][href$='/']"
        ":not([href='/catalog/imports/'])",
        "/pricing/rules/": "a[href^='/pricing/rules/'][href$='/']"
        ":not([href='/pricing/rules/']):not([href='/pricing/rules/new/'])",
        "/connections/": "a[href^='/connections/'][href$='/']:not([href='/connections/'])",
    }
    problems = []
    for path in paths:
        page.goto(page.base + path)
        problems += axe_problems(page)
        name = path.strip("/").replace("/", "_") or "dashboard"
        page.screenshot(path=str(SHOTS / f"portal_axe_{name}_{width}.png"), full_page=True)
        if path in details:
            link = page.locator(details[path]).first
            assert link.count(), f"{path}: no detail page to open ({details[path]})"
            with page.expect_navigation():
                link.click()
            problems += axe_problems(page)
            page.screenshot(path=str(SHOTS / f"portal_axe_{name}_detail_{width}.png"))
    assert not problems, "\n".join(problems)


@pytest.fixture
def retrained(repriced):
    """The repriced shop with a second demand model in force: the first is ready to be put
    back in force (a promotion the audit log must show)."""
    from ml.models import ModelVersion
    from ml.services import run_training, start_training
    from tenants.context import tenant_context

    with tenant_context(repriced.tenant):
        version = start_training(kind="demand", enqueue=False)
        run_training(version_id=version.pk, sync=True)
        statuses = dict(ModelVersion.objects.filter(kind="demand").values_list("status", "version"))
    assert sorted(statuses) == ["promoted", "ready"], statuses
    repriced.demand_versions = statuses
    return repriced


@pytest.mark.parametrize("width", [1400, PHONE["width"]])
def test_journey_filter_tick_publish_roll_back_rules_and_a_promotion_in_the_audit(
    retrained, width, page
):
    """The rest of a pricing manager's journey, at a desktop's and a phone's width: filter by
    why the price moved, tick rows and approve them after the summary, publish after the
    preview, open the publication, roll its job back after the preview; a rule set from the
    category picker with the live count of the SKUs it takes in; a model put back in force
    and seen in the audit log. No page is wider than the screen, and axe finds nothing
    serious on the pages the journey adds."""
    from pricing_saas.catalog.models import Product
    from pricing_saas.pricing.models import PriceChange, Publication, Recommendation, RuleSet
    from pricing_saas.pricing.selectors import REASONS
    from tenants.context import tenant_context

    SHOTS.mkdir(parents=True, exist_ok=True)
    world = retrained
    with tenant_context(world.tenant):
        reasons = {}
        for rules in Recommendation.objects.filter(status="pending").values_list(
            "binding_rules", flat=True
        ):
            for rule in rules or []:
                reasons[rule] = reasons.get(rule, 0) + 1
        in_a = Product.objects.filter(category="a", active=True).count()
    reason = max((r for r in reasons if r in REASONS), key=reasons.get)
    fits = at_width(page, width)

    log_in(page, world.users[Role.OWNER])
    page.wait_for_selector("#tile-pending")

    # filter by the reason, in words; tick two rows; the summary, then the approval
    page.click("nav >> text=Recommendations")
    page.select_option("#filters select[name=reason]", reason)
    with page.expect_navigation():
        page.click("#filters button[type=submit]")
    shown = page.locator("#recommendations tbody .reasons").all_text_contents()
    assert len(shown) == reasons[reason]
    assert all(REASONS[reason] in words for words in shown)
    boxes = page.locator("#recommendations tbody input[name=ids]")
    ticked = sorted(int(boxes.nth(i).get_attribute("value")) for i in range(2))
    for i in range(2):
        boxes.nth(i).check()
    with page.expect_navigation():
        page.click("#bulk-approve")
    page.wait_for_selector("#bulk-summary")
    assert int(page.text_content("#summary-count")) == 2
    looked_at(page, fits, f"portal_journey_ticked_summary_{width}")
    with page.expect_navigation():
        page.click("#confirm-bulk")
    page.wait_for_selector(".messages li.success:has-text('2 recommendations approved')")
    assert "reason=" in page.url  # back to the filtered list
    with tenant_context(world.tenant):
        approved = sorted(
            Recommendation.objects.filter(status="approved").values_list("pk", flat=True)
        )
    assert approved == ticked

    # publish after the preview; open the publication; roll its job back after the preview
    page.click("nav >> text=Publications")
    with page.expect_navigation():
        page.click("#publish")
    assert int(page.text_content("#summary-count")) == 2
    with page.expect_navigation():
        page.click("#confirm-publish")
    page.wait_for_selector(".messages li.success:has-text('Publication')")
    with tenant_context(world.tenant):
        publication = Publication.objects.get()
    page.click("nav >> text=Publications")
    with page.expect_navigation():
        page.click(f"#publications a[aria-label='Open publication {publication.pk}']")
    assert page.locator("#changes tbody tr").count() == 2
    with tenant_context(world.tenant):
        job_id = PriceChange.objects.filter(publication=publication).first().job_id
    page.goto(page.base + f"/pricing/jobs/{job_id}/")
    page.fill("input[name=comment]", "undo the two")
    with page.expect_navigation():
        page.click("#rollback-job")
    page.wait_for_selector("#rollback-summary")
    assert int(page.text_content("#summary-count")) == 2
    with tenant_context(world.tenant):
        assert not PriceChange.objects.filter(kind="rollback").exists()  # not yet
    looked_at(page, fits, f"portal_journey_rollback_{width}")
    with page.expect_navigation():
        page.click("#confirm-rollback")
    page.wait_for_selector(".messages li.success")
    with tenant_context(world.tenant):
        assert PriceChange.objects.filter(kind="rollback", status="published").count() == 2

    # a rule set from the category picker, with the count before saving
    page.click("nav >> text=Rules")
    page.goto(page.base + "/pricing/rules/new/")
    assert page.is_hidden("#category-picker")  # the scope "all" needs no categories
    page.fill("input[name=name]", "Category a")
    page.select_option("select[name=scope]", "category")
    assert page.is_visible("#category-picker")
    page.wait_for_selector("#scope-preview:has-text('Name the category values')")
    page.check("#category-picker input[value=a]")
    page.wait_for_selector(f"#scope-count:text-is('{in_a}')")
    page.fill("textarea[name=scope_values]", "eggs")
    page.wait_for_selector("#scope-unmatched:has-text('eggs')")
    assert page.text_content("#scope-count") == str(in_a)  # "a" still counts
    page.uncheck("#category-picker input[value=a]")
    page.wait_for_selector("#scope-count:text-is('0')")
    assert "warning" in page.get_attribute("#scope-count >> xpath=..", "class")
    looked_at(page, fits, f"portal_journey_rule_{width}")
    page.fill("textarea[name=scope_values]", "")
    page.check("#category-picker input[value=a]")
    page.wait_for_selector(f"#scope-count:text-is('{in_a}')")
    with page.expect_navigation():
        page.click("#rule-form button[type=submit]")
    page.wait_for_selector(f".messages li.success:has-text('applies to {in_a} SKUs')")
    with tenant_context(world.tenant):
        assert RuleSet.objects.get(name="Category a").scope_values == ["a"]

    # the earlier demand model back in force; the audit log says so
    page.click("nav >> text=Models")
    with page.expect_navigation():
        page.click("#demand ~ table button:has-text('Promote')")
    page.wait_for_selector(".messages li.success")
    page.click("nav >> text=Audit log")
    row = page.locator("#audit tbody tr:has(code:text-is('model.promoted'))").first
    back, was = world.demand_versions["ready"], world.demand_versions["promoted"]
    assert f"Demand v{back} in force (was v{was})" in row.text_content()
    fits()
    page.screenshot(path=str(SHOTS / f"portal_journey_audit_{width}.png"), full_page=True)
