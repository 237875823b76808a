"""The importer (`pricing_saas/catalog/importer/`), through the real Postgres: every bad
input of the merchant-data issue is one test here."""

from __future__ import annotations

import io
import tracemalloc
from decimal import Decimal

import pytest

from pricing_saas.catalog.importer import ImportFailed, import_file, import_rows
from pricing_saas.catalog.models import CompetitorName, CompetitorOffer, Product, SalesRecord
from tenants.context import tenant_context
from tests.factories import TenantFactory

from .conftest import PRODUCTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def fails(run):
    """`fails(tmp_path, kind, text, **options)`: the import must fail; returns its result."""

    def fails(tmp_path, kind: str, text, **options):
        with pytest.raises(ImportFailed) as info:
            run(tmp_path, kind, text, **options)
        return info.value.result

    return fails


# --- happy path, counts and idempotency -------------------------------------------------------


def test_products_created_updated_unchanged_and_idempotent(shop, tmp_path, run, base_products):
    result = base_products(tmp_path)
    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    again = base_products(tmp_path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    changed = run(tmp_path, "products", "sku,title,price\nA1,Red shirt,13\nA3,Cap,5\n")
    assert (changed.created, changed.updated, changed.unchanged) == (1, 1, 0)
    a1 = Product.objects.get(sku="A1")
    assert a1.price == Decimal("13") and a1.category == "Shirts"  # absent columns untouched
    assert a1.currency == "EUR"  # the tenant's default


def test_extra_product_columns_become_attributes(shop, tmp_path, run):
    run(tmp_path, "products", "sku,title,price,Colour,Size\nA1,Shirt,10,red,M\n")
    assert Product.objects.get(sku="A1").attributes == {"Colour": "red", "Size": "M"}


def test_column_order_is_free_and_headers_case_insensitive(shop, tmp_path, run):
    run(tmp_path, "products", " PRICE ,Title,SKU\n9.5,Mug,M1\n")
    assert Product.objects.get(sku="M1").price == Decimal("9.5")


def test_sales_and_competitor_prices_import(shop, tmp_path, run, base_products):
    base_products(tmp_path)
    result = run(
        tmp_path,
        "sales",
        "date,sku,units,price,promo,channel\n2024-03-01,A1,4,12.5,yes,web\n2024-03-01,A1,1,12.5,no,store\n",
    )
    assert result.created == 2
    web = SalesRecord.objects.get(channel="web")
    assert web.units == 4 and web.revenue == Decimal("50") and web.promo is True
    result = run(
        tmp_path,
        "competitor_prices",
        "sku,competitor,price,observed_at,in_stock,url\nA1,ShopRival,11.99,2024-03-01T10:00:00Z,true,https://rival.example/a1\nA1,ShopRival,11.49,2024-03-02 09:30,0,\n",
    )
    assert result.created == 2
    naive = CompetitorOffer.objects.get(price=Decimal("11.49"))
    assert naive.observed_at.isoformat() == "2024-03-02T08:30:00+00:00"  # tenant's time zone
    assert naive.in_stock is False


def test_a_sellers_spellings_that_differ_in_case_or_spacing_are_one_seller(
    shop, tmp_path, run, fails, base_products
):
    # Feeds spell one seller several ways ("Shop Rival", "shop rival ", "Shop  Rival"): read
    # as two sellers, each has half the readings, its own noise and its own level. Case and
    # runs of white space (tabs, no-break spaces) do not make a new seller: the file's most
    # frequent spelling is kept, then the spelling the tenant's rows already have.
    base_products(tmp_path)
    head = "sku,competitor,price,observed_at\n"
    run(
        tmp_path,
        "competitor_prices",
        head + "A1,Shop  Rival,10,2024-03-01T10:00:00Z\nA1,shop rival,10.5,2024-03-02T10:00:00Z\n"
        "A2,Shop Rival ,9,2024-03-01T10:00:00Z\nA2,Other,9.2,2024-03-01T10:00:00Z\n"
        "A2,\tShop\u00a0Rival,9.1,2024-03-04T10:00:00Z\n",
    )
    names = sorted(set(CompetitorOffer.objects.values_list("competitor", flat=True)))
    assert names == ["Other", "Shop Rival"]
    assert dict(CompetitorName.objects.values_list("key", "name")) == {
        "other": "Other", "shop rival": "Shop Rival"
    }  # fmt: skip
    run(tmp_path, "competitor_prices", head + "A1,SHOP RIVAL,11,2024-03-03T10:00:00Z\n")
    assert CompetitorOffer.objects.filter(competitor="Shop Rival").count() == 5
    # two readings of one product at one time by spellings of one seller: a duplicate, named
    result = fails(
        tmp_path,
        "competitor_prices",
        head + "A2,other,9,2024-03-05T10:00:00Z\nA2,OTHER,9.1,2024-03-05T10:00:00Z\n",
    )
    assert result.errors[0].row == 3 and "same as row 2" in result.errors[0].reason
    assert CompetitorOffer.objects.count() == 6
    # a name of white space alone is no name
    result = fails(tmp_path, "competitor_prices", head + "A1,\t ,9,2024-03-06T10:00:00Z\n")
    assert [(e.row, e.column, e.reason) for e in result.errors] == [
        (2, "competitor", "is required")
    ]


def test_a_competitor_is_spelt_as_the_tenants_stored_readings_spell_it_most(shop, tmp_path, run):
    # Readings stored before the spellings were one: "rival" on three, "Rival" on one. A new
    # import's "RIVAL" joins the spelling most of them have, and so does every later one.
    from pricing_saas.catalog.models import Product

    product = Product.objects.create(sku="A1", title="A1", price=10)
    for day, name in enumerate(["rival", "rival", "Rival", "rival"], start=1):
        CompetitorOffer.objects.create(
            product=product, competitor=name, price=9, observed_at=f"2024-03-0{day}T10:00:00Z"
        )
    head = "sku,competitor,price,observed_at\n"
    run(tmp_path, "competitor_prices", head + "A1,RIVAL,9,2024-03-08T10:00:00Z\n")
    run(tmp_path, "competitor_prices", head + "A1,Rival,9,2024-03-09T10:00:00Z\n")
    assert CompetitorOffer.objects.filter(competitor="rival").count() == 5
    assert list(CompetitorName.objects.values_list("key", "name")) == [("rival", "rival")]


def test_stored_readings_spelt_with_other_white_space_name_a_new_competitor(shop, tmp_path, run):
    # Readings stored before white space was read as one space ("Rival  Shop", a tab): a new
    # import's "rival shop" is that competitor, spelt as those readings read now, not as the file.
    product = Product.objects.create(sku="A1", title="A1", price=10)
    for day, name in enumerate(["Rival  Shop", "Rival\tShop ", "rival shop"], start=1):
        CompetitorOffer.objects.create(
            product=product, competitor=name, price=9, observed_at=f"2024-03-0{day}T10:00:00Z"
        )
    head = "sku,competitor,price,observed_at\n"
    run(tmp_path, "competitor_prices", head + "A1,rival shop,9,2024-03-08T10:00:00Z\n")
    assert list(CompetitorName.objects.values_list("key", "name")) == [("rival shop", "Rival Shop")]
    assert (
        CompetitorOffer.objects.get(observed_at="2024-03-08T10:00:00Z").competitor == "Rival Shop"
    )


def test_a_sellers_spelling_is_each_tenants_own(shop, tmp_path, run, base_products):
    # Another tenant's spelling of a seller of the same name is not this tenant's
    other = TenantFactory(slug="other-shop")
    head = "sku,competitor,price,observed_at\n"
    with tenant_context(other):
        base_products(tmp_path)
        run(tmp_path, "competitor_prices", head + "A1,RIVAL,10,2024-03-01T10:00:00Z\n")
    base_products(tmp_path)
    run(tmp_path, "competitor_prices", head + "A1,Rival,10,2024-03-01T10:00:00Z\n")
    with tenant_context(other):
        run(tmp_path, "competitor_prices", head + "A1,rival,11,2024-03-02T10:00:00Z\n")
        assert set(CompetitorOffer.objects.values_list("competitor", flat=True)) == {"RIVAL"}
        assert list(CompetitorName.objects.values_list("name", flat=True)) == ["RIVAL"]
    assert set(CompetitorOffer.objects.values_list("competitor", flat=True)) == {"Rival"}
    assert list(CompetitorName.objects.values_list("name", flat=True)) == ["Rival"]


def test_json_rows_are_idempotent(shop, tmp_path):
    rows = [
        {"sku": "J1", "title": "Jug", "price": 7},
        {"sku": "J2", "title": "Jar", "price": "3.5"},
    ]
    assert import_rows(kind="products", rows=rows).created == 2
    again = import_rows(kind="products", rows=rows)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


# --- bad input: headers, kinds, empty files ----------------------------------------------------


def test_missing_header_names_the_column(shop, tmp_path, fails):
    result = fails(tmp_path, "products", "sku,title\nA1,Shirt\n")
    assert [(e.row, e.column) for e in result.errors] == [(1, "price")]
    assert "missing required column" in result.errors[0].reason


def test_misspelled_header_gets_a_suggestion(shop, tmp_path, fails):
    result = fails(tmp_path, "sales", "date,sku,unitz,price\n2024-01-01,A1,1,1\n")
    reasons = " ".join(e.reason for e in result.errors)
    assert "did you mean 'units'" in reasons
    assert Product.objects.count() == 0


def test_unknown_kind(shop, tmp_path, run):
    with pytest.raises(ValueError, match="unknown kind 'stock'"):
        run(tmp_path, "stock", PRODUCTS)


def test_empty_file(shop, tmp_path, fails):
    assert fails(tmp_path, "products", "").errors[0].reason == "the file is empty"
    assert fails(tmp_path, "products", "\n  \n").errors[0].reason == "the file is empty"


def test_header_only(shop, tmp_path, fails):
    assert "no data rows" in fails(tmp_path, "products", PRODUCTS).errors[0].reason


# --- bad input: encodings and delimiters -------------------------------------------------------


def test_latin1_file(shop, tmp_path, run):
    run(tmp_path, "products", "sku,title,price\nL1,Café crème brûlée,4\n".encode("latin-1"))
    assert Product.objects.get(sku="L1").title == "Café crème brûlée"


def test_windows_1252_euro_sign(shop, tmp_path, run):
    run(tmp_path, "products", "sku,title,price\nE1,Price in €,4\n".encode("cp1252"))
    assert Product.objects.get(sku="E1").title == "Price in €"


def test_utf8_with_bom(shop, tmp_path, run):
    run(tmp_path, "products", "\ufeffsku,title,price\nB1,Ümlaut,4\n".encode())
    assert Product.objects.get(sku="B1").title == "Ümlaut"


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters(shop, tmp_path, delimiter, run):
    text = (
        delimiter.join(["sku", "title", "price"])
        + "\n"
        + delimiter.join(["D1", "Desk, oak", "120"])
        + "\n"
    )
    run(tmp_path, "products", text)
    assert Product.objects.get(sku="D1").title == "Desk, oak"


def test_broken_row_structure_names_the_line(shop, tmp_path, fails):
    result = fails(tmp_path, "products", "sku,title,price\nA1,Shirt,1\nA2,Shirt\n")
    assert result.errors[0].row == 3 and result.errors[0].column == "price"


# --- bad input: values ------------------------------------------------------------------------


def test_prices_with_currency_symbols_and_thousands_separators(shop, tmp_path, run):
    run(
        tmp_path,
        "products",
        'sku,title,price,cost\nP1,TV,"₹32,999","₹1,29,999"\nP2,Laptop,"$1,299.00",USD 800\n',
    )
    assert Product.objects.get(sku="P1").price == Decimal("32999")
    assert Product.objects.get(sku="P1").cost == Decimal("129999")
    assert Product.objects.get(sku="P2").price == Decimal("1299")
    assert Product.objects.get(sku="P2").cost == Decimal("800")


def test_decimal_comma_only_with_the_option(shop, tmp_path, run, fails):
    text = "sku;title;price\nC1;Chair;1.299,00 €\n"
    result = fails(tmp_path, "products", text)
    assert result.errors[0].column == "price" and result.errors[0].value == "1.299,00 €"
    run(tmp_path, "products", text, decimal_comma=True)
    assert Product.objects.get(sku="C1").price == Decimal("1299.00")


@pytest.mark.parametrize("price", ["0", "-5", "-$1.00"])
def test_negative_or_zero_price(shop, tmp_path, price, fails):
    result = fails(tmp_path, "products", f'sku,title,price\nZ1,Zero,"{price}"\n')
    assert result.errors[0].reason == "must be greater than 0" and result.errors[0].row == 2


def test_non_numeric_price_and_units(shop, tmp_path, fails, base_products):
    base_products(tmp_path)
    result = fails(
        tmp_path, "sales", "date,sku,units,price\n2024-01-01,A1,three,abc\n2024-01-02,A1,2.5,1\n"
    )
    got = {(e.row, e.column, e.value): e.reason for e in result.errors}
    assert got[(2, "units", "three")] == "not a whole number"
    assert got[(2, "price", "abc")].startswith("not a number")
    assert got[(3, "units", "2.5")] == "not a whole number"
    assert SalesRecord.objects.count() == 0


@pytest.mark.parametrize("cell", ["0x10", "0X1F", "0o17", "0b11", " -0x10"])
def test_a_hexadecimal_octal_or_binary_number_is_refused_not_read(
    shop, tmp_path, cell, fails, base_products
):
    """Postgres 16 reads `0x10` as 16: the typed fast path stored it."""
    base_products(tmp_path)
    result = fails(tmp_path, "sales", f"date,sku,units,price\n2024-01-01,A1,1,{cell}\n")
    assert [(e.row, e.column, e.value) for e in result.errors] == [(2, "price", cell)]
    assert result.errors[0].reason.startswith("not a number")
    result = fails(tmp_path, "products", f"sku,title,price,stock\nH1,Hex,1,{cell}\n")
    assert [(e.row, e.column) for e in result.errors] == [(2, "stock")]
    assert SalesRecord.objects.count() == 0 and not Product.objects.filter(sku="H1").exists()


def test_a_hexadecimal_cell_far_into_a_file_is_found(shop, tmp_path, fails, base_products):
    base_products(tmp_path)
    rows = "".join(f"2024-01-{1 + i % 28:02d},A1,1,{i}.50\n" for i in range(8000))
    result = fails(tmp_path, "sales", "date,sku,units,price\n" + rows + "2024-02-01,A1,1,0x10\n")
    assert [(e.row, e.column) for e in result.errors] == [(8002, "price")]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_a_hexadecimal_cell_cut_by_a_read_boundary_is_found(size):
    from pricing_saas.catalog.importer.rows import NonDecimalGuard

    text = b"date,sku,units,price\n2024-01-01,A1,1,9.5\n2024-01-02,A1,1,  0x10\n"
    guard = NonDecimalGuard(io.BytesIO(text))
    assert b"".join(iter(lambda: guard.read(size), b"")) == text
    assert guard.found
    clean = NonDecimalGuard(io.BytesIO(text.replace(b"0x10", b"10")))
    while clean.read(size):
        pass
    assert not clean.found


@pytest.mark.parametrize("cell", ["1_000", "1_000.50", " -2_5", '"1_000"'])
def test_a_number_with_digit_separators_is_a_row_error_not_read(
    shop, tmp_path, cell, fails, base_products
):
    """Postgres 16 and Python's float() read `1_000` as 1000: the typed fast path stored it."""
    base_products(tmp_path)
    result = fails(tmp_path, "sales", f"date,sku,units,price\n2024-01-01,A1,1,{cell}\n")
    shown = cell.strip('"')
    assert [(e.row, e.column, e.value) for e in result.errors] == [(2, "price", shown)]
    assert "digit separator" in result.errors[0].reason
    result = fails(tmp_path, "products", f"sku,title,price,stock\nS1,Sep,1,{cell}\n")
    assert [(e.row, e.column) for e in result.errors] == [(2, "stock")]
    assert "digit separator" in result.errors[0].reason
    assert SalesRecord.objects.count() == 0 and not Product.objects.filter(sku="S1").exists()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 1 << 16])
