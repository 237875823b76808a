"""Reference prices on the demo's products: TF-IDF text alone ("before") against the structured
baseline (brand and category as separate inputs, pack sizes, a size slope per category and
word: "after"), held out and as the demo stores them (5-fold cross-fitted).

    .venv/bin/python benchmarks/reference_prices_demo.py [--products 2000] [--seeds 0,1,2]

Texts are built exactly as the demo builds them (Complete Journey's best sellers, with their
package size attribute). Prints the mean held-out RMSLE of the chosen model per mode, the
cross-fitted RMSLE, and what the sugar and infant-formula products get.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")
CORE = {"sku", "title", "price", "description", "category", "brand", "cost", "currency", "stock"}
WATCH = ("SUGARS/SWEETNERS", "INFANT FORMULA")


def demo_products(count: int) -> list[dict]:
    from pricing_saas.portal.demo_data import complete_journey_csvs

    with tempfile.TemporaryDirectory() as folder:
        complete_journey_csvs(Path(folder), products=count)
        with open(Path(folder) / "products.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
    return [
        {
            "sku": r["sku"],
            "title": r["title"],
            "brand": r["brand"],
            "category": r["category"],
            "price": float(r["price"]),
            "attributes": {k: v.strip() for k, v in r.items() if k not in CORE and v and v.strip()},
        }
        for r in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    import django

    django.setup()
    from ml.science.text_price import (
        TrainConfig,
        cross_fitted,
        product_text,
        rmsle,
        train_text_model,
    )

    data = demo_products(args.products)
    texts = [product_text(r["title"], "", r["brand"], r["category"], r["attributes"]) for r in data]
    prices = np.array([r["price"] for r in data])
    keys = [r["sku"] for r in data]
    watch = [i for i, r in enumerate(data) if r["category"] in WATCH]
    fitted = {}
    print("| mode | mean held-out RMSLE (chosen model) | 5-fold cross-fitted RMSLE |")
    print("| --- | --- | --- |")
    for mode in ("before", "after"):
        structured = mode == "after"
        scores = []
        for seed in (int(s) for s in args.seeds.split(",")):
            config = TrainConfig(trainer="baseline", seed=seed, structured_features=structured)
            outcome = train_text_model(texts, prices, config, keys=keys)
            scores.append(outcome.metrics[outcome.metrics["chosen"]]["rmsle"])
        fitted[mode] = cross_fitted(texts, prices, structured=structured)
        print(f"| {mode} | {np.mean(scores):.4f} | {rmsle(prices, fitted[mode].price):.4f} |")
    print("\n| product | sells at | before | after |\n| --- | --- | --- | --- |")
    for i in watch:
        print(
            f"| {data[i]['title']} | {prices[i]:.2f} | {fitted['before'].price[i]:.2f} | "
            f"{fitted['after'].price[i]:.2f} |"
        )


if __name__ == "__main__":
    main()
