"""What is settled about a run before it runs: its results tier and its progress record.

Below both the runner (`engine.runner`) and the results factory (`engine.results.factory`),
and below the streaming entry points (`engine.pipeline.launch`), so that none of them
imports another only to read these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.model.parameters import MEMORY_THRESHOLD_PATIENTS

__all__ = ["Progress", "Tier", "results_tier"]

Tier = Literal["memory", "parquet"]


def results_tier(n_patients: int) -> Tier:
    """``memory`` up to `MEMORY_THRESHOLD_PATIENTS` patients, else ``parquet``."""
    return "memory" if n_patients <= MEMORY_THRESHOLD_PATIENTS else "parquet"


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a run has got; `elapsed_s` is wall time since it started."""

    patients_done: int
    patients_total: int
    visits_done: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        """Share of patients simulated, 0..1."""
        return self.patients_done / self.patients_total if self.patients_total else 1.0
