"""The pricing pages of the portal (`pricing_saas/pricing/views.py`): every page renders
with data, bad input answers with a message and changes nothing, roles decide what is shown
and allowed, the kill-switch banner."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils.html import escape

from pricing_saas.catalog.models import Product
from pricing_saas.pricing.models import Publication, Recommendation, RepriceSchedule, RuleSet
from tenants.context import tenant_context
from tenants.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def client_for(world, role=Role.OWNER) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


def test_every_pricing_page_renders(repriced):
    client = client_for(repriced)
    with tenant_context(repriced.tenant):
        rec = Recommendation.objects.filter(status="pending").first()
        job = rec.job
    for path in [
        "/",
        "/pricing/recommendations/",
        "/pricing/recommendations/?status=&min_change=1",
        f"/pricing/sku/{rec.product_id}/",
        "/pricing/rules/",
        "/pricing/rules/new/",
        "/pricing/jobs/",
        f"/pricing/jobs/{job.pk}/",
        "/pricing/publications/",
        "/pricing/settings/",
        "/audit/",
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
    page = client.get(f"/pricing/sku/{rec.product_id}/").content.decode()
    assert "curve-chart" in page and "chart.umd.min.js" in page and rec.explanation[:20] in page


def test_review_approve_publish_and_rollback_in_the_portal(repriced):
    client = client_for(repriced, Role.ADMIN)
    with tenant_context(repriced.tenant):
        ids = list(Recommendation.objects.filter(status="pending").values_list("pk", flat=True))
    summary = client.post(
        "/pricing/recommendations/", {"action": "approve", "ids": ids[:2], "comment": "ok"}
    )
    assert summary.status_code == 200 and 'id="summary-count">2<' in summary.content.decode()
    response = client.post(
        "/pricing/recommendations/",
        {"action": "approve", "ids": ids[:2], "comment": "ok", "confirm": token_of(summary)},
    )
    assert response.status_code == 302
    response = client.post(
        f"/pricing/recommendations/{ids[2]}/decide/", {"action": "approve", "price": "0.01"}
    )
    assert response.status_code == 302
    with tenant_context(repriced.tenant):
        assert Recommendation.objects.get(pk=ids[2]).status == "pending"  # below the floor
    summary = client.post("/pricing/publications/")
    assert summary.status_code == 200 and 'id="summary-count">2<' in summary.content.decode()
    assert client.post("/pricing/publications/", {"confirm": token_of(summary)}).status_code == 302
    with tenant_context(repriced.tenant):
        publication = Publication.objects.get()
        job = Recommendation.objects.get(pk=ids[0]).job
    assert publication.status == "succeeded" and publication.published == 2
    download = client.get(f"/pricing/publications/{publication.pk}/download/")
    assert download.status_code == 200
    summary = client.post(f"/pricing/jobs/{job.pk}/rollback/", {"comment": "undo"})
    assert summary.status_code == 200
    client.post(
        f"/pricing/jobs/{job.pk}/rollback/", {"comment": "undo", "confirm": token_of(summary)}
    )
    with tenant_context(repriced.tenant):
        assert Publication.objects.filter(kind="rollback", status="succeeded").count() == 1
    audit = client_for(repriced).get("/audit/export/").content.decode()
    assert "rollback.create" in audit and "recommendation.bulk_approve" in audit
    with tenant_context(repriced.tenant):
        product_id = Recommendation.objects.get(pk=ids[0]).product_id
    card = client.get(f"/pricing/sku/{product_id}/").content.decode()
    assert "Published, then rolled back" in card


def test_bad_rules_and_schedules_show_a_message_and_change_nothing(world_a):
    client = client_for(world_a, Role.ANALYST)
    bad_rule = client.post(
        "/pricing/rules/new/",
        {"name": "Too big", "scope": "all", "priority": 0, "max_step": "300"},
    )
    assert bad_rule.status_code == 400
    assert (
        "Largest change per reprice (%) must be between 0.1 and 100 %" in bad_rule.content.decode()
    )
    bad_cron = client.post(
        "/pricing/schedules/", {"name": "x", "cron": "99 * * * *", "timezone": "UTC"}
    )
    assert bad_cron.status_code == 400 and "does not parse" in bad_cron.content.decode()
    bad_tz = client.post(
        "/pricing/schedules/", {"name": "x", "cron": "0 5 * * *", "timezone": "Moon/Base"}
    )
    assert bad_tz.status_code == 400 and "unknown timezone" in bad_tz.content.decode()
    with tenant_context(world_a.tenant):
        assert not RuleSet.objects.exists() and not RepriceSchedule.objects.exists()
    ok = client.post(
        "/pricing/schedules/",
        {"name": "Nightly", "cron": "0 3 * * *", "timezone": "UTC", "enabled": "on"},
    )
    assert ok.status_code == 302
    assert "Nightly" in client.get("/pricing/jobs/").content.decode()


def test_kill_switch_banner_on_every_page_and_publishing_refused(repriced):
    client = client_for(repriced, Role.APPROVER)
    client.post("/pricing/kill-switch/", {"on": "1", "reason": "supplier feed broken"})
    for path in ["/", "/pricing/recommendations/", "/catalog/", "/models/", "/team/"]:
        assert "Kill switch ON" in client.get(path).content.decode(), path
    with tenant_context(repriced.tenant):
        rec = Recommendation.objects.filter(status="pending").first()
    client.post(f"/pricing/recommendations/{rec.pk}/decide/", {"action": "approve"})
    response = client.post("/pricing/publications/", follow=True)
    assert "the kill switch is on" in response.content.decode()
    with tenant_context(repriced.tenant):
        assert not Publication.objects.exists()


def test_viewers_see_no_actions_and_cannot_post(repriced):
    client = client_for(repriced, Role.VIEWER)
    page = client.get("/pricing/recommendations/").content.decode()
    assert "bulk-approve" not in page
    with tenant_context(repriced.tenant):
        ids = list(Recommendation.objects.filter(status="pending").values_list("pk", flat=True))
    assert (
        client.post("/pricing/recommendations/", {"action": "approve", "ids": ids}).status_code
        == 403
    )
    assert client.post("/pricing/jobs/").status_code == 403
    assert client.post("/pricing/kill-switch/", {"on": "1"}).status_code == 403
    with tenant_context(repriced.tenant):
        assert Recommendation.objects.filter(status="approved").count() == 0


def test_portal_times_are_shown_in_the_tenants_timezone(world_a):
    import datetime as dt

    from pricing_saas.pricing.models import RepriceJob

    world_a.tenant.timezone = "Asia/Kolkata"
    world_a.tenant.save()
    with tenant_context(world_a.tenant):
        job = RepriceJob.objects.create(status="succeeded")
        RepriceJob.objects.filter(pk=job.pk).update(
            created_at=dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
        )
    page = client_for(world_a).get("/pricing/jobs/").content.decode()
    assert "2026-01-05 17:30" in page  # 12:00 UTC in India


def test_after_a_decision_next_never_leaves_the_site(repriced):
    client = client_for(repriced, Role.APPROVER)
    response = client.post(
        "/pricing/kill-switch/", {"on": "1", "next": "https://evil.example.com/"}
    )
    assert response.status_code == 302 and response["Location"] == "/pricing/settings/"
    response = client.post("/pricing/kill-switch/", {"on": "0", "next": "/pricing/jobs/"})
    assert response["Location"] == "/pricing/jobs/"


def test_a_rule_form_takes_percentages_and_says_how_many_skus_it_touches(repriced):
    client = client_for(repriced, Role.ANALYST)
    with tenant_context(repriced.tenant):
        category = Product.objects.exclude(category="").values_list("category", flat=True)[0]
        in_it = Product.objects.filter(category=category, active=True).count()
    saved = client.post(
        "/pricing/rules/new/",
        {"name": "Snacks", "scope": "category", "scope_values": f" {category.lower()} ",
         "priority": 1, "active": "on", "max_step": "20", "min_margin": "25"},
        follow=True,
    )  # fmt: skip
    page = saved.content.decode()
    assert f"applies to {in_it:,} SKU" in page
    with tenant_context(repriced.tenant):
        rule = RuleSet.objects.get(name="Snacks")
        assert (rule.max_step, rule.min_margin) == (Decimal("0.2"), Decimal("0.25"))
        # a lower-case scope value takes in the category whatever its case
        from pricing_saas.pricing.rules import resolve

        rows = list(Product.objects.values_list("sku", "category", "brand"))
        got = resolve([rule], [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        assert sum(1 for n in got.names if n == "Snacks") == in_it
    edit = client.get(f"/pricing/rules/{rule.pk}/").content.decode()
    assert 'value="20"' in edit and 'value="25"' in edit  # shown back as percentages
    typo = client.post(
        "/pricing/rules/new/",
        {"name": "Typo", "scope": "category", "scope_values": category + "x",
         "priority": 1, "active": "on"},
        follow=True,
    ).content.decode()  # fmt: skip
    assert "applies to 0 SKUs" in typo and "Nothing matches" in typo and "did you mean" in typo


def test_a_finished_jobs_figures_and_buttons_come_with_its_live_part(repriced):
    """The part the page re-reads every 2 s holds the figures and the Cancel button, so a job
    that ends shows its figures and loses its Cancel without a reload."""
    client = client_for(repriced, Role.ANALYST)
    with tenant_context(repriced.tenant):
        job = Recommendation.objects.first().job
    live = client.get(f"/pricing/jobs/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="job-summary"' in live and f"{job.skus} SKUs" in live and "Cancel" not in live


def test_a_second_schedule_form_does_not_copy_the_first(repriced):
    client = client_for(repriced, Role.ANALYST)
    client.post("/pricing/schedules/", {"name": "Nightly reprice", "cron": "0 3 * * *",
                                        "timezone": "UTC", "enabled": "on"})  # fmt: skip

    page = client.get("/pricing/jobs/").content.decode()
    for field in ("id_cron", "id_name"):  # the add form's inputs, not the schedule's own forms
        (tag,) = re.findall(rf'<input[^>]*id="{field}"[^>]*>', page)
        assert "value=" not in tag, tag


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_change", "NaN"),
        ("max_change", "Infinity"),
        ("min_change", "0x10"),
        ("min_profit_delta", "1e400"),
        ("max_change", "abc"),  # was dropped silently: "the filtered ones" became all of them
        ("job", "first"),
    ],
)
def test_bulk_reject_of_the_filtered_with_a_bad_number_shows_a_message_and_rejects_nothing(
    repriced, field, value
):
    client = client_for(repriced, Role.APPROVER)
    with tenant_context(repriced.tenant):
        pending = Recommendation.objects.filter(status="pending").count()
    response = client.post(
        "/pricing/recommendations/",
        {"action": "reject", "scope": "filtered", field: value},
        follow=True,
    )
    page = response.content.decode()
    assert field in page and ("finite" in page or "number" in page or "decimal" in page), page
    with tenant_context(repriced.tenant):
        assert Recommendation.objects.filter(status="pending").count() == pending
    listing = client.get("/pricing/recommendations/", {field: value}).content.decode()
    assert "Filters not applied" in listing and field in listing


# --- the recommendations page for a thousand changes: sort, search, filter, export, confirm --

ROW_SKU = re.compile(r'<a href="/pricing/sku/\d+/">([^<]+)</a>')


def skus_on(response) -> list[str]:
    """The SKUs of the recommendations table, in the order shown."""
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    table = html[html.index('id="recommendations"') :]
    return ROW_SKU.findall(table[: table.index("</table>")])


def recs_of(world, **filters) -> list[Recommendation]:
    with tenant_context(world.tenant):
        return list(
            Recommendation.objects.select_related("product").filter(**filters).order_by("pk")
        )


SORT_KEYS = {
    "sku": lambda r: r.product.sku,
    "title": lambda r: r.product.title,
    "price": lambda r: r.current_price,
    "new_price": lambda r: r.final_price,
    "change": lambda r: r.change,
    "gain": lambda r: r.profit_delta,
    "status": lambda r: r.status,
}


def expected_order(recs, key: str, descending: bool) -> list[str]:
    """Ties in id order, empty values last either way (as the page sorts)."""
    value = SORT_KEYS[key]
    known = sorted(
        (r for r in recs if value(r) is not None), key=value, reverse=descending
    )  # a stable sort: ties keep the id order
    return [r.product.sku for r in known + [r for r in recs if value(r) is None]]


def test_the_sortable_columns_are_exactly_the_whitelist():
    from pricing_saas.pricing import selectors, views

    assert set(SORT_KEYS) == set(selectors.SORTS)
    assert {key for key, _label, _numeric in views.COLUMNS} <= set(selectors.SORTS)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("key", sorted(SORT_KEYS))
def test_recommendations_sort_by_each_column_both_ways(repriced, key, descending):
    client = client_for(repriced, Role.VIEWER)
    sort = f"-{key}" if descending else key
    response = client.get(
        "/pricing/recommendations/", {"status": "", "sort": sort, "page_size": "250"}
    )
    recs = recs_of(repriced)
    assert len(recs) == 22
    assert skus_on(response) == expected_order(recs, key, descending)
    page = response.content.decode()
    (header,) = re.findall(
        rf'<th [^>]*aria-sort="(\w+)"[^>]*><a href="([^"]*)" data-sort="{key}"', page
    )
    assert header[0] == ("descending" if descending else "ascending")
    # the header toggles the order and keeps the filters and page size
    assert f"sort={key if descending else '-' + key}" in header[1]
    assert "page_size=250" in header[1] and "status=" in header[1]
    others = re.findall(r'aria-sort="(\w+)"', page)
    assert others.count("none") == len(SORT_KEYS) - 1


@pytest.mark.parametrize(
    "sort", ["evil", "-", "product__cost", "title; DROP TABLE x", "--gain", "pk", "?"]
)
def test_an_unknown_sort_is_ignored(repriced, sort):
    client = client_for(repriced, Role.VIEWER)
    default = skus_on(client.get("/pricing/recommendations/", {"status": ""}))
    assert skus_on(client.get("/pricing/recommendations/", {"status": "", "sort": sort})) == (
        default
    )
    assert default == expected_order(recs_of(repriced), "gain", descending=True)
    export = client.get("/pricing/recommendations/export.csv", {"status": "", "sort": sort})
    assert export.status_code == 200


def test_search_by_sku_or_title_whatever_the_case(repriced):
    client = client_for(repriced, Role.VIEWER)
    by_sku = skus_on(client.get("/pricing/recommendations/", {"status": "", "q": "p1"}))
    assert sorted(by_sku) == sorted(["P1", *[f"P1{i}" for i in range(10)]])
    by_title = skus_on(client.get("/pricing/recommendations/", {"status": "", "q": "no HIST"}))
    assert by_title == ["NEW"]
    pending = skus_on(client.get("/pricing/recommendations/", {"q": "product 1"}))
    assert set(pending) == {r.product.sku for r in recs_of(repriced, status="pending")} & {
        "P1",
        *[f"P1{i}" for i in range(10)],
    }
    assert skus_on(client.get("/pricing/recommendations/", {"q": "nothing like it"})) == []


def test_filter_by_the_reason_in_plain_words(repriced):
    from pricing_saas.pricing.selectors import REASONS

    client = client_for(repriced, Role.VIEWER)
    page = client.get("/pricing/recommendations/", {"status": ""}).content.decode()
    for code, label in REASONS.items():
        assert f'value="{code}"' in page and escape(label) in page
    assert ">min_gain<" not in page and ">uncertainty<" not in page  # no code as a label
    recs = recs_of(repriced)
    for reason in ("uncertainty", "min_gain", "conflict"):
        shown = skus_on(client.get("/pricing/recommendations/", {"status": "", "reason": reason}))
        expected = {r.product.sku for r in recs if reason in r.binding_rules}
        assert expected and set(shown) == expected, reason
    free = skus_on(client.get("/pricing/recommendations/", {"status": "", "reason": "none"}))
    assert set(free) == {r.product.sku for r in recs if not r.binding_rules}
    # the reason of each row is said in plain words in the Why column
    row = client.get("/pricing/recommendations/", {"q": "P0"}).content.decode()
    assert REASONS["uncertainty"] in row
    unknown = client.get("/pricing/recommendations/", {"reason": "made_up"}).content.decode()
    assert "Filters not applied" in unknown and "unknown reason" in unknown


@pytest.fixture
def many(repriced):
    """The repriced shop with 60 more pending recommendations (SKU M00..M59) of one job."""
    from tests.factories import ProductFactory, RecommendationFactory

    with tenant_context(repriced.tenant):
        job = Recommendation.objects.first().job
        for i in range(60):
            product = ProductFactory(tenant=repriced.tenant, sku=f"M{i:02d}", title=f"Mug {i}")
            RecommendationFactory(
                tenant=repriced.tenant, product=product, job=job, status="pending",
                current_price="10.00", recommended_price=f"{10 + (i % 7) - 3:.2f}",
                change=((i % 7) - 3) / 10, profit_delta=float(i), explanation=f"Mug reason {i}",
                binding_rules=["max_step"] if i % 2 else [],
            )  # fmt: skip
    return repriced


def test_page_size_and_pagination_links_keep_filters_and_sort(many):
    client = client_for(many, Role.VIEWER)
    for size, rows in [("25", 25), ("50", 50), ("100", 60), ("250", 60), ("7", 60), ("x", 60)]:
        shown = skus_on(client.get("/pricing/recommendations/", {"q": "m", "page_size": size}))
        assert len(shown) == rows, size  # an unknown size is the default (100)
    query = {"q": "m", "page_size": "25", "sort": "sku", "reason": "max_step"}
    first = client.get("/pricing/recommendations/", query)
    assert skus_on(first) == [f"M{i:02d}" for i in range(1, 50, 2)][:25]
    page = first.content.decode()
    (next_link,) = re.findall(r'<a href="\?([^"]*)">next', page)
    for part in ("q=m", "page_size=25", "sort=sku", "reason=max_step", "page=2"):
        assert part in next_link.replace("&amp;", "&"), part
    second = client.get("/pricing/recommendations/?" + next_link.replace("&amp;", "&"))
    assert skus_on(second) == [f"M{i:02d}" for i in range(1, 60, 2)][25:]
    # the filter form keeps the sort
    assert '<input type="hidden" name="sort" value="sku">' in page


def test_the_why_column_is_narrow_with_the_full_text_in_details(many):
    page = client_for(many, Role.VIEWER).get("/pricing/recommendations/", {"q": "M07"})
    html = page.content.decode()
    assert '<details class="why"><summary title="Mug reason 7">Mug reason 7</summary>' in html
    long = recs_of(many, product__sku="P0")[0].explanation
    html = client_for(many).get("/pricing/recommendations/", {"q": "P0"}).content.decode()
    assert len(long) > 70 and f'<summary title="{escape(long)}">' in html
    assert f"</summary>{escape(long)}</details>" in html


def export_rows_of(response) -> list[list]:
    import csv
    import io

    assert response.status_code == 200
    raw = b"".join(response.streaming_content)
    if raw.startswith(b"PK"):
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(raw)).active
        rows = [[c.value for c in row] for row in sheet.iter_rows()]
        return rows
    return list(csv.reader(io.StringIO(raw.decode())))


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_is_exactly_the_filtered_rows_with_safe_cells(many, fmt):
    from pricing_saas.pricing.selectors import EXPORT_HEADER

    formula = '=HYPERLINK("http://evil.example/","M03")'
    with tenant_context(many.tenant):
        Product.objects.filter(sku="M03").update(title=formula)
    client = client_for(many, Role.VIEWER)
    query = {"q": "m", "reason": "max_step", "sort": "-gain", "page_size": "25"}
    shown = skus_on(client.get("/pricing/recommendations/", {**query, "page_size": "250"}))
    assert len(shown) == 30
    rows = export_rows_of(client.get(f"/pricing/recommendations/export.{fmt}", query))
    assert rows[0] == EXPORT_HEADER
    assert [r[0] for r in rows[1:]] == shown  # every page of them, in the page's order
    title = {r[0]: r[1] for r in rows[1:]}["M03"]
    assert title == "'" + formula  # text, never a formula
    if fmt == "xlsx":
        import io

        from openpyxl import load_workbook

        raw = b"".join(client.get(f"/pricing/recommendations/export.{fmt}", query))
        sheet = load_workbook(io.BytesIO(raw)).active
        cells = {row[0].value: row[1] for row in sheet.iter_rows(min_row=2)}
        assert cells["M03"].data_type == "s"
        assert isinstance(cells["M05"].offset(column=4).value, (int, float))  # numbers stay
    row = {r[0]: r for r in rows[1:]}["M05"]
    assert row[3] == "Waiting for approval" and "Largest change per reprice" in row[11]
    assert row[11] != "max_step"
    assert client.get("/pricing/recommendations/export.pdf").status_code == 404
    bad = client.get("/pricing/recommendations/export.csv", {"max_change": "abc"})
    assert bad.status_code == 302  # a filter that does not parse exports nothing


def confirm_page(client, **fields):
    data = {"scope": "filtered", "action": "approve", **fields}
    data.setdefault("query", "")
    return client.post("/pricing/recommendations/", data)


def token_of(response) -> str:
    (token,) = re.findall(r'name="confirm" value="([0-9a-f]+)"', response.content.decode())
    return token


def test_approve_all_matching_shows_the_impact_first_then_approves_exactly_those(repriced):
    client = client_for(repriced, Role.APPROVER)
    matching = [r for r in recs_of(repriced, status="pending") if abs(r.change) >= 0.10]
    assert len(matching) >= 3
    summary = confirm_page(client, min_change="10", comment="big ones", query="min_change=10")
    assert summary.status_code == 200
    page = summary.content.decode()
    up = sum(1 for r in matching if r.recommended_price > r.current_price)
    down = sum(1 for r in matching if r.recommended_price < r.current_price)
    assert up and down and up + down == len(matching)
    assert f'id="summary-count">{len(matching)}<' in page
    assert f'id="summary-up">{up}<' in page and f'id="summary-down">{down}<' in page
    average = sum(r.change for r in matching) / len(matching) * 100
    assert f'id="summary-average">{average:+.1f} %<' in page
    profit = sum(r.profit_delta for r in matching)
    revenue = sum(r.expected_revenue - r.expected_revenue_now for r in matching)
    assert f'id="summary-profit">{profit:.2f} ' in page
    assert f'id="summary-revenue">{revenue:.2f} ' in page
    assert "the change is at least 10 %" in page
    assert len(recs_of(repriced, status="approved")) == 0  # nothing done yet
    done = confirm_page(
        client, min_change="10", comment="big ones", query="min_change=10",
        confirm=token_of(summary),
    )  # fmt: skip
    assert done.status_code == 302 and done["Location"].endswith("?min_change=10")
    approved = recs_of(repriced, status="approved")
    assert {r.pk for r in approved} == {r.pk for r in matching}
    assert {r.comment for r in approved} == {"big ones"}
    assert all(abs(r.change) < 0.10 for r in recs_of(repriced, status="pending"))
    # reject all matching goes through its own summary too (P3: a 7 % raise still pending)
    summary = confirm_page(client, action="reject", q="p3")
    assert summary.status_code == 200 and "Reject" in summary.content.decode()
    assert not recs_of(repriced, status="rejected")


def test_a_set_changed_between_summary_and_confirmation_is_not_acted_on(repriced):
    client = client_for(repriced, Role.APPROVER)
    matching = [r for r in recs_of(repriced, status="pending") if abs(r.change) >= 0.10]
    summary = confirm_page(client, min_change="10")
    token = token_of(summary)
    # someone decides one of them in between
    client.post(f"/pricing/recommendations/{matching[0].pk}/decide/", {"action": "reject"})
    stale = confirm_page(client, min_change="10", confirm=token)
    assert stale.status_code == 409
    page = stale.content.decode()
    assert "changed since the summary" in page and "nothing was decided" in page
    assert f'id="summary-count">{len(matching) - 1}<' in page  # the new summary
    assert not recs_of(repriced, status="approved")
    # a summary of a rejection does not approve, nor a forged token
    rejecting = token_of(confirm_page(client, action="reject", min_change="10"))
    assert confirm_page(client, min_change="10", confirm=rejecting).status_code == 409
    assert confirm_page(client, min_change="10", confirm="0" * 64).status_code == 409
    assert not recs_of(repriced, status="approved")
    # a new reprice in between replaces the set as well
    with tenant_context(repriced.tenant):
        from pricing_saas.pricing import services

        token = token_of(confirm_page(client, min_change="10"))
        services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
    assert confirm_page(client, min_change="10", confirm=token).status_code == 409
    assert not recs_of(repriced, status="approved")
    # the new summary's token acts
    fresh = confirm_page(client, min_change="10")
    now = {r.pk for r in recs_of(repriced, status="pending") if abs(r.change) >= 0.10}
    assert now and not now & {r.pk for r in matching}  # the new job's rows
    assert confirm_page(client, min_change="10", confirm=token_of(fresh)).status_code == 302
    assert {r.pk for r in recs_of(repriced, status="approved")} == now


def test_any_status_shows_the_latest_jobs_rows_not_every_jobs(repriced):
    from pricing_saas.pricing import services

    with tenant_context(repriced.tenant):
        second = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
    client = client_for(repriced, Role.VIEWER)
    assert len(recs_of(repriced)) == 44
    latest = skus_on(client.get("/pricing/recommendations/", {"status": "", "page_size": 250}))
    assert len(latest) == 22
    page = client.get("/pricing/recommendations/", {"status": ""}).content.decode()
    assert f"latest reprice job (#{second.pk})" in page
    every = client.get("/pricing/recommendations/", {"status": "", "job": "all", "page_size": 250})
    assert len(skus_on(every)) == len([r for r in recs_of(repriced) if r.status != "superseded"])
    superseded = skus_on(client.get("/pricing/recommendations/", {"status": "superseded"}))
    assert len(superseded) == len(recs_of(repriced, status="superseded")) > 0
    assert len(skus_on(client.get("/pricing/recommendations/"))) == len(
        recs_of(repriced, status="pending")
    )


@pytest.fixture
def bravo_recs(world_b):
    """Tenant B with two pending recommendations of its own."""
    from tests.factories import ProductFactory, RecommendationFactory, RepriceJobFactory

    with tenant_context(world_b.tenant):
        job = RepriceJobFactory(tenant=world_b.tenant)
        for i in range(2):
            RecommendationFactory(
                tenant=world_b.tenant, job=job, status="pending", change=0.2,
                product=ProductFactory(
                    tenant=world_b.tenant, sku=f"BRAVO-{i}", title=f"Bravo secret gadget {i}"
                ),
                profit_delta=3.0,
            )  # fmt: skip
    return world_b


def test_another_tenants_recommendations_never_appear_in_list_export_or_bulk(repriced, bravo_recs):
    a, b = repriced, bravo_recs
    pending = {w.tenant.pk: {r.pk for r in recs_of(w, status="pending")} for w in (a, b)}
    assert len(pending[b.tenant.pk]) == 2
    clients = {w.tenant.pk: client_for(w, Role.APPROVER) for w in (a, b)}
    tokens = {}
    for world, other in [(a, b), (b, a)]:
        client = clients[world.tenant.pk]
        mine = pending[world.tenant.pk]
        hidden = [v for r in recs_of(other) for v in (r.product.sku, r.product.title)]
        hidden += [r.explanation[:40] for r in recs_of(other)]
        hidden = [h for h in hidden if len(h) > 3]  # "P1" is in any page's markup
        responses = [
            client.get("/pricing/recommendations/", {"status": "", "job": "all"}),
            client.get("/pricing/recommendations/", {"q": "e"}),
            client.get("/pricing/recommendations/export.csv", {"status": "", "job": "all"}),
            client.get("/pricing/recommendations/export.xlsx", {"status": ""}),
        ]
        summary = confirm_page(client)
        assert f'id="summary-count">{len(mine)}<' in summary.content.decode()
        tokens[world.tenant.pk] = token_of(summary)
        for response in [*responses, summary]:
            text = body_text(response)
            for secret in hidden:
                assert secret not in text, secret
    for world, other in [(a, b), (b, a)]:
        client = clients[world.tenant.pk]
        # the other tenant's confirmed set acts nowhere here; this tenant's own only on its own
        assert confirm_page(client, confirm=tokens[other.tenant.pk]).status_code == 409
        assert confirm_page(client, confirm=tokens[world.tenant.pk]).status_code == 302
        assert {r.pk for r in recs_of(world, status="approved")} == pending[world.tenant.pk]
    assert {r.pk for r in recs_of(a, status="approved")} == pending[a.tenant.pk]
    assert {r.pk for r in recs_of(b, status="approved")} == pending[b.tenant.pk]


def body_text(response) -> str:
    from tests.isolation.test_cross_tenant import body_text as text

    return text(response)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST])
def test_who_may_not_approve_cannot_bulk_approve_nor_see_the_summary(repriced, role):
    token = token_of(confirm_page(client_for(repriced, Role.APPROVER)))
    client = client_for(repriced, role)
    assert confirm_page(client).status_code == 403
    assert confirm_page(client, confirm=token).status_code == 403
    assert confirm_page(client, action="reject", confirm=token).status_code == 403
    assert not recs_of(repriced, status="approved") and not recs_of(repriced, status="rejected")
    page = client.get("/pricing/recommendations/").content.decode()
    assert 'value="filtered"' not in page and "export.csv" in page  # reading and export stay


# --- publishing and rolling back with a summary first; the publication page ------------------


def approve_all(world) -> list[Recommendation]:
    """Every pending recommendation of `world` approved (through the service); returns them."""
    from pricing_saas.pricing import approvals

    with tenant_context(world.tenant):
        ids = list(Recommendation.objects.filter(status="pending").values_list("pk", flat=True))
        approvals.bulk_decide(approve=True, ids=ids)
    return recs_of(world, status="approved")


def published_changes(world, **filters):
    from pricing_saas.pricing.models import PriceChange

    with tenant_context(world.tenant):
        return list(PriceChange.objects.filter(**filters).select_related("product").order_by("pk"))


def test_publish_shows_the_impact_first_then_publishes_exactly_those(repriced):
    approved = approve_all(repriced)
    client = client_for(repriced, Role.APPROVER)
    summary = client.post("/pricing/publications/")
    assert summary.status_code == 200
    page = summary.content.decode()
    up = sum(1 for r in approved if r.final_price > r.current_price)
    down = sum(1 for r in approved if r.final_price < r.current_price)
    assert up and down and up + down == len(approved)
    assert f'id="summary-count">{len(approved)}<' in page
    assert f'id="summary-up">{up}<' in page and f'id="summary-down">{down}<' in page
    average = sum(float(r.final_price / r.current_price - 1) for r in approved) / len(approved)
    assert f'id="summary-average">{average * 100:+.1f} %<' in page
    profit = sum(r.profit_delta for r in approved if r.profit_delta is not None)
    revenue = sum(r.expected_revenue - r.expected_revenue_now for r in approved)
    assert f'id="summary-profit">{profit:.2f} ' in page
    assert f'id="summary-revenue">{revenue:.2f} ' in page
    assert "CSV file for your shop" in page and "a file is made to download" in page
    with tenant_context(repriced.tenant):
        assert not Publication.objects.exists()  # nothing published by the summary
    done = client.post("/pricing/publications/", {"confirm": token_of(summary)})
    with tenant_context(repriced.tenant):
        publication = Publication.objects.get()
    assert done.status_code == 302
    assert done["Location"] == f"/pricing/publications/{publication.pk}/"
    changes = published_changes(repriced, publication=publication)
    assert {c.recommendation_id for c in changes} == {r.pk for r in approved}
    assert {c.new_price for c in changes} == {r.final_price for r in approved}
    # nothing left: no summary of nothing
    again = client.post("/pricing/publications/", follow=True)
    assert "Nothing approved is waiting to be published" in again.content.decode()


def test_a_publish_whose_approved_set_changed_is_not_acted_on(repriced):
    from pricing_saas.pricing import approvals

    approved = approve_all(repriced)[:-1]
    with tenant_context(repriced.tenant):  # one back to pending: the set is all but one
        last = Recommendation.objects.filter(status="approved").order_by("-pk").first()
        Recommendation.objects.filter(pk=last.pk).update(status="pending")
    client = client_for(repriced, Role.APPROVER)
    token = token_of(client.post("/pricing/publications/"))
    client.post(f"/pricing/recommendations/{last.pk}/decide/", {"action": "approve"})
    stale = client.post("/pricing/publications/", {"confirm": token})
    assert stale.status_code == 409
    page = stale.content.decode()
    assert "changed since the summary" in page and "nothing was published" in page
    assert f'id="summary-count">{len(approved) + 1}<' in page  # the new summary
    # a forged token, or the summary of another publisher, publishes nothing either
    assert client.post("/pricing/publications/", {"confirm": "0" * 64}).status_code == 409
    token = token_of(client.post("/pricing/publications/"))
    with tenant_context(repriced.tenant):
        approvals.update_policy(publisher="xlsx")
    assert client.post("/pricing/publications/", {"confirm": token}).status_code == 409
    with tenant_context(repriced.tenant):
        assert not Publication.objects.exists()
    fresh = client.post("/pricing/publications/")
    assert "Excel workbook" in fresh.content.decode()
    assert client.post("/pricing/publications/", {"confirm": token_of(fresh)}).status_code == 302
    with tenant_context(repriced.tenant):
        assert Publication.objects.get().publisher == "xlsx"


@pytest.fixture
def published(repriced):
    """`repriced` with every recommendation approved and published (the CSV publisher, run at
    once); returns the world."""
    from pricing_saas.pricing import publishing

    approve_all(repriced)
    with tenant_context(repriced.tenant):
        publication = publishing.publish(enqueue=False)
        publishing.run_publication(publication_id=publication.pk)
    return repriced


def test_rolling_back_a_job_shows_what_returns_first_then_rolls_back_exactly_those(published):
    changes = published_changes(published, status="published")
    job_id = changes[0].job_id
    client = client_for(published, Role.APPROVER)
    summary = client.post(f"/pricing/jobs/{job_id}/rollback/", {"comment": "too bold"})
    assert summary.status_code == 200
    page = summary.content.decode()
    up = sum(1 for c in changes if c.old_price > c.new_price)  # back up to where it was
    down = sum(1 for c in changes if c.old_price < c.new_price)
    assert up and down
    assert f'id="summary-count">{len(changes)}<' in page
    assert f'id="summary-up">{up}<' in page and f'id="summary-down">{down}<' in page
    average = sum(float(c.old_price / c.new_price - 1) for c in changes) / len(changes)
    assert f'id="summary-average">{average * 100:+.1f} %<' in page
    forecast = [c for c in changes if c.forecast_units_new is not None]
    assert forecast
    revenue = sum(
        float(c.old_price) * c.forecast_units_old - float(c.new_price) * c.forecast_units_new
        for c in forecast
    )
    profit = sum(
        (float(c.old_price) - float(c.forecast_unit_cost)) * c.forecast_units_old
        - (float(c.new_price) - float(c.forecast_unit_cost)) * c.forecast_units_new
        for c in forecast
        if c.forecast_unit_cost is not None
    )
    assert f'id="summary-revenue">{revenue:.2f} ' in page
    assert f'id="summary-profit">{profit:.2f} ' in page
    for c in changes:  # what each returns to
        assert f'>{c.product.sku}</a></td><td class="num">{c.new_price:.2f}</td>' in page
    assert 'value="too bold"' in page
    assert not published_changes(published, kind="rollback")  # nothing yet
    done = client.post(
        f"/pricing/jobs/{job_id}/rollback/", {"comment": "too bold", "confirm": token_of(summary)}
    )
    rollbacks = published_changes(published, kind="rollback")
    assert done.status_code == 302
    assert done["Location"] == f"/pricing/publications/{rollbacks[0].publication_id}/"
    assert {c.reverts_id for c in rollbacks} == {c.pk for c in changes}
    assert {(c.product_id, c.new_price) for c in rollbacks} == {
        (c.product_id, c.old_price) for c in changes
    }


def test_a_job_rollback_whose_changes_changed_is_not_acted_on(published):
    changes = published_changes(published, status="published")
    job_id = changes[0].job_id
    client = client_for(published, Role.APPROVER)
    token = token_of(client.post(f"/pricing/jobs/{job_id}/rollback/"))
    client.post(f"/pricing/changes/{changes[0].pk}/rollback/")  # someone undoes one meanwhile
    stale = client.post(f"/pricing/jobs/{job_id}/rollback/", {"confirm": token})
    assert stale.status_code == 409
    page = stale.content.decode()
    assert "changed since the summary" in page and "nothing was rolled back" in page
    assert f'id="summary-count">{len(changes) - 1}<' in page
    assert [c.reverts_id for c in published_changes(published, kind="rollback")] == [changes[0].pk]
    fresh = token_of(stale)
    assert client.post(f"/pricing/jobs/{job_id}/rollback/", {"confirm": fresh}).status_code == 302
    assert len(published_changes(published, kind="rollback")) == len(changes)
    # nothing left to roll back: a message, no summary
    again = client.post(f"/pricing/jobs/{job_id}/rollback/", follow=True)
    assert "no published price changes to roll back" in again.content.decode()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST])
def test_who_may_not_publish_gets_403_on_every_step(published, role):
    changes = published_changes(published, status="published")
    job_id = changes[0].job_id
    approver = client_for(published, Role.APPROVER)
    rollback_token = token_of(approver.post(f"/pricing/jobs/{job_id}/rollback/"))
    client = client_for(published, role)
    for data in ({}, {"confirm": rollback_token}):
        assert client.post(f"/pricing/jobs/{job_id}/rollback/", data).status_code == 403
        assert client.post("/pricing/publications/", data).status_code == 403
    assert not published_changes(published, kind="rollback")
    publication = changes[0].publication_id
    assert client.post(f"/pricing/publications/{publication}/retry/").status_code == 403
    page = client.get(f"/pricing/publications/{publication}/")
    assert page.status_code == 200 and "retry-form" not in page.content.decode()
    assert "confirm-rollback" not in client.get(f"/pricing/jobs/{job_id}/").content.decode()


@pytest.fixture
def big_publication(world_a):
    """World A (in Asia/Kolkata) with a publication of 130 changes: 100 published at
    12:00 UTC, 20 failed with a reason, 5 sent, 3 pending, and 2 changed in the shop."""
    import datetime as dt

    from pricing_saas.pricing.models import PriceChange
    from tests.factories import ProductFactory

    world_a.tenant.timezone = "Asia/Kolkata"
    world_a.tenant.save()
    at = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
    with tenant_context(world_a.tenant):
        publication = Publication.objects.create(
            publisher="csv", status="partial", changes=130, published=100, failed=20
        )
        products = [
            ProductFactory(tenant=world_a.tenant, sku=f"S{i:03d}", title=f"Thing {i}")
            for i in range(130)
        ]
        plan = (
            [("published", "recommendation", at, at)] * 100
            + [("failed", "recommendation", None, None)] * 20
            + [("sent", "recommendation", at, None)] * 5
            + [("pending", "rollback", None, None)] * 3
            + [("published", "external", None, at)] * 2
        )
        PriceChange.objects.bulk_create(
            PriceChange(
                tenant=world_a.tenant, product=product, publication=publication, status=status,
                kind=kind, old_price=Decimal("20.00"), new_price=Decimal("21.50"),
                sent_at=sent, published_at=published_at,
                error="the price changed since this change was made" if status == "failed" else "",
            )
            for product, (status, kind, sent, published_at) in zip(products, plan, strict=True)
        )  # fmt: skip
    return world_a, publication


def rows_on(response) -> list[str]:
    return re.findall(r'<tr data-change="(\d+)">', response.content.decode())


def test_a_publication_page_lists_its_changes_with_statuses_and_paginates(
    big_publication, django_assert_max_num_queries
):
    world, publication = big_publication
    client = client_for(world, Role.VIEWER)
    listing = client.get("/pricing/publications/").content.decode()
    assert f'href="/pricing/publications/{publication.pk}/"' in listing
    with django_assert_max_num_queries(20):  # one page read, never the 130 (or 100,000)
        first = client.get(f"/pricing/publications/{publication.pk}/")
    assert first.status_code == 200
    page = first.content.decode()
    assert len(rows_on(first)) == 100 and "page 1 of 2 (130 changes)" in page
    with tenant_context(world.tenant):
        first_product = Product.objects.get(sku="S000")
    assert f'<a href="/pricing/sku/{first_product.pk}/">S000</a>' in page
    assert "2026-01-05 17:30" in page  # 12:00 UTC in India
    assert 'data-status="failed"' in page and "Failed (20)" in page and "Published (102)" in page
    assert "Sent, awaiting the shop (5)" in page and "Pending (3)" in page
    second = client.get(f"/pricing/publications/{publication.pk}/", {"page": 2})
    text = second.content.decode()
    assert len(rows_on(second)) == 30 and "page 2 of 2" in text
    assert "Changed in the shop" in text and "Rollback" in text
    assert "Sent, awaiting the shop" in text and "the price changed since" in text
    assert not set(rows_on(first)) & set(rows_on(second))
    failed = client.get(f"/pricing/publications/{publication.pk}/", {"status": "failed"})
    assert len(rows_on(failed)) == 20
    assert failed.content.decode().count('<span class="status failed">Failed</span>') == 20
    sent = client.get(f"/pricing/publications/{publication.pk}/", {"status": "sent"})
    assert len(rows_on(sent)) == 5
    unknown = client.get(f"/pricing/publications/{publication.pk}/", {"status": "nope"})
    assert len(rows_on(unknown)) == 100 and "Unknown status" in unknown.content.decode()


def test_retrying_the_failed_changes_from_the_publication_page(published):
    from pricing_saas.pricing import publishing

    with tenant_context(published.tenant):
        pending = list(Recommendation.objects.filter(status="published")[:2])
        for (
            rec
        ) in pending:  # a fresh approval of two SKUs, one of whose price moves before the push
            Recommendation.objects.filter(pk=rec.pk).update(status="approved")
        Product.objects.filter(pk=pending[0].product_id).update(price=Decimal("1.00"))
        Recommendation.objects.filter(pk=pending[0].pk).update(current_price=Decimal("2.00"))
        publication = publishing.publish(enqueue=False)
        publishing.run_publication(publication_id=publication.pk)
        publication.refresh_from_db()
    assert publication.failed >= 1
    client = client_for(published, Role.APPROVER)
    page = client.get(f"/pricing/publications/{publication.pk}/").content.decode()
    assert 'id="retry-failed"' in page and "the price changed since" in page
    response = client.post(
        f"/pricing/publications/{publication.pk}/retry/",
        {"next": f"/pricing/publications/{publication.pk}/"},
    )
    with tenant_context(published.tenant):
        retry = Publication.objects.order_by("-pk").first()
    assert retry.pk != publication.pk and retry.changes == publication.failed
    assert response.status_code == 302
    assert response["Location"] == f"/pricing/publications/{retry.pk}/"
    assert len(rows_on(client.get(f"/pricing/publications/{retry.pk}/"))) == publication.failed
    # each links to the other: the retry to what it retried, the first to where its failed
    # changes went (they moved there)
    assert retry.retry_of_id == publication.pk
    retry_page = client.get(f"/pricing/publications/{retry.pk}/").content.decode()
    assert (
        f'<a href="/pricing/publications/{publication.pk}/">publication {publication.pk}</a>'
        in (retry_page[retry_page.index('id="retry-of"') :])
    )
    first_page = client.get(f"/pricing/publications/{publication.pk}/").content.decode()
    retried_in = first_page[first_page.index('id="retried-in"') :]
    assert f'<a href="/pricing/publications/{retry.pk}/">publication {retry.pk}</a>' in retried_in
    assert 'id="retry-of"' not in first_page and 'id="retried-in"' not in retry_page
    listing = client.get("/pricing/publications/").content.decode()
    assert f"retry of {publication.pk}</a>" in listing
    api = published.api(Role.VIEWER).get(f"/api/v1/publications/{retry.pk}/").json()
    assert api["retry_of"] == publication.pk
    # nothing failed left on the first: a message, back where the form was
    again = client.post(
        f"/pricing/publications/{publication.pk}/retry/",
        {"next": f"/pricing/publications/{publication.pk}/"},
    )
    assert again["Location"] == f"/pricing/publications/{publication.pk}/"


def test_another_tenants_publication_and_job_rollback_are_404_from_both_sides(published, world_b):
    from tests.factories import PriceChangeFactory, ProductFactory, PublicationFactory

    with tenant_context(world_b.tenant):
        bravo_publication = PublicationFactory(tenant=world_b.tenant, failed=1)
        PriceChangeFactory(
            tenant=world_b.tenant, publication=bravo_publication, status="failed",
            product=ProductFactory(tenant=world_b.tenant, sku="BRAVO-SECRET"),
        )  # fmt: skip
    alpha = published_changes(published, status="published")[0]
    ours = {published.tenant.pk: alpha.publication_id, world_b.tenant.pk: bravo_publication.pk}
    for world, other in [(published, world_b), (world_b, published)]:
        client = client_for(world, Role.OWNER)
        theirs = ours[other.tenant.pk]
        assert client.get(f"/pricing/publications/{ours[world.tenant.pk]}/").status_code == 200
        assert client.get(f"/pricing/publications/{theirs}/").status_code == 404
        assert (
            client.get(f"/pricing/publications/{theirs}/", {"status": "failed"}).status_code == 404
        )
        assert client.post(f"/pricing/publications/{theirs}/retry/").status_code == 404
    b_client = client_for(world_b, Role.OWNER)
    assert b_client.post(f"/pricing/jobs/{alpha.job_id}/rollback/").status_code == 404
    assert "BRAVO-SECRET" not in body_text(
        client_for(published).get(f"/pricing/publications/{alpha.publication_id}/")
    )
    with tenant_context(world_b.tenant):
        assert Publication.objects.count() == 1  # no retry made on B's behalf
    assert not published_changes(published, kind="rollback")


def test_the_rule_form_picks_categories_and_counts_the_skus_before_saving(repriced, world_b):
    """The category picker lists the tenant's categories (never another tenant's) with their
    SKU counts; the live preview counts the SKUs a scope takes in, whatever the case, warns
    at 0, and the ticked categories are what is saved."""
    from tests.factories import ProductFactory

    ProductFactory(tenant=world_b.tenant, sku="B1", category="bravo-secret-category")
    client = client_for(repriced, Role.ANALYST)
    with tenant_context(repriced.tenant):
        in_a = Product.objects.filter(category="a", active=True).count()
        in_b = Product.objects.filter(category="b", active=True).count()
        every = Product.objects.filter(active=True).count()
    assert in_a and in_b and in_a + in_b < every
    form = client.get("/pricing/rules/new/").content.decode()
    assert 'name="categories" value="a"' in form and f"a ({in_a} SKUs)" in form
    assert "bravo-secret-category" not in form
    assert 'id="scope-count">' + str(every) in form  # the default scope: every product

    def preview(**query):
        response = client.get("/pricing/rules/preview/", query)
        assert response.status_code == 200
        return response.content.decode()

    assert f'id="scope-count">{in_a}<' in preview(scope="category", scope_values=" A ")
    assert f'id="scope-count">{in_a}<' in preview(scope="category", categories="a")
    both = preview(scope="category", scope_values="b", categories="a")
    assert f'id="scope-count">{in_a + in_b}<' in both  # not the product without a category
    eggs = preview(scope="category", scope_values="eggs")
    assert 'id="scope-count">0<' in eggs and 'class="warning"' in eggs and "“eggs”" in eggs
    theirs = preview(scope="category", scope_values="bravo-secret-category")
    assert 'id="scope-count">0<' in theirs  # B's category takes in nothing of A's
    assert "Name the category values" in preview(scope="category")
    assert f'id="scope-count">{every}<' in preview(scope="nonsense")  # read as "all"

    saved = client.post(
        "/pricing/rules/new/",
        {"name": "Picked", "scope": "category", "scope_values": "B", "categories": ["a"],
         "priority": 1, "active": "on"},
    )  # fmt: skip
    assert saved.status_code == 302
    with tenant_context(repriced.tenant):
        rule = RuleSet.objects.get(name="Picked")
    assert sorted(rule.scope_values) == ["B", "a"]
    edit = client.get(f"/pricing/rules/{rule.pk}/").content.decode()
    assert re.search(r'name="categories" value="a"[^>]*checked', edit)  # ticked back
    assert re.search(r'name="categories" value="b"[^>]*checked', edit)  # "B" is category b
    assert f'id="scope-count">{in_a + in_b}<' in edit

    wrong = client.post(
        "/pricing/rules/new/",
        {"name": "Wrong", "scope": "brand", "scope_values": "x", "categories": ["a"],
         "priority": 1, "active": "on"},
    )  # fmt: skip
    assert wrong.status_code == 400 and "untick them" in wrong.content.decode()
    with tenant_context(repriced.tenant):
        assert not RuleSet.objects.filter(name="Wrong").exists()
    # B's analyst sees only B's category in B's picker
    b_form = client_for(world_b, Role.ANALYST).get("/pricing/rules/new/").content.decode()
    assert 'value="bravo-secret-category"' in b_form and 'value="a"' not in b_form
    assert client_for(repriced, Role.VIEWER).get("/pricing/rules/preview/").status_code == 403


def test_ticked_rows_are_summarised_first_then_exactly_those_are_decided(repriced):
    """Approving ticked rows goes through the same impact summary as "all matching": nothing
    changes on the first POST; the confirmation acts on exactly the ticked rows; a row decided
    by someone else in between stops it (nothing decided) with a message."""
    client = client_for(repriced, Role.APPROVER)
    pending = recs_of(repriced, status="pending")
    ticked = pending[:3]
    ids = [r.pk for r in ticked]
    summary = client.post(
        "/pricing/recommendations/", {"action": "approve", "ids": ids, "comment": "three"}
    )
    page = summary.content.decode()
    assert summary.status_code == 200 and "The 3 recommendations you ticked." in page
    up = sum(1 for r in ticked if r.recommended_price > r.current_price)
    assert 'id="summary-count">3<' in page and f'id="summary-up">{up}<' in page
    profit = sum(r.profit_delta for r in ticked)
    assert f'id="summary-profit">{profit:.2f} ' in page
    assert not recs_of(repriced, status="approved")  # nothing yet
    assert sorted(map(int, re.findall(r'name="ids" value="(\d+)"', page))) == sorted(ids)

    # someone rejects one of them meanwhile: the confirmation decides nothing
    with tenant_context(repriced.tenant):
        Recommendation.objects.filter(pk=ids[0]).update(status="rejected")
    stale = client.post(
        "/pricing/recommendations/",
        {"action": "approve", "ids": ids, "confirm": token_of(summary)},
        follow=True,
    )
    assert "only recommendations waiting for approval" in stale.content.decode()
    assert not recs_of(repriced, status="approved")
    with tenant_context(repriced.tenant):
        Recommendation.objects.filter(pk=ids[0]).update(status="pending")

    # a token for other rows (or a forged one) decides nothing either
    forged = client.post(
        "/pricing/recommendations/",
        {"action": "approve", "ids": ids[:2], "confirm": token_of(summary)},
    )
    assert forged.status_code == 409 and "changed since the summary" in forged.content.decode()
    assert not recs_of(repriced, status="approved")

    done = client.post(
        "/pricing/recommendations/",
        {"action": "approve", "ids": ids, "comment": "three", "confirm": token_of(summary)},
    )
    assert done.status_code == 302
    approved = recs_of(repriced, status="approved")
    assert {r.pk for r in approved} == set(ids) and {r.comment for r in approved} == {"three"}


def test_the_settings_page_sets_the_risk_a_run_may_take(world_a):
    from pricing_saas.pricing import approvals

    client = client_for(world_a)
    form = {"auto_approve_max_change": "0.05", "auto_approve_max_relative_se": "0.5",
            "publisher": "csv", "price_war_window_days": "14", "price_war_max_cuts": "3",
            "no_cost_fallback": "revenue", "loss_budget": "0.5", "max_loss_chance": "0.1"}  # fmt: skip
    page = client.get("/pricing/settings/").content.decode()
    assert "expected share of products whose change loses money" in page
    refused = client.post("/pricing/settings/", form)
    assert refused.status_code == 400
    assert "loss_budget" in refused.context["form"].errors
    saved = client.post("/pricing/settings/", {**form, "loss_budget": "0.02"})
    assert saved.status_code == 302
    with tenant_context(world_a.tenant):
        assert approvals.policy().loss_budget == Decimal("0.02")


def test_the_settings_page_takes_the_smallest_chance_the_api_takes(world_a):
    from pricing_saas.pricing import approvals

    form = {"auto_approve_max_change": "0.05", "auto_approve_max_relative_se": "0.5",
            "publisher": "csv", "price_war_window_days": "14", "price_war_max_cuts": "3",
            "no_cost_fallback": "revenue", "loss_budget": "0.01", "max_loss_chance": "0.0001"}  # fmt: skip
    client = client_for(world_a)
    assert client.post("/pricing/settings/", form).status_code == 302
    refused = client.post("/pricing/settings/", {**form, "max_loss_chance": "0.00015"})
    assert refused.status_code == 400 and "max_loss_chance" in refused.context["form"].errors
    with tenant_context(world_a.tenant):
        assert approvals.policy().max_loss_chance == Decimal("0.0001")


def test_the_card_counts_every_day_with_the_products_promotions(shop, reprice, owner_session):
    """The expected units are a shelf day's; a product whose recent promotions sold more beside
    them shows every day's too (its demand model's promotion lift, kept on the
    recommendation for the API and the export), one without promotions only the shelf day's."""
    import csv
    import io

    from django.core.management import call_command

    from ml.models import Elasticity
    from pricing_saas.pricing import approvals

    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        reprice()
        Elasticity.objects.filter(product__sku="P3").update(promo_lift=1.5)
        job = reprice()
        lifted = Recommendation.objects.get(job=job, product__sku="P3")
        plain = Recommendation.objects.get(job=job, product__sku="P4")
    assert lifted.promo_lift == pytest.approx(1.5) and plain.promo_lift == pytest.approx(1.0)
    client = client_for(shop)
    page = client.get(f"/pricing/sku/{lifted.product_id}/").content.decode()
    every = f"about {lifted.expected_units_now * 1.5:.2f} → {lifted.expected_units * 1.5:.2f}"
    assert 'id="every-day"' in page and every in page
    assert 'id="every-day"' not in client.get(f"/pricing/sku/{plain.product_id}/").content.decode()
    api = owner_session(shop)
    (row,) = api.get("/api/v1/recommendations/?sku=P3").json()["results"]
    assert row["promo_lift"] == pytest.approx(1.5)
    out = io.StringIO()
    call_command("export_recommendations", shop.tenant.slug, stdout=out)
    exported = {r["sku"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert float(exported["P3"]["promo_lift"]) == pytest.approx(1.5)
    assert float(exported["P4"]["promo_lift"]) == pytest.approx(1.0)


def test_the_card_says_why_its_units_now_were_carried_to_todays_position(
    shop, reprice, owner_session
):
    """A model read a product's level when its price stood 5 % above the competitor's, where
    its demand collapses (an extra slope of 6); the competitor has since raised to stand 4.8 %
    above it (its readings of the week before the job): the job carries the units through the
    collapse (x1.34) and keeps the factor and both positions (the API, the export), and the
    card says so. Another went the other way (5 % below, now 5.3 % above: x0.79), past the
    positions its own days have seen (4 % above at most: carried only that far, and said so).
    A product the carry did not move says nothing of it."""
    import csv
    import datetime as dt
    import io
    import math
    from zoneinfo import ZoneInfo

    from django.core.management import call_command
    from django.utils import timezone

    from ml.models import Elasticity
    from pricing_saas.catalog.importer import import_rows
    from pricing_saas.pricing import approvals

    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        first = reprice()
        today = timezone.localdate(first.created_at, timezone=ZoneInfo(shop.tenant.timezone))
        import_rows(
            kind="competitor_prices",
            rows=[
                {"sku": sku, "competitor": "R", "price": price,
                 "observed_at": f"{(today - dt.timedelta(days=k)).isoformat()}T12:00:00Z"}
                for sku, price in (("P3", 21), ("P5", 19)) for k in range(1, 8)
            ],
        )  # fmt: skip
        hinge = dict(competitor_slope=-6.0, competitor_slope_se=0.5, gap_low=-0.2)
        Elasticity.objects.filter(product__sku="P3").update(
            **hinge, gap_today=math.log(1.05), gap_high=0.2
        )
        Elasticity.objects.filter(product__sku="P5").update(
            **hinge, gap_today=math.log(0.95), gap_high=math.log(1.04)
        )
        job = reprice()
        recs = {r.product.sku: r for r in Recommendation.objects.filter(job=job)}
    up, down, plain = recs["P3"], recs["P5"], recs["P4"]
    # (sharp kinks: the model was trained without competitor readings, no ramp's jitter)
    assert up.level_carried == pytest.approx(1.05**6, rel=1e-6)
    assert down.level_carried == pytest.approx(1.04**-6, rel=1e-6)
    assert up.position_then == pytest.approx(math.log(1.05))
    assert up.position_now == pytest.approx(math.log(20 / 21))
    assert down.position_now == pytest.approx(math.log(20 / 19))
    assert plain.level_carried is None and plain.position_then is None
    client = client_for(shop)
    page = client.get(f"/pricing/sku/{up.product_id}/").content.decode()
    assert 'id="level-carried"' in page
    assert "the price stood 4.8 % below the competitor's (21.00" in page
    assert "when it stood 5.0 % above" in page and "seen no further" not in page
    assert f"{1.05**6:.2f} \N{MULTIPLICATION SIGN} (on top of" in page
    page = client.get(f"/pricing/sku/{down.product_id}/").content.decode()
    assert "the price stood 5.3 % above the competitor's (19.00" in page
    assert "when it stood 5.0 % below" in page
    assert "seen no further than 4.0 % above" in page
    assert f"{1.04**-6:.2f} \N{MULTIPLICATION SIGN}" in page
    assert (
        'id="level-carried"' not in client.get(f"/pricing/sku/{plain.product_id}/").content.decode()
    )
    api = owner_session(shop)
    (row,) = api.get("/api/v1/recommendations/?sku=P3").json()["results"]
    assert row["level_carried"] == pytest.approx(1.05**6, rel=1e-6)
    assert row["position_then"] == pytest.approx(math.log(1.05))
    out = io.StringIO()
    call_command("export_recommendations", shop.tenant.slug, stdout=out)
    exported = {r["sku"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert float(exported["P5"]["level_carried"]) == pytest.approx(1.04**-6, abs=1e-4)
    assert exported["P4"]["level_carried"] == ""
    assert "its readings' own jitter" not in page  # (an exact feed: nothing discounted)
    # Readings that jitter (3 % apart, as the version's ramp says). P6 stood 2 % above a
    # competitor read daily at 19.60 in the week its fit read (the version's reading day), and
    # its competitor's week now reads 19.00: a move of 3.1 % within the two weeks' jitter
    # counts in part only, and the card says so. P3's fit week has no readings to read again:
    # nothing tells its competitor's move from its own, and every move counts.
    with tenant_context(shop.tenant):
        version = job.demand_version
        version.metrics[version.trainer]["ramp_sd"] = 0.03 * math.sqrt(2)
        version.save(update_fields=["metrics"])
        fit_day = dt.date.fromisoformat(version.metrics["reading_day"])
        import_rows(
            kind="competitor_prices",
            rows=[
                {"sku": "P6", "competitor": "R", "price": price,
                 "observed_at": f"{(day - dt.timedelta(days=k)).isoformat()}T12:00:00Z"}
                for day, price in ((fit_day, 19.6), (today, 19.0)) for k in range(1, 8)
            ],
        )  # fmt: skip
        Elasticity.objects.filter(product__sku="P6").update(
            **hinge, gap_today=math.log(20 / 19.6), gap_high=0.2
        )
        again = {r.product.sku: r for r in Recommendation.objects.filter(job=reprice())}
    assert again["P6"].position_then == pytest.approx(math.log(20 / 19.6))
    assert again["P6"].position_now == pytest.approx(math.log(20 / 19))
    assert again["P6"].level_carried < 1
    assert again["P3"].level_carried == pytest.approx(up.level_carried, rel=1e-6)
    jitter = "counting only what of the competitor's move lies beyond its readings' own jitter"
    assert jitter in client.get(f"/pricing/sku/{again['P6'].product_id}/").content.decode()
    assert jitter not in client.get(f"/pricing/sku/{again['P3'].product_id}/").content.decode()


def test_a_job_reads_the_competitors_week_of_the_day_it_started(shop, monkeypatch):
    """A job started a second before the tenant's midnight and run after it reads the
    competitor's last week up to the day it started, as every part of a job in parts does: a
    competitor at 20 who cut to 16 four days ago stands at 20 in
    the week up to yesterday (four of its seven days) and at 16 in the week up to today. (The
    model read the level against 18, where demand collapses above the competitor: the job
    carries it to its position against 20, not 16.) The chart's figure at today's price is
    the card's."""
    import datetime as dt
    import math
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from ml.models import Elasticity
    from pricing_saas.catalog.importer import import_rows
    from pricing_saas.pricing import approvals, services
    from pricing_saas.pricing.selectors import curve_chart
    from tenants import jobs

    zone = ZoneInfo(shop.tenant.timezone)
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        today = timezone.localdate(timezone=zone)
        import_rows(
            kind="competitor_prices",
            rows=[
                {"sku": "P3", "competitor": "R", "price": 20 if k > 3 else 16,
                 "observed_at": f"{(today - dt.timedelta(days=k)).isoformat()}T12:00:00Z"}
                for k in range(14)
            ],
        )  # fmt: skip
        # (the model read its level against a competitor at 18)
        price = float(Product.objects.get(sku="P3").price)
        Elasticity.objects.filter(product__sku="P3").update(
            competitor_slope=-6.0, competitor_slope_se=0.5, gap_low=-0.5, gap_high=0.5,
            gap_today=math.log(price / 18), competitor_then=18.0, competitor_then_readings=7,
        )  # fmt: skip
        # claimed a second before midnight, run after it
        midnight = dt.datetime.combine(today, dt.time(), tzinfo=zone)
        monkeypatch.setattr(
            jobs, "timezone", SimpleNamespace(now=lambda: midnight - dt.timedelta(seconds=1))
        )
        job = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        assert job.reading_day() == today - dt.timedelta(days=1)
        # (its model read the week up to a day long before: the job's day stands; a model the
        # job trained after midnight read today's week, and the job reads that one)
        assert job.reading_day(job.demand_version) == today - dt.timedelta(days=1)
        later = job.demand_version
        later.metrics = {**later.metrics, "reading_day": today.isoformat()}
        assert job.reading_day(later) == today
        later.metrics["reading_day"] = "not a day"
        assert job.reading_day(later) == today - dt.timedelta(days=1)
        rec = Recommendation.objects.get(job=job, product__sku="P3")
        chart = curve_chart(rec, rec.product)
        # another seller's week imported after the job, cheaper: the chart is still the job's
        import_rows(
            kind="competitor_prices",
            rows=[
                {"sku": "P3", "competitor": "S", "price": 15,
                 "observed_at": f"{(today - dt.timedelta(days=k)).isoformat()}T12:00:00Z"}
                for k in range(1, 8)
            ],
        )  # fmt: skip
        redrawn = curve_chart(rec, rec.product)
        plain = (
            Recommendation.objects.filter(job=job, level_carried__isnull=True)
            .exclude(expected_units_now=0)
            .exclude(elasticity__isnull=True)
            .first()
        )
        plain_chart = curve_chart(plain, plain.product)
        # a model read up to a later day than the job's (trained by it after midnight) is read
        # on its own day: a job claimed five days ago (its week the competitor's 20 on four of
        # seven days) with a model that read today's (the other seller's 15 on six)
        version = job.demand_version
        version.metrics = {**version.metrics, "reading_day": today.isoformat()}
        version.save(update_fields=["metrics"])
        monkeypatch.setattr(
            jobs, "timezone", SimpleNamespace(now=lambda: midnight - dt.timedelta(days=5))
        )
        second = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        assert second.reading_day() == today - dt.timedelta(days=5)
        assert second.demand_version_id == version.pk
        newer = Recommendation.objects.get(job=second, product__sku="P3")
    assert redrawn == chart
    assert plain_chart["marks"]["today"]["y"] == pytest.approx(plain.expected_profit_now, abs=0.011)
    assert float(rec.current_price) == price
    assert rec.position_now == pytest.approx(math.log(price / 20))
    assert rec.level_carried == pytest.approx((price / 18) ** 6 / max(price / 20, 1) ** 6)
    assert newer.position_now == pytest.approx(math.log(price / 15))
    assert chart["marks"]["today"]["y"] == pytest.approx(rec.expected_profit_now, abs=0.011)
