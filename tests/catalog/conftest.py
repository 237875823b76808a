"""Fixtures of the catalog tests.

`shop` here is not the root conftest's (world_a with products and sales): within tests/catalog/
it is a bare tenant (EUR, Europe/Berlin, slug "shop") whose context is set for the whole test,
as the importer, exporter and command tests need. The helpers write a file under the test's
`tmp_path` and import it in that tenant."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricing_saas.catalog.importer import ImportOptions, import_file
from tenants.context import tenant_context
from tenants.roles import Role
from tests.factories import TenantFactory

PRODUCTS = "sku,title,description,category,brand,cost,price,currency,stock\n"


@pytest.fixture
def shop(db):
    tenant = TenantFactory(slug="shop", default_currency="EUR", timezone="Europe/Berlin")
    with tenant_context(tenant):
        yield tenant


@pytest.fixture
def write():
    """`write(tmp_path, text, name="f.csv")`: the text (or bytes) as a file; returns its path."""

    def write(tmp_path: Path, text: str | bytes, name: str = "f.csv") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path

    return write


@pytest.fixture
def run(write):
    """`run(tmp_path, kind, text, **options)`: imports the text as a file of that kind."""

    def run(tmp_path, kind: str, text, **options):
        return import_file(kind=kind, path=write(tmp_path, text), options=ImportOptions(**options))

    return run


@pytest.fixture
def base_products(run):
    """`base_products(tmp_path)`: imports two products, A1 and A2."""

    def base_products(tmp_path):
        return run(
            tmp_path,
            "products",
            PRODUCTS + "A1,Red shirt,,Shirts,Acme,5,12.50,,10\nA2,Blue shirt,,Shirts,Acme,6,14,,\n",
        )

    return base_products


@pytest.fixture
def stored_uploads(settings):
    """`stored_uploads()`: the set of files under MEDIA_ROOT/imports/ now (compare before and
    after an upload to see what it left behind)."""

    def stored_uploads() -> set[Path]:
        return {p for p in (Path(settings.MEDIA_ROOT) / "imports").rglob("*") if p.is_file()}

    return stored_uploads


@pytest.fixture
def analyst():
    """`analyst(world)`: an API client with the world's analyst key."""

    def analyst(world):
        return world.api(Role.ANALYST)

    return analyst
