"""Accuracy of every reference-price trainer on Amazon India products (80/20 split, seed 0).

    .venv/bin/python benchmarks/text_price_accuracy.py
        [--trainers baseline,embed_ridge,finetune,lora] [--epochs 3] [--max-train N]
        [--max-products N]

Text = product name + main category + sub-category; target = actual_price (rupees).
Prints RMSLE of each trainer next to the training median, as JSON lines and a table.
`--max-products N` reads only the first N rows of the data set (a quick run, not a measurement).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml.science.text_price import TrainConfig, product_text, train_text_model  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "amazon_in_products.csv"


def parse_rupees(text: str) -> float | None:
    digits = re.sub(r"[^0-9.]", "", text or "")
    try:
        return float(digits) if digits else None
    except ValueError:
        return None


def load(path: Path = DATA, limit: int | None = None) -> tuple[list[str], list[float | None]]:
    """Texts and prices of the data set's rows (the first `limit` rows only, where given)."""
    texts, prices = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            if limit is not None and i == limit:
                break
            texts.append(
                product_text(
                    row["name"], category=f"{row['main_category']} / {row['sub_category']}"
                )
            )
            prices.append(parse_rupees(row["actual_price"]))
    return texts, prices


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trainers", default="embed_ridge,finetune")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--max-products", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--lr", type=float, default=TrainConfig.learning_rate)
    args = parser.parse_args()
    texts, prices = load(limit=args.max_products)
    print(f"{len(texts)} rows, {sum(p is not None for p in prices)} with a price")
    results = {}
    for trainer in args.trainers.split(","):
        config = TrainConfig(
            trainer=trainer,
            epochs=args.epochs,
            max_train_samples=args.max_train,
            batch_size=args.batch_size,
            device=args.device,
            learning_rate=args.lr,
        )
        started = time.monotonic()
        outcome = train_text_model(texts, prices, config, progress=None)
        metrics = outcome.metrics
        results["baseline"] = metrics["baseline"]
        results["median"] = {"rmsle": round(metrics["median_rmsle"], 4)}
        if trainer in metrics:
            results[trainer] = metrics[trainer]
        print(
            json.dumps(
                {
                    "trainer": trainer,
                    "seconds": round(time.monotonic() - started, 1),
                    "metrics": metrics,
                },
                default=str,
            )
        )
    print("\n| trainer | RMSLE (20% held out) | interval coverage (target 0.8) |")
    print("| --- | --- | --- |")
    for name, m in results.items():
        print(f"| {name} | {m['rmsle']} | {m.get('interval_coverage', '')} |")


if __name__ == "__main__":
    main()
