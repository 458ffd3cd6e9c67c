"""Weights that turn the per-patient vector (engine.compare.features) into costs and QALYs.

The simulation tracks years in VA bands that refine the utility table's bands at the
blindness threshold (so years with a blind better-seeing eye are known exactly); a fellow
eye drawn in a utility band is spread over that band's refined bands in proportion to their
width in letters (VA uniform within the band; the top band ends at 100 letters). Costs:

- each visit of a type costs the cost file's price of that type; an injecting visit (loading
  or not) adds the protocol's drug per administration and the expected adverse-event cost per
  injection;
- the second eye's visits (engine.compare.features), when it is involved, cost as the first
  eye's of the same type (each eye's visit in full: a conservative reading of joint visits);
- a discontinuation by the clinic costs the file's discontinuation cost;
- each year with a blind better-seeing eye costs the cost of blindness per year;
- enrolment costs (one-off, day 0, so undiscounted) are a constant.

QALYs are the utility of each band times the years in it. Discounted totals use the ``_disc``
entries, undiscounted ones the plain ones. All of it is linear, which is what lets a PSA draw
that changes only prices or utilities reuse the simulation (docs/analysis.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.compare.features import VISIT_TYPES, EyeSettings, feature_index

__all__ = ["ArmWeights", "EyeBands", "arm_weights", "eye_bands"]

_EYES = ("", "second_eye_")  # the first (treated) eye's visits, then the second eye's
_TOP_LETTERS = 100.0  # ETDRS chart maximum, the upper end of the top band


@dataclass(frozen=True)
class EyeBands:
    """The refined VA bands the simulation tracks, with their utility and blindness."""

    edges: list[float]
    utilities: npt.NDArray[np.float64]
    blind: npt.NDArray[np.bool_]
    fellow_probabilities: list[float]

    @property
    def count(self) -> int:
        """Number of refined bands."""
        return len(self.edges)


def eye_bands(
    utility_edges: list[float],
    utilities: list[float],
    fellow_probabilities: list[float],
    blindness_threshold_letters: float,
) -> EyeBands:
    """Refine the utility bands at the blindness threshold (BSE VA <= threshold is blind)."""
    cut = float(blindness_threshold_letters) + 1.0  # whole letters: VA < cut is blind
    edges = sorted(set(float(e) for e in utility_edges) | {cut})
    parent = np.searchsorted(np.asarray(utility_edges, dtype=np.float64), edges, side="right") - 1
    refined_utilities = np.asarray(utilities, dtype=np.float64)[parent]
    blind = np.asarray(edges) < cut
    uppers = [*edges[1:], _TOP_LETTERS]
    fellow = [0.0] * len(edges)
    for band, probability in enumerate(fellow_probabilities):
        low = float(utility_edges[band])
        high = float(utility_edges[band + 1]) if band + 1 < len(utility_edges) else _TOP_LETTERS
        for refined, (start, stop) in enumerate(zip(edges, uppers, strict=True)):
            if low <= start and stop <= high:  # a sub-band of this band: uniform in letters
                fellow[refined] += float(probability) * (stop - start) / (high - low)
    return EyeBands(edges, refined_utilities, blind, fellow)


def eye_settings(
    bands: EyeBands,
    treated_eye_better_share: float,
    cost_rate: float,
    outcome_rate: float,
    second_eye_rate: float = 0.0,
) -> EyeSettings:
    """The settings the simulation needs from the valuation."""
    return EyeSettings(
        edges=bands.edges,
        fellow_probabilities=bands.fellow_probabilities,
        treated_eye_better_share=treated_eye_better_share,
        cost_rate=cost_rate,
        outcome_rate=outcome_rate,
        second_eye_rate=second_eye_rate,
    )


@dataclass(frozen=True)
class ArmWeights:
    """Weights over the per-patient vector for one arm."""

    cost: npt.NDArray[np.float64]  # discounted cost
    cost_plain: npt.NDArray[np.float64]  # undiscounted cost
    constant: float  # one-off enrolment cost, in both
    qaly: npt.NDArray[np.float64]
    qaly_plain: npt.NDArray[np.float64]
    injections: npt.NDArray[np.float64]  # undiscounted injections
    visits: npt.NDArray[np.float64]  # undiscounted visits
    life_years: npt.NDArray[np.float64]
    life_years_disc: npt.NDArray[np.float64]


def arm_weights(
    bands: EyeBands,
    visit_costs: dict[str, float],
    drug_cost: float,
    adverse_event_cost_per_injection: float,
    discontinuation_cost: float,
    blindness_cost_per_year: float,
    enrolment_cost: float,
) -> ArmWeights:
    """Weights of one arm (its drug's price may differ from the other arms')."""
    index = feature_index(bands.count)
    size = len(index)

    def vector(entries: dict[str, float]) -> npt.NDArray[np.float64]:
        out = np.zeros(size)
        for name, value in entries.items():
            out[index[name]] += value
        return out

    per_visit = {
        kind: float(visit_costs[kind])
        + (drug_cost + adverse_event_cost_per_injection if kind != "monitoring" else 0.0)
        for kind in VISIT_TYPES
    }
    blind = np.flatnonzero(bands.blind)
    cost = {f"{eye}visits_{kind}_disc": per_visit[kind] for kind in VISIT_TYPES for eye in _EYES}
    cost |= {"discontinued_disc": discontinuation_cost}
    cost |= {f"bse_years_disc_{b}": blindness_cost_per_year for b in blind}
    plain = {f"{eye}visits_{kind}": per_visit[kind] for kind in VISIT_TYPES for eye in _EYES}
    plain |= {"discontinued": discontinuation_cost}
    plain |= {f"bse_years_{b}": blindness_cost_per_year for b in blind}
    return ArmWeights(
        cost=vector(cost),
        cost_plain=vector(plain),
        constant=float(enrolment_cost),
        qaly=vector({f"bse_years_disc_{b}": u for b, u in enumerate(bands.utilities)}),
        qaly_plain=vector({f"bse_years_{b}": u for b, u in enumerate(bands.utilities)}),
        injections=vector(
            {f"{eye}visits_{kind}": 1.0 for kind in VISIT_TYPES[:2] for eye in _EYES}
        ),
        visits=vector({f"{eye}visits_{kind}": 1.0 for kind in VISIT_TYPES for eye in _EYES}),
        life_years=vector({"alive_years": 1.0}),
        life_years_disc=vector({"alive_years_disc": 1.0}),
    )
