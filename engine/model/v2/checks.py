"""Cross-field checks of the time-based layout: what no single field's type or range can say.

Each check raises the first failure as a `ProtocolError` naming the file it is about and the
field path inside it. A parameter file's checks take `base`, the path of the file's content in
the document being checked: ``$`` when it was read from its own file, ``$.parameters.vision``
when it came embedded in a protocol (a manifest). Age bands (``"50-59"``, ``"95+"``) are parsed
here, once, by `parse_band`, which the kernel's tables may reuse.

Does not cover: types and ranges (`engine.model.validation` with `engine.model.v2.schema`),
reading files (`engine.model.v2.loader`).
"""

from __future__ import annotations

import itertools
import re

from engine.errors import ProtocolError
from engine.model.baseline_vision import check_distribution
from engine.model.transition_checks import check_row_sums, check_treated_rows
from engine.model.v2.schema import (
    DemographicsFile,
    DiscontinuationFile,
    DiseaseTransitionsFile,
    MortalityFile,
    TimeBasedProtocol,
    TreatmentEffectFile,
    VisionFile,
)
from engine.model.validation import segment

__all__ = [
    "MAX_AGE",
    "OPEN_BAND_END",
    "check_demographics",
    "check_discontinuation",
    "check_mortality",
    "check_population_type",
    "check_protocol",
    "check_transitions",
    "check_treatment_against_transitions",
    "check_vision",
    "parse_band",
]

MAX_AGE = 120  # years: the range of every age in the files (docs/model.md 8)
OPEN_BAND_YEARS = 5  # an open band "N+" covers [N, N + 5) (docs/model.md 2)
OPEN_BAND_END = 100  # an open band starts below this age
MAX_PRIORITY_RANK = 100
_CLOSED_BAND = re.compile(r"^\s*(\d{1,3})\s*-\s*(\d{1,3})\s*$")
_OPEN_BAND = re.compile(r"^\s*(\d{1,3})\s*\+\s*$")


def parse_band(key: str) -> tuple[int, int] | None:
    """Ages ``[low, high)`` of a band key: ``"50-59"`` -> (50, 60), ``"85+"`` -> (85, 90).

    None if the key is not a band or its ages are not ordered inside 0-120. The loader's
    overlap checks and the kernel's tables (`population_tables.band_bounds`) both read
    bands here, so what is checked is what is sampled.
    """
    if match := _CLOSED_BAND.match(key):
        low, high = int(match[1]), int(match[2])
        return (low, high + 1) if low <= high <= MAX_AGE else None
    if match := _OPEN_BAND.match(key):
        low = int(match[1])
        return (low, low + OPEN_BAND_YEARS) if low < OPEN_BAND_END else None
    return None


# --- the protocol file -----------------------------------------------------------------------
def check_protocol(protocol: TimeBasedProtocol, source: str) -> None:
    """Intervals ordered, phases in order of start day, the baseline distribution complete."""
    _check_interval_order(protocol.min_interval_days, protocol.max_interval_days, "$", source)
    previous: int | None = None
    for index, phase in enumerate(protocol.phases):
        path = f"$.phases[{index}]"
        _check_interval_order(phase.min_interval_days, phase.max_interval_days, path, source)
        if previous is not None and phase.start_day <= previous:
            raise ProtocolError(
                source,
                f"{path}.start_day",
                f"is {phase.start_day}, not after the previous phase's start_day {previous}; "
                "list phases in order of start_day, each starting on a later day",
            )
        previous = phase.start_day
    check_distribution(
        protocol.baseline_vision_distribution, source, "$.baseline_vision_distribution"
    )


def _check_interval_order(low: int, high: int, path: str, source: str) -> None:
    if high < low:
        raise ProtocolError(
            source,
            f"{path}.max_interval_days",
            f"is {high}, below min_interval_days {low}; it must be >= min_interval_days",
        )


def check_population_type(
    protocol: TimeBasedProtocol, demographics: DemographicsFile, source: str, where: str
) -> None:
    """`population_type` names a population of the demographics file (`where` names it)."""
    types = list(demographics.population_type_adjustments)
    chosen = protocol.population_type
    if (types and chosen in types) or (not types and chosen == "real_world"):
        return
    if types:
        expected = f"expected one of the population types of {where}: {', '.join(types)}"
    else:
        expected = f"expected real_world ({where} has no population_type_adjustments)"
    raise ProtocolError(source, "$.population_type", f"is {chosen!r}; {expected}")


# --- parameter files -------------------------------------------------------------------------
def check_transitions(transitions: DiseaseTransitionsFile, source: str, base: str) -> None:
    """Each row of the fortnightly matrix sums to 1 +/- 0.001."""
    check_row_sums(transitions.fortnightly_transitions, source, f"{base}.fortnightly_transitions")


def check_treatment_against_transitions(
    effect: TreatmentEffectFile,
    transitions: DiseaseTransitionsFile,
    source: str,
    base: str,
) -> None:
    """At full effect some state stays reachable from every state (renormalising needs it)."""
    check_treated_rows(
        transitions.fortnightly_transitions,
        effect.treatment_multipliers,
        source,
        f"{base}.treatment_multipliers",
        " at full effect",
    )


