"""The competitor's price today from its readings (ml.science.competitor)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.science import competitor as c


def feed(seed, series=4000, readings=8, sd=0.03, jump_chance=0.3, jump_sd=0.12):
    """Readings (latest first) of `series` competitors around their levels today, a share of
    them re-priced once somewhere in the run (the older readings at the old price)."""
    rng = np.random.default_rng(seed)
    level = np.exp(rng.normal(3.0, 0.4, series))
    r = level[:, None] * np.exp(rng.normal(0, sd, (series, readings)))
    jumped = rng.random(series) < jump_chance
    at = rng.integers(1, readings, series)
    for i in np.flatnonzero(jumped):
        r[i, at[i] :] *= np.exp(rng.normal(0, jump_sd))
    return r, level, jumped


def measured(r):
    changes = np.log(r[:, :-1] / r[:, 1:]).ravel()
    sd = float(np.median(np.abs(changes)) * 1.4826 / np.sqrt(2))
    return c.noise_of_changes(sd, changes)


@pytest.mark.parametrize("jump_chance, jump_sd", [(0.3, 0.12), (0.3, 0.3), (0.0, 0.1)])
def test_the_share_and_size_of_re_prices_are_recovered(jump_chance, jump_sd):
    r, _level, _jumped = feed(0, jump_chance=jump_chance, jump_sd=jump_sd)
    noise = measured(r)
    assert noise.sd == pytest.approx(0.03, rel=0.1)
    assert noise.changes == r.size - len(r)
    per_step = jump_chance / (r.shape[1] - 1)  # one re-price in a run of 7 steps
    assert noise.jump_share == pytest.approx(max(per_step, c.MIN_JUMP_SHARE), abs=0.012)
    if jump_chance:
        assert noise.jump_sd == pytest.approx(jump_sd, rel=0.2)


@pytest.mark.parametrize("jump_chance, jump_sd", [(0.3, 0.12), (0.5, 0.05), (1.0, 0.3)])
def test_the_level_is_closer_to_the_price_than_the_latest_reading_and_says_how_close(
    jump_chance, jump_sd
):
    r, level, jumped = feed(1, jump_chance=jump_chance, jump_sd=jump_sd)
    got, weight = c.level(r, measured(r))
    err = np.log(got / level)
    latest = np.sqrt(np.mean(np.log(r[:, 0] / level) ** 2))
    assert np.sqrt(np.mean(err**2)) < 0.8 * latest
    # a re-price in the run is found: those series are closer than their latest reading too
    assert np.sqrt(np.mean(err[jumped] ** 2)) < 0.85 * latest
    # the stated weight is honest: the error in units of its stated s.d. is about one
    z = err / (0.03 / np.sqrt(weight))
    assert 0.8 < np.sqrt(np.mean(z**2)) < 1.3
    assert np.all(weight >= 1.0) and np.all(weight <= r.shape[1] + 1e-9)


def test_a_clear_re_price_ends_the_run_it_is_not_averaged_in():
    noise = c.Noise(sd=0.02, jump_share=0.05, jump_sd=0.15, changes=1000)
    r = np.array([[10.0, 10.1, 9.95, 12.0, 12.1, 11.9, 12.05, 12.0]])  # re-priced 12 -> 10
    got, weight = c.level(r, noise)
    assert got[0] == pytest.approx(np.exp(np.mean(np.log([10.0, 10.1, 9.95]))), rel=0.002)
    assert 2.5 < weight[0] < 3.2


def test_exact_readings_or_a_jitter_measured_on_too_few_changes_keep_the_latest_reading():
    r = np.array([[10.0, 10.4, 9.8, 10.2]])
    for noise in (
        c.Noise(sd=0.0, changes=1000),  # readings that never jitter
        c.Noise(sd=0.03, jump_share=0.05, jump_sd=0.1, changes=c.MIN_CHANGES - 1),
        c.Noise.of(0.03),  # a plan made before the re-prices were measured
    ):
        got, weight = c.level(r, noise)
        assert got[0] == 10.0 and weight[0] == 1.0


def test_a_gap_ends_the_run_and_a_series_without_a_first_reading_has_no_level():
    noise = c.Noise(sd=0.03, jump_share=0.05, jump_sd=0.1, changes=1000)
    r = np.array([[10.0, np.nan, 20.0, 20.0], [np.nan, 10.0, 10.0, 10.0], [10.0, 10.0, 0, 5]])
    got, weight = c.level(r, noise)
    assert got[0] == 10.0 and weight[0] == 1.0
    assert np.isnan(got[1]) and weight[1] == 0.0
    assert got[2] == pytest.approx(10.0) and weight[2] == pytest.approx(2.0, abs=0.1)


def test_the_sql_histogram_bins_are_the_python_ones():
    """ml.panel.competitor_noise bins in SQL what change_bin bins here (the edges included)."""
    low, high = c.CHANGE_EDGES
    a = np.array([0.0, 5e-5, low, low * 1.0001, 0.03, high * 0.999, high, 5.0])
    bins = c.change_bin(a)
    assert bins[0] == bins[1] == 0 and bins[2] == bins[3] == 1
    assert bins[-1] == bins[-2] == c.CHANGE_BINS and 1 < bins[4] < c.CHANGE_BINS


def test_a_noise_travels_through_a_plan_and_back():
    noise = c.Noise(sd=0.03, jump_share=0.04, jump_sd=0.2, changes=500)
    assert c.Noise.of(noise.as_list()) == noise
    assert c.Noise.of(None) == c.Noise()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.none(), st.floats(0.01, 1e5)), min_size=1, max_size=8),
        min_size=1,
        max_size=5,
    ),
    st.floats(0.0, 0.5),
    st.floats(0.0, 1.0),
    st.floats(0.0, 2.0),
)
def test_the_level_stays_within_its_runs_readings(rows, sd, share, jump):
    width = max(len(row) for row in rows)
    r = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        r[i, : len(row)] = [np.nan if v is None else v for v in row]
    noise = c.Noise(sd=sd, jump_share=share, jump_sd=jump, changes=1000)
    got, weight = c.level(r, noise)
    for i in range(len(r)):
        run = []
        for v in r[i]:
            if not np.isfinite(v):
                break
            run.append(v)
        if not run:
            assert np.isnan(got[i]) and weight[i] == 0
        else:
            assert min(run) * (1 - 1e-9) <= got[i] <= max(run) * (1 + 1e-9)
            assert 1.0 <= weight[i] <= len(run) + 1e-6
