"""Read a cost file in the origin app's layout (AMD Protocol Explorer), unchanged.

The origin layout names its own visit types (``tae_assessment``, ``injection_virtual``...);
amdsim counts three. Each of ours takes the first of an ordered alias list that the file
defines (`VISIT_TYPE_ALIASES`); an optional ``amdsim:`` block in the file may name the origin
type for any of ours instead, and supply what the layout cannot express (blindness cost,
adverse-event rates). A file without a loading alias costs loading injections like injection
visits. Enrolment takes ``special_events.initial_assessment``, else ``initial_referral``
(not the visit type ``initial_assessment``: that includes an injection, which the simulation
already costs at its day-0 injection visit); discontinuation takes
``special_events.discontinuation_admin``. The origin files price adverse events without
rates and state no cost of blindness: both count 0, each with a warning saying what to add.

Does not cover: the totals rule and shared fields (`engine.economics._cost_parts`).
"""

from __future__ import annotations

import datetime
from typing import Any

from engine.economics._cost_parts import (
    DEFAULT_BLINDNESS_THRESHOLD_LETTERS,
    DEFAULT_PERSPECTIVE,
    VISIT_TYPES,
    read_adverse_events,
    read_blindness,
    read_components,
    read_drug_costs,
    visit_type_cost,
)
from engine.economics._fields import FieldReader, child

__all__ = ["AMDSIM_BLOCK_FIELDS", "ENROLMENT_EVENTS", "VISIT_TYPE_ALIASES", "read_origin"]

# Ours <- the origin's visit types, first defined wins (face-to-face before virtual: the
# conservative, costlier pathway unless the file says otherwise in its amdsim: block).
VISIT_TYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "loading_injection": ("loading_injection", "injection_loading"),
    "injection": (
        "tae_assessment",
        "injection_face_to_face",
        "injection_virtual",
        "tnt_injection_only",
    ),
    "monitoring": ("monitoring_only", "monitoring_face_to_face", "monitoring_virtual"),
}
ENROLMENT_EVENTS = ("initial_assessment", "initial_referral")
DISCONTINUATION_EVENT = "discontinuation_admin"
AMDSIM_BLOCK_FIELDS = (
    "visit_types",
    "adverse_events",
    "blindness",
    "discontinuation_cost",
    "enrolment_cost",
    "price_year",
    "perspective",
)
_SKIPPED_DRUG_KEYS = ("default_drug",)


def read_origin(raw: dict[str, Any], reader: FieldReader) -> dict[str, Any]:
    """The `CostFile` fields of an origin-layout file (a dict, built into the struct by the caller)."""
    warnings: list[str] = []
    metadata = reader.mapping(raw["metadata"], "$.metadata")
    amdsim = reader.mapping(raw.get("amdsim", {}), "$.amdsim")
    reader.unknown_keys(amdsim, AMDSIM_BLOCK_FIELDS, "$.amdsim")
    drug_costs = read_drug_costs(
        reader, reader.required(raw, "drug_costs", "$"), "$.drug_costs", _SKIPPED_DRUG_KEYS
    )
    components = read_components(
        reader, reader.required(raw, "visit_components", "$"), "$.visit_components"
    )
    visit_costs = _visit_costs(reader, raw, amdsim, components, warnings)
    events = reader.mapping(raw.get("special_events", {}), "$.special_events")

    enrolment_cost = 0.0
    if "enrolment_cost" in amdsim:
        enrolment_cost = reader.number(amdsim["enrolment_cost"], "$.amdsim.enrolment_cost")
    else:
        key = next((k for k in ENROLMENT_EVENTS if k in events), None)
        if key is None:
            warnings.append(
                "no enrolment cost (special_events has neither initial_assessment nor "
                "initial_referral); enrolment counts 0: add amdsim.enrolment_cost"
            )
        else:
            enrolment_cost = reader.number(events[key], child("$.special_events", key))

    discontinuation_cost = 0.0
    if "discontinuation_cost" in amdsim:
        discontinuation_cost = reader.number(
            amdsim["discontinuation_cost"], "$.amdsim.discontinuation_cost"
        )
    elif DISCONTINUATION_EVENT in events:
        where = child("$.special_events", DISCONTINUATION_EVENT)
        discontinuation_cost = reader.number(events[DISCONTINUATION_EVENT], where)

    adverse = 0.0
    if "adverse_events" in amdsim:
        adverse = read_adverse_events(reader, amdsim["adverse_events"], "$.amdsim.adverse_events")
    else:
        priced = [k for k in events if k.startswith("adverse_event")]
        listed = f" ({', '.join(priced)} are priced without rates)" if priced else ""
        warnings.append(
            f"adverse events count 0 per injection: the origin layout gives no rates{listed}; "
            "add amdsim.adverse_events: [{name, probability_per_injection, cost, source}]"
        )

    blindness_cost = 0.0
    threshold = DEFAULT_BLINDNESS_THRESHOLD_LETTERS
    if "blindness" in amdsim:
        blindness_cost, threshold = read_blindness(
            reader, amdsim["blindness"], "$.amdsim.blindness"
        )
    else:
        warnings.append(
            "blindness costs 0 per year: the origin layout has no cost of blindness; add "
            "amdsim.blindness: {cost_per_year, threshold_letters, source}"
        )

    return {
        "name": reader.text(metadata.get("name", ""), "$.metadata.name"),
        "currency": reader.text(metadata.get("currency", "GBP"), "$.metadata.currency"),
        "price_year": _price_year(reader, metadata, amdsim, warnings),
        "perspective": reader.text(
            amdsim.get("perspective", DEFAULT_PERSPECTIVE), "$.amdsim.perspective"
        ),
        "source": reader.text(metadata.get("source", ""), "$.metadata.source"),
        "drug_costs": drug_costs,
        "visit_costs": visit_costs,
        "adverse_event_cost_per_injection": adverse,
        "discontinuation_cost": discontinuation_cost,
        "blindness_cost_per_year": blindness_cost,
        "enrolment_cost": enrolment_cost,
        "blindness_threshold_letters": threshold,
        "warnings": tuple(warnings),
    }