def test_a_separated_number_cut_by_a_read_boundary_is_found(size):
    from pricing_saas.catalog.importer.rows import NonDecimalGuard

    text = b"sku,title,price\nAB_12,Box 1_2,9.5\nC1,Cap,  1_000\n"
    guard = NonDecimalGuard(io.BytesIO(text))
    assert b"".join(iter(lambda: guard.read(size), b"")) == text
    assert guard.found
    last = NonDecimalGuard(io.BytesIO(text.rstrip(b"\n")))  # the last cell, no line end
    assert b"".join(iter(lambda: last.read(size), b"")) == text.rstrip(b"\n")
    assert last.found
    # Text cells with underscores between digits (a SKU, a title) keep the fast path, however
    # the file is cut into reads.
    skus = b"".join(b"SKU_%d_%d,Box %d_2,9.5\n" % (i, i % 7, i) for i in range(3000))
    clean = NonDecimalGuard(io.BytesIO(text.replace(b"1_000", b"1000") + skus))
    while clean.read(size):
        pass
    assert not clean.found


def test_a_text_cell_with_an_underscore_between_digits_is_kept_as_text(shop, tmp_path, run):
    run(tmp_path, "products", "sku,title,price\n1_000,Pack 1_000,12\n")
    assert Product.objects.get(sku="1_000").title == "Pack 1_000"


