"""The kernel's random source: `CounterRandom` plus draws whose step differs from row to row.

At a visit sub-step the patients drawn for are at different visit numbers, so their step
(``10**6 + visit number``, docs/model.md 7) differs per row. `uniform_at` / `normal_at` give,
for every row, exactly the number `CounterRandom.uniform(step, purpose, rows=[row])` would
(tests/engine/test_kernel_v2_draws.py checks it), in one vectorised pass instead of one call
per visit number. They use the scheme's own building blocks from
`engine.model.v2.random_numbers`, so the scheme stays defined in one place.

The kernel asks a factory ``(seed, patient_ids) -> RandomSource`` for its source, so tests can
inject one whose every number is chosen by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol as TypingProtocol

import numpy as np
import numpy.typing as npt

from engine.model.v2 import random_numbers as crn
from engine.model.v2.random_numbers import CounterRandom, Purpose

__all__ = ["VISIT_STEP", "CrnSource", "RandomFactory", "RandomSource", "crn_source"]

VISIT_STEP = 10**6  # step of visit number n: VISIT_STEP + n
# Counter words of visit steps by (purpose, variate); they depend on nothing else.
_WORD_CACHE: dict[tuple[int, int], npt.NDArray[np.uint64]] = {}


class RandomSource(TypingProtocol):
    """What the kernel draws from; rows are positions in the source's patient array."""

    def uniform(
        self, step: int, purpose: Purpose, rows: npt.NDArray[np.intp] | None = None, draw: int = 0
    ) -> npt.NDArray[np.float64]: ...

    def normal(
        self, step: int, purpose: Purpose, rows: npt.NDArray[np.intp] | None = None, draw: int = 0
    ) -> npt.NDArray[np.float64]: ...

    def uniform_at(
        self, steps: npt.NDArray[np.integer], purpose: Purpose, rows: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.float64]: ...

    def normal_at(
        self, steps: npt.NDArray[np.integer], purpose: Purpose, rows: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.float64]: ...

    def uniforms_at(
        self,
        steps: npt.NDArray[np.integer],
        purposes: Sequence[Purpose],
        rows: npt.NDArray[np.intp],
    ) -> npt.NDArray[np.float64]: ...


RandomFactory = Callable[[int, npt.NDArray[np.int64]], RandomSource]


class CrnSource:
    """`CounterRandom` with per-row steps (see the module docstring)."""

    def __init__(self, seed: int, patient_ids: npt.NDArray[np.int64]) -> None:
        self.crn = CounterRandom(seed, patient_ids)

    def uniform(
        self, step: int, purpose: Purpose, rows: npt.NDArray[np.intp] | None = None, draw: int = 0
    ) -> npt.NDArray[np.float64]:
        return self.crn.uniform(step, purpose, rows, draw)

    def normal(
        self, step: int, purpose: Purpose, rows: npt.NDArray[np.intp] | None = None, draw: int = 0
    ) -> npt.NDArray[np.float64]:
        return self.crn.normal(step, purpose, rows, draw)

    def _bits_at(
        self,
        steps: npt.NDArray[np.integer],
        purpose: Purpose,
        rows: npt.NDArray[np.intp],
        variate: int,
    ) -> npt.NDArray[np.uint64]:
        words = _words(purpose, variate, int(steps.max()) if steps.size else VISIT_STEP)
        bits = np.take(self.crn._keys, rows)
        np.add(bits, words[steps - VISIT_STEP], out=bits)
        crn._mix64_inplace(bits, np.empty_like(bits))
        return bits

    def uniform_at(
        self, steps: npt.NDArray[np.integer], purpose: Purpose, rows: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.float64]:
        """Uniform of each row at its own step (draw 0)."""
        return crn.uniforms_from_bits(self._bits_at(steps, purpose, rows, crn._UNIFORM))

    def uniforms_at(
        self,
        steps: npt.NDArray[np.integer],
        purposes: Sequence[Purpose],
        rows: npt.NDArray[np.intp],
    ) -> npt.NDArray[np.float64]:
        """`uniform_at` for several purposes at once: row i of the result is purposes[i].

        One hash pass over all of them: a visit sub-step's discontinuation checks are
        small arrays, where the number of numpy calls, not their size, sets the time.
        """
        shape = (len(purposes), len(rows))
        bits = np.empty(shape, dtype=np.uint64)
        if bits.size == 0:
            return np.empty(shape)
        top = int(steps.max())
        index = steps - VISIT_STEP
        for i, purpose in enumerate(purposes):
            np.take(_words(purpose, crn._UNIFORM, top), index, out=bits[i])
        np.add(bits, np.take(self.crn._keys, rows), out=bits)
        crn._mix64_inplace(bits, np.empty_like(bits))
        return crn.uniforms_from_bits(bits)

    def normal_at(
        self, steps: npt.NDArray[np.integer], purpose: Purpose, rows: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.float64]:
        """Standard normal of each row at its own step (draw 0)."""
        bits = self._bits_at(steps, purpose, rows, crn._NORMAL)
        return crn.normals_from_bits(bits, np.empty(bits.size))


def _words(purpose: Purpose, variate: int, top: int) -> npt.NDArray[np.uint64]:
    """Counter words of the visit steps VISIT_STEP..top (at least) of (purpose, variate).

    They depend on nothing else, so they are computed once per process and cached.
    """
    if top < VISIT_STEP:
        raise ValueError(f"per-row steps are visit steps (>= {VISIT_STEP}), got {top}")
    key = (int(purpose), variate)
    words = _WORD_CACHE.get(key)
    if words is None or VISIT_STEP + len(words) <= top:
        size = max(top + 1 - VISIT_STEP, 256, 2 * (0 if words is None else len(words)))
        size = min(size, crn.MAX_STEP + 1 - VISIT_STEP)
        words = np.array(
            [crn._counter_word(VISIT_STEP + n, purpose, 0, variate) for n in range(size)],
            dtype=np.uint64,
        )
        _WORD_CACHE[key] = words
    return words


def crn_source(seed: int, patient_ids: npt.NDArray[np.int64]) -> RandomSource:
    """The production random source."""
    return CrnSource(seed, patient_ids)
