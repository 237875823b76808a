"""The exporter (`pricing_saas/catalog/exporter.py`): CSV and XLSX with formulas
neutralised, a round trip into another tenant, and only the tenant's rows."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from pricing_saas.catalog.exporter import export_csv, export_xlsx
from pricing_saas.catalog.importer import import_file, import_rows
from pricing_saas.catalog.models import SalesRecord
from tenants.context import tenant_context
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_exports_neutralise_formulas_in_csv_and_xlsx(shop, tmp_path, run):
    run(
        tmp_path,
        "products",
        'sku,title,brand,price,note\nF1,"=HYPERLINK(""http://evil"")",+brand,1,@cmd\nF2,-2+3,ok,2,fine\n',
    )
    buffer = io.BytesIO()
    export_csv("products", buffer)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue().decode())))
    assert rows[0]["title"].startswith("'=") and rows[0]["brand"] == "'+brand"
    assert rows[0]["note"] == "'@cmd" and rows[1]["title"] == "'-2+3"
    export_xlsx("products", tmp_path / "out.xlsx")
    from openpyxl import load_workbook

    sheet = load_workbook(tmp_path / "out.xlsx").active
    values = [c.value for row in sheet.iter_rows() for c in row if isinstance(c.value, str)]
    assert not any(v.startswith(("=", "+", "-", "@")) for v in values)
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


def test_export_then_import_round_trips_to_another_tenant(
    shop, tmp_path, run, write, base_products
):
    base_products(tmp_path)
    run(tmp_path, "sales", "date,sku,units,price\n2024-03-01,A1,4,12.5\n")
    files = {}
    for kind in ("products", "sales"):
        buffer = io.BytesIO()
        export_csv(kind, buffer)
        files[kind] = write(tmp_path, buffer.getvalue(), f"{kind}.csv")
    twin = TenantFactory(default_currency="EUR")
    with tenant_context(twin):
        assert import_file(kind="products", path=files["products"]).created == 2
        assert import_file(kind="sales", path=files["sales"]).created == 1
        assert SalesRecord.objects.get().revenue == Decimal("50")


@pytest.mark.django_db(transaction=True)
def test_exports_see_the_tenants_rows_when_the_copy_opens_the_transaction():
    """Found while profiling: outside a test's wrapping transaction, a COPY that opened the
    transaction ran before anything set the tenant for row-level security, so the sales and
    competitor-price exports held only their header (the products export ran a query first)."""
    tenant, other = TenantFactory(), TenantFactory()
    for owner, n in ((tenant, 3), (other, 5)):
        with tenant_context(owner):
            import_rows(kind="products", rows=[{"sku": f"A{i}", "title": "T", "price": "2"}
                                                for i in range(n)])  # fmt: skip
            import_rows(kind="sales", rows=[{"date": "2024-03-01", "sku": f"A{i}", "units": 1,
                                             "price": "2"} for i in range(n)])  # fmt: skip
            import_rows(kind="competitor_prices", rows=[
                {"sku": f"A{i}", "competitor": "R", "price": "1.5",
                 "observed_at": "2024-03-01T10:00:00Z"} for i in range(n)])  # fmt: skip
    with tenant_context(tenant):
        for kind in ("products", "sales", "competitor_prices"):
            buffer = io.BytesIO()
            export_csv(kind, buffer)
            assert buffer.getvalue().decode().count("\n") == 1 + 3, kind  # header + its 3 rows
