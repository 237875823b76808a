"""The model pages of the portal (`ml/views.py`): versions, training progress, mispricing,
train, cancel and roll back by role."""

from __future__ import annotations

import pytest
from django.test import Client

from ml.models import ModelVersion
from pricing_saas.catalog.models import Product
from tenants.context import tenant_context
from tenants.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_portal_models_page_progress_and_mispricing(stocked, train):
    with tenant_context(stocked.tenant):
        Product.objects.filter(sku="S0").update(price=50_000)  # far above its peers
    train(stocked)
    client = Client()
    client.force_login(stocked.users[Role.VIEWER])
    page = client.get("/models/").content.decode()
    assert "in force" in page and "baseline" in page and "Train now" not in page
    mispriced = client.get("/models/mispricing/?direction=above").content.decode()
    assert "S0" in mispriced
    with tenant_context(stocked.tenant):
        s0 = Product.objects.get(sku="S0").pk
    assert f'href="/pricing/sku/{s0}/"' in mispriced  # each row opens the SKU's page
    catalog = client.get("/catalog/").content.decode()
    assert f'href="/pricing/sku/{s0}/"' in catalog
    with tenant_context(stocked.tenant):
        running = ModelVersion.objects.create(
            tenant=stocked.tenant,
            version=99,
            status="training",
            requested_trainer="finetune",
            progress={
                "step": 5,
                "total_steps": 20,
                "epoch": 1,
                "epochs": 2,
                "loss": 0.5,
                "eta_s": 30,
            },
        )
    fragment = client.get(f"/models/{running.pk}/progress/").content.decode()
    assert 'hx-trigger="every 2s"' in fragment and 'value="5"' in fragment
    assert "waiting for a worker" not in fragment


def test_a_queued_training_says_it_waits_for_a_worker_with_a_moving_bar(stocked):
    """Queued, the bar is indeterminate (no value, so the browser animates it) and the page
    says what it waits for, instead of an empty bar that looks stuck."""
    with tenant_context(stocked.tenant):
        queued = ModelVersion.objects.create(
            tenant=stocked.tenant, version=7, status="queued", requested_trainer="baseline"
        )
    client = Client()
    client.force_login(stocked.users[Role.VIEWER])
    for url in ("/models/", f"/models/{queued.pk}/progress/"):
        html = client.get(url).content.decode()
        assert "Queued: waiting for a worker to start it." in html, url
        bar = html[html.index("<progress") : html.index("</progress>")]
        assert "value=" not in bar and 'aria-label="Training progress: queued"' in bar, url


def test_portal_analyst_trains_and_cancels(stocked):
    client = Client()
    client.force_login(stocked.users[Role.ANALYST])
    assert client.post("/models/train/", {"trainer": "baseline"}).status_code == 302
    with tenant_context(stocked.tenant):
        assert ModelVersion.objects.get().status == "promoted"
    assert client.post("/models/rollback/").status_code == 302  # refused with a message, no crash


def test_the_models_page_trains_shows_and_rolls_back_the_demand_model(shop, client):
    from ml.models import ModelVersion
    from tenants.roles import Role

    shop.portal(client, Role.VIEWER)
    page = client.get("/models/").content.decode()
    assert "No demand model trained yet" in page and "Train the demand model now" not in page
    assert client.post("/models/train/", {"kind": "demand"}).status_code == 403
    shop.portal(client, Role.ANALYST)
    for _ in range(2):
        assert client.post("/models/train/", {"kind": "demand"}).status_code == 302
    with tenant_context(shop.tenant):
        assert list(
            ModelVersion.objects.filter(kind="demand")
            .order_by("version")
            .values_list("status", flat=True)
        ) == ["ready", "promoted"]
        assert not ModelVersion.objects.filter(kind="text").exists()
    page = client.get("/models/").content.decode()
    assert "Roll back the demand model" in page and "products with sales" in page
    assert page.count("± ") >= 3  # the version in force and both rows carry their elasticity
    client.post("/models/rollback/", {"kind": "demand"})
    with tenant_context(shop.tenant):
        promoted = ModelVersion.objects.get(kind="demand", status="promoted")
    assert promoted.version == 1
    response = client.post("/models/rollback/", {"kind": "nonsense"}, follow=True)
    assert "unknown model kind" in response.content.decode()
