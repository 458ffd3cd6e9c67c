"""Checks of a transition matrix and its treatment multipliers, shared by both models.

The visit-based model's `disease_transitions` and the time-based model's
`fortnightly_transitions` are the same struct (`TransitionMatrix`), as are the multipliers an
injection applies (`TreatmentEffects`), so one pair of checks serves both layouts: rows must
sum to 1 (within `ROW_SUM_TOLERANCE`, the origin's files are rounded to 3 decimals) and full
treatment must leave some state reachable from every state (the model renormalises the
multiplied row, which needs a positive sum). Each raises the first failure as a
`ProtocolError` with its field path.
"""

from __future__ import annotations

from engine.errors import ProtocolError
from engine.model.states import STATE_NAMES
from engine.model.v1.protocol import TransitionMatrix, TreatmentEffects

__all__ = ["ROW_SUM_TOLERANCE", "check_row_sums", "check_treated_rows"]

ROW_SUM_TOLERANCE = 0.001


def check_row_sums(matrix: TransitionMatrix, source: str, path: str) -> None:
    """Each row of `matrix` (at `path`) sums to 1 +/- ROW_SUM_TOLERANCE."""
    for state in STATE_NAMES:
        row = getattr(matrix, state)
        total = sum(getattr(row, target) for target in STATE_NAMES)
        if abs(total - 1.0) > ROW_SUM_TOLERANCE:
            raise ProtocolError(
                source,
                f"{path}.{state}",
                f"sums to {total:.6g}; each row must sum to 1 +/- {ROW_SUM_TOLERANCE}",
            )


def check_treated_rows(
    matrix: TransitionMatrix, effects: TreatmentEffects, source: str, path: str, when: str = ""
) -> None:
    """Every row of `matrix` times `effects` (at `path`) keeps a positive sum.

    `when` qualifies the message (" at full effect" where the effect decays).
    """
    for state in STATE_NAMES:
        row = getattr(matrix, state)
        multipliers = getattr(effects, state).multipliers
        treated = sum(getattr(row, t) * getattr(multipliers, t) for t in STATE_NAMES)
        if treated <= 0.0:
            raise ProtocolError(
                source,
                f"{path}.{state}.multipliers",
                f"gives every transition from {state} probability 0{when}; "
                "at least one reachable state needs a multiplier above 0",
            )