def test_a_text_cell_that_looks_hexadecimal_is_kept_as_text(shop, tmp_path, run):
    run(tmp_path, "products", "sku,title,price\n0x10,Box 10x20,12\n")
    assert Product.objects.get(sku="0x10").title == "Box 10x20"


def test_an_exponent_reads_the_same_on_both_paths(shop, tmp_path, run, fails, base_products):
    base_products(tmp_path)
    run(tmp_path, "sales", "date,sku,units,price\n2024-01-01,A1,1,1.5e1\n")
    assert SalesRecord.objects.get(date="2024-01-01").price == Decimal("15")
    # An unknown currency text sends the file to the text path; the exponent still reads.
    run(tmp_path, "sales", "date,sku,units,price\n2024-01-02,A1,1,2e1\n2024-01-03,A1,1,$3\n")
    assert SalesRecord.objects.get(date="2024-01-02").price == Decimal("20")
    result = fails(tmp_path, "sales", "date,sku,units,price\n2024-01-04,A1,1,1e400\n")
    assert result.errors[0].reason == "is too large"


@pytest.mark.parametrize("offset", ["+16:00", "-16:00", "+23:59", "+05:99", "+1600"])
def test_a_time_zone_offset_postgres_refuses_is_a_row_error_not_a_500(
    shop, tmp_path, offset, fails, base_products
):
    base_products(tmp_path)
    text = f"sku,competitor,price,observed_at\nA1,Rival,9,2024-05-01T10:00:00{offset}\n"
    result = fails(tmp_path, "competitor_prices", text)
    assert [(e.row, e.column) for e in result.errors] == [(2, "observed_at")]
    assert "ISO 8601" in result.errors[0].reason
    assert CompetitorOffer.objects.count() == 0


