"""`decision_decomposition.py --trap`: each trap's strength read and checked before any market is
trained, and the simulator refusing a cost or elasticity range that is no market."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ml.science.simulator import make_market

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "decision_decomposition.py"


@pytest.fixture(scope="module")
def parse_traps():
    spec = importlib.util.spec_from_file_location("decision_decomposition", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_traps


def test_ranges_and_numbers_are_read(parse_traps):
    assert parse_traps(["cost_share=0.85:0.95", "elasticity=2:5", "overdispersion=1.5"]) == {
        "cost_share": (0.85, 0.95),
        "elasticity": (2.0, 5.0),
        "overdispersion": 1.5,
    }


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("elasticity=0:1", "elasticity takes finite values from 0.1 to 10"),
        ("elasticity=0:0", "from 0.1"),
        ("elasticity=2:20", "to 10"),
        ("elasticity=3", "elasticity takes low:high"),
        ("cost_share=0:0", "cost_share takes finite values from 0.05 to 0.99"),
        ("cost_share=0.5:1", "to 0.99"),
        ("cost_share=0.9:0.8", "low no higher than high"),
        ("cost_share=0.8:nan", "finite values"),
        ("cost_share=cheap", "is not a number or low:high"),
        ("margin=0.1", "NAME one of"),
    ],
)
def test_a_value_that_is_no_market_is_refused_with_the_reason(parse_traps, item, says):
    with pytest.raises(SystemExit, match=says):
        parse_traps([item])


def test_a_trap_set_twice_is_refused(parse_traps):
    with pytest.raises(SystemExit, match="set twice"):
        parse_traps(["elasticity=1:2", "elasticity=2:3"])


@pytest.mark.parametrize(
    ("keyword", "says"),
    [
        ({"cost_share": 0.9}, "cost_share must be a range"),
        ({"cost_share": (0.9, 0.8)}, "0 < low <= high < 1"),
        ({"cost_share": (0.5, 1.0)}, "< 1"),
        ({"elasticity": (0.0, 2.0)}, "elasticity must be a range .* 0 < low <= high"),
        ({"elasticity": (3.0, float("nan"))}, "elasticity must be"),
    ],
)
def test_the_simulator_refuses_a_range_that_is_no_market(keyword, says):
    with pytest.raises(ValueError, match=says):
        make_market(10, seed=0, **keyword)
