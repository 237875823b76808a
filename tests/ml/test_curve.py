"""The demand curve (`ml/science/curve.py`)."""

from __future__ import annotations

import numpy as np
import pytest


def test_the_local_elasticity_includes_the_hinge_only_above_the_competitor():
    from ml.science.curve import DemandCurve

    curve = DemandCurve.build(
        [10.0, 10.0, 10.0],
        [5.0, 5.0, 5.0],
        [-1.5, -1.5, -1.5],
        [0.2, 0.2, 0.2],
        competitor_price=[9.5, 10.5, 9.5],
        competitor_slope=[-3.0, -3.0, -0.1],
        competitor_slope_se=[0.5, 0.5, 0.5],
    )
    slope, se = curve.local_elasticity()
    # above a clear hinge: a small move runs on the steeper slope, with both doubts
    assert slope[0] == pytest.approx(-4.5) and se[0] == pytest.approx(np.hypot(0.2, 0.5))
    # below the competitor, or a hinge the data do not show: the elasticity as it is
    assert slope[1] == pytest.approx(-1.5) and se[1] == pytest.approx(0.2)
    assert slope[2] == pytest.approx(-1.5) and se[2] == pytest.approx(0.2)
    # the number the curve itself gives for a small move up from today's price
    up = np.log(curve.units(np.full(3, 10.0 * np.exp(1e-4))) / curve.units_ref) / 1e-4
    assert up == pytest.approx(slope, abs=1e-3)