@pytest.mark.parametrize(
    "value", ["2024-02-30", "2023-13-01", "2024-00-10", "31/01/2024", "yesterday"]
)
def test_impossible_dates(shop, tmp_path, value, fails, base_products):
    base_products(tmp_path)
    result = fails(tmp_path, "sales", f"date,sku,units,price\n{value},A1,1,1\n")
    assert result.errors[0].column == "date" and result.errors[0].value == value


def test_impossible_timestamps(shop, tmp_path, fails, base_products):
    base_products(tmp_path)
    text = (
        "sku,competitor,price,observed_at\nA1,R,1,2024-01-01T25:00:00Z\nA1,R,1,2024-02-31T10:00\n"
    )
    result = fails(tmp_path, "competitor_prices", text)
    assert [(e.row, e.column) for e in result.errors] == [(2, "observed_at"), (3, "observed_at")]


def test_duplicate_keys_in_one_file(shop, tmp_path, fails, base_products):
    result = fails(tmp_path, "products", "sku,title,price\nA1,One,1\nA2,Two,2\nA1,Again,3\n")
    assert result.errors[0].row == 4 and "same as row 2" in result.errors[0].reason
    base_products(tmp_path)
    result = fails(
        tmp_path, "sales", "date,sku,units,price\n2024-01-01,A1,1,1\n2024-01-01,A1,2,1\n"
    )
    assert result.errors[0].row == 3
    assert SalesRecord.objects.count() == 0


