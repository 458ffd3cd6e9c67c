"""Schema of the time-based protocol file; its parameter files are `parameter_schema`.

Field names are the origin app's (AMD Protocol Explorer, `simulation_v2/`), so its files load
unchanged. Only fields the model reads are declared: every other key is reported as not used
(a warning naming it), never silently dropped. docs/model.md says what each field means;
`Range` annotations give the finite, plausible range a value must meet. The parameter-file
structs are imported here too, so `engine.model.v2.schema` names every struct of the layout.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from engine.model.baseline_vision import BaselineVisionDistribution
from engine.model.v1.protocol import IntervalDays, LoadingDoses, StepDays
from engine.model.v2.parameter_schema import (
    Days,
    DemographicsFile,
    DiscontinuationFile,
    DiseaseTransitionsFile,
    MortalityFile,
    ProtocolType,
    TimeBasedParameters,
    TreatmentEffectFile,
    VisionFile,
)

__all__ = [
    "BaselineVisionDistribution",
    "Citation",
    "DemographicsFile",
    "DiscontinuationFile",
    "DiseaseTransitionsFile",
    "MortalityFile",
    "Phase",
    "SourceFile",
    "TimeBasedParameters",
    "TimeBasedProtocol",
    "TreatmentEffectFile",
    "VisionFile",
]


VisionLoss = Annotated[int, Meta(ge=1, le=100)]  # letters lost since the previous visit


class _Schema(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the protocol's structs: immutable; undeclared keys are reported by the loader."""


# --- the protocol file -----------------------------------------------------------------------
class Phase(_Schema, kw_only=True):
    """A regimen that applies from `start_day` since enrolment (e.g. capped PRN at week 52)."""

    start_day: Days
    protocol_type: ProtocolType
    min_interval_days: IntervalDays
    max_interval_days: IntervalDays
    extension_days: StepDays = 0
    shortening_days: StepDays = 0
    max_days_between_injections: IntervalDays | None = None
    shorten_on_vision_loss_letters: VisionLoss | None = None


class Citation(_Schema, kw_only=True):
    """A published figure the protocol's parameters were fitted or checked against.

    From the protocol's `sources:` block, so a bundled protocol says which trial it
    reproduces: e.g. ``figure: "mean BCVA change at week 52"``, ``study: "VIEW 1/2"``,
    ``reference: "Heier 2012, Ophthalmology 119:2537"``, ``where: "Table 2"``.
    """

    figure: str
    study: str
    reference: str
    where: str = ""


class SourceFile(_Schema, kw_only=True):
    """One file a run read: path as the protocol names it, SHA-256 and full text."""

    role: str
    path: str
    sha256: str
    text: str


class TimeBasedProtocol(_Schema, kw_only=True):
    """A validated time-based protocol with its parameter files loaded.

    `parameters` and `files` are filled by the loader (a manifest stores them, so a run
    reopens without its files and resume can tell when they changed); `sources` are the
    published figures the protocol cites (its `sources:` block); `extras` lists keys not
    used, by field path.
    """

    name: Annotated[str, Meta(min_length=1)]
    version: str = "1.0"
    description: str = ""
    # The drug a cost file prices per administration (`amdsim compare --costs`), e.g.
    # aflibercept_2mg; "" when the protocol does not say (costing then asks, never guesses).
    drug: str = ""
    author: str = ""
    created_date: str = ""
    model_type: Literal["time_based"]
    transition_model: Literal["fortnightly"] = "fortnightly"
    update_interval_days: Literal[14] = 14
    protocol_type: ProtocolType
    injection_rule: Literal["every_visit", "when_active"] = "every_visit"
    loading_dose_injections: LoadingDoses = 0
    loading_dose_interval_days: IntervalDays = 28
    min_interval_days: IntervalDays
    max_interval_days: IntervalDays
    extension_days: StepDays = 0
    shortening_days: StepDays = 0
    max_days_between_injections: IntervalDays | None = None
    # amdsim's extension (docs/model.md 5): in treat-and-extend, a visit whose measured VA is
    # this many letters or more below the previous visit's shortens the interval as an active
    # visit does (trial T&E protocols' functional criterion; None: the state alone decides).
    shorten_on_vision_loss_letters: VisionLoss | None = None
    phases: list[Phase] = []
    population_type: str = "real_world"
    disease_transitions_file: str
    treatment_effect_file: str
    vision_parameters_file: str
    discontinuation_parameters_file: str
    demographics_parameters_file: str
    mortality_parameters_file: str = "uk_mortality_wet_amd.yaml"
    baseline_vision_distribution: BaselineVisionDistribution
    parameters: TimeBasedParameters | None = None
    sources: list[Citation] = []
    files: list[SourceFile] = []
    extras: dict[str, Any] = {}
