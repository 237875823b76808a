"""Demo data: the real product list in ../shared/data (Amazon India, March 2023), converted to
the canonical products format. Rows with a missing or zero price are skipped by the importer
and reported, like any merchant's."""

from __future__ import annotations

import csv
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
            writer.writerow([
                asin, row["name"], f"{row['main_category']} / {row['sub_category']}",
                row["actual_price"], "INR", row.get("ratings", ""), row.get("no_of_ratings", ""),
            ])  # fmt: skip
            rows += 1
    return rows
