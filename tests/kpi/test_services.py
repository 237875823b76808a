"""The KPI refresh (`pricing_saas/kpi/services.py`): facts equal the hand computation of the
small shop (tests/kpi/conftest.py), the refresh is idempotent and incremental, derived costs are
labelled, an import's scope is what it touched, and a refresh under one tenant never reads or
writes another's rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from pricing_saas.catalog import services as catalog_services
from pricing_saas.catalog.importer import ImportOptions, import_rows
from pricing_saas.catalog.models import ImportJob, SalesRecord
from pricing_saas.kpi.models import DailyKpi
from pricing_saas.kpi.services import (
    Scope,
    products_with_changed_cost,
    refresh_kpis,
    scope_of_import,
)
from tenants.context import TenantNotSet, tenant_context

from .conftest import EXPECTED, MARCH

pytestmark = pytest.mark.django_db

FIELDS = [
    "units",
    "revenue",
    "unit_cost",
    "cost_known",
    "cost_derived",
    "profit",
    "competitor_price",
]


def facts_of(world) -> dict:
    """{(sku, date): (units, revenue, unit_cost, cost_known, cost_derived, profit, competitor)}"""
    skus = {pk: sku for sku, pk in world.ids.items()}
    with tenant_context(world.tenant):
        return {
            (skus[row[0]], row[1]): tuple(row[2:])
            for row in DailyKpi.objects.values_list("product_id", "date", *FIELDS)
        }


def test_facts_equal_the_hand_computation(small_shop):
    with tenant_context(small_shop.tenant):
        done = refresh_kpis()
    assert (done.inserted, done.updated, done.deleted) == (5, 0, 0)
    assert facts_of(small_shop) == EXPECTED


def test_a_competitor_reading_of_another_item_is_no_competitor_price(small_shop):
    """TEA-A sells at 10: a reading at 2.00 (or X's scraper landing on a sample at 2.50) is too
    far under it to be the same item, as the reprice reads it; the facts are the hand
    computation's, X's 9.00 holding on past its stray reading."""
    rows = [
        {"sku": "TEA-A", "competitor": "J", "price": "2.00", "observed_at": "2024-03-01T10:00:00Z"},
        {"sku": "TEA-A", "competitor": "X", "price": "2.50", "observed_at": "2024-03-01T08:00:00Z"},
    ]  # fmt: skip
    with tenant_context(small_shop.tenant):
        import_rows(kind="competitor_prices", rows=rows)
        refresh_kpis()
    assert facts_of(small_shop) == EXPECTED


def test_a_derived_cost_is_labelled_and_a_missing_one_gives_no_profit(refreshed):
    facts = facts_of(refreshed)
    assert {key[0] for key, f in facts.items() if f[4]} == {"TEA-B"}  # cost_derived
    coffee = facts[("COF-C", MARCH[1])]
    assert coffee[3] is False and coffee[5] is None  # no cost known, no profit


def test_refresh_is_idempotent(refreshed):
    before = facts_of(refreshed)
    with tenant_context(refreshed.tenant):
        again = refresh_kpis()
        partial = refresh_kpis(since=MARCH[1], product_ids=[refreshed.ids["TEA-A"]])
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert (partial.inserted, partial.updated, partial.deleted) == (0, 0, 0)
    assert facts_of(refreshed) == before


def test_late_and_duplicated_sales_rows_never_double_count(refreshed):
    """The importer upserts sales by (product, date, channel): the same rows again change
    nothing, a late row of another channel adds to its day, and a refresh recomputes the day
    from the rows rather than adding to the fact."""
    late = [
        {"date": "2024-03-01", "sku": "TEA-A", "units": 2, "price": "10"},  # a duplicate
        {"date": "2024-03-01", "sku": "TEA-A", "units": 4, "price": "9", "channel": "market"},
    ]
    with tenant_context(refreshed.tenant):
        import_rows(kind="sales", rows=late)
        first = refresh_kpis(since=MARCH[0], until=MARCH[0])
        import_rows(kind="sales", rows=late)  # delivered twice
        second = refresh_kpis(since=MARCH[0], until=MARCH[0])
    assert (first.inserted, first.updated, first.deleted) == (0, 1, 0)
    assert (second.inserted, second.updated, second.deleted) == (0, 0, 0)
    facts = facts_of(refreshed)
    assert facts[("TEA-A", MARCH[0])][:2] == (7, Decimal("66"))  # 3 + 4 units, 30 + 36
    assert facts[("TEA-A", MARCH[0])][5] == Decimal("66") - 7 * 4
    assert {k: v for k, v in facts.items() if k != ("TEA-A", MARCH[0])} == {
        k: v for k, v in EXPECTED.items() if k != ("TEA-A", MARCH[0])
    }


def test_refresh_touches_only_its_range_and_products(refreshed):
    a, c = refreshed.ids["TEA-A"], refreshed.ids["COF-C"]
    with tenant_context(refreshed.tenant):
        SalesRecord.objects.filter(product_id__in=[a, c], date=MARCH[1]).update(units=5, revenue=50)
        outside = refresh_kpis(since=MARCH[2])  # the changed day is not in the range
        assert (outside.inserted, outside.updated, outside.deleted) == (0, 0, 0)
        one = refresh_kpis(since=MARCH[1], until=MARCH[1], product_ids=[a])
    assert (one.inserted, one.updated, one.deleted) == (0, 1, 0)
    facts = facts_of(refreshed)
    assert facts[("TEA-A", MARCH[1])][:2] == (5, Decimal("50"))
    assert facts[("COF-C", MARCH[1])][:2] == (1, Decimal("20"))  # not in the products: stale


def test_a_fact_whose_sales_are_gone_is_deleted(refreshed):
    with tenant_context(refreshed.tenant):
        SalesRecord.objects.filter(product_id=refreshed.ids["COF-C"]).delete()
        done = refresh_kpis(since=MARCH[0], until=MARCH[2])
    assert (done.inserted, done.updated, done.deleted) == (0, 0, 1)
    assert ("COF-C", MARCH[1]) not in facts_of(refreshed)


def test_a_changed_cost_is_found_and_its_history_recomputed(refreshed):
    with tenant_context(refreshed.tenant):
        assert products_with_changed_cost() == ()
        dearer = {"sku": "TEA-A", "title": "Green tea", "price": "10", "cost": "5"}
        import_rows(kind="products", rows=[dearer])
        changed = products_with_changed_cost()
        assert changed == (refreshed.ids["TEA-A"],)
        done = refresh_kpis(product_ids=changed)
    assert (done.inserted, done.updated, done.deleted) == (0, 2, 0)
    facts = facts_of(refreshed)
    assert facts[("TEA-A", MARCH[0])][2:6] == (Decimal("5"), True, False, Decimal("15"))


def test_refresh_needs_a_tenant(small_shop):
    with pytest.raises(TenantNotSet):
        refresh_kpis()


def test_an_empty_product_list_refreshes_nothing(small_shop):
    with tenant_context(small_shop.tenant):
        assert refresh_kpis(product_ids=[]).inserted == 0
        assert DailyKpi.objects.count() == 0


# --- tenant isolation ----------------------------------------------------------------------------


def test_a_refresh_never_reads_or_writes_another_tenants_rows(small_shop, other_shop):
    theirs_before = facts_of(other_shop)
    with tenant_context(small_shop.tenant):
        done = refresh_kpis()
        # Naming B's products changes nothing either: they are not A's.
        hostile = refresh_kpis(product_ids=list(other_shop.ids.values()))
    assert done.inserted == 5 and (hostile.inserted, hostile.updated, hostile.deleted) == (
        0,
        0,
        0,
    )
    assert facts_of(small_shop) == EXPECTED  # B's ten-fold units never added in
    assert facts_of(other_shop) == theirs_before
    assert theirs_before[("TEA-A", MARCH[0])][0] == 30


def test_the_refresh_sql_sees_only_the_current_tenant_under_rls(small_shop, other_shop):
    """Layer 4 on its own: without the tenant filter, row-level security still hides B."""
    with tenant_context(small_shop.tenant), connection.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT tenant_id) FROM kpi_dailykpi")
        assert cur.fetchone() == (0, 0)
        refresh_kpis()
        cur.execute("SELECT count(*), count(DISTINCT tenant_id) FROM kpi_dailykpi")
        assert cur.fetchone() == (5, 1)
    with connection.cursor() as cur:  # no tenant: nothing at all
        cur.execute("SELECT count(*) FROM kpi_dailykpi")
        assert cur.fetchone() == (0,)


# --- what an import touched --------------------------------------------------------------------


def _import_job(world, kind: str, text: str, name: str = "f.csv") -> ImportJob:
    with tenant_context(world.tenant):
        job = catalog_services.create_import_job(
            kind=kind,
            upload=SimpleUploadedFile(name, text.encode()),
            options=ImportOptions(),
        )
        return catalog_services.run_import_job(job_id=job.pk)


def test_a_sales_import_scopes_its_days_and_products(small_shop):
    job = _import_job(
        small_shop,
        "sales",
        "date,sku,units,price\n2024-03-05,TEA-A,1,10\n 2024-03-04 ,TEA-A,2,10\n",
    )
    assert job.status == ImportJob.Status.SUCCEEDED
    with tenant_context(small_shop.tenant):
        scope = scope_of_import(job)
    assert scope == Scope(
        since=dt.date(2024, 3, 4),
        until=dt.date(2024, 3, 5),
        product_ids=(small_shop.ids["TEA-A"],),
    )


def test_a_mapped_semicolon_file_is_read_with_its_mapping(small_shop):
    text = "Tag;Artikel;Menge;Preis\n2024-03-07;COF-C;1;20\n"
    with tenant_context(small_shop.tenant):
        job = catalog_services.create_import_job(
            kind="sales", upload=SimpleUploadedFile("m.csv", text.encode()), options=ImportOptions()
        )
        assert job.status == ImportJob.Status.NEEDS_MAPPING
        catalog_services.set_column_map(
            job=job,
            column_map={"Tag": "date", "Artikel": "sku", "Menge": "units", "Preis": "price"},
        )
        job = catalog_services.run_import_job(job_id=job.pk)
        assert scope_of_import(job) == Scope(
            since=dt.date(2024, 3, 7),
            until=dt.date(2024, 3, 7),
            product_ids=(small_shop.ids["COF-C"],),
        )


def test_a_competitor_import_reaches_as_far_as_its_prices_hold(small_shop):
    job = _import_job(
        small_shop,
        "competitor_prices",
        "sku,competitor,price,observed_at\nTEA-B,Z,10,2024-03-01T10:00:00Z\n",
    )
    with tenant_context(small_shop.tenant):
        scope = scope_of_import(job)
    assert scope == Scope(
        since=dt.date(2024, 2, 29),  # a day of slack for the file's time zone
        until=dt.date(2024, 3, 16),  # 14 days of holding, and the day of slack
        product_ids=(small_shop.ids["TEA-B"],),
    )


def test_a_products_import_scopes_the_products_whose_cost_changed(refreshed):
    job = _import_job(
        refreshed,
        "products",
        "sku,title,price,cost\nTEA-A,Green tea,10,4.5\nCOF-C,Coffee beans,21,\n",
    )
    with tenant_context(refreshed.tenant):
        # COF-C's price changed, not its cost: its facts stand.
        assert scope_of_import(job) == Scope(product_ids=(refreshed.ids["TEA-A"],))


def test_an_import_whose_file_cannot_be_read_refreshes_everything(small_shop):
    job = _import_job(small_shop, "sales", "date,sku,units,price\n2024-03-05,TEA-A,1,10\n")
    job.file.delete(save=False)
    with tenant_context(small_shop.tenant):
        assert scope_of_import(job) == Scope()


def test_a_file_naming_most_products_reads_them_all(small_shop):
    job = _import_job(
        small_shop,
        "sales",
        "date,sku,units,price\n2024-03-05,TEA-A,1,10\n2024-03-05,TEA-B,1,12\n",
    )
    with tenant_context(small_shop.tenant):
        assert scope_of_import(job).product_ids is None  # 2 of 3 products: one scan


def test_a_workbook_import_is_read_as_its_sheet(small_shop):
    import io

    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["date", "sku", "units", "price"])
    workbook.active.append([dt.date(2024, 3, 9), "TEA-B", 1, 12])
    workbook.active.append([dt.date(2024, 3, 8), "TEA-B", 2, 12])
    buffer = io.BytesIO()
    workbook.save(buffer)
    with tenant_context(small_shop.tenant):
        job = catalog_services.create_import_job(
            kind="sales",
            upload=SimpleUploadedFile("s.xlsx", buffer.getvalue()),
            options=ImportOptions(),
        )
        job = catalog_services.run_import_job(job_id=job.pk)
        assert job.status == ImportJob.Status.SUCCEEDED
        assert scope_of_import(job) == Scope(
            since=dt.date(2024, 3, 8),
            until=dt.date(2024, 3, 9),
            product_ids=(small_shop.ids["TEA-B"],),
        )