def _visit_costs(
    reader: FieldReader,
    raw: dict[str, Any],
    amdsim: dict[str, Any],
    components: dict[str, float],
    warnings: list[str],
) -> dict[str, float]:
    """Cost of each of our visit types from the origin type mapped to it."""
    types = reader.mapping(reader.required(raw, "visit_types", "$"), "$.visit_types")
    chosen = reader.mapping(amdsim.get("visit_types", {}), "$.amdsim.visit_types")
    reader.unknown_keys(chosen, VISIT_TYPES, "$.amdsim.visit_types")
    mapping: dict[str, str] = {}
    for ours in VISIT_TYPES:
        if ours in chosen:
            where = child("$.amdsim.visit_types", ours)
            origin = reader.text(chosen[ours], where)
            if origin not in types:
                raise reader.fail(
                    where, f"names {origin!r}, which is not in visit_types ({', '.join(types)})"
                )
            mapping[ours] = origin
            continue
        found = next((name for name in VISIT_TYPE_ALIASES[ours] if name in types), None)
        if found is not None:
            mapping[ours] = found
        elif ours != "loading_injection":
            raise reader.fail(
                "$.visit_types",
                f"defines none of {', '.join(VISIT_TYPE_ALIASES[ours])} for amdsim's {ours} "
                f"visit; name one with amdsim: {{visit_types: {{{ours}: <visit type>}}}}",
            )
    if "loading_injection" not in mapping:
        mapping["loading_injection"] = mapping["injection"]
        warnings.append(
            f"no loading visit type ({', '.join(VISIT_TYPE_ALIASES['loading_injection'])}); "
            f"loading injections cost like injection visits ({mapping['injection']})"
        )
    unused = [name for name in types if name not in mapping.values()]
    described = ", ".join(f"{ours} <- {origin}" for ours, origin in mapping.items())
    warnings.append(
        f"visit types mapped {described}" + (f"; not used: {', '.join(unused)}" if unused else "")
    )
    costs: dict[str, float] = {}
    for ours, origin in mapping.items():
        where = child("$.visit_types", origin)
        fields = reader.mapping(types[origin], where)
        cost, notes = visit_type_cost(
            reader, origin, fields, components, where, _stated_total(fields)
        )
        costs[ours] = cost
        warnings.extend(note for note in notes if note not in warnings)
    return costs


def _stated_total(fields: dict[str, Any]) -> tuple[str, Any] | None:
    """A non-null ``total_override``, else ``total_cost``, else None (sum the components)."""
    if fields.get("total_override") is not None:
        return "total_override", fields["total_override"]
    if fields.get("total_cost") is not None:
        return "total_cost", fields["total_cost"]
    return None


def _price_year(
    reader: FieldReader, metadata: dict[str, Any], amdsim: dict[str, Any], warnings: list[str]
) -> int | None:
    """The price year: amdsim.price_year, else the year of metadata.effective_date (warned)."""
    if "price_year" in amdsim:
        return reader.whole_number(amdsim["price_year"], "$.amdsim.price_year", 1900, 2200)
    effective = metadata.get("effective_date")
    if isinstance(effective, datetime.date):
        year = effective.year
    elif isinstance(effective, str) and effective[:4].isdigit():
        year = int(effective[:4])
    else:
        warnings.append("no price year (metadata.effective_date); add amdsim.price_year")
        return None
    warnings.append(
        f"price year {year} taken from metadata.effective_date {effective}; "
        "set amdsim.price_year if the prices are of another year"
    )
    return year
