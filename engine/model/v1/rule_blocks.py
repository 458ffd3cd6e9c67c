"""The current layout's discontinuation rule blocks, compiled and evaluated per visit.

Each block becomes a `BlockRule` (its kind, numbers, probability and reason code in
`VISIT_LAYOUT_REASON_NAMES`). `BlockTracker` holds the per-patient counters the rules need
(consecutive STABLE visits, visits below a VA, visits without improvement, longest interval,
shortenings, the next annual review), updates them at every visit after enrolment, and says
which rule applies to each patient: the first, in the file's order, whose criteria hold.
One uniform per patient then decides with that rule's probability (the kernel's stop draw).
Meanings are docs/model-v1-layout.md; blocks that never fire are not compiled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.columns import NULL
from engine.model.parameters import DAYS_PER_MONTH
from engine.model.states import VISIT_LAYOUT_REASON_NAMES, DiseaseState
from engine.model.v1.layout_schema import NON_FIRING_BLOCKS
from engine.model.v1.protocol import DiscontinuationRules

__all__ = ["BlockRule", "BlockTracker", "compile_blocks"]

_DAYS_PER_WEEK = 7
_YEAR_DAYS = math.floor(12 * DAYS_PER_MONTH)


@dataclass(frozen=True, slots=True)
class BlockRule:
    """One compiled rule block. Unused numbers are 0 (or None)."""

    kind: str  # stable | below | frequent | annual_stable | failure | futility
    probability: float
    reason: int
    count: int = 0  # consecutive visits, attempts or visits on treatment
    letters: float = 0.0  # VA threshold or loss
    days: int = 0  # interval (days) or time on treatment (days)
    spread: float | None = None  # stable: VA max - min allowed over the run
    review_days: int = 0  # > 0: checked only at reviews this many days apart


def compile_blocks(rules: DiscontinuationRules) -> tuple[BlockRule, ...]:
    """The blocks of `rules` that can fire, in check order (empty for the flat layout)."""
    compiled = []
    for name, block in rules.blocks():
        if name in NON_FIRING_BLOCKS or block.probability <= 0:
            continue
        c = block.criteria
        common = {"probability": block.probability, "reason": reason_code(block.reason)}
        if name == "stable_extended_interval":
            rule = BlockRule(
                "stable",
                count=c.consecutive_stable_visits,
                days=math.ceil(c.minimum_interval_weeks * _DAYS_PER_WEEK),
                spread=c.vision_stable_threshold,
                **common,
            )
        elif name in ("poor_response_25_letters", "critical_vision_15_letters"):
            rule = BlockRule("below", count=c.consecutive_visits, letters=c.va_less_than, **common)
        elif name == "frequent_injections":
            rule = BlockRule(
                "frequent",
                count=c.attempts,
                letters=c.max_achieved_interval_weeks * _DAYS_PER_WEEK,
                days=math.ceil(c.months_on_treatment * DAYS_PER_MONTH),
                **common,
            )
        elif name == "stable_at_annual_review":
            review = math.floor(c.months_on_treatment * DAYS_PER_MONTH)
            rule = BlockRule("annual_stable", review_days=review, **common)
        elif name == "treatment_failure":
            review = _YEAR_DAYS if c.assessed_at == "annual_review" else 0
            rule = BlockRule(
                "failure",
                count=c.visits_on_treatment,
                letters=c.vision_loss_from_baseline,
                review_days=review,
                **common,
            )
        else:  # futility
            rule = BlockRule(
                "futility",
                count=c.no_improvement_visits,
                letters=c.vision_below_threshold,
                **common,
            )
        compiled.append(rule)
    return tuple(compiled)


def reason_code(reason: str) -> int:
    """The code of a block's reason text; the loader has checked it is known."""
    return VISIT_LAYOUT_REASON_NAMES.index(reason)


