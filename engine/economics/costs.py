"""Cost files: what a drug, a visit, an adverse event, blindness and enrolment cost.

`load_cost_file` reads two layouts into one `CostFile`:

- amdsim's own (``format_version: 1`` at the top): metadata at the top level, ``drug_costs``,
  ``visit_components``, ``visit_types`` with exactly our three types (``loading_injection``,
  ``injection``, ``monitoring``: ``components`` and an optional ``total``), ``adverse_events``
  with rates, ``discontinuation_cost``, ``enrolment_cost`` and ``blindness``;
- the origin app's (a ``metadata:`` block at the top), loaded unchanged and mapped by
  `engine.economics._origin_costs`.

A visit's cost excludes the drug: the simulation adds `drug_cost` once per injection. When a
stated total and the sum of its components disagree, the stated total wins and the
`CostFile` carries a warning (`engine.economics._cost_parts`). Every bad value is one
`CostFileError` naming the file, the field path and the problem. docs/economics.md
describes both layouts and every default number's source.

Does not cover: discounting and counting visits (the simulation), utilities
(`engine.economics.utilities`), statistics (`engine.economics.cost_effectiveness`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from engine.economics._cost_parts import (
    DEFAULT_PERSPECTIVE,
    VISIT_TYPES,
    read_adverse_events,
    read_blindness,
    read_components,
    read_drug_costs,
    visit_type_cost,
)
from engine.economics._fields import FieldReader, child
from engine.economics._origin_costs import read_origin
from engine.errors import CostFileError
from engine.input_files import read_yaml_mapping

__all__ = [
    "VISIT_TYPES",
    "CostFile",
    "default_cost_file_path",
    "drug_cost",
    "load_cost_file",
]

NATIVE_FORMAT_VERSION = 1
_NATIVE_FIELDS = (
    "format_version",
    "name",
    "currency",
    "price_year",
    "perspective",
    "source",
    "drug_costs",
    "visit_components",
    "visit_types",
    "adverse_events",
    "discontinuation_cost",
    "enrolment_cost",
    "blindness",
)
_VISIT_TYPE_FIELDS = ("components", "total", "source")


class CostFile(msgspec.Struct, frozen=True, kw_only=True):
    """The unit costs of one setting, in one currency and price year.

    Attributes
    ----------
    name, currency, price_year, perspective, source
        What the file says about itself; `price_year` is None when unknown.
    drug_costs
        Cost per administration by drug key (a protocol's ``drug:``), e.g. ``aflibercept_2mg``.
    visit_costs
        Cost of a ``loading_injection``, ``injection`` and ``monitoring`` visit, excluding the drug.
    adverse_event_cost_per_injection
        Expected cost per injection: sum over events of probability per injection x cost.
    discontinuation_cost
        One-off, when the clinic stops treatment.
    blindness_cost_per_year
        Per year lived with the better-seeing eye at or below `blindness_threshold_letters`.
    enrolment_cost
        One-off, at day 0 (referral and first assessment).
    blindness_threshold_letters
        Better-seeing-eye VA (ETDRS letters) at or below which a patient counts as blind.
    warnings
        What the loader decided that the user must know (a stated total overriding its
        components, a cost the layout cannot express counted as 0, the visit-type mapping).
    """

    name: str
    currency: str
    price_year: int | None
    perspective: str = DEFAULT_PERSPECTIVE
    source: str
    drug_costs: dict[str, float]
    visit_costs: dict[str, float]
    adverse_event_cost_per_injection: float
    discontinuation_cost: float
    blindness_cost_per_year: float
    enrolment_cost: float
    blindness_threshold_letters: float
    warnings: tuple[str, ...] = ()


def default_cost_file_path() -> Path:
    """The bundled cost file: UK NHS list prices and reference costs (docs/economics.md)."""
    return Path(__file__).resolve().parent / "defaults" / "nhs_costs_2025.yaml"


def load_cost_file(path: Path) -> CostFile:
    """Read a cost file of either layout; `CostFileError` naming file, field and problem.

    A file with ``format_version`` is amdsim's layout; one with a ``metadata`` block is the
    origin app's.
    """
    path = Path(path)
    raw = read_yaml_mapping(path, CostFileError, "costs")
    reader = FieldReader(str(path), CostFileError)
    if "format_version" in raw:
        fields = _read_native(raw, reader)
    elif "metadata" in raw:
        fields = read_origin(raw, reader)
    else:
        raise reader.fail(
            "$",
            "is neither cost layout: amdsim's starts with format_version: 1, the origin "
            "app's has a metadata: block",
        )
    return CostFile(**fields)


def drug_cost(costs: CostFile, key: str) -> float:
    """The price of drug `key` per administration; `CostFileError` listing the keys priced."""
    try:
        return costs.drug_costs[key]
    except KeyError:
        priced = ", ".join(sorted(costs.drug_costs)) or "none"
        raise CostFileError(
            costs.name or "cost file",
            child("$.drug_costs", key),
            f"no price for drug {key!r}; the file prices: {priced}",
        ) from None


def _read_native(raw: dict[str, Any], reader: FieldReader) -> dict[str, Any]:
    """The `CostFile` fields of an amdsim-layout file."""
    reader.unknown_keys(raw, _NATIVE_FIELDS, "$")
    reader.whole_number(
        raw["format_version"], "$.format_version", NATIVE_FORMAT_VERSION, NATIVE_FORMAT_VERSION
    )
    price_year = raw.get("price_year")
    if price_year is not None:
        price_year = reader.whole_number(price_year, "$.price_year", 1900, 2200)
    components = read_components(
        reader, reader.required(raw, "visit_components", "$"), "$.visit_components"
    )
    types = reader.mapping(reader.required(raw, "visit_types", "$"), "$.visit_types")
    reader.unknown_keys(types, VISIT_TYPES, "$.visit_types")
    warnings: list[str] = []
    visit_costs: dict[str, float] = {}
    for name in VISIT_TYPES:
        where = child("$.visit_types", name)
        fields = reader.mapping(reader.required(types, name, "$.visit_types"), where)
        reader.unknown_keys(fields, _VISIT_TYPE_FIELDS, where)
        stated = ("total", fields["total"]) if fields.get("total") is not None else None
        visit_costs[name], notes = visit_type_cost(reader, name, fields, components, where, stated)
        warnings.extend(notes)
    blindness_cost, threshold = read_blindness(
        reader, reader.required(raw, "blindness", "$"), "$.blindness"
    )
    return {
        "name": reader.text(reader.required(raw, "name", "$"), "$.name"),
        "currency": reader.text(reader.required(raw, "currency", "$"), "$.currency"),
        "price_year": price_year,
        "perspective": reader.text(raw.get("perspective", DEFAULT_PERSPECTIVE), "$.perspective"),
        "source": reader.text(raw.get("source", ""), "$.source"),
        "drug_costs": read_drug_costs(
            reader, reader.required(raw, "drug_costs", "$"), "$.drug_costs"
        ),
        "visit_costs": visit_costs,
        "adverse_event_cost_per_injection": read_adverse_events(
            reader, raw.get("adverse_events", []), "$.adverse_events"
        ),
        "discontinuation_cost": reader.number(
            raw.get("discontinuation_cost", 0.0), "$.discontinuation_cost"
        ),
        "blindness_cost_per_year": blindness_cost,
        "enrolment_cost": reader.number(raw.get("enrolment_cost", 0.0), "$.enrolment_cost"),
        "blindness_threshold_letters": threshold,
        "warnings": tuple(warnings),
    }
