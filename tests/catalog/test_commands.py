"""The catalog management commands: `import_csv` and `export_csv`."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from pricing_saas.catalog.models import Product

pytestmark = pytest.mark.django_db


def test_import_csv_command_exit_codes_and_counts(shop, tmp_path, capsys, write):
    good = write(tmp_path, "sku,title,price\nA1,Shirt,1\n", "good.csv")
    call_command("import_csv", "shop", "products", str(good))
    assert "created 1, updated 0, unchanged 0" in capsys.readouterr().out
    bad = write(tmp_path, "sku,title,price\nA2,Shirt,0\n", "bad.csv")
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_csv", "shop", "products", str(bad))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert (
        "row 2, column price ('0'): must be greater than 0" in err and "nothing was imported" in err
    )
    assert not Product.objects.filter(sku="A2").exists()


def test_export_csv_command_writes_canonical_csv(shop, tmp_path, base_products):
    base_products(tmp_path)
    out = io.StringIO()
    call_command("export_csv", "shop", "products", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sku,title,description,category,brand,cost,price,currency,stock")
    assert lines[1].startswith("A1,Red shirt,")
