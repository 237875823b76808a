"""The pricing REST API (`pricing_saas/pricing/api.py`): rules, run, review, bulk approve,
publish, download, price history, rollback, kill switch, schedules, audit; roles on every
action."""

from __future__ import annotations

import csv
import io

import pytest

from tenants.context import tenant_context
from tenants.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_end_to_end_through_the_api(shop, owner_session):
    analyst, approver, admin = shop.api(Role.ANALYST), shop.api(Role.APPROVER), shop.api(Role.ADMIN)
    policy = admin.patch("/api/v1/pricing-policy/", {"auto_approve": False}, format="json")
    assert policy.status_code == 200 and policy.json()["auto_approve"] is False
    assert policy.json()["no_cost_fallback"] == "revenue"
    bad = admin.patch("/api/v1/pricing-policy/", {"no_cost_fallback": "guess"}, format="json")
    assert bad.status_code == 400 and bad.json()["attr"] == "no_cost_fallback"
    assert policy.json()["loss_budget"] == "0.0100" and policy.json()["max_loss_chance"] == "0.1000"
    for field, value in [("loss_budget", "0.2"), ("loss_budget", "a lot"),
                         ("max_loss_chance", "0"), ("max_loss_chance", "NaN")]:  # fmt: skip
        bad = admin.patch("/api/v1/pricing-policy/", {field: value}, format="json")
        assert bad.status_code == 400 and bad.json()["attr"] == field, (field, value, bad.json())
    risk = admin.patch("/api/v1/pricing-policy/", {"loss_budget": "0.02"}, format="json")
    assert risk.status_code == 200 and risk.json()["loss_budget"] == "0.0200"
    risk = admin.patch("/api/v1/pricing-policy/", {"loss_budget": "0.01"}, format="json")
    assert risk.json()["loss_budget"] == "0.0100"
    made = analyst.post(
        "/api/v1/rule-sets/",
        {"name": "Careful", "max_step": "0.08", "ending": "0.99"},
        format="json",
    )
    assert made.status_code == 201, made.json()
    run = analyst.post("/api/v1/reprice-jobs/run/")
    assert run.status_code == 202
    job = analyst.get(f"/api/v1/reprice-jobs/{run.json()['id']}/").json()
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    pending = approver.get("/api/v1/recommendations/?status=pending&limit=500").json()["results"]
    assert pending and all(r["rule_sets"] == ["Careful"] for r in pending)
    assert all(r["explanation"] and r["elasticity_low"] <= r["elasticity"] for r in pending)
    # each change says the chance it loses money, within the policy's 1 in 10
    assert all(0 <= r["loss_chance"] <= 0.1 for r in pending)
    assert any(r["loss_chance"] > 0 for r in pending)
    one, *rest = pending
    single = approver.post(
        f"/api/v1/recommendations/{one['id']}/approve/", {"comment": "ok"}, format="json"
    )
    assert single.status_code == 200 and single.json()["decided_by"].startswith("api key")
    bulk = approver.post(
        "/api/v1/recommendations/bulk/",
        {"action": "approve", "ids": [r["id"] for r in rest], "comment": "weekly review"},
        format="json",
    )
    assert bulk.json() == {"action": "approve", "count": len(rest)}
    again = approver.post(f"/api/v1/recommendations/{one['id']}/reject/", format="json")
    assert again.status_code == 409 and again.json()["code"] == "not_pending"

    published = approver.post("/api/v1/publications/", {}, format="json")
    assert published.status_code == 202
    pub = approver.get(f"/api/v1/publications/{published.json()['id']}/").json()
    assert pub["status"] == "succeeded" and pub["published"] == len(pending)
    download = approver.get(pub["download"])
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert len(rows) == len(pending) and rows[0]["new_price"].endswith(".99")
    history = approver.get(f"/api/v1/price-changes/?sku={one['sku']}&status=published").json()
    assert history["count"] == 1 and history["results"][0]["new_price"].startswith(
        one["recommended_price"][:-2]
    )

    unknown = approver.post("/api/v1/price-changes/rollback/", {"skus": ["NOPE"]}, format="json")
    assert unknown.status_code == 404 and "NOPE" in unknown.json()["detail"]
    by_sku = approver.post(
        "/api/v1/price-changes/rollback/", {"skus": [rest[0]["sku"]]}, format="json"
    )
    assert by_sku.status_code == 202 and by_sku.json()["changes"] == 1
    partial = approver.post(f"/api/v1/reprice-jobs/{job['id']}/rollback/", {}, format="json")
    assert partial.status_code == 202 and partial.json()["changes"] == len(pending) - 1
    back = partial
    assert back.status_code == 202, back.json()
    history = approver.get(f"/api/v1/price-changes/?sku={one['sku']}").json()["results"]
    assert [h["kind"] for h in history] == ["rollback", "recommendation"]
    assert history[0]["new_price"] == one["current_price"]

    audit = owner_session(shop).get("/api/v1/audit-events/?limit=100").json()["results"]
    actions = {e["action"] for e in audit}
    assert {
        "rules.create",
        "recommendation.approve",
        "recommendation.bulk_approve",
        "publication.create",
        "rollback.create",
        "policy.update",
    } <= actions
    export = owner_session(shop).get("/api/v1/audit-events/export/")
    assert export.status_code == 200 and b"rollback.create" in export.content


