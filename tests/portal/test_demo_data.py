"""The Complete Journey demo merchant: the converter's files, and the same files through the real
import service into a tenant."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from pricing_saas.catalog.importer import import_file
from pricing_saas.catalog.models import CompetitorOffer, Product, SalesRecord
from pricing_saas.portal.demo_data import (
    COST_SOURCE,
    DERIVED_COMPETITOR,
    complete_journey_csvs,
)
from tenants.context import tenant_context
from tests.factories import TenantFactory

PRODUCTS = 50


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("completejourney")
    return out, complete_journey_csvs(out, products=PRODUCTS)


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_stats_and_files(converted):
    out, stats = converted
    today = dt.date.today()
    last = dt.date.fromisoformat(stats["last_day"])
    assert today - dt.timedelta(days=7) <= last < today
    assert stats["shift_days"] % 7 == 0 and stats["shift_days"] > 0
    assert stats["transaction_lines"] > 1_000_000
    assert stats["products_with_sales"] > 60_000
    assert stats["products_written"] == PRODUCTS
    assert stats["competitor_offers"] == 4 * PRODUCTS

    products = rows(out / "products.csv")
    sales = rows(out / "sales.csv")
    offers = rows(out / "competitor_offers.csv")
    assert len(products) == PRODUCTS
    assert len(sales) == stats["daily_sales_rows"]
    assert len(offers) == stats["competitor_offers"]
    assert [p["sku"] for p in products] == sorted((p["sku"] for p in products), key=int)
    for product in products:
        assert 0 < float(product["cost"]) < float(product["price"])
        expected = (Decimal("0.70") * Decimal(product["price"])).quantize(
            Decimal("0.01"), ROUND_HALF_UP
        )
        assert Decimal(product["cost"]) == expected
        assert product["cost_source"] == COST_SOURCE
    skus = {p["sku"] for p in products}
    assert {s["sku"] for s in sales} == skus  # only the chosen products' sales
    dates = sorted(s["date"] for s in sales)
    assert (dates[0], dates[-1]) == (stats["first_day"], stats["last_day"])
    # whole weeks: 2017-01-01 (the first day of the data) was a Sunday
    assert dt.date.fromisoformat(stats["first_day"]).weekday() == 6

    assert {o["competitor"] for o in offers} == {DERIVED_COMPETITOR}
    assert Counter(o["sku"] for o in offers) == {sku: 4 for sku in skus}
    prices = {p["sku"]: float(p["price"]) for p in products}
    for offer in offers:
        observed = dt.datetime.fromisoformat(offer["observed_at"])
        assert observed.utcoffset() == dt.timedelta(0)
        assert today - dt.timedelta(days=28) <= observed.date() < today
        assert offer["in_stock"] == "true"
        assert 0.75 <= float(offer["price"]) / prices[offer["sku"]] <= 1.32


def test_same_seed_same_offers_other_seed_other_offers(tmp_path):
    today = dt.date(2025, 6, 18)
    one = complete_journey_csvs(tmp_path / "a", products=5, today=today, seed=1)
    again = complete_journey_csvs(tmp_path / "b", products=5, today=today, seed=1)
    other = complete_journey_csvs(tmp_path / "c", products=5, today=today, seed=2)
    assert one == again == other
    assert one["last_day"] <= "2025-06-17" and one["last_day"] >= "2025-06-11"
    text = [(tmp_path / d / "competitor_offers.csv").read_text() for d in "abc"]
    assert text[0] == text[1] != text[2]
    assert (tmp_path / "a" / "sales.csv").read_bytes() == (
        tmp_path / "c" / "sales.csv"
    ).read_bytes()


def test_skip_takes_the_next_best_sellers(tmp_path):
    """`skip`: the products after the best sellers, ranked by units sold, none of the first."""
    today = dt.date(2025, 6, 18)
    complete_journey_csvs(tmp_path / "all", products=8, today=today)
    complete_journey_csvs(tmp_path / "next", products=5, skip=3, today=today)

    def units(folder):
        sold = Counter()
        for row in rows(tmp_path / folder / "sales.csv"):
            sold[row["sku"]] += int(row["units"])
        return sold

    best, next_ = units("all"), units("next")
    ranked = [sku for sku, _ in sorted(best.items(), key=lambda item: (-item[1], int(item[0])))]
    assert set(next_) == set(ranked[3:8])
    assert min(best[sku] for sku in ranked[:3]) >= max(next_.values())
    with pytest.raises(ValueError, match="skip must be 0 or more"):
        complete_journey_csvs(tmp_path / "bad", products=5, skip=-1, today=today)
    with pytest.raises(ValueError, match="leaves no product: the data set has"):
        complete_journey_csvs(tmp_path / "bad", products=5, skip=10**7, today=today)
    assert not (tmp_path / "bad").exists()  # nothing half-written


@pytest.mark.django_db
def test_files_import_into_a_tenant(converted):
    out, stats = converted
    tenant = TenantFactory(slug="grocer", default_currency="USD")
    with tenant_context(tenant):
        results = {
            kind: import_file(kind=kind, path=out / name)
            for kind, name in (
                ("products", "products.csv"),
                ("sales", "sales.csv"),
                ("competitor_prices", "competitor_offers.csv"),
            )
        }
        for result in results.values():
            assert result.ok and result.skipped == 0 and result.errors == []
        assert results["products"].created == PRODUCTS
        assert results["sales"].created == stats["daily_sales_rows"]
        assert results["competitor_prices"].created == stats["competitor_offers"]
        assert Product.objects.count() == PRODUCTS
        assert SalesRecord.objects.count() == stats["daily_sales_rows"]
        assert CompetitorOffer.objects.filter(competitor=DERIVED_COMPETITOR).count() == (
            4 * PRODUCTS
        )
        product = Product.objects.order_by("sku").first()
        assert product.attributes["cost_source"] == COST_SOURCE
        assert {"department", "manufacturer_id", "product_type"} <= set(product.attributes)
        assert product.currency == "USD" and 0 < product.cost < product.price
        latest = SalesRecord.objects.order_by("-date").first().date
        assert latest.isoformat() == stats["last_day"]
