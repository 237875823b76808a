"""Backtest on a tenant's own history: the price response must earn its place on held-out days."""

from __future__ import annotations

import numpy as np
import pytest

from ml.science.backtest import backtest
from ml.science.demand import Panel


def _history(days: int = 150, skus: int = 40, true: float = -2.5, seed: int = 3) -> Panel:
    rng = np.random.default_rng(seed)
    sku = np.repeat(np.arange(skus), days)
    day = np.tile(738000 + np.arange(days), skus)
    price = 10 * np.exp(rng.normal(0, 0.15, skus * days))
    units = rng.poisson(4 * (price / 10) ** true)
    return Panel(sku=sku, day=day, units=units, price=price)


def test_the_price_response_beats_the_references_on_held_out_days():
    result = backtest(_history(), holdout_days=28)
    assert result.test_days == 28 and result.skus == 40 and result.test_rows == 40 * 28
    assert result.deviance_model < result.deviance_no_price
    assert result.deviance_model < result.deviance_average
    assert result.gain_from_price > 0.1
    assert result.units_forecast == pytest.approx(result.units_actual, rel=0.1)


def test_a_history_shorter_than_the_holdout_is_refused():
    with pytest.raises(ValueError, match="longer than"):
        backtest(_history(days=20), holdout_days=28)
