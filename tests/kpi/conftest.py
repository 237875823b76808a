"""Fixtures of the KPI tests: a small tenant whose figures are worked out by hand below.

Products (world A, time zone UTC):
    TEA-A  category tea     cost 4.00 (the merchant's own)
    TEA-B  category tea     cost 6.00, derived (attributes["cost_source"] = "derived: …")
    COF-C  category coffee  no cost

Sales:
    TEA-A  2024-03-01  2 units for 20.00 (channel "") + 1 unit for 10.00 (channel web)
    TEA-A  2024-03-02  1 unit  for 10.00
    TEA-B  2024-03-01  2 units for 24.00
    TEA-B  2024-03-03  0 units (a recorded zero)
    COF-C  2024-03-02  1 unit  for 20.00

Competitor prices of TEA-A: rival X 9.00 on 2024-02-20 (holds 14 days), X out of stock on
2024-03-02 (ends X's price the day before), rival Y 8.00 on 2024-03-02. TEA-B: X 11.00 on
2024-02-01 (expired by March). So TEA-A's competitor price is 9.00 on 03-01 and 8.00 on 03-02.

Facts, by hand:
    TEA-A 03-01: 3 units, revenue 30, profit 30 - 3 x 4 = 18, competitor 9
    TEA-A 03-02: 1 unit,  revenue 10, profit 6,                competitor 8
    TEA-B 03-01: 2 units, revenue 24, profit 24 - 2 x 6 = 12 (derived)
    TEA-B 03-03: 0 units, revenue 0,  profit 0 (derived)
    COF-C 03-02: 1 unit,  revenue 20, no profit (no cost)
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pricing_saas.catalog.importer import import_rows
from pricing_saas.catalog.models import Product
from tenants.context import tenant_context

D = Decimal
MARCH = [dt.date(2024, 3, day) for day in (1, 2, 3)]

PRODUCTS = [
    {"sku": "TEA-A", "title": "Green tea", "category": "tea", "price": "10", "cost": "4"},
    {
        "sku": "TEA-B",
        "title": "Black tea",
        "category": "tea",
        "price": "12",
        "cost": "6",
        "cost_source": "derived: 50 % of the shelf price",
    },
    {"sku": "COF-C", "title": "Coffee beans", "category": "coffee", "price": "20"},
]
SALES = [
    {"date": "2024-03-01", "sku": "TEA-A", "units": 2, "price": "10"},
    {"date": "2024-03-01", "sku": "TEA-A", "units": 1, "price": "10", "channel": "web"},
    {"date": "2024-03-02", "sku": "TEA-A", "units": 1, "price": "10"},
    {"date": "2024-03-01", "sku": "TEA-B", "units": 2, "price": "12"},
    {"date": "2024-03-03", "sku": "TEA-B", "units": 0, "price": "12"},
    {"date": "2024-03-02", "sku": "COF-C", "units": 1, "price": "20"},
]
OFFERS = [
    {"sku": "TEA-A", "competitor": "X", "price": "9", "observed_at": "2024-02-20T12:00:00Z"},
    {
        "sku": "TEA-A",
        "competitor": "X",
        "price": "9",
        "observed_at": "2024-03-02T10:00:00Z",
        "in_stock": "false",
    },
    {"sku": "TEA-A", "competitor": "Y", "price": "8", "observed_at": "2024-03-02T09:00:00Z"},
    {"sku": "TEA-B", "competitor": "X", "price": "11", "observed_at": "2024-02-01T12:00:00Z"},
]

# (units, revenue, unit_cost, cost_known, cost_derived, profit, competitor_price) per fact.
EXPECTED = {
    ("TEA-A", MARCH[0]): (3, D("30"), D("4"), True, False, D("18"), D("9")),
    ("TEA-A", MARCH[1]): (1, D("10"), D("4"), True, False, D("6"), D("8")),
    ("TEA-B", MARCH[0]): (2, D("24"), D("6"), True, True, D("12"), None),
    ("TEA-B", MARCH[2]): (0, D("0"), D("6"), True, True, D("0"), None),
    ("COF-C", MARCH[1]): (1, D("20"), None, False, False, None, None),
}


def load_small_shop(tenant, *, scale: int = 1) -> dict[str, int]:
    """The products, sales and competitor prices above (units and revenue times `scale`, so a
    second tenant's figures differ); returns the product ids by SKU."""
    sales = [{**row, "units": row["units"] * scale} for row in SALES]
    with tenant_context(tenant):
        import_rows(kind="products", rows=PRODUCTS)
        import_rows(kind="sales", rows=sales)
        import_rows(kind="competitor_prices", rows=OFFERS)
        return dict(Product.objects.values_list("sku", "pk"))


@pytest.fixture
def small_shop(world_a):
    """World A with the small shop's data (no facts yet); `.ids` maps SKU to product id."""
    world_a.ids = load_small_shop(world_a.tenant)
    return world_a


@pytest.fixture
def refreshed(small_shop):
    """The small shop with its facts computed."""
    from pricing_saas.kpi.services import refresh_kpis

    with tenant_context(small_shop.tenant):
        refresh_kpis()
    return small_shop


@pytest.fixture
def other_shop(world_b):
    """World B with the same catalog, ten times the units, facts computed."""
    from pricing_saas.kpi.services import refresh_kpis

    world_b.ids = load_small_shop(world_b.tenant, scale=10)
    with tenant_context(world_b.tenant):
        refresh_kpis()
    return world_b


@pytest.fixture
def market(world_a):
    """A small competitor market, worked out by hand in test_competitors.py."""
    from django.utils import timezone

    from tests.factories import (
        CompetitorOfferFactory,
        PriceChangeFactory,
        ProductFactory,
        RecommendationFactory,
        RepriceJobFactory,
        SalesRecordFactory,
    )

    t = world_a.tenant
    now = timezone.now()
    today = now.date()
    green = ProductFactory(tenant=t, sku="GREEN", title="Green tea", price="10.00")
    black = ProductFactory(tenant=t, sku="BLACK", title="Black tea", price="20.00")
    SalesRecordFactory(tenant=t, product=green, date=today - dt.timedelta(days=3),
                       units=30, price="10.00", revenue="300.00")  # fmt: skip
    SalesRecordFactory(tenant=t, product=black, date=today - dt.timedelta(days=3),
                       units=5, price="20.00", revenue="100.00")  # fmt: skip
    day = dt.timedelta(days=1)
    offer = CompetitorOfferFactory
    offer(tenant=t, product=green, competitor="Rival X", price="9.00", observed_at=now - 2 * day)
    move = offer(tenant=t, product=green, competitor="Rival X", price="8.00",
                 observed_at=now - day, url="https://x.example.com/green")  # fmt: skip
    offer(tenant=t, product=green, competitor="Rival Z", price="9.80", observed_at=now - day)
    offer(tenant=t, product=green, competitor="Rival Y", price="5.00", observed_at=now - 20 * day)
    offer(tenant=t, product=black, competitor="Rival X", price="22.00", observed_at=now - day)
    job = RepriceJobFactory(tenant=t)
    rec = RecommendationFactory(tenant=t, job=job, product=green, current_price="10.50",
                                recommended_price="10.00", competitor_name="Rival X")  # fmt: skip
    change = PriceChangeFactory(tenant=t, product=green, recommendation=rec, job=job,
                                old_price="10.50", new_price="10.00",
                                published_at=move.observed_at + dt.timedelta(hours=2))  # fmt: skip
    return {"green": green, "black": black, "move": move, "change": change, "job": job}
