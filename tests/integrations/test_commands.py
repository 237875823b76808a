"""connect_shop, sync_shop, rotate_credentials, and publish through Shopify end to end."""

from __future__ import annotations

from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from pricing_saas.catalog.models import Product, SalesRecord
from pricing_saas.integrations.models import Connection
from tenants.context import tenant_context
from tests.factories import RecommendationFactory, RepriceJobFactory

pytestmark = pytest.mark.django_db


def connect_by_command(world, fake_shop, tmp_path, token=None):
    token_file = tmp_path / "token"
    token_file.write_text((token or fake_shop.token) + "\n")
    out = []
    call_command(
        "connect_shop",
        world.tenant.slug,
        "shopify",
        "--shop-url",
        "https://fake.myshopify.com",
        "--token-file",
        str(token_file),
        "--api-base-url",
        fake_shop.url,
        stdout=type("W", (), {"write": lambda self, s: out.append(s)})(),
    )
    return "".join(out)


def test_connect_sync_approve_publish_end_to_end(world_a, fake_shop, tmp_path):
    fake_shop.add_product("Tea", [{"sku": "TEA", "price": "4.50", "unitCost": "2.00"}])
    fake_shop.add_order(created="2025-03-01T10:00:00Z", lines=[("TEA", 2, "4.00")])
    assert "Fake Shop connected (USD)" in connect_by_command(world_a, fake_shop, tmp_path)
    call_command("sync_shop", world_a.tenant.slug)
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="TEA").cost == Decimal(2)
        assert SalesRecord.objects.get().units == 2
        from pricing_saas.pricing import approvals

        approvals.update_policy(publisher="shopify")
        product = Product.objects.get(sku="TEA")
    job = RepriceJobFactory(tenant=world_a.tenant)
    RecommendationFactory(
        tenant=world_a.tenant,
        job=job,
        product=product,
        status="approved",
        current_price="4.50",
        recommended_price="4.79",
    )
    call_command("publish", world_a.tenant.slug, "--job", str(job.pk))
    assert fake_shop.variant("TEA")["price"] == "4.79"
    with tenant_context(world_a.tenant):
        assert Product.objects.get(sku="TEA").price == Decimal("4.79")
    with pytest.raises(CommandError, match="no approved change"):
        call_command("publish", world_a.tenant.slug, "--job", str(job.pk))


def test_wrong_token_is_a_clear_error_and_nothing_is_synced(world_a, fake_shop, tmp_path):
    with pytest.raises(CommandError, match="access_token: the shop refused the access token"):
        connect_by_command(world_a, fake_shop, tmp_path, token="shpat_wrong")
    with tenant_context(world_a.tenant):
        assert not Connection.objects.exists()
    with pytest.raises(CommandError, match="no connected shop"):
        call_command("sync_shop", world_a.tenant.slug)


def test_missing_token_file_is_named(world_a, fake_shop, tmp_path):
    with pytest.raises(CommandError, match="--token-file"):
        call_command(
            "connect_shop",
            world_a.tenant.slug,
            "shopify",
            "--shop-url",
            "https://x.myshopify.com",
            "--token-file",
            str(tmp_path / "none"),
        )


def test_rotate_credentials_reencrypts_under_the_new_key(world_a, fake_shop, tmp_path, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    connect_by_command(world_a, fake_shop, tmp_path)
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_credentials", stdout=type("W", (), {"write": lambda self, s: None})())
    settings.FIELD_ENCRYPTION_KEYS = [new]
    with tenant_context(world_a.tenant):
        assert Connection.objects.get().secrets()["access_token"] == fake_shop.token
