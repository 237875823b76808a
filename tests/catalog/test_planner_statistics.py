"""The planner's statistics after a large import (pricing_saas/catalog/importer/planner.py):
the application role cannot ANALYZE the tables it does not own, so a large first import refreshes
them through the owner's `catalog_refresh_statistics`, which analyzes only the import's tables."""

from __future__ import annotations

import logging

import pytest
from django.db import DatabaseError, connection, transaction

from pricing_saas.catalog.importer import planner

from .conftest import PRODUCTS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small(monkeypatch):
    """A tenth of the product's sizes."""
    monkeypatch.setattr(planner, "MIN_ROWS", 5_000)


def _products(count: int, start: int = 0) -> str:
    return PRODUCTS + "".join(
        f"P{i:06d},Item {i},,Food,,1.00,2.00,EUR,1\n" for i in range(start, start + count)
    )


def test_a_large_first_import_refreshes_the_planners_picture_of_the_tenant(
    shop, tmp_path, run, django_capture_on_commit_callbacks
):
    count = planner.MIN_ROWS + 2_000
    before = planner.planned_rows("catalog_product", shop.pk)
    assert before < count / 2  # the planner has never seen this tenant's products
    with django_capture_on_commit_callbacks(execute=True):
        assert run(tmp_path, "products", _products(count)).created == count
    after = planner.planned_rows("catalog_product", shop.pk)
    assert 0.8 * count <= after <= 1.2 * count


def test_small_imports_and_imports_the_planner_already_expects_do_not_analyze(
    shop, tmp_path, run, django_capture_on_commit_callbacks, monkeypatch
):
    calls = []
    monkeypatch.setattr(planner, "refresh", lambda table, since: calls.append(table) or True)
    with django_capture_on_commit_callbacks(execute=True):
        run(tmp_path, "products", _products(500))
    assert calls == []  # under MIN_ROWS: never even planned
    monkeypatch.setattr(planner, "planned_rows", lambda table, tenant_id: 500_000.0)
    with django_capture_on_commit_callbacks(execute=True):
        run(tmp_path, "products", _products(planner.MIN_ROWS, start=1_000))
    assert calls == []  # fewer rows than the planner already believes the tenant has
    monkeypatch.setattr(planner, "planned_rows", lambda table, tenant_id: 10.0)
    with django_capture_on_commit_callbacks(execute=True):
        run(tmp_path, "products", _products(planner.MIN_ROWS, start=20_000))
    assert calls == ["catalog_product"]


def test_products_made_for_unknown_skus_count_for_the_product_table(
    shop, tmp_path, run, django_capture_on_commit_callbacks, monkeypatch
):
    calls = []
    monkeypatch.setattr(planner, "refresh", lambda table, since: calls.append(table) or True)
    monkeypatch.setattr(planner, "planned_rows", lambda table, tenant_id: 10.0)
    sales = "date,sku,units,price\n" + "".join(
        f"2026-01-01,NEW{i:06d},1,2.00\n" for i in range(planner.MIN_ROWS)
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = run(tmp_path, "sales", sales, create_missing_products=True)
    assert result.created == planner.MIN_ROWS
    assert sorted(calls) == ["catalog_product", "catalog_salesrecord"]


def test_a_failed_refresh_is_logged_and_the_import_stands(
    shop, tmp_path, run, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    def broken(table, since):
        raise DatabaseError("canceling statement due to lock timeout")

    monkeypatch.setattr(planner, "refresh", broken)
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        result = run(tmp_path, "products", _products(planner.MIN_ROWS))
    assert result.created == planner.MIN_ROWS
    assert "could not refresh the planner statistics of catalog_product" in caplog.text


def test_the_application_role_analyzes_only_the_imports_tables_and_only_through_the_function(
    shop,
):
    with connection.cursor() as cur:
        cur.execute(
            "SELECT tableowner <> current_user FROM pg_tables WHERE tablename = 'catalog_product'"
        )
        assert cur.fetchone()[0]  # the suite runs as an application role that owns nothing
    for table in ("tenants_tenant", "pg_authid", "catalog_product; DROP TABLE x", None):
        with (
            pytest.raises(DatabaseError, match="not a table an import writes"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute("SELECT public.catalog_refresh_statistics(%s, NULL)", [table])
    with pytest.raises(ValueError, match="not a table an import writes"):
        planner.planned_rows("tenants_tenant", shop.pk)
    assert planner.refresh("catalog_salesrecord") is True


def test_a_table_analyzed_since_the_import_committed_is_not_analyzed_again(shop):
    with connection.cursor() as cur:
        cur.execute("SELECT clock_timestamp()")
        committed = cur.fetchone()[0]
    assert planner.refresh("catalog_competitoroffer") is True  # always, without a time
    # that ANALYZE ended after the commit: it saw the rows
    assert planner.refresh("catalog_competitoroffer", since=committed) is False
    with connection.cursor() as cur:
        cur.execute("SELECT clock_timestamp()")
        later = cur.fetchone()[0]
    assert planner.refresh("catalog_competitoroffer", since=later) is True


def test_the_application_role_is_granted_the_function_by_name_and_public_is_not(db):
    from tenants.grants import APP_FUNCTIONS

    with connection.cursor() as cur:
        for function in APP_FUNCTIONS:
            cur.execute("SELECT has_function_privilege(%s, 'EXECUTE')", [function])
            assert cur.fetchone()[0]
            cur.execute("SELECT has_function_privilege('public', %s, 'EXECUTE')", [function])
            assert not cur.fetchone()[0]  # revoked from PUBLIC: only the application role
