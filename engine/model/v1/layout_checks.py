"""Checks of the current visit-based layout that no single field can express.

Called by `engine.model.protocol_loader` around conversion: `check_raw_layout` on the decoded
mapping (which layouts a file uses, rule and criterion names), `finish_layout` on the struct
(per-type baseline fields, loading doses resolved from their several sources, refusals of
what would change behaviour but is not implemented), `unused_layout_keys` for the warning.
Every failure is a `ProtocolError` with the field path. Decisions: docs/model-v1-layout.md.
"""

from __future__ import annotations

import math
import typing
from typing import Any

import msgspec

from engine.errors import ProtocolError
from engine.model.baseline_vision import (
    NEEDED_BY_TYPE,
    BaselineVisionDistribution,
    check_distribution,
)
from engine.model.states import VISIT_LAYOUT_REASON_NAMES
from engine.model.v1.layout_schema import (
    NON_FIRING_BLOCKS,
    RULE_BLOCK_NAMES,
    DiscontinuationBlocks,
)
from engine.model.v1.protocol import (
    FLAT_RULE_FIELDS,
    PROTOCOL_TYPE_ALIASES,
    DiscontinuationRules,
    Protocol,
    newer_layout_ranges,
)

__all__ = ["check_raw_layout", "finish_layout", "never_firing_rules", "optional_struct"]

_RULES = "$.discontinuation_rules"
_PARAMETERS_BY_TYPE = {name: set(fields) for name, fields in NEEDED_BY_TYPE.items()}


