"""Run parameters: cohort size, horizon, seed, sharding and recruitment, checked before a run.

Together with the protocol these fully determine a run's output (DESIGN section 3).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal

import msgspec

from engine.errors import ParameterError

__all__ = [
    "DAYS_PER_MONTH",
    "DAYS_PER_YEAR",
    "DEFAULT_SHARD_SIZE",
    "MAX_PATIENTS",
    "MAX_PATIENTS_PER_WEEK",
    "MAX_YEARS",
    "MEMORY_THRESHOLD_PATIENTS",
    "Recruitment",
    "RunParameters",
    "validate_parameters",
]

DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12
DEFAULT_SHARD_SIZE = 4096
# Runs of at most this many patients stay in one process and in memory; larger ones stream
# to disk through worker processes.
MEMORY_THRESHOLD_PATIENTS = 1000
MAX_PATIENTS = 1_000_000_000
MAX_YEARS = 50.0
MAX_SHARD_SIZE = 1 << 20
# A whole country's new wet-AMD patients arrive at a few thousand a week; far beyond that the
# arrival days all round to day 0 and the rate stops meaning anything.
MAX_PATIENTS_PER_WEEK = 1_000_000.0
# Rate recruitment must finish within the horizon with this many standard deviations to spare.
RATE_MARGIN_SDS = 5.0


class Recruitment(msgspec.Struct, frozen=True, kw_only=True):
    """How patients enter the simulation.

    Parameters
    ----------
    mode
        ``cohort``: everyone enrols on day 0. ``period``: Poisson arrivals spread over
        ``period_days``. ``rate``: Poisson arrivals at ``patients_per_week`` until all enrolled.
    """

    mode: Literal["cohort", "period", "rate"] = "cohort"
    period_days: int = 0
    patients_per_week: float = 0.0


class RunParameters(msgspec.Struct, frozen=True, kw_only=True):
    """Everything besides the protocol that a run's output depends on."""

    n_patients: int
    years: float
    seed: int = 0
    shard_size: int = DEFAULT_SHARD_SIZE
    recruitment: Recruitment = Recruitment()

    @property
    def horizon_days(self) -> int:
        """Days from simulation start; visits happen on days strictly before this."""
        return round(self.years * DAYS_PER_YEAR)

    @property
    def shard_count(self) -> int:
        """Number of shards; the last one may be smaller than `shard_size`."""
        return -(-self.n_patients // self.shard_size)


def validate_parameters(params: RunParameters) -> RunParameters:
    """Return `params` unchanged, or raise `ParameterError` naming the bad value and its range.

    Checks types too: `RunParameters` built in Python is not validated by its constructor, and
    a string, bool, NaN or infinity must end as this one-line error, not deep inside a run.
    """
    _require_number("patients", params.n_patients, whole=True)
    if not 1 <= params.n_patients <= MAX_PATIENTS:
        raise ParameterError(
            f"patients must be between 1 and {MAX_PATIENTS:,}, got {params.n_patients}"
        )
    _require_number("years", params.years, whole=False)
    if not (math.isfinite(params.years) and 0 < params.years <= MAX_YEARS):
        raise ParameterError(f"years must be above 0 and at most {MAX_YEARS:g}, got {params.years}")
    if params.horizon_days < 1:
        raise ParameterError(f"years={params.years} is shorter than one day")
    _require_number("seed", params.seed, whole=True)
    if not 0 <= params.seed < 2**63:
        raise ParameterError(f"seed must be between 0 and 2**63 - 1, got {params.seed}")
    _require_number("shard size", params.shard_size, whole=True)
    if not 1 <= params.shard_size <= MAX_SHARD_SIZE:
        raise ParameterError(
            f"shard size must be between 1 and {MAX_SHARD_SIZE}, got {params.shard_size}"
        )
    _validate_recruitment(params)
    return params


def _require_number(name: str, value: Any, *, whole: bool) -> None:
    """Refuse what is not a number of the right kind (bools are not numbers here)."""
    kind = numbers.Integral if whole else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "a whole number" if whole else "a number"
        raise ParameterError(f"{name} must be {what}, got {value!r}")


def _validate_recruitment(params: RunParameters) -> None:
    recruitment = params.recruitment
    if recruitment.mode not in ("cohort", "period", "rate"):
        raise ParameterError(
            f"recruitment must be cohort, period or rate, got {recruitment.mode!r}"
        )
    if recruitment.mode == "period":
        _require_number("recruitment period", recruitment.period_days, whole=True)
        if not 1 <= recruitment.period_days <= params.horizon_days:
            raise ParameterError(
                f"recruitment period must be between 1 and {params.horizon_days} days "
                f"(the horizon), got {recruitment.period_days}"
            )
    if recruitment.mode == "rate":
        rate = recruitment.patients_per_week
        _require_number("patients per week", rate, whole=False)
        if not (math.isfinite(rate) and 0 < rate <= MAX_PATIENTS_PER_WEEK):
            raise ParameterError(
                f"patients per week must be above 0 and at most {MAX_PATIENTS_PER_WEEK:,.0f}, "
                f"got {rate}"
            )
        mean_days = params.n_patients * 7.0 / rate
        spread_days = math.sqrt(params.n_patients) * 7.0 / rate
        if mean_days + RATE_MARGIN_SDS * spread_days > params.horizon_days:
            raise ParameterError(
                f"recruiting {params.n_patients:,} patients at {rate:g} per week takes about "
                f"{mean_days / 7:.0f} weeks, too close to or beyond the {params.years:g}-year "
                "horizon; raise the rate or the years, or lower the patients"
            )
