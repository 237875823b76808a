"""Backtest on a tenant's own history: fit the demand model on all but the last weeks, then
forecast the held-out days at the prices that were actually charged, against two references
that know the same past: each SKU's average day, and the same model without its price response.

Pure module (numpy). The held-out rows keep their likelihood type: rows that are in the data only
because something sold are scored with the zero-truncated mean, so the comparison is fair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .demand import Panel, Truncation, _controls, _mean_weight, fit_demand


@dataclass
class BacktestResult:
    train_days: int
    test_days: int
    skus: int  # SKUs with rows on both sides of the cut
    test_rows: int
    deviance_model: float  # mean Poisson deviance per held-out row (lower is better)
    deviance_no_price: float
    deviance_average: float
    deviance_recent: float  # each SKU's average day over the last RECENT_DAYS before the cut
    mae_model: float
    mae_average: float
    units_actual: float  # total held-out units
    units_forecast: float

    @property
    def gain_over_average(self) -> float:
        return 1 - self.deviance_model / self.deviance_average

    @property
    def gain_over_recent(self) -> float:
        return 1 - self.deviance_model / self.deviance_recent

    @property
    def gain_from_price(self) -> float:
        return 1 - self.deviance_model / self.deviance_no_price


RECENT_DAYS = 28  # the naive forecast: each SKU's average day over the last four weeks


def _deviance(y, m) -> np.ndarray:
    m = np.maximum(m, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / m), 0.0)
    return 2 * (term - (y - m))


def _subset(panel: Panel, rows: np.ndarray) -> Panel:
    pick = lambda v: None if v is None else np.asarray(v)[rows]  # noqa: E731
    return Panel(
        sku=panel.sku[rows],
        day=panel.day[rows],
        units=panel.units[rows],
        price=panel.price[rows],
        promo=pick(panel.promo),
        competitor_price=pick(panel.competitor_price),
        discount=pick(panel.discount),
        category=panel.category,
        time_effects=panel.time_effects,
        truncated=pick(panel.truncated),
        current_price=panel.current_price,
    )


KNOWN_IN_ADVANCE = ("dow_", "promo", "discount_depth")


def _known_in_advance(panel: Panel, fit, train_rows, test) -> np.ndarray:
    """Per held-out row, the fitted effect of its weekday, promotion and discount depth,
    relative to the training days' average (the fit's intercept is the average day)."""
    controls, names = _controls(_subset(panel, np.ones(len(panel.sku), dtype=bool)))
    shift = np.zeros(int(test.sum()))
    for j, name in enumerate(names):
        if not name.startswith(KNOWN_IN_ADVANCE) or name not in fit.coef_names:
            continue
        coef = fit.coef[fit.coef_names.index(name)]
        column = controls[:, j]
        shift += coef * (column[test] - column[train_rows].mean())
    return shift


def backtest(panel: Panel, holdout_days: int = 28) -> BacktestResult:
    day = np.asarray(panel.day)
    cut = day.max() - holdout_days
    train_rows, test_rows = day <= cut, day > cut
    if not train_rows.any() or not test_rows.any():
        raise ValueError(f"the history must be longer than the {holdout_days} held-out days")
    fit = fit_demand(_subset(panel, train_rows))
    n = panel.n_skus
    seen = np.bincount(panel.sku[train_rows], minlength=n) > 0
    priced = np.isfinite(np.asarray(panel.price, float)) & (np.asarray(panel.price, float) > 0)
    test = test_rows & seen[panel.sku] & priced
    sku, y = panel.sku[test], np.asarray(panel.units, float)[test]
    price = np.asarray(panel.price, float)[test]
    trunc = (
        None
        if panel.truncated is None
        else Truncation(np.asarray(panel.truncated, bool)[test], fit.nb_k)
    )
    # Forecasts on the log scale, each turned into the expected value of the row: the average
    # day, moved by what is known of the held-out day in advance (its weekday, whether a
    # promotion runs and how deep its discount is), as a merchant's forecast would be.
    model = np.log(np.maximum(fit.expected_units(sku, price), 1e-12)) + _known_in_advance(
        panel, fit, train_rows, test
    )
    no_price = fit.intercept[sku]  # the same SKU level, the price held at its typical value
    train_y = np.asarray(panel.units, float)[train_rows]
    average_all = np.log(
        np.maximum(
            np.bincount(panel.sku[train_rows], weights=train_y, minlength=n)
            / np.maximum(np.bincount(panel.sku[train_rows], minlength=n), 1),
            1e-12,
        )
    )
    average = average_all[sku]
    window = train_rows & (day > cut - RECENT_DAYS)
    recent_sum = np.bincount(
        panel.sku[window], weights=np.asarray(panel.units, float)[window], minlength=n
    )
    recent_days = np.bincount(panel.sku[window], minlength=n)
    per_day = np.where(
        recent_days > 0, recent_sum / np.maximum(recent_days, 1), np.exp(average_all)
    )
    recent = np.log(np.maximum(per_day, 1e-12))[sku]
    means = {
        name: _mean_weight(eta, trunc)[0]
        for name, eta in (
            ("model", model),
            ("no_price", no_price),
            ("average", average),
            ("recent", recent),
        )
    }
    return BacktestResult(
        train_days=int(cut - day.min() + 1),
        test_days=holdout_days,
        skus=len(np.unique(sku)),
        test_rows=len(y),
        deviance_model=float(np.mean(_deviance(y, means["model"]))),
        deviance_no_price=float(np.mean(_deviance(y, means["no_price"]))),
        deviance_average=float(np.mean(_deviance(y, means["average"]))),
        deviance_recent=float(np.mean(_deviance(y, means["recent"]))),
        mae_model=float(np.mean(np.abs(y - means["model"]))),
        mae_average=float(np.mean(np.abs(y - means["average"]))),
        units_actual=float(y.sum()),
        units_forecast=float(means["model"].sum()),
    )