def test_duplicate_readings_in_a_first_import_of_their_period_are_named(
    shop, tmp_path, fails, base_products
):
    base_products(tmp_path)  # nothing stored in the file's range: the plain INSERT's path
    text = "sku,competitor,price,observed_at\nA1,R,1,2024-01-01T10:00Z\nA1,r ,2,2024-01-01T10:00Z\n"
    result = fails(tmp_path, "competitor_prices", text)
    assert result.errors[0].row == 3 and "same as row 2" in result.errors[0].reason
    assert CompetitorOffer.objects.count() == 0


@pytest.mark.parametrize(
    ("kind", "stored", "text"),
    [
        ("sales", "2024-01-01,A1,1,1\n",
         "date,sku,units,price\n2024-01-01,A1,5,1\n2024-01-02,A1,2,1\n"),
        ("competitor_prices", "A1,R,1,2024-01-01T10:00Z\n",
         "sku,competitor,price,observed_at\nA1,R,5,2024-01-01T10:00Z\nA1,R,2,2024-01-02T10:00Z\n"),
    ],
)  # fmt: skip
def test_a_first_import_of_a_period_meeting_rows_written_meanwhile_updates_them(
    shop, tmp_path, run, base_products, monkeypatch, kind, stored, text
):
    """Another import stores rows in the file's range after this one found the range empty
    (its check ran before the other committed): the plain INSERT hits them, and the upsert
    takes over, updating them, not failing the import as a duplicate of the file's."""
    from pricing_saas.catalog.importer import upsert

    base_products(tmp_path)
    header = text.split("\n", 1)[0]
    run(tmp_path, kind, f"{header}\n{stored}")
    monkeypatch.setattr(upsert, "_nothing_stored_in_range", lambda run, column: True)
    result = run(tmp_path, kind, text)
    assert (result.created, result.updated) == (1, 1)
    model = SalesRecord if kind == "sales" else CompetitorOffer
    assert model.objects.count() == 2
    field = "units" if kind == "sales" else "price"
    assert sorted(model.objects.values_list(field, flat=True)) == [2, 5]


