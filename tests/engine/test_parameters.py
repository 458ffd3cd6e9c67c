"""Run parameters out of range are refused before anything runs, naming value and range."""

from __future__ import annotations

import pytest

from engine.errors import ParameterError
from engine.parameters import Recruitment, RunParameters, validate_parameters


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
            "patients per week must be above 0, got 0.0",
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