def test_kill_switch_blocks_publishing_through_the_api(shop):
    approver = shop.api(Role.APPROVER)
    shop.api(Role.ANALYST).post("/api/v1/reprice-jobs/run/")
    pending = approver.get("/api/v1/recommendations/?status=pending").json()["results"]
    approver.post(f"/api/v1/recommendations/{pending[0]['id']}/approve/", format="json")
    assert approver.post(
        "/api/v1/kill-switch/", {"on": True, "reason": "feed broken"}, format="json"
    ).json()["kill_switch"]
    refused = approver.post("/api/v1/publications/", {}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "kill_switch_on"
    assert "kill switch" in refused.json()["detail"]
    assert approver.get("/api/v1/publications/").json()["count"] == 0


@pytest.mark.parametrize(
    "path, payload, code",
    [
        ("/api/v1/schedules/", {"cron": "0 25 * * *"}, "invalid_cron"),
        (
            "/api/v1/schedules/",
            {"cron": "0 5 * * *", "timezone": "Europe/Atlantis"},
            "invalid_timezone",
        ),
        ("/api/v1/rule-sets/", {"name": "x", "scope": "sku"}, "invalid_choice"),
        ("/api/v1/rule-sets/", {"name": "x", "max_step": "7"}, "invalid"),
        ("/api/v1/price-changes/rollback/", {"ids": [999999]}, "not_found"),
        ("/api/v1/recommendations/bulk/", {"action": "approve"}, "invalid"),
    ],
)
def test_bad_input_is_a_clear_4xx(world_a, path, payload, code):
    response = world_a.api(Role.ADMIN).post(path, payload, format="json")
    assert 400 <= response.status_code < 500
    body = response.json()
    assert body["code"] == code and body["detail"], body


def test_schedule_through_the_api_shows_the_next_run(world_a):
    made = world_a.api(Role.ANALYST).post(
        "/api/v1/schedules/", {"cron": "15 2 * * *", "timezone": "Europe/Berlin"}, format="json"
    )
    assert made.status_code == 201, made.json()
    assert (
        "T02:15:00+01:00" in made.json()["next_run"] or "T02:15:00+02:00" in made.json()["next_run"]
    )


ACTIONS = [  # (method, path, the least role allowed)
    ("post", "/api/v1/rule-sets/", Role.ANALYST),
    ("post", "/api/v1/schedules/", Role.ANALYST),
    ("post", "/api/v1/reprice-jobs/run/", Role.ANALYST),
    ("post", "/api/v1/recommendations/bulk/", Role.APPROVER),
    ("post", "/api/v1/recommendations/bulk/preview/", Role.APPROVER),
    ("post", "/api/v1/publications/", Role.APPROVER),
    ("post", "/api/v1/publications/preview/", Role.APPROVER),
    ("post", "/api/v1/price-changes/rollback/", Role.APPROVER),
    ("post", "/api/v1/kill-switch/", Role.APPROVER),
    ("patch", "/api/v1/pricing-policy/", Role.ADMIN),
    ("get", "/api/v1/audit-events/", Role.OWNER),
    ("get", "/api/v1/audit-events/export/", Role.OWNER),
    # detail actions: the role is checked before the object is looked up (403, else 404)
    ("post", "/api/v1/recommendations/999999/approve/", Role.APPROVER),
    ("post", "/api/v1/recommendations/999999/reject/", Role.APPROVER),
    ("post", "/api/v1/reprice-jobs/999999/cancel/", Role.ANALYST),
    ("post", "/api/v1/reprice-jobs/999999/rollback/", Role.APPROVER),
    ("post", "/api/v1/reprice-jobs/999999/rollback/preview/", Role.APPROVER),
    ("post", "/api/v1/publications/999999/retry/", Role.APPROVER),
    ("patch", "/api/v1/rule-sets/999999/", Role.ANALYST),
    ("delete", "/api/v1/rule-sets/999999/", Role.ANALYST),
    ("patch", "/api/v1/schedules/999999/", Role.ANALYST),
    ("delete", "/api/v1/schedules/999999/", Role.ANALYST),
]


ALLOWED = {
    Role.ANALYST: {Role.ANALYST, Role.ADMIN, Role.OWNER},
    Role.APPROVER: {Role.APPROVER, Role.ADMIN, Role.OWNER},
    Role.ADMIN: {Role.ADMIN, Role.OWNER},
    Role.OWNER: {Role.OWNER},
}


@pytest.mark.parametrize("method, path, least", ACTIONS)
def test_roles_are_enforced_on_every_action(world_a, method, path, least):
    for role in (Role.VIEWER, Role.ANALYST, Role.APPROVER, Role.ADMIN):
        response = getattr(world_a.api(role), method)(path, {}, format="json")
        if role in ALLOWED[least]:
            assert response.status_code != 403, (role, response.json())
        else:
            assert response.status_code == 403, (role, response.status_code)


@pytest.mark.parametrize(
    "field, value",
    [
        ("min_gain_abs", "-1"),
        ("min_gain_rel", "NaN"),
        ("evidence_margin", "-0.1"),
        ("window_change", "Infinity"),
        ("window_change", "abc"),
        ("window_days", "-3"),
        ("min_gain_rel", "2"),
    ],
)
def test_a_bad_gain_evidence_or_window_field_is_a_4xx_naming_it_and_saves_nothing(
    world_a, field, value
):
    from pricing_saas.pricing.models import RuleSet

    response = world_a.api(Role.ADMIN).post(
        "/api/v1/rule-sets/", {"name": "Bad", field: value}, format="json"
    )
    assert 400 <= response.status_code < 500, response.json()
    assert field in str(response.json()), response.json()
    with tenant_context(world_a.tenant):
        assert not RuleSet.objects.filter(name="Bad").exists()


def _pending(world) -> int:
    from pricing_saas.pricing.models import Recommendation

    with tenant_context(world.tenant):
        return Recommendation.objects.filter(status="pending").count()


@pytest.mark.parametrize(
    "body",
    [
        '"NaN"',
        '"Infinity"',
        '"-Infinity"',
        '"0x10"',
        '"1_0"',
        '"1e400"',
        "1e400",  # a JSON number beyond a float, which became Infinity
    ],
)
def test_bulk_reject_by_a_max_change_that_is_not_a_finite_decimal_is_a_400_and_rejects_nothing(
    repriced, body
):
    approver = repriced.api(Role.APPROVER)
    job = approver.get("/api/v1/reprice-jobs/").json()["results"][0]["id"]
    before = _pending(repriced)
    assert before > 0
    response = approver.post(
        "/api/v1/recommendations/bulk/",
        data=f'{{"action": "reject", "filters": {{"max_change": {body}, "job_id": {job}}}}}',
        content_type="application/json",
    )
    assert response.status_code == 400, response.json()
    assert response.json()["attr"] == "filters.max_change" and response.json()["detail"]
    assert _pending(repriced) == before


# Every numeric input of the pricing API: (method, path, field, the 400's attr).
NUMERIC_INPUTS = [
    ("post", "/api/v1/rule-sets/", {"name": "N"}, "max_step", "max_step"),
    ("post", "/api/v1/rule-sets/", {"name": "N"}, "min_price", "min_price"),
    ("post", "/api/v1/rule-sets/", {"name": "N"}, "priority", "priority"),
    ("post", "/api/v1/rule-sets/", {"name": "N"}, "clearance_days", "clearance_days"),
    ("patch", "/api/v1/pricing-policy/", {}, "auto_approve_max_change", "auto_approve_max_change"),
    ("patch", "/api/v1/pricing-policy/", {}, "price_war_max_cuts", "price_war_max_cuts"),
    ("post", "/api/v1/recommendations/bulk/", {"action": "reject"}, "ids", "ids.0"),
    ("post", "/api/v1/price-changes/rollback/", {}, "ids", "ids.0"),
    ("post", "/api/v1/publications/", {}, "recommendation_ids", "recommendation_ids.0"),
]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "0x10", "1e400"])
@pytest.mark.parametrize("method, path, base, field, attr", NUMERIC_INPUTS)
def test_every_numeric_input_refuses_nan_infinity_hex_and_overflow_by_name(
    world_a, method, path, base, field, attr, value
):
    sent = [value] if field.endswith("ids") else value
    response = getattr(world_a.api(Role.ADMIN), method)(path, {**base, field: sent}, format="json")
    assert response.status_code == 400, (field, value, response.json())
    assert response.json()["attr"] == attr, response.json()


