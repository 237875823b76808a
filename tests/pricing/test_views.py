"""The pricing pages of the portal (`pricing_saas/pricing/views.py`): every page renders
with data, bad input answers with a message and changes nothing, roles decide what is shown
and allowed, the kill-switch banner."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

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
    response = client.post(
        "/pricing/recommendations/", {"action": "approve", "ids": ids[:2], "comment": "ok"}
    )
    assert response.status_code == 302
    response = client.post(
        f"/pricing/recommendations/{ids[2]}/decide/", {"action": "approve", "price": "0.01"}
    )
    assert response.status_code == 302
    with tenant_context(repriced.tenant):
        assert Recommendation.objects.get(pk=ids[2]).status == "pending"  # below the floor
    assert client.post("/pricing/publications/").status_code == 302
    with tenant_context(repriced.tenant):
        publication = Publication.objects.get()
        job = Recommendation.objects.get(pk=ids[0]).job
    assert publication.status == "succeeded" and publication.published == 2
    download = client.get(f"/pricing/publications/{publication.pk}/download/")
    assert download.status_code == 200
    client.post(f"/pricing/jobs/{job.pk}/rollback/", {"comment": "undo"})
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
    import re

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
