"""The simulated market: canonical files that import, and an oracle that knows best."""

from __future__ import annotations

import csv

import numpy as np

from ml.simulator import FORMS, make_market, oracle, score, write_csv


def test_market_files_are_in_the_canonical_formats(tmp_path):
    market = make_market(12, FORMS, seed=0)
    stats = write_csv(market, tmp_path, days=20)
    with open(tmp_path / "sales.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert stats["sales_rows"] == len(rows) > 0
    assert set(rows[0]) == {"date", "sku", "units", "price", "promo"}
    with open(tmp_path / "products.csv") as handle:
        assert next(csv.reader(handle)) == ["sku", "title", "category", "cost", "price", "currency"]


def test_oracle_is_the_best_and_scores_are_consistent():
    market = make_market(30, ("constant", "linear", "logit"), seed=1)
    p0 = market.price_today
    floor = np.maximum(market.cost * 1.1, p0 * 0.8)
    ceiling = np.maximum(p0 * 1.2, floor)
    best = oracle(market, floor, ceiling)
    idx = np.arange(30)
    assert np.all(
        market.profit(idx, best) >= market.profit(idx, np.clip(p0, floor, ceiling)) - 1e-9
    )
    assert score(market, best, floor, ceiling)["captured"] == 1.0
    assert score(market, np.clip(p0, floor, ceiling), floor, ceiling)["captured"] < 1.0
    assert score(market, ceiling * 2, floor, ceiling)["violations"] == 30