@pytest.mark.parametrize("value", ["NaN", "Infinity", "0x10", "1e400", "1_0"])
@pytest.mark.parametrize("name", ["min_change", "max_change", "min_profit_delta"])
def test_every_numeric_filter_refuses_nan_infinity_hex_and_overflow_by_name(world_a, name, value):
    response = world_a.api(Role.VIEWER).get("/api/v1/recommendations/", {name: value})
    assert response.status_code == 400 and response.json()["attr"] == name, response.json()


@pytest.mark.parametrize("price", ["NaN", "0x10", "1e400", "99999999999"])
def test_approving_at_an_edited_price_that_is_not_a_storable_number_is_a_400(repriced, price):
    approver = repriced.api(Role.APPROVER)
    rec = approver.get("/api/v1/recommendations/?status=pending").json()["results"][0]
    response = approver.post(
        f"/api/v1/recommendations/{rec['id']}/approve/", {"price": price}, format="json"
    )
    assert response.status_code == 400 and response.json()["attr"] == "price", response.json()
    assert approver.get(f"/api/v1/recommendations/{rec['id']}/").json()["status"] == "pending"


@pytest.mark.parametrize("window", ["NaN", "0x10", "1e400"])
def test_an_outcome_window_that_is_not_a_whole_number_is_a_400_naming_it(repriced, window):
    viewer = repriced.api(Role.VIEWER)
    job = viewer.get("/api/v1/reprice-jobs/").json()["results"][0]["id"]
    response = viewer.get(f"/api/v1/reprice-jobs/{job}/outcome/", {"window": window})
    assert response.status_code == 400 and response.json()["attr"] == "window", response.json()


