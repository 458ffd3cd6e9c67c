"""Tables of the time-based model against docs/model.md's formulas, and CRN enrolment days."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.model.parameters import Recruitment, RunParameters
from engine.model.v2.population_tables import band_bounds
from engine.model.v2.recruitment import enrolment_days
from engine.model.v2.tables import compile_time_based

from .test_kernel_v2_trace import death_probability, transition_effect, vision_effect
from .timebased_protocols import SIMPLE_FILES, simple_protocol

STATES = ("NAIVE", "STABLE", "ACTIVE", "HIGHLY_ACTIVE")


def test_band_bounds() -> None:
    assert band_bounds("50-59") == (50.0, 60.0)
    assert band_bounds("95+") == (95.0, 100.0)
    with pytest.raises(ValueError, match="age band"):
        band_bounds("old")


def test_transition_thresholds_follow_the_formula() -> None:
    tables = compile_time_based(simple_protocol())
    p = SIMPLE_FILES["disease_transitions"]["fortnightly_transitions"]
    m = SIMPLE_FILES["treatment_effect"]["treatment_multipliers"]
    for d in (None, 0, 28, 29, 60, 150, tables.max_day):
        row = 0 if d is None else d + 1
        e = transition_effect(d)
        for s, name in enumerate(STATES):
            mult = m.get(name, {}).get("multipliers", {})
            w = np.array([p[name][j] * (1 + e * (mult.get(j, 1.0) - 1)) for j in STATES])
            cum = np.cumsum(w / w.sum())[:3]
            got = [getattr(tables, f"transition_t{j}")[row * 4 + s] for j in range(3)]
            for j in range(3):
                if w[j + 1 :].sum() == 0:
                    assert got[j] == 2.0  # later states unreachable
                else:
                    assert got[j] == pytest.approx(cum[j], abs=1e-12)
    # Non-responders: the effect times 0.3.
    group = tables.rows_per_group
    assert tables.vision_effect[group + 1 + 10] == pytest.approx(0.3)
    for d in (0, 56, 70, 84, 100, 112, 150, 224, 300):
        assert tables.vision_effect[min(d, tables.max_day) + 1] == pytest.approx(vision_effect(d))
    # The table reaches the point after which e and v stop changing.
    assert transition_effect(tables.max_day) == 0.1 and vision_effect(tables.max_day) == 0.0


def test_death_probability_table() -> None:
    tables = compile_time_based(simple_protocol())
    for sex, code in (("female", 0), ("male", 1)):
        for age in (60, 70, 76, 79.5, 85):
            a = min(max(math.floor(age), 70), 80)
            got = tables.death_probability[code * tables.ages + a - tables.first_age]
            assert got == pytest.approx(death_probability(sex, age), rel=1e-12)


def test_beta_inverse_cdf_has_the_beta_mean() -> None:
    """The mean of min + (max - min) X over a regular grid of 100,000 uniforms is the
    distribution's mean up to the grid's and the tabulation's error (< 1e-4 of the range)."""
    protocol = simple_protocol(
        baseline_vision_distribution__type="beta", baseline_vision_distribution__alpha=3.5,
        baseline_vision_distribution__beta=2.0, baseline_vision_distribution__min=0.0,
        baseline_vision_distribution__max=1.0,
    )  # fmt: skip
    tables = compile_time_based(protocol)
    u = (np.arange(100_000) + 0.5) / 100_000
    x = np.interp(u, tables.beta_cdf, tables.beta_grid)
    assert x.mean() == pytest.approx(3.5 / 5.5, abs=1e-4)
    thresholded = compile_time_based(
        simple_protocol(
            baseline_vision_distribution__type="beta_with_threshold",
            baseline_vision_distribution__alpha=2.0,
            baseline_vision_distribution__beta=1.0,
            baseline_vision_distribution__min=0.0,
            baseline_vision_distribution__max=1.0,
            baseline_vision_distribution__threshold=0.5,
            baseline_vision_distribution__threshold_reduction=0.6,
        )
    )
    # Density 2x: F(0.5) = 0.25 before; above 0.5 the mass 0.75 is scaled by 0.4.
    half = thresholded.beta_cdf[len(thresholded.beta_cdf) // 2]
    assert half == pytest.approx(0.25 / (0.25 + 0.4 * 0.75), abs=1e-6)


def test_compiling_needs_the_parameter_files() -> None:
    with pytest.raises(ValueError, match="parameter files"):
        compile_time_based(simple_protocol(parameters=None))


def test_enrolment_days_by_rate_and_period() -> None:
    n = 5000
    rate = RunParameters(
        n_patients=n,
        years=10.0,
        seed=4,
        recruitment=Recruitment(mode="rate", patients_per_week=50.0),
    )
    ids = np.arange(n, dtype=np.int64)
    days = enrolment_days(rate, ids)
    assert (np.diff(days) >= 0).all() and days[0] >= 0
    # Mean gap 7/50 days; the total of 5,000 exponential gaps has relative SD 1/sqrt(5000)
    # = 1.4 %, so 8 % is more than 5 SD (false failure < 1e-6).
    assert days[-1] == pytest.approx(n * 7 / 50, rel=0.08)
    # Any slice of ids (a shard, across the 4,096-id blocks) gives the same days.
    np.testing.assert_array_equal(enrolment_days(rate, ids[4000:4500]), days[4000:4500])
    period = RunParameters(
        n_patients=n, years=3.0, seed=4, recruitment=Recruitment(mode="period", period_days=365)
    )
    days = enrolment_days(period, ids)
    assert days.min() >= 0 and days.max() < 365 and (np.diff(days) >= 0).all()
    assert days[-1] > 350  # N of N + 1 gaps: the last arrival is close to the end
    np.testing.assert_array_equal(enrolment_days(period, ids[4090:4100]), days[4090:4100])
