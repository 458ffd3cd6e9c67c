"""Pieces both cost-file layouts share: prices, visit compositions, adverse events, blindness.

The totals rule lives here, once for both layouts: a visit type is a list of components (each
priced in ``visit_components``) and may also state its total. When the stated total and the
sum of the components differ by more than half a penny (`TOTAL_TOLERANCE`), the stated total
wins (it is what the file's author last wrote down, often a published tariff) and a warning
names the visit type, the total and the sum, so the disagreement is never silent.

Does not cover: which layout a file is (`engine.economics.costs`), the origin layout's names
(`engine.economics._origin_costs`).
"""

from __future__ import annotations

from typing import Any

from engine.economics._fields import FieldReader, child

__all__ = [
    "DEFAULT_BLINDNESS_THRESHOLD_LETTERS",
    "DEFAULT_PERSPECTIVE",
    "TOTAL_TOLERANCE",
    "VISIT_TYPES",
    "read_adverse_events",
    "read_blindness",
    "read_components",
    "read_drug_costs",
    "visit_type_cost",
]

# The visit types the simulation counts; each visit's cost excludes the drug.
VISIT_TYPES = ("loading_injection", "injection", "monitoring")
DEFAULT_PERSPECTIVE = "NHS and PSS"
# 35 ETDRS letters is Snellen 6/60 (20/200): UK certification as severely sight impaired.
DEFAULT_BLINDNESS_THRESHOLD_LETTERS = 35.0
# Half a penny: totals written in whole pounds next to components in pence still agree.
TOTAL_TOLERANCE = 0.005
_ADVERSE_EVENT_FIELDS = ("name", "probability_per_injection", "cost", "source")
_BLINDNESS_FIELDS = ("cost_per_year", "threshold_letters", "source")


def read_drug_costs(
    reader: FieldReader, raw: Any, path: str, skip: tuple[str, ...] = ()
) -> dict[str, float]:
    """Price per administration by drug key; keys in `skip` (``default_drug``) are left out."""
    drugs = reader.mapping(raw, path)
    prices = {
        key: reader.number(value, child(path, key))
        for key, value in drugs.items()
        if key not in skip
    }
    if not prices:
        raise reader.fail(path, "prices no drug; give at least one drug's cost per administration")
    return prices


def read_components(reader: FieldReader, raw: Any, path: str) -> dict[str, float]:
    """Cost of each visit component (an injection procedure, an OCT scan, a review...)."""
    components = reader.mapping(raw, path)
    return {key: reader.number(value, child(path, key)) for key, value in components.items()}


def visit_type_cost(
    reader: FieldReader,
    name: str,
    raw: dict[str, Any],
    components: dict[str, float],
    path: str,
    stated_total: tuple[str, Any] | None,
) -> tuple[float, list[str]]:
    """(cost, warnings) of one visit type: its stated total, else the sum of its components.

    `stated_total` is (field name, value) of the total the file states, or None. A component
    not priced in `components` is an error naming it and the components the file prices.
    """
    listed = reader.sequence(raw.get("components", []), child(path, "components"))
    total_sum = 0.0
    for index, component in enumerate(listed):
        where = child(child(path, "components"), index)
        key = reader.text(component, where)
        if key not in components:
            priced = ", ".join(components) or "none"
            raise reader.fail(
                where, f"component {key!r} has no price in visit_components (priced: {priced})"
            )
        total_sum += components[key]
    if stated_total is None:
        if not listed:
            raise reader.fail(path, "lists no components and states no total; give either")
        return total_sum, []
    field, value = stated_total
    total = reader.number(value, child(path, field))
    if listed and abs(total - total_sum) > TOTAL_TOLERANCE:
        return total, [
            f"visit type {name}: the stated total {total:g} ({field}) disagrees with the sum "
            f"of its components {total_sum:g}; the stated total is used"
        ]
    return total, []


def read_adverse_events(reader: FieldReader, raw: Any, path: str) -> float:
    """Expected adverse-event cost per injection: sum of probability per injection x cost."""
    expected = 0.0
    for index, event in enumerate(reader.sequence(raw, path)):
        where = child(path, index)
        fields = reader.mapping(event, where)
        reader.unknown_keys(fields, _ADVERSE_EVENT_FIELDS, where)
        reader.text(reader.required(fields, "name", where), child(where, "name"))
        probability = reader.number(
            reader.required(fields, "probability_per_injection", where),
            child(where, "probability_per_injection"),
            high=1.0,
        )
        cost = reader.number(reader.required(fields, "cost", where), child(where, "cost"))
        if "source" in fields:
            reader.text(fields["source"], child(where, "source"))
        expected += probability * cost
    return expected


def read_blindness(reader: FieldReader, raw: Any, path: str) -> tuple[float, float]:
    """(cost per year, threshold in ETDRS letters) of a ``blindness`` block."""
    fields = reader.mapping(raw, path)
    reader.unknown_keys(fields, _BLINDNESS_FIELDS, path)
    cost = reader.number(
        reader.required(fields, "cost_per_year", path), child(path, "cost_per_year")
    )
    threshold = reader.number(
        fields.get("threshold_letters", DEFAULT_BLINDNESS_THRESHOLD_LETTERS),
        child(path, "threshold_letters"),
        high=100.0,
    )
    if "source" in fields:
        reader.text(fields["source"], child(path, "source"))
    return cost, threshold
