"""Utility tables: health-state utility by the better-seeing eye's visual acuity.

Utility in wet AMD follows the better-seeing eye (Brown et al. 2000), but the simulation
follows the treated eye only. A table therefore carries, besides the utility of each VA
band, what is assumed about the other eye: the distribution of the fellow eye's VA over the
same bands and the share of treated eyes that are the better-seeing eye. The bundled table
is ``defaults/utilities_brown.yaml``; docs/economics.md gives its sources.

File layout (YAML)::

    format_version: 1
    source: "Brown GC et al. Arch Ophthalmol 2000;118:47-51 (time trade-off)"
    lower_edges: [0, 20, 50, 65, 80]       # ETDRS letters, ascending, first 0
    utilities: [0.40, 0.52, 0.57, 0.81, 0.89]
    fellow_eye: [0.10, 0.20, 0.15, 0.25, 0.30]   # sums to 1
    treated_eye_better_share: 0.35
    band_labels: [...]                     # optional, one per band
    notes: "..."                           # optional

A band runs from its lower edge up to the next band's (the last to 100 letters). Every bad
value is one `UtilityFileError` naming the file, the field path and the problem.

Does not cover: how the simulation combines the two eyes (it reads these fields), costs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from engine.economics._fields import FieldReader, child
from engine.errors import UtilityFileError
from engine.input_files import read_yaml_mapping

__all__ = [
    "UTILITY_RANGE",
    "UtilityTable",
    "default_utility_table_path",
    "load_utility_table",
]

FORMAT_VERSION = 1
# Worse than death is possible on the EQ-5D UK tariff (its floor is -0.594).
UTILITY_RANGE = (-0.6, 1.0)
PROBABILITY_SUM_TOLERANCE = 1e-6
_FIELDS = (
    "format_version",
    "source",
    "lower_edges",
    "utilities",
    "fellow_eye",
    "treated_eye_better_share",
    "band_labels",
    "notes",
)


class UtilityTable(msgspec.Struct, frozen=True, kw_only=True):
    """Utility by better-seeing-eye VA band, and what is assumed about the fellow eye.

    Attributes
    ----------
    source
        Where the utilities come from.
    lower_edges
        Lower edge of each VA band in ETDRS letters, ascending, the first 0.
    utilities
        Utility of each band, in [-0.6, 1].
    fellow_eye
        Probability that the fellow eye's VA is in each band; sums to 1.
    treated_eye_better_share
        Share of treated eyes that are the better-seeing eye, in [0, 1].
    """

    source: str
    lower_edges: tuple[float, ...]
    utilities: tuple[float, ...]
    fellow_eye: tuple[float, ...]
    treated_eye_better_share: float


def default_utility_table_path() -> Path:
    """The bundled table: Brown et al. 2000 time trade-off utilities (docs/economics.md)."""
    return Path(__file__).resolve().parent / "defaults" / "utilities_brown.yaml"


def load_utility_table(path: Path) -> UtilityTable:
    """Read and check a utility table; `UtilityFileError` naming file, field and problem."""
    path = Path(path)
    raw = read_yaml_mapping(path, UtilityFileError, "utility table fields")
    reader = FieldReader(str(path), UtilityFileError)
    reader.unknown_keys(raw, _FIELDS, "$")
    reader.whole_number(
        reader.required(raw, "format_version", "$"),
        "$.format_version",
        FORMAT_VERSION,
        FORMAT_VERSION,
    )
    edges = _numbers(reader, raw, "lower_edges", 0.0, 100.0)
    if edges[0] != 0:
        raise reader.fail(
            "$.lower_edges[0]", f"must be 0 (the first band starts at 0 letters), got {edges[0]:g}"
        )
    for index in range(1, len(edges)):
        if edges[index] <= edges[index - 1]:
            raise reader.fail(
                f"$.lower_edges[{index}]",
                f"must be above the previous edge {edges[index - 1]:g} (edges ascend), "
                f"got {edges[index]:g}",
            )
    utilities = _numbers(reader, raw, "utilities", *UTILITY_RANGE)
    fellow = _numbers(reader, raw, "fellow_eye", 0.0, 1.0)
    for name, values in (("utilities", utilities), ("fellow_eye", fellow)):
        if len(values) != len(edges):
            raise reader.fail(
                f"$.{name}",
                f"has {len(values)} values for {len(edges)} bands; give one per lower edge",
            )
    total = sum(fellow)
    if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
        raise reader.fail(
            "$.fellow_eye",
            f"sums to {total:.6g}; the probabilities must sum to 1 +/- {PROBABILITY_SUM_TOLERANCE:g}",
        )
    if "band_labels" in raw:
        labels = reader.sequence(raw["band_labels"], "$.band_labels")
        for index, label in enumerate(labels):
            reader.text(label, child("$.band_labels", index))
        if len(labels) != len(edges):
            raise reader.fail("$.band_labels", f"has {len(labels)} labels for {len(edges)} bands")
    if "notes" in raw:
        reader.text(raw["notes"], "$.notes")
    return UtilityTable(
        source=reader.text(reader.required(raw, "source", "$"), "$.source"),
        lower_edges=edges,
        utilities=utilities,
        fellow_eye=fellow,
        treated_eye_better_share=reader.number(
            reader.required(raw, "treated_eye_better_share", "$"),
            "$.treated_eye_better_share",
            high=1.0,
        ),
    )


def _numbers(
    reader: FieldReader, raw: dict[str, Any], name: str, low: float, high: float
) -> tuple[float, ...]:
    """The non-empty list of numbers in [low, high] at ``$.name``."""
    path = f"$.{name}"
    values = reader.sequence(reader.required(raw, name, "$"), path)
    if not values:
        raise reader.fail(path, "is empty; give one value per VA band")
    return tuple(reader.number(value, child(path, i), low, high) for i, value in enumerate(values))