class BlockTracker:
    """Per-patient counters of the live patients, in the kernel's live order."""

    def __init__(
        self, rules: tuple[BlockRule, ...], enrollment: np.ndarray, first_vision: np.ndarray
    ) -> None:
        self.rules = rules
        size = len(enrollment)
        self.enrollment = enrollment.astype(np.int32)
        self.previous_vision = first_vision.astype(np.float32)
        self.stable_run = np.zeros(size, dtype=np.int32)
        self.run_min = first_vision.astype(np.float32)
        self.run_max = first_vision.astype(np.float32)
        self.no_improvement = np.zeros(size, dtype=np.int32)
        self.longest_gap = np.zeros(size, dtype=np.int32)
        self.shortened = np.zeros(size, dtype=np.int32)
        self.below = {
            i: np.zeros(size, dtype=np.int32) for i, r in enumerate(rules) if r.kind == "below"
        }
        self.next_review = {
            i: self.enrollment + np.int32(r.review_days)
            for i, r in enumerate(rules)
            if r.review_days > 0
        }

    def keep(self, keep: npt.NDArray[np.intp]) -> None:
        """Drop the patients that left the live arrays (`keep`: indices of those staying)."""
        for name in (
            "enrollment",
            "previous_vision",
            "stable_run",
            "run_min",
            "run_max",
            "no_improvement",
            "longest_gap",
            "shortened",
        ):
            setattr(self, name, getattr(self, name)[keep])
        self.below = {i: a[keep] for i, a in self.below.items()}
        self.next_review = {i: a[keep] for i, a in self.next_review.items()}

    def applicable(
        self,
        state: np.ndarray,
        vision: np.ndarray,
        baseline: np.ndarray,
        day: np.ndarray,
        gap: np.ndarray,
        next_interval: np.ndarray,
        visit: int,
    ) -> npt.NDArray[np.int8]:
        """Update the counters with this visit; the first rule whose criteria hold, by index
        into `rules` (-1: none), per live patient."""
        stable = state == DiseaseState.STABLE
        self.stable_run = np.where(stable, self.stable_run + 1, 0)
        fresh = self.stable_run == 1
        self.run_min = np.where(fresh, vision, np.minimum(self.run_min, vision))
        self.run_max = np.where(fresh, vision, np.maximum(self.run_max, vision))
        self.no_improvement = np.where(vision <= self.previous_vision, self.no_improvement + 1, 0)
        self.previous_vision = vision.copy()
        np.maximum(self.longest_gap, gap, out=self.longest_gap)
        self.shortened += next_interval < gap
        on_treatment = day - self.enrollment
        chosen = np.full(len(state), NULL, dtype=np.int8)
        open_ = np.ones(len(state), dtype=bool)
        for i, rule in enumerate(self.rules):
            holds = self._holds(i, rule, stable, vision, baseline, day, gap, on_treatment, visit)
            hit = holds & open_
            chosen[hit] = i
            open_ &= ~hit
        return chosen

    def _holds(
        self,
        i: int,
        rule: BlockRule,
        stable: np.ndarray,
        vision: np.ndarray,
        baseline: np.ndarray,
        day: np.ndarray,
        gap: np.ndarray,
        on_treatment: np.ndarray,
        visit: int,
    ) -> np.ndarray:
        review = np.ones(len(day), dtype=bool)
        if i in self.next_review:
            due = self.next_review[i]
            review = day >= due
            # The next review: the first multiple of the period after this visit.
            periods = (day - due) // rule.review_days + 1
            self.next_review[i] = np.where(review, due + periods * rule.review_days, due)
        if rule.kind == "stable":
            holds = (self.stable_run >= rule.count) & (gap >= rule.days)
            if rule.spread is not None:
                holds &= self.run_max - self.run_min <= rule.spread
            return holds
        if rule.kind == "below":
            counter = self.below[i]
            self.below[i] = counter = np.where(vision < rule.letters, counter + 1, 0)
            return counter >= rule.count
        if rule.kind == "frequent":
            return (
                (on_treatment >= rule.days)
                & (self.longest_gap <= rule.letters)
                & (self.shortened >= rule.count)
            )
        if rule.kind == "annual_stable":
            return review & stable
        if rule.kind == "failure":
            return review & (baseline - vision >= rule.letters) & (visit >= rule.count)
        return (vision < rule.letters) & (self.no_improvement >= rule.count)