def test_the_recommendations_list_is_the_newest_jobs_unless_a_filter_says_otherwise(repriced):
    from pricing_saas.pricing import services
    from pricing_saas.pricing.models import Recommendation

    with tenant_context(repriced.tenant):
        first = Recommendation.objects.order_by("job_id").first().job_id
        second = services.run_reprice(job_id=services.start_reprice(enqueue=False).pk)
        rows = list(Recommendation.objects.values_list("pk", "job_id", "status"))
    assert {job for _pk, job, _s in rows} == {first, second.pk}
    newest = {pk for pk, job, s in rows if job == second.pk and s != "superseded"}
    superseded = {pk for pk, _job, s in rows if s == "superseded"}
    assert newest and superseded  # the newer job replaced the first's pending ones
    client = repriced.api(Role.VIEWER)

    def ids(**query) -> set[int]:
        answer = client.get("/api/v1/recommendations/", {"page_size": 1000, **query})
        page = answer.json()
        assert "count" in page, (answer.status_code, page)
        assert page["count"] == len(page["results"])
        return {r["id"] for r in page["results"]}

    assert ids() == newest  # one row per SKU, not 44 mixed
    five = client.get("/api/v1/recommendations/", {"page_size": 5}).json()
    assert five["count"] == len(newest) and len(five["results"]) == 5
    assert {r["id"] for r in five["results"]} <= newest
    # an explicit filter keeps its meaning: a status over every job, or one job in every status
    assert ids(status="superseded") == superseded
    assert ids(status="pending") == {pk for pk, _j, s in rows if s == "pending"}
    assert ids(job=first) == {pk for pk, job, _s in rows if job == first}
    assert ids(job=second.pk) == {pk for pk, job, _s in rows if job == second.pk}
    # one of an older job's rows is still found by id
    old = next(iter(superseded))
    assert client.get(f"/api/v1/recommendations/{old}/").json()["status"] == "superseded"


