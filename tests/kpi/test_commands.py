"""The `refresh_kpis` management command."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from pricing_saas.kpi.models import DailyKpi
from tenants.context import tenant_context

from .conftest import MARCH

pytestmark = pytest.mark.django_db


def test_refresh_kpis_computes_every_fact_then_only_the_days_asked(small_shop):
    out = io.StringIO()
    call_command("refresh_kpis", small_shop.tenant.slug, stdout=out)
    assert out.getvalue().startswith("alpha-store: 5 facts inserted, 0 updated, 0 deleted")
    with tenant_context(small_shop.tenant):
        DailyKpi.objects.filter(date__lt=MARCH[1]).update(units=99)
    out = io.StringIO()
    call_command("refresh_kpis", small_shop.tenant.slug, "--since", "2024-03-02", stdout=out)
    assert "0 facts inserted, 0 updated, 0 deleted" in out.getvalue()  # 03-01 is not asked
    call_command("refresh_kpis", small_shop.tenant.slug, "--until", "2024-03-01", stdout=out)
    with tenant_context(small_shop.tenant):
        assert not DailyKpi.objects.filter(units=99).exists()


def test_refresh_kpis_refuses_unknown_tenants_and_bad_dates(small_shop):
    with pytest.raises(CommandError, match="unknown tenant"):
        call_command("refresh_kpis", "nobody")
    with pytest.raises(CommandError, match="not a date"):
        call_command("refresh_kpis", small_shop.tenant.slug, "--since", "March")
    with pytest.raises(CommandError, match="after"):
        call_command(
            "refresh_kpis", small_shop.tenant.slug, "--since", "2024-03-02", "--until", "2024-03-01"
        )


# --- merge_competitor_spellings: each tenant committed on its own ------------------------------


def _respelt(world):
    """A product read as "Rival" and as "rival " (a spelling stored before they were one)."""
    import datetime as dt

    from tests.factories import CompetitorOfferFactory, ProductFactory

    t0 = dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC)
    with tenant_context(world.tenant):
        p = ProductFactory(tenant=world.tenant, sku="P1", price="10.00")
        CompetitorOfferFactory(tenant=world.tenant, product=p, competitor="Rival", observed_at=t0)
        CompetitorOfferFactory(tenant=world.tenant, product=p, competitor="rival ",
                               observed_at=t0 + dt.timedelta(days=1))  # fmt: skip


def _spellings(world) -> set[str]:
    from pricing_saas.catalog.models import CompetitorOffer

    with tenant_context(world.tenant):
        return set(CompetitorOffer.objects.values_list("competitor", flat=True))


@pytest.fixture
def queued_refreshes(monkeypatch):
    from pricing_saas.kpi.tasks import refresh

    queued = []
    monkeypatch.setattr(refresh, "delay", lambda tenant, since=None: queued.append(tenant))
    return queued


@pytest.mark.django_db(transaction=True)
def test_a_tenant_whose_merge_fails_in_the_database_is_rolled_back_and_the_rest_go_on(
    world_a, world_b, monkeypatch, queued_refreshes
):
    from django.db import connection

    from pricing_saas.kpi import spellings
    from tenants.context import require_current_tenant

    _respelt(world_a)
    _respelt(world_b)
    real = spellings.merge_stored

    def merge_stored(**kwargs):
        done = real(**kwargs)  # A's readings moved, inside its transaction
        if require_current_tenant().pk == world_a.tenant.pk:
            with connection.cursor() as cur:
                cur.execute("SELECT 1 / 0")
        return done

    monkeypatch.setattr(spellings, "merge_stored", merge_stored)
    err = io.StringIO()
    with pytest.raises(CommandError, match=f"not merged \\({world_a.tenant.slug}\\)"):
        call_command("merge_competitor_spellings", stderr=err, stdout=io.StringIO())
    assert "division by zero" in err.getvalue()
    assert _spellings(world_a) == {"Rival", "rival "}  # rolled back, nothing queued for it
    assert _spellings(world_b) == {"Rival"}
    assert queued_refreshes == [world_b.tenant.pk]


@pytest.mark.django_db(transaction=True)
def test_a_merge_stands_when_the_queue_refuses_its_refresh(world_a, world_b, monkeypatch):
    from kombu.exceptions import OperationalError

    from pricing_saas.kpi.tasks import refresh

    def refuse(*args, **kwargs):
        raise OperationalError("the broker is down")

    monkeypatch.setattr(refresh, "delay", refuse)
    _respelt(world_a)
    _respelt(world_b)
    out = io.StringIO()
    call_command("merge_competitor_spellings", stdout=out)  # no error: both merged
    assert _spellings(world_a) == _spellings(world_b) == {"Rival"}
    assert out.getvalue().count("moved 1 readings") == 2
