"""Years in VA bands: they add up to each patient's follow-up and discount exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.model.parameters import DAYS_PER_YEAR, Recruitment, RunParameters
from engine.model.protocol_loader import load_protocol
from engine.model.v2.kernel import simulate_block
from engine.model.v2.tables import compile_time_based
from engine.model.v2.vision_time import VisionTimeTracker, discounted_years_between

ALTAIR = "aflibercept_treat_and_extend_altair"


def test_discounted_years_of_one_year_at_3_5_percent_match_the_closed_form() -> None:
    # Integral of 1.035 ** -x over [0, 1) years = (1 - 1 / 1.035) / ln(1.035).
    expected = (1 - 1 / 1.035) / math.log(1.035)
    assert discounted_years_between(0, DAYS_PER_YEAR, 0.035) == pytest.approx(expected, rel=1e-12)
    assert discounted_years_between(0, DAYS_PER_YEAR, 0.0) == pytest.approx(1.0)
    assert discounted_years_between(10, 5, 0.035) == 0.0


@pytest.mark.parametrize(
    "recruitment",
    [Recruitment(), Recruitment(mode="period", period_days=400)],
    ids=["cohort", "period"],
)
def test_years_in_bands_add_up_to_days_alive_and_discount_by_day(recruitment) -> None:
    tables = compile_time_based(load_protocol(ALTAIR))
    params = RunParameters(n_patients=3000, years=3.3, seed=5, recruitment=recruitment)
    tracker = VisionTimeTracker([0, 35, 55, 70], 0.035)
    outputs, _ = simulate_block(tables, params, [0], vision_time=tracker)
    patients = outputs[0].patients
    alive_days = patients["alive_days"].astype(np.float64)
    # Every patient's years add up to the days from enrolment to death or the horizon.
    np.testing.assert_allclose(tracker.years.sum(axis=1), alive_days / DAYS_PER_YEAR, rtol=1e-12)
    # Discounted years are the integral of the discount factor over the same days.
    np.testing.assert_allclose(
        tracker.discounted_years.sum(axis=1),
        discounted_years_between(0, alive_days, 0.035),
        rtol=1e-9,
    )
    assert (patients["death_day"] >= 0).any(), "some deaths, so the death cut is exercised"


def test_final_band_is_the_band_of_true_va_at_the_end() -> None:
    """A patient's last fortnight is counted in the band of the VA the patients table keeps."""
    tables = compile_time_based(load_protocol(ALTAIR))
    params = RunParameters(n_patients=500, years=1.0, seed=9)
    edges = [0, 35, 55, 70]
    tracker = VisionTimeTracker(edges, 0.0)
    block_years = []
    outputs, _ = simulate_block(tables, params, [0], vision_time=tracker)
    block_years.append(tracker.years.copy())
    final = outputs[0].patients["final_vision"].astype(np.float64)
    # True VA within half a letter of the rounded final VA: compare away from band edges.
    band = np.searchsorted(edges, final, side="right") - 1
    clear = np.min(np.abs(final[:, None] - np.asarray(edges)[None, 1:]), axis=1) >= 1
    assert clear.sum() > 300
    assert (tracker.years[np.flatnonzero(clear), band[clear]] > 0).all()


def test_bad_band_edges_are_refused() -> None:
    with pytest.raises(ValueError, match="start at 0"):
        VisionTimeTracker([5, 10], 0.0)
    with pytest.raises(ValueError, match="ascend"):
        VisionTimeTracker([0, 10, 10], 0.0)
