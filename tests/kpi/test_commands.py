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