def check_vision(vision: VisionFile, source: str, base: str) -> None:
    """Thresholds and breakpoints in order; haemorrhage loss and chart range min <= max."""
    ceilings = vision.vision_ceilings
    _check_order(
        ceilings.low_baseline_threshold,
        ceilings.high_baseline_threshold,
        f"{base}.vision_ceilings",
        ("low_baseline_threshold", "high_baseline_threshold"),
        source,
    )
    decay = vision.treatment_effect_decay
    breakpoints = ("full_effect_duration_days", "gradual_decline_end_days")
    _check_order(
        decay.full_effect_duration_days,
        decay.gradual_decline_end_days,
        f"{base}.treatment_effect_decay",
        breakpoints,
        source,
    )
    _check_order(
        decay.gradual_decline_end_days,
        decay.faster_decline_end_days,
        f"{base}.treatment_effect_decay",
        ("gradual_decline_end_days", "faster_decline_end_days"),
        source,
    )
    if decay.faster_decline_end_days <= 0:
        raise ProtocolError(
            source,
            f"{base}.treatment_effect_decay.faster_decline_end_days",
            "is 0; the effect's last breakpoint must be after day 0 (it scales the decay "
            "after it, docs/model.md 3.3)",
        )
    risk = vision.hemorrhage_risk
    _check_order(
        risk.treated_threshold_days,
        risk.medium_gap_threshold_days,
        f"{base}.hemorrhage_risk",
        ("treated_threshold_days", "medium_gap_threshold_days"),
        source,
    )
    _check_order(
        risk.hemorrhage_loss_min,
        risk.hemorrhage_loss_max,
        f"{base}.hemorrhage_risk",
        ("hemorrhage_loss_min", "hemorrhage_loss_max"),
        source,
    )
    chart = vision.vision_measurement
    _check_order(
        chart.min_measurable_vision,
        chart.max_measurable_vision,
        f"{base}.vision_measurement",
        ("min_measurable_vision", "max_measurable_vision"),
        source,
    )


def _check_order(low: float, high: float, path: str, names: tuple[str, str], source: str) -> None:
    if high < low:
        raise ProtocolError(
            source,
            f"{path}.{names[1]}",
            f"is {high:g}, below {names[0]} {low:g}; it must be >= {names[0]}",
        )


def check_discontinuation(discontinuation: DiscontinuationFile, source: str, base: str) -> None:
    """Priority ranks in range and each category listed at most once."""
    seen: dict[str, int] = {}
    for rank, category in discontinuation.discontinuation_priority.items():
        path = f"{base}.discontinuation_priority{segment(rank)}"
        if not 0 <= rank <= MAX_PRIORITY_RANK:
            raise ProtocolError(
                source,
                path,
                f"rank {rank} is outside 0-{MAX_PRIORITY_RANK}; ranks order the categories, "
                "lowest first",
            )
        if category in seen:
            raise ProtocolError(
                source,
                path,
                f"lists {category} a second time (also at rank {seen[category]}); "
                "list each category at most once",
            )
        seen[category] = rank


def check_demographics(demographics: DemographicsFile, source: str, base: str) -> None:
    """Band keys parse and do not overlap; weights sum above 0; female shares cover all ages."""
    _bands(demographics.age_distribution_weights, f"{base}.age_distribution_weights", source)
    if sum(demographics.age_distribution_weights.values()) <= 0:
        raise ProtocolError(
            source,
            f"{base}.age_distribution_weights",
            "has no weight above 0; at least one age band needs a positive weight",
        )
    shares_path = f"{base}.gender_distribution_by_age"
    shares = _bands(demographics.gender_distribution_by_age, shares_path, source)
    for (_, end), (start, _) in itertools.pairwise(shares):
        if start != end:
            raise ProtocolError(
                source,
                shares_path,
                f"has no band for ages {end}-{start - 1}; the female share needs a band for "
                "every age from the first band to the last",
            )
    _bands(demographics.survival_bias_factors, f"{base}.survival_bias_factors", source, empty=True)


def _bands(
    table: dict[str, float], path: str, source: str, empty: bool = False
) -> list[tuple[int, int]]:
    """The table's bands as sorted ``[low, high)`` pairs; refuses bad keys and overlaps."""
    if not table and not empty:
        raise ProtocolError(source, path, 'has no age band; expected bands such as "50-59": 0.2')
    bands: list[tuple[int, int, str]] = []
    for key in table:
        parsed = parse_band(key)
        if parsed is None:
            raise ProtocolError(
                source,
                path + segment(key),
                f'is not an age band; expected "LOW-HIGH" (e.g. "50-59") or "LOW+" (e.g. '
                f'"95+") with ages from 0 to {MAX_AGE}, LOW <= HIGH, an open band below '
                f"{OPEN_BAND_END}",
            )
        bands.append((*parsed, key))
    bands.sort()
    for (_, end, key), (start, _, next_key) in itertools.pairwise(bands):
        if start < end:
            raise ProtocolError(
                source,
                path + segment(next_key),
                f"overlaps the band {key!r}; each age must fall in at most one band",
            )
    return [(low, high) for low, high, _ in bands]


def check_mortality(mortality: MortalityFile, source: str, base: str) -> None:
    """Each sex's life table has every age from its first to its last, inside 0-120."""
    for sex in ("male", "female"):
        table = getattr(mortality.mortality_rates, sex)
        path = f"{base}.mortality_rates.{sex}"
        if not table:
            raise ProtocolError(source, path, "is empty; expected one probability per age")
        ages = sorted(table)
        if ages[0] < 0 or ages[-1] > MAX_AGE:
            bad = ages[0] if ages[0] < 0 else ages[-1]
            raise ProtocolError(
                source, path + segment(bad), f"age {bad} is outside 0-{MAX_AGE} years"
            )
        missing = sorted(set(range(ages[0], ages[-1] + 1)) - set(ages))
        if missing:
            raise ProtocolError(
                source,
                path,
                f"has ages {ages[0]}-{ages[-1]} without {missing[0]}; the life table needs "
                "every age from its first to its last",
            )
