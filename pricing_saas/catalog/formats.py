"""The canonical import/export formats: one column spec per kind.

Header names are exact (case-insensitive, surrounding spaces ignored); column order is free.
Extra product columns go into `attributes`; extra columns of the other kinds are errors.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # text | money | int | date | timestamp | bool | currency | url
    required: bool = False  # the header must be present and every cell non-empty
    max_length: int | None = None
    minimum: str | None = None  # SQL condition on the parsed value `v`, e.g. "v > 0"
    minimum_reason: str = ""


@dataclass(frozen=True)
class Format:
    kind: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # the columns that identify a row (duplicates inside one file are errors)
    extra_to_attributes: bool = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


POSITIVE = ("v > 0", "must be greater than 0")
NON_NEGATIVE = ("v >= 0", "must not be negative")

PRODUCTS = Format(
    kind="products",
    columns=(
        Column("sku", "text", required=True, max_length=64),
        Column("title", "text", required=True, max_length=500),
        Column("description", "text", max_length=20000),
        Column("category", "text", max_length=200),
        Column("brand", "text", max_length=200),
        Column("cost", "money", minimum=NON_NEGATIVE[0], minimum_reason=NON_NEGATIVE[1]),
        Column("price", "money", required=True, minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column("currency", "currency"),
        Column("stock", "int", minimum=NON_NEGATIVE[0], minimum_reason=NON_NEGATIVE[1]),
        Column("min_price", "money", minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column("max_price", "money", minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column("map_price", "money", minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column("active", "bool"),
    ),
    key=("sku",),
    extra_to_attributes=True,
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
        Column("revenue", "money", minimum=NON_NEGATIVE[0], minimum_reason=NON_NEGATIVE[1]),
        Column("promo", "bool"),
        Column("channel", "text", max_length=64),
    ),
    key=("sku", "date", "channel"),
)

COMPETITOR_PRICES = Format(
    kind="competitor_prices",
    columns=(
        Column("sku", "text", required=True, max_length=64),
        Column("competitor", "text", required=True, max_length=200),
        Column("price", "money", required=True, minimum=POSITIVE[0], minimum_reason=POSITIVE[1]),
        Column("observed_at", "timestamp", required=True),
        Column("in_stock", "bool"),
        Column("url", "url", max_length=1000),
    ),
    key=("sku", "competitor", "observed_at"),
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
