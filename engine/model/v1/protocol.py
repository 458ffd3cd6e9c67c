"""Protocol schema: the typed, frozen structs a protocol YAML file is validated into.

Field names follow the files of existing AMD protocol explorers, so those files load unchanged.
Every number has two bounds here. `msgspec.Meta` holds the loose ones every stored run was
written under (manifests decode through these structs, so tightening them would make old runs
unreadable). `Range` holds the plausible, finite range a new protocol must meet: validation
(`engine.model.protocol_loader`) refuses anything outside it, NaN and infinities included, with the
field path. Checks that span fields (row sums, min <= max) live in the loader too. Each range
is listed in the README's "Protocol format".
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
from msgspec import Meta

__all__ = [
    "BaselineVision",
    "DiscontinuationRules",
    "Multipliers",
    "Protocol",
    "ProtocolType",
    "Range",
    "TransitionMatrix",
    "TransitionRow",
    "TreatmentEffect",
    "TreatmentEffects",
    "VisionChange",
    "VisionChangeModel",
    "field_range",
    "protocol_ranges",
    "ranged_fields",
]

ProtocolType = Literal["treat_and_extend", "fixed", "prn"]


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


class _Schema(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the schema structs: immutable, unknown keys tolerated.

    Subclasses pass ``kw_only=True`` themselves: msgspec applies it per class.
    """


class _StateKeyed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of mappings keyed by disease state: a misspelt state name is an error."""


class TransitionRow(_StateKeyed, kw_only=True):
    """Probabilities of moving from one state to each state at the next visit."""

    NAIVE: Probability
    STABLE: Probability
    ACTIVE: Probability
    HIGHLY_ACTIVE: Probability


class TransitionMatrix(_StateKeyed, kw_only=True):
    """The base (untreated) transition matrix, one row per current state."""

    NAIVE: TransitionRow
    STABLE: TransitionRow
    ACTIVE: TransitionRow
    HIGHLY_ACTIVE: TransitionRow


class Multipliers(_StateKeyed, kw_only=True):
    """Factors applied to one row of the matrix after an injection (missing states: 1.0)."""

    NAIVE: Multiplier = 1.0
    STABLE: Multiplier = 1.0
    ACTIVE: Multiplier = 1.0
    HIGHLY_ACTIVE: Multiplier = 1.0


class TreatmentEffect(_Schema, kw_only=True):
    """How an injection at the previous visit changes the transitions out of one state."""

    multipliers: Multipliers = Multipliers()


class TreatmentEffects(_StateKeyed, kw_only=True):
    """Treatment effect per current state; a state left out is unaffected by treatment."""

    NAIVE: TreatmentEffect = TreatmentEffect()
    STABLE: TreatmentEffect = TreatmentEffect()
    ACTIVE: TreatmentEffect = TreatmentEffect()
    HIGHLY_ACTIVE: TreatmentEffect = TreatmentEffect()


class VisionChange(_Schema, kw_only=True):
    """Normal distribution of the change in letters at one visit (rounded before use)."""

    mean: VisionChangeMean
    std: VisionChangeStd


class VisionChangeModel(_Schema, kw_only=True):
    """Vision change per (state at the visit, treated at the visit) scenario."""

    naive_treated: VisionChange
    naive_untreated: VisionChange
    stable_treated: VisionChange
    stable_untreated: VisionChange
    active_treated: VisionChange
    active_untreated: VisionChange
    highly_active_treated: VisionChange
    highly_active_untreated: VisionChange


class BaselineVision(_Schema, kw_only=True):
    """Vision at enrollment: Normal(mean, std) in letters, rounded and clipped to [min, max]."""

    mean: BaselineMean
    std: BaselineStd
    min: Letters
    max: Letters


class DiscontinuationRules(_Schema, kw_only=True):
    """Rules checked at every visit after enrollment, first match wins.

    Parameters
    ----------
    poor_vision_threshold
        Letters; vision strictly below it makes ``poor_vision_probability`` apply.
    high_injection_count
        Injections so far; strictly more makes ``high_injection_probability`` apply.
    long_treatment_months
        Months since enrollment (30.4375 days each); strictly more makes
        ``long_treatment_probability`` apply.
    discontinuation_types
        Free labels kept for reference; recorded reasons are the rule names.
    """

    poor_vision_threshold: Letters
    poor_vision_probability: Probability
    high_injection_count: InjectionCount
    high_injection_probability: Probability
    long_treatment_months: TreatmentMonths
    long_treatment_probability: Probability
    discontinuation_types: list[str] = []


class Protocol(_Schema, kw_only=True):
    """A validated treatment protocol.

    ``extras`` holds keys the schema does not know, by field path, so that nothing in the
    user's file is silently dropped (they are reported once as a warning).
    """

    name: Annotated[str, Meta(min_length=1)]
    version: str = "1.0"
    description: str = ""
    author: str = ""
    created_date: str = ""
    protocol_type: ProtocolType
    min_interval_days: IntervalDays
    max_interval_days: IntervalDays
    extension_days: StepDays = 0
    shortening_days: StepDays = 0
    loading_doses: LoadingDoses = 0
    disease_transitions: TransitionMatrix
    treatment_effect_on_transitions: TreatmentEffects = TreatmentEffects()
    vision_change_model: VisionChangeModel
    baseline_vision: BaselineVision
    discontinuation_rules: DiscontinuationRules
    extras: dict[str, Any] = {}


def ranged_fields(schema: type = Protocol, path: str = "$") -> Iterator[tuple[str, Range]]:
    """Every numeric field of `schema` with its `Range`, by field path, in schema order."""
    for name, hint in typing.get_type_hints(schema, include_extras=True).items():
        child = f"{path}.{name}"
        kind = _unannotated(hint)
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            yield from ranged_fields(kind, child)
        elif (found := _range_of(hint)) is not None:
            yield child, found


def field_range(path: str) -> Range | None:
    """The `Range` of the numeric field at `path` (``$.baseline_vision.std``), if there is one."""
    return protocol_ranges().get(path)


@functools.cache
def protocol_ranges() -> dict[str, Range]:
    """`ranged_fields()` of `Protocol` as a mapping, built once: validation reads it per file."""
    return dict(ranged_fields())


def _unannotated(hint: Any) -> Any:
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def _range_of(hint: Any) -> Range | None:
    if typing.get_origin(hint) is not Annotated:
        return None
    return next((m for m in hint.__metadata__ if isinstance(m, Range)), None)
