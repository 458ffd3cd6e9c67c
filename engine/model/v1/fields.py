"""Field types of the visit-based protocol schema: numbers with their plausible `Range`.

Every number has two bounds. `msgspec.Meta` holds the loose ones every stored run was written
under (manifests decode through the schema, so tightening them would make old runs
unreadable); `Range` holds the plausible, finite range a new protocol must meet (the loader
refuses anything outside it, with the field path). Shared by `engine.model.v1.protocol` and
`engine.model.v1.layout_schema` (the current visit-based layout's blocks).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import msgspec
from msgspec import Meta

__all__ = [
    "BaselineMean",
    "BaselineStd",
    "InjectionCount",
    "IntervalDays",
    "Letters",
    "LoadingDoses",
    "Multiplier",
    "Probability",
    "Range",
    "Schema",
    "StateKeyed",
    "StepDays",
    "TreatmentMonths",
    "VisionChangeMean",
    "VisionChangeStd",
]


class Range(NamedTuple):
    """The finite, plausible range of one numeric field, bounds included.

    ``integer`` fields take whole numbers only; ``unit`` is said in messages ("letters").
    """

    low: float
    high: float
    unit: str = ""
    integer: bool = False

    def contains(self, value: float) -> bool:
        """Whether `value` is inside; NaN never is."""
        return self.low <= value <= self.high

    def describe(self) -> str:
        """'a finite number between -30 and 30 letters' (the expectation in messages)."""
        kind = "a whole number" if self.integer else "a finite number"
        unit = f" {self.unit}" if self.unit else ""
        return f"{kind} between {self.low:,g} and {self.high:,g}{unit}"


# Loose stored bounds (Meta) first, then the plausible range a new protocol must meet.
Probability = Annotated[float, Meta(ge=0.0, le=1.0), Range(0, 1)]
Letters = Annotated[float, Meta(ge=0.0, le=100.0), Range(0, 100, "letters")]
Multiplier = Annotated[float, Meta(ge=0.0), Range(0, 100, "(a factor)")]
# Letters gained or lost at one visit: trials report a few letters per visit; 30 (six lines of
# the chart) at every visit would be a miracle or a catastrophe, never a protocol.
VisionChangeMean = Annotated[float, Range(-30, 30, "letters")]
VisionChangeStd = Annotated[float, Meta(ge=0.0), Range(0, 30, "letters")]
BaselineMean = Annotated[float, Range(0, 100, "letters")]
BaselineStd = Annotated[float, Meta(ge=0.0), Range(0, 50, "letters")]
# Stored intervals are capped at ten years so that day counts fit the compact on-disk integer
# types; a new protocol visits at least yearly and at most weekly.
IntervalDays = Annotated[int, Meta(ge=1, le=3650), Range(7, 365, "days", integer=True)]
StepDays = Annotated[int, Meta(ge=0, le=3650), Range(0, 182, "days", integer=True)]
LoadingDoses = Annotated[int, Meta(ge=0, le=100), Range(0, 12, "injections", integer=True)]
# Large values switch a rule off: 10,000 injections or 100 years are never reached.
InjectionCount = Annotated[int, Meta(ge=0), Range(0, 10_000, "injections", integer=True)]
TreatmentMonths = Annotated[float, Meta(ge=0.0), Range(0, 1200, "months")]


class Schema(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the schema structs: immutable, unknown keys tolerated.

    Subclasses pass ``kw_only=True`` themselves: msgspec applies it per class.
    """


class StateKeyed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of mappings keyed by disease state: a misspelt state name is an error."""