def test_the_scope_preview_counts_skus_before_a_rule_set_is_saved(repriced, world_b):
    """GET /rule-sets/preview/: the SKUs a scope takes in (categories whatever their case),
    the values that match none with their look-alikes; nothing saved; A's count never
    includes B's products, and B's scope of A's category takes in nothing."""
    from pricing_saas.catalog.models import Product
    from pricing_saas.pricing.models import RuleSet
    from tests.factories import ProductFactory

    ProductFactory(tenant=world_b.tenant, sku="B1", category="a")
    api = repriced.api(Role.VIEWER)
    with tenant_context(repriced.tenant):
        in_a = Product.objects.filter(category="a", active=True).count()
        every = Product.objects.filter(active=True).count()
    got = api.get("/api/v1/rule-sets/preview/", {"scope": "category", "scope_values": " A "})
    assert got.status_code == 200
    assert got.json() == {"skus": in_a, "unmatched": [], "suggestions": []}
    typo = api.get(
        "/api/v1/rule-sets/preview/", {"scope": "category", "scope_values": "a, bb"}
    ).json()
    assert typo == {"skus": in_a, "unmatched": ["bb"], "suggestions": ["b"]}
    assert api.get("/api/v1/rule-sets/preview/").json()["skus"] == every
    skus = api.get("/api/v1/rule-sets/preview/", {"scope": "skus", "scope_values": "P1,B1"})
    assert skus.json() == {"skus": 1, "unmatched": ["B1"], "suggestions": []}
    empty = api.get("/api/v1/rule-sets/preview/", {"scope": "category"})
    assert empty.status_code == 400 and empty.json()["attr"] == "scope_values"
    bad = api.get("/api/v1/rule-sets/preview/", {"scope": "eggs"})
    assert bad.status_code == 400 and bad.json()["attr"] == "scope"
    b_count = world_b.api(Role.VIEWER).get(
        "/api/v1/rule-sets/preview/", {"scope": "category", "scope_values": "a"}
    )
    assert b_count.json()["skus"] == 1  # B's own product only
    # A list too long for a request line: the query refuses it by name, POST takes it (a
    # viewer may: it only reads).
    many = ",".join(["a", *(f"nothing-{i}" for i in range(400))])
    long_get = api.get("/api/v1/rule-sets/preview/", {"scope": "category", "scope_values": many})
    assert long_get.status_code == 400 and long_get.json()["attr"] == "scope_values"
    posted = api.post(
        "/api/v1/rule-sets/preview/",
        {"scope": "category", "scope_values": many},
        format="json",
    )
    assert posted.status_code == 200, posted.json()
    assert posted.json()["skus"] == in_a and len(posted.json()["unmatched"]) == 400
    wrong = api.post("/api/v1/rule-sets/preview/", {"scope": "eggs"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["attr"] == "scope"
    with tenant_context(repriced.tenant):
        assert not RuleSet.objects.exists()  # a preview saves nothing


def test_bulk_publish_and_rollback_preview_first_then_act_on_exactly_that(repriced, world_b):
    """The API's two steps, as the portal's: a preview (the impact and a `confirm` token,
    nothing done), then the action with the token, refused with 409 `changed` and nothing
    done when the rows changed in between; B's ids are refused in A's preview and A's
    previews in B's tenant find nothing of A's."""
    from pricing_saas.pricing.models import PriceChange, Publication, Recommendation

    api = repriced.api(Role.APPROVER)
    with tenant_context(repriced.tenant):
        pending = list(Recommendation.objects.filter(status="pending").order_by("pk"))
    ids = [r.pk for r in pending[:4]]
    preview = api.post(
        "/api/v1/recommendations/bulk/preview/", {"action": "approve", "ids": ids}, format="json"
    )
    assert preview.status_code == 200, preview.json()
    summary = preview.json()
    up = sum(1 for r in pending[:4] if r.recommended_price > r.current_price)
    assert (summary["count"], summary["up"], summary["action"]) == (4, up, "approve")
    assert summary["profit_per_day"] == pytest.approx(sum(r.profit_delta for r in pending[:4]))
    with tenant_context(repriced.tenant):
        assert not Recommendation.objects.filter(status="approved").exists()  # nothing yet
    wrong = api.post(
        "/api/v1/recommendations/bulk/",
        {"action": "approve", "ids": ids[:3], "confirm": summary["confirm"]},
        format="json",
    )
    assert wrong.status_code == 409 and wrong.json()["code"] == "changed"
    done = api.post(
        "/api/v1/recommendations/bulk/",
        {"action": "approve", "ids": ids, "confirm": summary["confirm"]},
        format="json",
    )
    assert done.json() == {"action": "approve", "count": 4}
    by_filter = api.post(
        "/api/v1/recommendations/bulk/preview/",
        {"action": "reject", "filters": {"min_change": 0}},
        format="json",
    ).json()
    assert by_filter["count"] == len(pending) - 4

    publish = api.post("/api/v1/publications/preview/", {}, format="json")
    assert publish.status_code == 200
    assert (publish.json()["count"], publish.json()["publisher"]) == (4, "csv")
    with tenant_context(repriced.tenant):
        assert not Publication.objects.exists()
        # one more approved meanwhile: the confirmed publish does nothing
        Recommendation.objects.filter(pk=pending[5].pk).update(status="approved")
    stale = api.post("/api/v1/publications/", {"confirm": publish.json()["confirm"]}, format="json")
    assert stale.status_code == 409 and stale.json()["code"] == "changed"
    with tenant_context(repriced.tenant):
        assert not Publication.objects.exists()
    only_four = api.post(
        "/api/v1/publications/preview/", {"recommendation_ids": ids}, format="json"
    ).json()
    assert only_four["count"] == 4
    sent = api.post(
        "/api/v1/publications/",
        {"recommendation_ids": ids, "confirm": only_four["confirm"]},
        format="json",
    )
    assert sent.status_code == 202, sent.json()

    job = pending[0].job_id
    back = api.post(f"/api/v1/reprice-jobs/{job}/rollback/preview/", {}, format="json")
    assert back.status_code == 200, back.json()
    assert back.json()["count"] == 4 and len(back.json()["sample"]) == 4
    with tenant_context(repriced.tenant):
        assert not PriceChange.objects.filter(kind="rollback").exists()
    assert (
        api.post(
            f"/api/v1/reprice-jobs/{job}/rollback/", {"confirm": "0" * 64}, format="json"
        ).status_code
        == 409
    )
    rolled = api.post(
        f"/api/v1/reprice-jobs/{job}/rollback/",
        {"confirm": back.json()["confirm"], "comment": "undo"},
        format="json",
    )
    assert rolled.status_code == 202
    with tenant_context(repriced.tenant):
        assert PriceChange.objects.filter(kind="rollback").count() == 4

    b_api = world_b.api(Role.APPROVER)  # B cannot preview A's rows or job
    theirs = b_api.post(
        "/api/v1/recommendations/bulk/preview/",
        {"action": "approve", "ids": [pending[6].pk]},
        format="json",
    )
    assert theirs.status_code == 404
    assert b_api.post(f"/api/v1/reprice-jobs/{job}/rollback/preview/").status_code == 404
    assert b_api.post("/api/v1/publications/preview/", {}, format="json").json()["count"] == 0
