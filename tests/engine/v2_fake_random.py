"""A random source whose every number is chosen by the test (kernel tests of the v2 model).

Numbers are looked up by (patient id, step, purpose); anything not listed gets the purpose's
default: uniforms 0.999999 (no death, no haemorrhage, no discontinuation, no improvement
phase) except transitions (0.5), normals 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.model.v2.draws import VISIT_STEP
from engine.model.v2.random_numbers import Purpose

DEFAULT_UNIFORM = {Purpose.TRANSITION: 0.5}
HIGH = 0.999999


class FakeSource:
    """`RandomSource` over a dict of chosen numbers (see the module docstring)."""

    def __init__(self, ids: np.ndarray, chosen: dict[tuple[int, int, Purpose], float]) -> None:
        self.ids = np.asarray(ids)
        self.chosen = chosen

    def _values(self, ids: np.ndarray, steps: Any, purpose: Purpose, default: float) -> np.ndarray:
        steps = np.broadcast_to(np.asarray(steps), ids.shape)
        return np.array(
            [
                self.chosen.get((int(i), int(s), Purpose(purpose)), default)
                for i, s in zip(ids, steps, strict=True)
            ],
            dtype=np.float64,
        )

    def _ids(self, rows: np.ndarray | None) -> np.ndarray:
        return self.ids if rows is None else self.ids[np.asarray(rows)]

    def uniform(self, step, purpose, rows=None, draw=0):
        return self._values(self._ids(rows), step, purpose, DEFAULT_UNIFORM.get(purpose, HIGH))

    def normal(self, step, purpose, rows=None, draw=0):
        return self._values(self._ids(rows), step, purpose, 0.0)

    def uniform_at(self, steps, purpose, rows):
        return self._values(self._ids(rows), steps, purpose, DEFAULT_UNIFORM.get(purpose, HIGH))

    def normal_at(self, steps, purpose, rows):
        return self._values(self._ids(rows), steps, purpose, 0.0)

    def uniforms_at(self, steps, purposes, rows):
        return np.array([self.uniform_at(steps, purpose, rows) for purpose in purposes])


def factory(chosen: dict[tuple[int, int, Purpose], float]):
    """A random factory for the kernel that serves `chosen`."""
    return lambda seed, ids: FakeSource(ids, chosen)


def visit_step(n: int) -> int:
    """Step of visit number n."""
    return VISIT_STEP + n
