"""Shared fixtures of the pricing tests: a shop with known demand (sales with price variation)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pricing_saas.catalog.importer import import_rows
from tenants.context import tenant_context


@pytest.fixture
def shop(world_a):
    rng = np.random.default_rng(3)
    products = [
        {"sku": f"P{i}", "title": f"Product {i}", "price": 20, "cost": 8 + i % 5,
         "category": "a" if i < 10 else "b"}
        for i in range(20)
    ]  # fmt: skip
    products.append({"sku": "NEW", "title": "No history", "price": 30, "cost": 12, "category": "a"})
    # The margin floor (40 x 1.1 = 44) above the max price: contradictory rules.
    products.append(
        {"sku": "BAD", "title": "Broken rules", "price": 30, "cost": 40, "max_price": 40}
    )
    sales = []
    for i in range(20):
        true = -0.6 if i < 10 else -2.5
        for day in range(150):
            price = 20 * float(np.exp(rng.normal(0, 0.1)))
            units = int(rng.poisson(6 * (price / 20) ** true))
            if units:
                date = (dt.date(2024, 1, 1) + dt.timedelta(days=day)).isoformat()
                sales.append(
                    {"date": date, "sku": f"P{i}", "units": units, "price": round(price, 2)}
                )
    with tenant_context(world_a.tenant):
        import_rows(kind="products", rows=products)
        import_rows(kind="sales", rows=sales)
    return world_a
