"""Protocol schema: the typed, frozen structs a protocol YAML file is validated into.

Field names follow the files of existing AMD protocol explorers, so those files load unchanged.
Every number has two bounds (`engine.model.v1.fields`): `msgspec.Meta` holds the loose ones
every stored run was written under (manifests decode through these structs, so tightening them
would make old runs unreadable); `Range` holds the plausible, finite range a new protocol must
meet: validation (`engine.model.protocol_loader`) refuses anything outside it, NaN and
infinities included, with the field path. Checks that span fields (row sums, min <= max) live
in the loader too. Each range of the older layout is listed in the README's "Protocol format";
the current visit-based layout's optional blocks (`engine.model.v1.layout_schema`) are
docs/model-v1-layout.md.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from engine.model.v1.fields import (
    BaselineMean,
    BaselineStd,
    InjectionCount,
    IntervalDays,
    Letters,
    LoadingDoses,
    Multiplier,
    Probability,
    Range,
    StepDays,
    TreatmentMonths,
    VisionChangeMean,
    VisionChangeStd,
)
from engine.model.v1.layout_schema import (
    BaselineVisionDistribution,
    ClinicalImprovements,
    DiscontinuationBlocks,
    TreatAndExtendParameters,
    TreatAndTreatParameters,
)

__all__ = [
    "PROTOCOL_TYPE_ALIASES",
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
    "newer_layout_ranges",
    "protocol_ranges",
    "ranged_fields",
]

ProtocolType = Literal["treat_and_extend", "fixed", "prn"]
# The origin's newer files say `treat_and_treat` or `fixed_interval` for `fixed` (inject at
# every visit, every `max_interval_days` after loading); the loader reads them as `fixed`.
PROTOCOL_TYPE_ALIASES: dict[str, str] = {"treat_and_treat": "fixed", "fixed_interval": "fixed"}


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


class DiscontinuationRules(DiscontinuationBlocks, kw_only=True):
    """Rules checked at every visit after enrollment, first match wins; two layouts.

    The older, flat layout (all six numbers required, checked by the loader; their defaults
    switch every rule off) or the newer one of named blocks (`DiscontinuationBlocks`,
    docs/model-v1-layout.md); a file uses one or the other.

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

    poor_vision_threshold: Letters = 0.0
    poor_vision_probability: Probability = 0.0
    high_injection_count: InjectionCount = 10_000
    high_injection_probability: Probability = 0.0
    long_treatment_months: TreatmentMonths = 1200.0
    long_treatment_probability: Probability = 0.0
    discontinuation_types: list[str] = msgspec.field(default_factory=list)


FLAT_RULE_FIELDS: tuple[str, ...] = (
    "poor_vision_threshold",
    "poor_vision_probability",
    "high_injection_count",
    "high_injection_probability",
    "long_treatment_months",
    "long_treatment_probability",
)


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
    # Newer sources of loading doses; the loader resolves them into `loading_doses`.
    loading_dose_injections: LoadingDoses | None = None
    loading_dose_interval_days: IntervalDays | None = None
    treat_and_extend_parameters: TreatAndExtendParameters | None = None
    treat_and_treat_parameters: TreatAndTreatParameters | None = None
    disease_transitions: TransitionMatrix
    treatment_effect_on_transitions: TreatmentEffects = TreatmentEffects()
    vision_change_model: VisionChangeModel
    # Exactly one of the two (the loader checks).
    baseline_vision: BaselineVision | None = None
    baseline_vision_distribution: BaselineVisionDistribution | None = None
    discontinuation_rules: DiscontinuationRules
    clinical_improvements: ClinicalImprovements | None = None
    extras: dict[str, Any] = {}


def ranged_fields(
    schema: type = Protocol, path: str = "$", *, newer_layout: bool = False
) -> Iterator[tuple[str, Range]]:
    """Every numeric field of `schema` with its `Range`, by field path, in schema order.

    By default the fields of the older layout (every field that is not optional, and the
    older `baseline_vision`); with `newer_layout`, also the optional fields and blocks of the
    current visit-based layout (`engine.model.v1.layout_schema`).
    """
    for name, hint in typing.get_type_hints(schema, include_extras=True).items():
        child = f"{path}.{name}"
        optional = _optional_arm(hint) is not hint
        if optional and not newer_layout and child not in _OLDER_OPTIONAL:
            continue
        kind = _unannotated(hint)
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            yield from ranged_fields(kind, child, newer_layout=newer_layout)
        elif (found := _range_of(hint)) is not None:
            yield child, found


# Optional since the current layout, required before it: ranged like any older field.
_OLDER_OPTIONAL = frozenset({"$.baseline_vision"})


def newer_layout_ranges() -> dict[str, Range]:
    """Ranges of the current layout's optional fields (those `ranged_fields()` leaves out)."""
    older = protocol_ranges()
    return {p: r for p, r in ranged_fields(newer_layout=True) if p not in older}


def field_range(path: str) -> Range | None:
    """The `Range` of the numeric field at `path` (``$.baseline_vision.std``), if there is one."""
    return protocol_ranges().get(path)


@functools.cache
def protocol_ranges() -> dict[str, Range]:
    """`ranged_fields()` of `Protocol` as a mapping, built once: validation reads it per file."""
    return dict(ranged_fields())


def _optional_arm(hint: Any) -> Any:
    """``X | None`` -> ``X``; any other hint unchanged (optional blocks are ranged too)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        arms = [arm for arm in typing.get_args(hint) if arm is not type(None)]
        if len(arms) == 1:
            return arms[0]
    return hint


def _unannotated(hint: Any) -> Any:
    hint = _optional_arm(hint)
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def _range_of(hint: Any) -> Range | None:
    hint = _optional_arm(hint)
    if typing.get_origin(hint) is not Annotated:
        return None
    return next((m for m in hint.__metadata__ if isinstance(m, Range)), None)
