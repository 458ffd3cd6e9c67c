"""The time-based kernel's per-patient outcome columns match its own visits (issue 11).

Exact checks (no tolerance, false-failure rate 0) of the columns contracts.md adds for v2:
milestone VA (LOCF), treated-at-milestone flags, injections and visits by year, alive and
treated days, counts and the discontinuation fields, on a run with every rule on.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from tests.engine.model_v2_support import life_table, make_protocol, run_kernel
from tests.reference_model_v2 import DAYS_PER_MONTH, MONTHS

P = "parameters"
HORIZON = 1100


def test_outcome_columns_follow_from_the_visits():
    """Every patient's outcome columns recomputed from the visits table and death and stop
    days: va_m<m> = last measured VA at or before day floor(m x 30.4375) (null, -1, beyond the
    horizon); treated_m<m> = alive and not discontinued then; injections and visits by year
    (t < 364, 364-727, later); alive_days, treated_days; totals; discontinued iff a reason."""
    protocol = make_protocol(
        {
            "protocol_type": "treat_and_extend",
            "loading_dose_injections": 3,
            "min_interval_days": 28,
            "max_interval_days": 112,
            "extension_days": 14,
            "shortening_days": 14,
            "baseline_vision_distribution": {"type": "normal", "mean": 55.0, "std": 15.0},
            "parameters.vision.vision_measurement.measurement_noise_std": 3.0,
            f"{P}.mortality.mortality_rates": {"male": life_table(3.0), "female": life_table(3.0)},
            f"{P}.discontinuation.discontinuation_parameters": {
                "attrition": {"base_probability_per_visit": 0.03}
            },
        }
    )
    if os.environ.get("AMDSIM_V2_BACKEND") == "reference":
        pytest.skip("the reference backend produces only the columns the statistical tests read")
    patients, visits = run_kernel(protocol, 3_000, HORIZON, 20261204)
    pid = visits["patient_id"]
    n = len(patients["patient_id"])
    assert np.array_equal(patients["patient_id"], np.arange(n))
    assert np.all(patients["enrollment_day"] == 0)
    counts = np.bincount(pid, minlength=n)
    assert np.array_equal(patients["visits"], counts)
    assert np.array_equal(patients["injections"], np.bincount(pid, visits["injected"], n))
    day = visits["day"].astype(int)
    for name, lo, hi in (("y1", 0, 364), ("y2", 364, 728), ("later", 728, 10**9)):
        in_year = (day >= lo) & (day < hi)
        assert np.array_equal(patients[f"visits_{name}"], np.bincount(pid, in_year, n)), name
        injected = in_year & visits["injected"]
        assert np.array_equal(patients[f"injections_{name}"], np.bincount(pid, injected, n)), name
    death = patients["death_day"].astype(int)
    stop = patients["discontinuation_day"].astype(int)
    reason = patients["discontinuation_reason"].astype(int)
    assert np.array_equal(patients["discontinued"], reason >= 0)
    assert np.array_equal(stop >= 0, reason >= 0)
    end = np.where(death >= 0, death, HORIZON)
    assert np.array_equal(patients["alive_days"], end)
    assert np.array_equal(patients["treated_days"], np.where(stop >= 0, np.minimum(stop, end), end))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for month in MONTHS:
        cut = math.floor(month * DAYS_PER_MONTH)
        va, treated = patients[f"va_m{month}"], patients[f"treated_m{month}"]
        if cut > HORIZON:
            assert np.all(va == -1) and not treated.any(), month
            continue
        last = starts + np.array([np.searchsorted(day[a : a + c], cut, "right") - 1
                                  for a, c in zip(starts, counts, strict=True)])  # fmt: skip
        assert np.array_equal(va, visits["vision"][last]), month
        on_day = min(cut, HORIZON - 1)  # the horizon itself: through the last simulated day
        alive = (death < 0) | (death > on_day)
        on = (stop < 0) | (stop > on_day)
        assert np.array_equal(treated, alive & on), month


def test_horizon_is_years_times_365_25_rounded_to_the_nearest_day():
    """docs/model.md section 1: horizon = years x 365.25 days, rounded to the nearest day (as
    in v1), and a patient is simulated while day < horizon. For 0.5 years (182.625 days) that
    is 183: survivors' alive days are 183 and the last 7-day visit is on day 182. Exact."""
    from engine.model.interface import compile_model
    from engine.model.parameters import RunParameters

    protocol = make_protocol({"min_interval_days": 7, "max_interval_days": 7})
    params = RunParameters(n_patients=200, years=0.5, seed=3)
    output = compile_model(protocol).simulate_shards(params, [0])[0]
    assert output.patients["alive_days"].max() == 183
    assert output.visits["day"].max() == 182


def test_the_60_month_milestone_of_a_5_year_run_is_its_horizon_and_counts():
    """docs/model.md 6: 60 months is day floor(60 x 30.4375) = 1826, the horizon of a 5-year
    cohort (round(5 x 365.25)); it counts, with the last measurement before the horizon, and
    "under treatment" there means through the last simulated day. Exact."""
    from engine.model.interface import compile_model
    from engine.model.parameters import RunParameters

    params = RunParameters(n_patients=300, years=5.0, seed=11)
    assert params.horizon_days == 1826
    output = compile_model(make_protocol({})).simulate_shards(params, [0])[0]
    patients = output.patients
    assert np.all(patients["va_m60"] >= 0)
    ended = (patients["death_day"] >= 0) | (patients["discontinuation_day"] >= 0)
    assert np.array_equal(patients["treated_m60"], ~ended)