def test_a_unique_violation_of_no_key_of_the_file_is_not_reported_as_duplicate_rows(
    shop, tmp_path, run, base_products, monkeypatch
):
    """Only a key the file repeats is a row error; another index's violation (none of the
    file's keys repeats) is raised as it is, not as an import with no errors that failed."""
    from django.db import IntegrityError

    from pricing_saas.catalog.importer import run as importer_run

    def clash(run):
        run.cur.execute("CREATE TEMP TABLE clash (x int UNIQUE); INSERT INTO clash VALUES (1), (1)")

    base_products(tmp_path)
    monkeypatch.setattr(importer_run, "upsert", clash)
    with pytest.raises(IntegrityError, match="clash"):
        run(tmp_path, "sales", "date,sku,units,price\n2024-01-01,A1,1,1\n")


def test_sales_for_unknown_skus_rejected_with_their_list(shop, tmp_path, fails, base_products):
    base_products(tmp_path)
    result = fails(
        tmp_path,
        "sales",
        "date,sku,units,price\n2024-01-01,A1,1,1\n2024-01-01,NOPE,1,1\n2024-01-01,GONE,1,2\n",
    )
    assert [(e.row, e.value) for e in result.errors] == [(3, "NOPE"), (4, "GONE")]
    assert SalesRecord.objects.count() == 0


def test_unknown_skus_become_stub_products_with_the_option(shop, tmp_path, run, base_products):
    base_products(tmp_path)
    result = run(
        tmp_path,
        "sales",
        "date,sku,units,price\n2024-01-01,NEW1,1,4.5\n",
        create_missing_products=True,
    )
    assert result.created == 1
    stub = Product.objects.get(sku="NEW1")
    assert stub.attributes == {"stub": True} and stub.price == Decimal("4.5")


def test_report_names_row_column_value_reason_and_caps_at_1000(shop, tmp_path, fails):
    lines = "".join(f"S{i},Title,-1\n" for i in range(1500))
    result = fails(tmp_path, "products", "sku,title,price\n" + lines)
    assert result.error_count == 1500 and len(result.errors) == 1000
    first = result.errors[0]
    assert (first.row, first.column, first.value, first.reason) == (
        2,
        "price",
        "-1",
        "must be greater than 0",
    )


def test_import_is_atomic_by_default_and_skip_invalid_lands_the_rest(shop, tmp_path, run, fails):
    text = "sku,title,price\nG1,Good,1\nB1,Bad,0\nG2,Good,2\n"
    fails(tmp_path, "products", text)
    assert Product.objects.count() == 0
    result = run(tmp_path, "products", text, skip_invalid=True)
    assert result.created == 2 and result.skipped == 1 and result.error_count == 1
    assert set(Product.objects.values_list("sku", flat=True)) == {"G1", "G2"}