def check_raw_layout(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Before conversion: one baseline layout, one rules layout, known rules and criteria.

    Returns `raw` with a `protocol_type` alias (`treat_and_treat`, `fixed_interval`) read as
    the type it names (`fixed`); `raw` itself is not modified.
    """
    alias = PROTOCOL_TYPE_ALIASES.get(str(raw.get("protocol_type")))
    if alias is not None:
        raw = {**raw, "protocol_type": alias}
    given = [key for key in ("baseline_vision", "baseline_vision_distribution") if raw.get(key)]
    if not given:
        raise ProtocolError(
            source,
            "$.baseline_vision_distribution",
            "required field is missing (or the older `baseline_vision`)",
        )
    if len(given) == 2:
        raise ProtocolError(
            source,
            "$.baseline_vision_distribution",
            "is given together with `baseline_vision`; a protocol states one of them",
        )
    rules = raw.get("discontinuation_rules")
    if not isinstance(rules, dict):
        return raw  # conversion reports the missing or mistyped field
    blocks = [key for key, value in rules.items() if isinstance(value, dict) or value is None]
    blocks = [key for key in blocks if rules[key] is not None]
    for name in blocks:
        if name not in RULE_BLOCK_NAMES:
            known = ", ".join(RULE_BLOCK_NAMES)
            raise ProtocolError(
                source,
                f"{_RULES}.{name}",
                f"unknown discontinuation rule; this model implements {known}",
            )
        _check_criteria_names(rules[name], name, source)
    defaults = DiscontinuationRules()
    if blocks:
        for key in FLAT_RULE_FIELDS:
            if key in rules and rules[key] != getattr(defaults, key):
                raise ProtocolError(
                    source,
                    f"{_RULES}.{key}",
                    "belongs to the older, flat layout, but this file uses named rule "
                    f"blocks ({', '.join(blocks)}); use one layout",
                )
    elif any(key in rules for key in FLAT_RULE_FIELDS):  # `{}`: no rule at all
        for key in FLAT_RULE_FIELDS:
            if key not in rules:
                raise ProtocolError(source, f"{_RULES}.{key}", "required field is missing")
    if "order" in rules:
        order = rules["order"]
        if not isinstance(order, list | tuple) or sorted(map(str, order)) != sorted(blocks):
            raise ProtocolError(
                source,
                f"{_RULES}.order",
                f"must list exactly the rule blocks present ({', '.join(blocks)}); "
                "leave it out to check them in the file's order",
            )
    return raw


def _check_criteria_names(block: dict[str, Any], name: str, source: str) -> None:
    """A criterion this model does not read would change behaviour: refused by name."""
    if name in NON_FIRING_BLOCKS or not isinstance(block.get("criteria"), dict):
        return
    hint = typing.get_type_hints(DiscontinuationBlocks)[name]
    block_type = next(a for a in typing.get_args(hint) if a is not type(None))
    criteria_type = typing.get_type_hints(block_type)["criteria"]
    known = criteria_type.__struct_fields__
    for key in block["criteria"]:
        if key not in known:
            raise ProtocolError(
                source,
                f"{_RULES}.{name}.criteria.{key}",
                f"is not a criterion this model implements for `{name}` "
                f"(it reads {', '.join(known)})",
            )


def finish_layout(protocol: Protocol, raw: dict[str, Any], source: str) -> Protocol:
    """After conversion: the checks of the module docstring; returns the resolved protocol."""
    _check_newer_ranges(protocol, source)
    if protocol.baseline_vision_distribution is not None:
        _check_distribution(protocol.baseline_vision_distribution, source)
    improvements = protocol.clinical_improvements
    if improvements is not None and improvements.enabled:
        raise ProtocolError(
            source,
            "$.clinical_improvements.enabled",
            "is true, but clinical improvements are not implemented; set it to false",
        )
    _check_rule_flags(protocol.discontinuation_rules, source)
    _check_reasons(protocol.discontinuation_rules, source)
    rules = raw.get("discontinuation_rules")
    order = rules.get("order") if isinstance(rules, dict) else None
    present = [n for n in RULE_BLOCK_NAMES if getattr(protocol.discontinuation_rules, n)]
    if order is None and isinstance(rules, dict):
        order = [key for key in rules if key in present]
    resolved = msgspec.structs.replace(
        protocol.discontinuation_rules, order=tuple(order or present)
    )
    loading, interval = _resolve_loading(protocol, raw, source)
    _check_maintenance(protocol, loading, source)
    return msgspec.structs.replace(
        protocol,
        discontinuation_rules=resolved,
        loading_doses=loading,
        loading_dose_interval_days=interval,
    )


def _check_newer_ranges(protocol: Protocol, source: str) -> None:
    """Every number of the current layout's optional blocks inside its plausible `Range`."""
    for path, expected in newer_layout_ranges().items():
        value: Any = protocol
        for part in path.split(".")[1:]:
            value = getattr(value, part)
            if value is None:
                break
        if value is not None and not expected.contains(value):
            raise ProtocolError(source, path, f"expected {expected.describe()}, got {value!r}")


def _check_distribution(dist: BaselineVisionDistribution, source: str) -> None:
    """The shared checks, then what this model adds: no parameter of another type, a whole
    letter inside a uniform range, a threshold strictly inside (min, max)."""
    path = "$.baseline_vision_distribution"
    check_distribution(dist, source, path)
    for name in ("mean", "std", "alpha", "beta", "threshold", "threshold_reduction"):
        if getattr(dist, name) is not None and name not in _PARAMETERS_BY_TYPE[dist.type]:
            raise ProtocolError(
                source,
                f"{path}.{name}",
                f"is not a parameter of type {dist.type}; remove it or change the type",
            )
    if dist.type == "uniform" and math.ceil(dist.min) > math.floor(dist.max):
        raise ProtocolError(
            source, f"{path}.max", f"leaves no whole letter between min {dist.min:g} and max"
        )
    if dist.threshold is not None and not dist.min < dist.threshold < dist.max:
        raise ProtocolError(
            source,
            f"{path}.threshold",
            f"is {dist.threshold:g}; it must lie between min {dist.min:g} and max {dist.max:g}",
        )


def _check_rule_flags(rules: DiscontinuationRules, source: str) -> None:
    """Boolean criteria the model takes as true; false would need what it does not simulate."""
    flags = (
        ("poor_response_25_letters", "attributable_to_amd"),
        ("critical_vision_15_letters", "attributable_to_amd"),
        ("stable_at_annual_review", "vision_stable"),
        ("stable_at_annual_review", "patient_choice"),
    )
    for name, flag in flags:
        block = getattr(rules, name)
        if block is not None and not getattr(block.criteria, flag):
            raise ProtocolError(
                source,
                f"{_RULES}.{name}.criteria.{flag}",
                "is false, which this model cannot express (docs/model-v1-layout.md); "
                "it must be true",
            )


def _check_reasons(rules: DiscontinuationRules, source: str) -> None:
    """A firing block's reason must be one the outputs can record."""
    for name in RULE_BLOCK_NAMES:
        block = getattr(rules, name)
        if block is None or name in NON_FIRING_BLOCKS:
            continue
        if block.reason not in VISIT_LAYOUT_REASON_NAMES:
            raise ProtocolError(
                source,
                f"{_RULES}.{name}.reason",
                f"is {block.reason!r}; expected one of {', '.join(VISIT_LAYOUT_REASON_NAMES)}",
            )


def _resolve_loading(
    protocol: Protocol, raw: dict[str, Any], source: str
) -> tuple[int, int | None]:
    """Loading doses and their interval from every place a file may state them.

    Precedence is moot: every source given must agree, and the first disagreement is refused
    at the path of the later source.
    """
    counts: list[tuple[str, int]] = []
    if "loading_doses" in raw:
        counts.append(("$.loading_doses", protocol.loading_doses))
    intervals: list[tuple[str, int]] = []
    if protocol.loading_dose_injections is not None:
        counts.append(("$.loading_dose_injections", protocol.loading_dose_injections))
    if protocol.loading_dose_interval_days is not None:
        intervals.append(("$.loading_dose_interval_days", protocol.loading_dose_interval_days))
    for block_name in ("treat_and_extend_parameters", "treat_and_treat_parameters"):
        block = getattr(protocol, block_name)
        phase = block.loading_phase if block is not None else None
        if phase is None:
            continue
        path = f"$.{block_name}.loading_phase"
        if phase.number_of_doses is not None:
            counts.append((f"{path}.number_of_doses", phase.number_of_doses))
        if phase.interval_days is not None:
            intervals.append((f"{path}.interval_days", phase.interval_days))
        for window in ("dose_1_to_2_days", "dose_2_to_3_days"):
            days = getattr(phase, window)
            if days is not None:
                _check_window(days, f"{path}.{window}", source)
                intervals.append((f"{path}.{window}[0]", days[0]))
    loading = _agreed(counts, "loading doses", source)
    interval = _agreed(intervals, "loading interval (days)", source)
    return (protocol.loading_doses if loading is None else loading), interval


def _check_window(days: list[int], path: str, source: str) -> None:
    if not all(7 <= d <= 365 for d in days) or days[0] > days[-1]:
        raise ProtocolError(
            source, path, f"expected [earliest, latest] days between 7 and 365, got {days!r}"
        )


def _agreed(values: list[tuple[str, int]], what: str, source: str) -> int | None:
    if not values:
        return None
    first_path, first = values[0]
    for path, value in values[1:]:
        if value != first:
            raise ProtocolError(
                source,
                path,
                f"is {value}, but {first_path} is {first}; state the {what} once or consistently",
            )
    return first


def _check_maintenance(protocol: Protocol, loading: int, source: str) -> None:
    block = protocol.treat_and_treat_parameters
    phase = block.maintenance_phase if block is not None else None
    if phase is None:
        return
    path = "$.treat_and_treat_parameters.maintenance_phase"
    if phase.interval_days is not None:
        _check_window(phase.interval_days, f"{path}.interval_days", source)
        wanted = [protocol.min_interval_days, protocol.max_interval_days]
        if [phase.interval_days[0], phase.interval_days[-1]] != wanted:
            raise ProtocolError(
                source,
                f"{path}.interval_days",
                f"is {phase.interval_days!r}, but the model's maintenance window is "
                f"[min_interval_days, max_interval_days] = {wanted!r}; make them agree",
            )
    if phase.starts_after_dose is not None and phase.starts_after_dose != loading:
        raise ProtocolError(
            source,
            f"{path}.starts_after_dose",
            f"is {phase.starts_after_dose}, but the loading phase has {loading} doses",
        )


# --- keys read by nothing ----------------------------------------------------------------------
def optional_struct(hint: Any) -> Any:
    """``X | None`` -> ``X`` (the loader walks optional blocks for unknown keys too)."""
    arms = [arm for arm in typing.get_args(hint) if arm is not type(None)]
    if type(None) in typing.get_args(hint) and len(arms) == 1:
        return arms[0]
    return hint


def never_firing_rules(raw: dict[str, Any]) -> dict[str, Any]:
    """Rule blocks about events the model does not simulate, by field path, for the warning.

    They are accepted (their criteria cannot hold here, so they cannot change behaviour) and
    named in the warning of keys with no effect.
    """
    rules = raw.get("discontinuation_rules")
    if not isinstance(rules, dict):
        return {}
    return {
        f"{_RULES}.{name}": _text_keys(rules[name])
        for name in rules
        if name in NON_FIRING_BLOCKS and isinstance(rules[name], dict)
    }


def _text_keys(value: Any) -> Any:
    """`value` with mapping keys as text (the manifest's JSON has text keys only)."""
    if isinstance(value, dict):
        return {str(key): _text_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_text_keys(item) for item in value]
    return value
