"""The canonical import/export formats: one spec per kind, and where its rows land.

Header names are exact (case-insensitive, surrounding spaces ignored); column order is free.
Extra product columns go into `attributes`; extra columns of the other kinds are errors.

Everything the importer does differently per kind is data here: the target table (the model's),
the key, the value of a missing cell, which columns an update rewrites, checks across columns.
The importer (`pricing_saas.catalog.importer`) builds its SQL from it and never names a kind.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import dataclass

from django.db import models

from .models import CompetitorOffer, Product, SalesRecord


@dataclass(frozen=True)
class Column:
    name: str  # the file's header and the table's column (`sku` of a row naming a product: below)
    # text | name | money | int | date | timestamp | bool | currency | url; a name (a seller's)
    # has its inner runs of white space read as one space, and spellings of it that differ
    # only in case are one name: the one the tenant's rows already have (importer.upsert.
    # one_spelling), so "Amazon" and "amazon " are one seller's readings, not two sellers'
    type: str
    required: bool = False  # the header must be present and every cell non-empty
    max_length: int | None = None
    minimum: str | None = None  # SQL condition on the parsed value `v`, e.g. "v > 0"
    minimum_reason: str = ""
    # SQL for a new row's value when the cell is empty or the column absent (else NULL). It may
    # name the row's other parsed values, "{units} * {price}", and "{tenant_currency}".
    default: str | None = None


@dataclass(frozen=True)
class RowCheck:
    """A check across the columns of one row, made when the file has every column it names."""

    column: str  # the column the report names
    invalid_when: str  # SQL on the parsed values, e.g. "{min_price} > {max_price}"
    reason: str

    @property
    def columns(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.invalid_when) if name}


@dataclass(frozen=True)
class Format:
    kind: str
    model: type[models.Model]  # where the rows land: its table
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # the columns that identify a row (duplicates inside one file are errors)
    extra_to_attributes: bool = False  # other columns go into the `attributes` JSON
    # Rows name their product by `sku`; stored as `product_id`, the id of the tenant's product.
    names_product: bool = False
    # An update rewrites only the columns the file has (others keep their values); otherwise
    # every column, a missing one with its default.
    update_present_only: bool = False
    timestamps: bool = False  # created_at and updated_at, set by the import
    row_checks: tuple[RowCheck, ...] = ()
    insert_order: tuple[str, ...] = ()  # rows go in sorted by these (the table's index order)
    # When the tenant has no row in the file's range of this column (a first import of the
    # period), nothing can conflict: a plain INSERT, about twice as fast as ON CONFLICT.
    plain_insert_outside: str | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def target(self, name: str) -> str:
        """The table column a file column is stored in."""
        return "product_id" if self.names_product and name == "sku" else name


POSITIVE = ("v > 0", "must be greater than 0")
NON_NEGATIVE = ("v >= 0", "must not be negative")

PRODUCTS = Format(
    kind="products",
    columns=(
        Column("sku", "text", required=True, max_length=64),
        Column("title", "text", required=True, max_length=500),
        Column("description", "text", max_length=20000, default="''"),
        Column("category", "text", max_length=200, default="''"),
        Column("brand", "text", max_length=200, default="''"),
        Column("cost", "money", minimum=NON_NEGATIVE[0], minimum_reason=NON_NEGATIVE[1]),
        Column("price", "money", required=True, minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column("currency", "currency", default="{tenant_currency}"),
        Column("stock", "int", minimum=NON_NEGATIVE[0], minimum_reason=NON_NEGATIVE[1]),
        Column("min_price", "money", minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column("max_price", "money", minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column("map_price", "money", minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column("active", "bool", default="true"),
    ),
    model=Product,
    key=("sku",),
    extra_to_attributes=True,
    update_present_only=True,
    timestamps=True,
    row_checks=(
        RowCheck(
            column="min_price",
            invalid_when="{min_price} > {max_price}",
            reason="min_price is above max_price",
        ),
    ),
)

SALES = Format(
    kind="sales",
    columns=(
        Column("date", "date", required=True),
        Column("sku", "text", required=True, max_length=64),
        Column(
            "units", "int", required=True, minimum=NON_NEGATIVE[0], minimum_reason=NON_NEGATIVE[1]
        ),
        Column("price", "money", required=True, minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column(
            "revenue",
            "money",
            minimum=NON_NEGATIVE[0],
            minimum_reason=NON_NEGATIVE[1],
            default="{units} * {price}",
        ),
        Column("promo", "bool", default="false"),
        Column("channel", "text", max_length=64, default="''"),
    ),
    model=SalesRecord,
    key=("sku", "date", "channel"),
    names_product=True,
    insert_order=("sku", "date"),
    plain_insert_outside="date",
)

COMPETITOR_PRICES = Format(
    kind="competitor_prices",
    columns=(
        Column("sku", "text", required=True, max_length=64),
        Column("competitor", "name", required=True, max_length=200),
        Column("price", "money", required=True, minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column("observed_at", "timestamp", required=True),
        Column("in_stock", "bool", default="true"),
        Column("url", "url", max_length=1000, default="''"),
    ),
    model=CompetitorOffer,
    key=("sku", "competitor", "observed_at"),
    names_product=True,
    plain_insert_outside="observed_at",
)

FORMATS = {f.kind: f for f in (PRODUCTS, SALES, COMPETITOR_PRICES)}
# The columns written by exports (and so the canonical headers a merchant starts from).
EXPORT_COLUMNS = {
    "products": [
        "sku", "title", "description", "category", "brand", "cost", "price", "currency", "stock",
        "min_price", "max_price", "map_price", "active",
    ],
    "sales": ["date", "sku", "units", "price", "revenue", "promo", "channel"],
    "competitor_prices": ["sku", "competitor", "price", "observed_at", "in_stock", "url"],
}  # fmt: skip


def get_format(kind: str) -> Format:
    try:
        return FORMATS[kind]
    except KeyError:
        raise ValueError(
            f"unknown kind {kind!r}: use one of {', '.join(sorted(FORMATS))}"
        ) from None


def normalise_header(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def suggest(name: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
