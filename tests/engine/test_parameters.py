"""Run parameters out of range are refused before anything runs, naming value and range."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import ParameterError
from engine.model.parameters import Recruitment, RunParameters, validate_parameters


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            RunParameters(n_patients=0, years=5),
            "patients must be between 1 and 1,000,000,000, got 0",
        ),
        (RunParameters(n_patients=10, years=0), "years must be above 0 and at most 50, got 0"),
        (RunParameters(n_patients=10, years=51), "years must be above 0 and at most 50, got 51"),
        (
            RunParameters(n_patients=10, years=float("nan")),
            "years must be above 0 and at most 50, got nan",
        ),
        (RunParameters(n_patients=10, years=0.001), "years=0.001 is shorter than one day"),
        (
            RunParameters(n_patients=10, years=1, seed=-1),
            "seed must be between 0 and 2**63 - 1, got -1",
        ),
        (
            RunParameters(n_patients=10, years=1, shard_size=0),
            "shard size must be between 1 and 1048576, got 0",
        ),
        (
            RunParameters(
                n_patients=10, years=1, recruitment=Recruitment(mode="period", period_days=400)
            ),
            "recruitment period must be between 1 and 365 days (the horizon), got 400",
        ),
        (
            RunParameters(n_patients=10, years=1, recruitment=Recruitment(mode="rate")),
            "patients per week must be above 0 and at most 1,000,000, got 0.0",
        ),
        (
            RunParameters(
                n_patients=10_000,
                years=1,
                recruitment=Recruitment(mode="rate", patients_per_week=100),
            ),
            "recruiting 10,000 patients at 100 per week takes about 100 weeks, too close to or beyond "
            "the 1-year horizon; raise the rate or the years, or lower the patients",
        ),
    ],
)
def test_bad_parameters_are_refused_with_their_range(params, message):
    with pytest.raises(ParameterError) as caught:
        validate_parameters(params)
    assert str(caught.value) == message


def test_horizon_and_shard_count_follow_from_the_parameters():
    params = validate_parameters(RunParameters(n_patients=10_001, years=2, shard_size=1_000))
    assert params.horizon_days == 730
    assert params.shard_count == 11


def _rate(patients_per_week):
    return RunParameters(
        n_patients=10,
        years=1,
        recruitment=Recruitment(mode="rate", patients_per_week=patients_per_week),
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            RunParameters(n_patients=10, years=math.inf),
            "years must be above 0 and at most 50, got inf",
        ),
        (
            RunParameters(n_patients=10, years=1e308),
            "years must be above 0 and at most 50, got 1e+308",
        ),
        (RunParameters(n_patients=10, years="5"), "years must be a number, got '5'"),
        (RunParameters(n_patients=10, years=True), "years must be a number, got True"),
        (RunParameters(n_patients=10.0, years=1), "patients must be a whole number, got 10.0"),
        (
            RunParameters(n_patients=10, years=1, seed=math.nan),
            "seed must be a whole number, got nan",
        ),
        (
            RunParameters(n_patients=10, years=1, seed=2**70),
            "seed must be between 0 and 2**63 - 1, got 1180591620717411303424",
        ),
        (
            RunParameters(n_patients=10, years=1, shard_size=None),
            "shard size must be a whole number, got None",
        ),
        (_rate(math.nan), "patients per week must be above 0 and at most 1,000,000, got nan"),
        (_rate(math.inf), "patients per week must be above 0 and at most 1,000,000, got inf"),
        (_rate(1e308), "patients per week must be above 0 and at most 1,000,000, got 1e+308"),
        (
            RunParameters(
                n_patients=10, years=1, recruitment=Recruitment(mode="period", period_days=1e308)
            ),
            "recruitment period must be a whole number, got 1e+308",
        ),
    ],
)
def test_run_parameters_refuse_nan_inf_absurd_magnitudes_and_wrong_types(params, message):
    with pytest.raises(ParameterError) as caught:
        validate_parameters(params)
    assert str(caught.value) == message


def test_numpy_numbers_are_accepted_as_run_parameters():
    params = RunParameters(n_patients=np.int64(10), years=np.float64(1.5), seed=np.uint32(3))
    assert validate_parameters(params) is params