def test_oversize_text_cells(shop, tmp_path, fails):
    result = fails(tmp_path, "products", f"sku,title,price\n{'S' * 65},T,1\n")
    assert result.errors[0].reason == "longer than 64 characters"


def test_xlsx_import(shop, tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["sku", "title", "price", "stock"])
    sheet.append(["X1", "From Excel", 19.9, 3])
    workbook.save(tmp_path / "p.xlsx")
    import_file(kind="products", path=tmp_path / "p.xlsx")
    product = Product.objects.get(sku="X1")
    assert product.price == Decimal("19.9") and product.stock == 3


def test_not_an_xlsx(shop, tmp_path, write):
    path = write(tmp_path, b"this is not a zip", "p.xlsx")
    with pytest.raises(ImportFailed, match=r"not a readable \.xlsx"):
        import_file(kind="products", path=path)


def test_a_workbook_damaged_half_way_fails_clearly_and_leaves_no_partial_csv(shop, tmp_path):
    """Found in review: a sheet that broke after some rows crashed the job with 'internal
    error' and could leave a half-converted CSV that a retry would have imported."""
    import zipfile

    from openpyxl import Workbook

    from pricing_saas.catalog.importer import xlsx_to_csv

    workbook = Workbook()
    workbook.active.append(["sku", "title", "price"])
    for i in range(2000):
        workbook.active.append([f"X{i}", f"Item {i}", 10 + i])
    good = tmp_path / "good.xlsx"
    workbook.save(good)
    damaged = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2] + b'<row r="x"><c><<</c>'  # broken XML
            dst.writestr(item, data)
    target = tmp_path / "sheet.csv"
    with pytest.raises(ImportFailed, match=r"could not be read past row \d+") as failed:
        xlsx_to_csv(damaged, target, "products")
    error = failed.value.result.errors[0]
    assert 1 < error.row <= 2001 and str(error.row - 1) in error.reason
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.xlsx", "good.xlsx"]
    with pytest.raises(ImportFailed, match="could not be read"):
        import_file(kind="products", path=damaged)
    assert Product.objects.count() == 0
    xlsx_to_csv(good, target, "products", max_rows=3)
    assert target.read_text().splitlines() == ["sku,title,price", "X0,Item 0,10", "X1,Item 1,11"]


def test_large_file_is_streamed_not_loaded(shop, tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w") as out:
        out.write("sku,title,price\n")
        for i in range(150_000):
            out.write(f"SKU{i:07d},A reasonably long product title number {i},{i % 500 + 1}.99\n")
    size = path.stat().st_size
    tracemalloc.start()
    result = import_file(kind="products", path=path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.created == 150_000
    assert peak < size / 4, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"


def test_clean_files_take_the_typed_fast_path_and_others_fall_back(
    shop, tmp_path, run, base_products
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    base_products(tmp_path)
    with CaptureQueriesContext(connection) as queries:
        run(tmp_path, "sales", "date,sku,units,price\n2024-01-01,A1,2,12.5\n")
    stages = [q["sql"] for q in queries if "CREATE TEMP TABLE import_stage" in q["sql"]]
    assert len(stages) == 1 and "c2 integer" in stages[0] and "c3 numeric" in stages[0]
    with CaptureQueriesContext(connection) as queries:
        run(tmp_path, "sales", 'date,sku,units,price\n2024-01-02,A1,2,"$1,299.00"\n')
    stages = [q["sql"] for q in queries if "CREATE TEMP TABLE import_stage" in q["sql"]]
    assert len(stages) == 2 and "c3 text" in stages[1]  # typed COPY refused "$1,299.00"
    assert SalesRecord.objects.get(date="2024-01-02").price == Decimal("1299")


# --- tenants -------------------------------------------------------------------------------------


def test_another_tenants_skus_are_unknown(shop, tmp_path, run, fails):
    other = TenantFactory()
    with tenant_context(other):
        run(tmp_path, "products", "sku,title,price\nOTHER1,Theirs,1\n")
    result = fails(tmp_path, "sales", "date,sku,units,price\n2024-01-01,OTHER1,1,1\n")
    assert result.errors[0].value == "OTHER1"
    with tenant_context(other):
        assert Product.objects.count() == 1
    assert Product.objects.count() == 0
