"""Apply a PSA draw's economic values (prices, utilities) to the cost file and utility table.

A draw's economic entries are dotted paths (engine.psa.uncertainty):

- ``costs.drug_costs.KEY``: a drug's price per administration;
- ``costs.visit_costs.loading_injection|injection|monitoring``: a visit type's cost without
  the drug;
- ``costs.FIELD`` for a number of the cost file (``blindness_cost_per_year``,
  ``adverse_event_cost_per_injection``, ``discontinuation_cost``, ``enrolment_cost``);
- ``utilities.utilities.I``: the utility of band I (0-based, in the utility table's order).

The VA bands themselves (edges, blindness threshold, fellow-eye distribution) are not drawn:
the simulation tracked time in those bands, which is what lets these draws reuse it.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from engine.economics.costs import CostFile
from engine.economics.utilities import UtilityTable
from engine.errors import ParameterError

__all__ = ["PRICED_FIELDS", "apply_economic"]

PRICED_FIELDS = (
    "blindness_cost_per_year",
    "adverse_event_cost_per_injection",
    "discontinuation_cost",
    "enrolment_cost",
)


def apply_economic(
    costs: CostFile, utilities: UtilityTable, economic: Mapping[str, float]
) -> tuple[CostFile, UtilityTable]:
    """The cost file and utility table with the draw's values in place of the files' ones."""
    drug_costs = dict(costs.drug_costs)
    visit_costs = dict(costs.visit_costs)
    scalars: dict[str, float] = {}
    band_utilities = list(utilities.utilities)
    for path, value in economic.items():
        parts = path.split(".")
        if parts[:2] == ["costs", "drug_costs"] and len(parts) == 3:
            _known(parts[2], drug_costs, path)
            drug_costs[parts[2]] = float(value)
        elif parts[:2] == ["costs", "visit_costs"] and len(parts) == 3:
            _known(parts[2], visit_costs, path)
            visit_costs[parts[2]] = float(value)
        elif parts[0] == "costs" and len(parts) == 2 and parts[1] in PRICED_FIELDS:
            scalars[parts[1]] = float(value)
        elif parts[:2] == ["utilities", "utilities"] and len(parts) == 3:
            band = _band(parts[2], len(band_utilities), path)
            band_utilities[band] = float(value)
        else:
            raise ParameterError(
                f"uncertainty parameter {path!r} is not a price or utility a comparison uses; "
                f"use costs.drug_costs.KEY, costs.visit_costs.TYPE, "
                f"costs.{{{','.join(PRICED_FIELDS)}}} or utilities.utilities.I"
            )
    priced = msgspec.structs.replace(
        costs, drug_costs=drug_costs, visit_costs=visit_costs, **scalars
    )
    valued = msgspec.structs.replace(utilities, utilities=tuple(band_utilities))
    return priced, valued


def _known(key: str, table: Mapping[str, float], path: str) -> None:
    if key not in table:
        raise ParameterError(
            f"uncertainty parameter {path!r}: the cost file has no {key!r} "
            f"(it has {', '.join(sorted(table))})"
        )


def _band(text: str, count: int, path: str) -> int:
    if not text.isdigit() or int(text) >= count:
        raise ParameterError(
            f"uncertainty parameter {path!r}: the utility table has bands 0 to {count - 1}"
        )
    return int(text)
