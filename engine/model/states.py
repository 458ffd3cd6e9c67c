"""Disease states and discontinuation reasons: the small enumerations every table is coded in.

States and reasons travel as int8 codes through the kernel, the channel and Parquet
(dictionary-encoded), so their order here is part of the data format.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "DISCONTINUATION_REASON_NAMES",
    "SEX_NAMES",
    "STATE_NAMES",
    "V2_REASON_NAMES",
    "VISIT_LAYOUT_REASON_NAMES",
    "DiscontinuationReason",
    "DiseaseState",
]


class DiseaseState(IntEnum):
    """Disease activity at a visit; ACTIVE and HIGHLY_ACTIVE are treated when found."""

    NAIVE = 0
    STABLE = 1
    ACTIVE = 2
    HIGHLY_ACTIVE = 3


class DiscontinuationReason(IntEnum):
    """Which discontinuation rule ended treatment, in the order the rules are checked."""

    POOR_VISION = 0
    HIGH_INJECTIONS = 1
    LONG_TREATMENT = 2


STATE_NAMES: tuple[str, ...] = tuple(state.name for state in DiseaseState)
DISCONTINUATION_REASON_NAMES: tuple[str, ...] = ("poor_vision", "high_injections", "long_treatment")
# The time-based model's reasons (docs/model.md 6), codes in this order; "death" when a patient
# died while still under treatment.
V2_REASON_NAMES: tuple[str, ...] = (
    "death",
    "poor_vision",
    "deterioration",
    "stable_disease",
    "no_improvement",
    "attrition",
    "administrative",
)
SEX_NAMES: tuple[str, ...] = ("female", "male")
# Reasons the current visit-based layout's rule blocks may record (their `reason` text), codes
# in this order: the older three first, so a code means the same in both tuples. Kept apart
# from DISCONTINUATION_REASON_NAMES, the dictionary of format-1 files, which must not change.
VISIT_LAYOUT_REASON_NAMES: tuple[str, ...] = (
    *DISCONTINUATION_REASON_NAMES,
    "stable_disease",
    "poor_response",
    "severe_vision_loss",
    "treatment_burden",
    "inadequate_response",
    "futility",
)
