"""The audit log records member and API-key changes with who did them, and only owners read it."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from tenants.context import tenant_context
from tenants.models import AuditEvent
from tenants.roles import Role

pytestmark = pytest.mark.django_db


def test_member_and_key_changes_are_recorded_with_the_actor(world_a, world_b):
    owner = APIClient()
    owner.force_login(world_a.users[Role.OWNER])
    created = owner.post("/api/v1/api-keys/", {"name": "ERP", "role": "analyst"}, format="json")
    assert created.status_code == 201
    owner.delete(f"/api/v1/api-keys/{created.json()['id']}/")
    member = owner.get("/api/v1/members/").json()["results"]
    viewer = next(m for m in member if m["role"] == "viewer")
    owner.patch(f"/api/v1/members/{viewer['id']}/", {"role": "analyst"}, format="json")
    with tenant_context(world_a.tenant):
        events = {e.action: e for e in AuditEvent.objects.order_by("pk")}  # the last of each
    assert {"api_key.create", "api_key.revoke", "member.role"} <= set(events)
    assert events["member.role"].before == {"role": "viewer"}
    assert events["member.role"].after == {"role": "analyst"}
    assert events["api_key.create"].actor == world_a.users[Role.OWNER].email
    email = world_a.users[Role.OWNER].email
    listed = owner.get(f"/api/v1/audit-events/?action=api_key&actor={email}").json()
    assert listed["count"] == 2  # the world's own keys were made by "system"
    with tenant_context(world_b.tenant):
        assert not AuditEvent.objects.filter(actor=email).exists()  # nothing of A lands in B


def test_only_owners_read_the_audit_log(world_a):
    for role in (Role.ADMIN, Role.APPROVER, Role.ANALYST, Role.VIEWER):
        assert world_a.api(role).get("/api/v1/audit-events/").status_code == 403
        assert world_a.api(role).get("/api/v1/audit-events/export/").status_code == 403


def test_the_export_keeps_empty_cells_empty_and_neutralises_formulas(world_a):
    from pricing_saas.portal.selectors import export_rows
    from tenants import audit
    from tenants.context import actor_context

    with tenant_context(world_a.tenant), actor_context(None, "=HYPERLINK(1)"):
        audit.record("rules.create", target_type="RuleSet", summary="")
        rows = list(export_rows(AuditEvent.objects.filter(action="rules.create")))
    assert rows[1][1] == "'=HYPERLINK(1)" and rows[1][5] == "" and rows[1][6] == ""


def test_models_reprice_jobs_and_imports_are_recorded(world_a, tmp_path):
    from ml import services as ml_services
    from pricing_saas.catalog.importer import ImportOptions
    from pricing_saas.catalog.services import import_local_file
    from pricing_saas.pricing import services as pricing_services

    with tenant_context(world_a.tenant):
        for _ in range(2):  # (a queued run is returned, not doubled: one at a time)
            version = ml_services.start_training(trainer="baseline", enqueue=False)
            version.status = "ready"
            version.artifact.save(f"v{version.version}.zip", ContentFile(b"x"), save=True)
            ml_services.promote(version=version)
        ml_services.rollback()
        pricing_services.start_reprice(trigger="run-now", enqueue=False)
        path = tmp_path / "p.csv"
        path.write_text("sku,title,price\nA1,Socks,4.50\n")
        import_local_file(kind="products", path=path, options=ImportOptions())
        actions = list(AuditEvent.objects.order_by("pk").values_list("action", "summary"))
    names = [a for a, _ in actions]
    assert names.count("model.training_queued") == 2
    assert names.count("model.promoted") == 3 and "model.rolled_back" in names
    promoted = [s for a, s in actions if a == "model.promoted"]
    assert "v2 in force (was v1)" in promoted[1] and "v1 in force (was v2)" in promoted[2]
    assert any(a == "reprice.started" and s.endswith("(run-now)") for a, s in actions)
    assert "import.queued" in names and "import.finished" in names


def test_the_audit_page_shows_what_changed_in_plain_words(world_a):
    from django.test import Client

    owner = APIClient()
    owner.force_login(world_a.users[Role.OWNER])
    viewer = next(
        m for m in owner.get("/api/v1/members/").json()["results"] if m["role"] == "viewer"
    )
    owner.patch(f"/api/v1/members/{viewer['id']}/", {"role": "analyst"}, format="json")
    page = world_a.portal(Client(), "owner").get("/audit/").content.decode()
    assert "<strong>role</strong>: viewer → analyst" in page
    assert "{&#x27;role&#x27;" not in page  # no raw dicts


def test_the_team_page_says_what_each_role_may_do(world_a):
    from django.test import Client

    page = world_a.portal(Client(), "viewer").get("/team/").content.decode()
    assert "What each role may do" in page
    assert "approve or reject recommended prices" in page and "create and revoke API keys" in page
