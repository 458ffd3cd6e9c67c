"""Per-patient years lived in bands of true VA, discounted and not: what QALYs integrate.

QALYs and the cost of blindness need each patient's VA over the whole horizon, not only at
visits: a patient who stopped treatment keeps losing vision unseen, and one who died stops
accruing. The kernel knows true VA every fortnight; the VA after update k holds over days
``[14k, 14k + 14)`` (cut at the patient's follow-up limit), and this tracker adds that
time to the band the VA is in, once undiscounted and once discounted per day from
enrolment: the exact integral of ``(1 + r) ** (-day / 365.25)`` over the interval, in years. VA is a
step function of time in the model (it changes at updates), so the integral is exact and
needs no half-cycle correction. A patient who dies at update k (deaths happen at updates,
docs/model.md 3.1) accrues nothing from day 14k on.

The tracker is off for ordinary runs (the kernel skips it when none is given); its arrays
are the size of the block times the number of bands.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["VisionTimeTracker", "discounted_years_between"]

_YEAR = 365.25


def discounted_years_between(
    start: npt.ArrayLike, end: npt.ArrayLike, annual_rate: float
) -> npt.NDArray[np.float64]:
    """Integral of ``(1 + r) ** (-day / 365.25)`` over ``[start, end)`` days, in years.

    Zero where ``end <= start``; ``(end - start) / 365.25`` when the rate is 0.
    """
    start = np.asarray(start, dtype=np.float64)
    end = np.maximum(np.asarray(end, dtype=np.float64), start)
    if annual_rate == 0.0:
        return (end - start) / _YEAR
    log_rate = math.log1p(annual_rate)
    return (np.exp(-log_rate * start / _YEAR) - np.exp(-log_rate * end / _YEAR)) / log_rate


class VisionTimeTracker:
    """Years each patient of a block spends in each VA band (true VA, treated eye).

    `edges` are the bands' lower edges in letters, ascending, the first 0: band b holds
    ``edges[b] <= VA < edges[b + 1]`` (the last band is open). `years` and
    `discounted_years` are (patients, bands), by position in the block, complete after
    `finish`.

    VA changes band only now and then, so the tracker keeps each patient's current band and
    the day it entered it, and adds the whole stretch (one closed-form integral) when the band
    changes or follow-up ends: a comparison per patient per fortnight instead of a scatter.
    """

    def __init__(self, edges: Sequence[float], annual_rate: float) -> None:
        edges = np.asarray(edges, dtype=np.float64)
        if len(edges) == 0 or edges[0] != 0 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"band edges must start at 0 and ascend, got {list(edges)}")
        if not 0.0 <= annual_rate < 1.0:
            raise ValueError(f"annual discount rate must be in [0, 1), got {annual_rate}")
        self.edges = edges
        self.annual_rate = float(annual_rate)
        self.start(0)

    @property
    def bands(self) -> int:
        """Number of VA bands."""
        return len(self.edges)

    def start(self, patients: int) -> None:
        """Empty arrays for a block of `patients`."""
        self.years = np.zeros((patients, self.bands))
        self.discounted_years = np.zeros((patients, self.bands))
        self.band = np.full(patients, -1, dtype=np.intp)  # -1: not started
        self.since = np.zeros(patients, dtype=np.int64)  # day the current band began

    def _band_of(self, va: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        return np.searchsorted(self.edges, va, side="right") - 1

    def add_fortnight(
        self,
        k: int,
        pid: npt.NDArray[np.intp],
        va: npt.NDArray[np.float64],
    ) -> None:
        """True VA after update k of the live patients at block positions `pid` (unique)."""
        if len(pid) == 0:
            return
        band = self._band_of(va)
        if k == 0:
            self.band[pid] = band
            self.since[pid] = 0
            return
        changed = band != self.band[pid]
        if changed.any():
            moved = pid[changed]
            self._add(moved, np.full(len(moved), 14 * k, dtype=np.int64))
            self.band[moved] = band[changed]
            self.since[moved] = 14 * k

    def finish(self, end: npt.NDArray[np.int64]) -> None:
        """Close every patient's current stretch at `end` (day of death or follow-up limit)."""
        started = np.flatnonzero(self.band >= 0)
        self._add(started, np.asarray(end, dtype=np.int64)[started])

    def _add(self, pid: npt.NDArray[np.intp], end: npt.NDArray[np.int64]) -> None:
        since = self.since[pid]
        band = self.band[pid]
        self.years[pid, band] += np.maximum(end - since, 0) / _YEAR
        self.discounted_years[pid, band] += discounted_years_between(since, end, self.annual_rate)
