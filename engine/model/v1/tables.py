"""Compile a validated protocol into the small lookup tables the vectorised kernel indexes.

The kernel never branches per patient: every per-visit decision is a table lookup indexed by
a code, so one numpy pass handles all live patients of a shard. Codes:

- ``tcode = state + 4 * injected`` (0..7): transition rows use the injection at the *previous*
  visit; vision scenarios use the injection at *this* visit.

Tables are float32: values are whole letters and probabilities, and float32 halves the memory
traffic of every pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from engine.model.parameters import DAYS_PER_MONTH
from engine.model.states import STATE_NAMES, DiseaseState
from engine.model.v1.baseline import Baseline, compile_baseline
from engine.model.v1.protocol import Protocol
from engine.model.v1.rule_blocks import BlockRule, compile_blocks

__all__ = ["ModelTables", "compile_protocol"]

_TREATED_CODE = 4


@dataclass(frozen=True, slots=True, eq=False)
class ModelTables:
    """Lookup tables and scalars derived from one protocol (read-only numpy arrays)."""

    protocol_type: Literal["treat_and_extend", "fixed", "prn"]
    loading_doses: int
    min_interval_days: int
    max_interval_days: int
    transition_probabilities: npt.NDArray[np.float64]  # (8, 4) by tcode of previous visit
    # new state = transition_state_floor + number of thresholds[j][tcode] <= u, u ~ U[0, 1)
    transition_thresholds: tuple[npt.NDArray[np.float32], ...]
    transition_state_floor: int
    treated_code_by_state: npt.NDArray[np.intp]  # tcode when injecting only if active
    vision_mean: npt.NDArray[np.float32]  # (8,) by tcode of this visit
    vision_std: npt.NDArray[np.float32]
    interval_step_by_state: npt.NDArray[np.int32]  # treat-and-extend change of interval
    baseline_mean: float
    baseline_std: float
    baseline_min: float
    baseline_max: float
    poor_vision_threshold: float
    high_injection_count: int
    long_treatment_days: int  # treatment is long when days since enrollment exceed this
    rule_probabilities: tuple[float, float, float]  # poor vision, high injections, long treatment
    # The current visit-based layout (docs/model-v1-layout.md); older files: the defaults.
    loading_interval_days: int = 0  # days between loading visits; 0: min_interval_days
    baseline: Baseline | None = None  # None: Normal(baseline_mean, baseline_std)
    rule_blocks: tuple[BlockRule, ...] = ()

    @property
    def can_discontinue(self) -> bool:
        """False when no rule has a positive probability, so the draw can be skipped."""
        return self.max_rule_probability > 0

    @property
    def max_rule_probability(self) -> float:
        """No patient whose discontinuation uniform is at or above this can stop."""
        return max(*self.rule_probabilities, *(rule.probability for rule in self.rule_blocks))

    @property
    def rule_probability_by_reason(self) -> npt.NDArray[np.float32]:
        """Probability by reason code, with index -1 (no rule applies) giving 0."""
        return np.array([*self.rule_probabilities, 0.0], dtype=np.float32)


def compile_protocol(protocol: Protocol) -> ModelTables:
    """Build the kernel's tables; `protocol` must already be validated."""
    probabilities = _transition_probabilities(protocol)
    thresholds, state_floor = _transition_thresholds(probabilities)
    vision_mean, vision_std = _vision_tables(protocol)
    rules = protocol.discontinuation_rules
    step = np.array(
        [protocol.extension_days, protocol.extension_days, 0, -protocol.shortening_days],
        dtype=np.int32,
    )
    treated_code = np.array(
        [state + (_TREATED_CODE if state >= DiseaseState.ACTIVE else 0) for state in DiseaseState],
        dtype=np.intp,
    )
    baseline = compile_baseline(protocol)
    return ModelTables(
        protocol_type=protocol.protocol_type,
        loading_doses=protocol.loading_doses,
        min_interval_days=protocol.min_interval_days,
        max_interval_days=protocol.max_interval_days,
        transition_probabilities=_readonly(probabilities),
        transition_thresholds=thresholds,
        transition_state_floor=state_floor,
        treated_code_by_state=_readonly(treated_code),
        vision_mean=_readonly(vision_mean),
        vision_std=_readonly(vision_std),
        interval_step_by_state=_readonly(step),
        baseline_mean=baseline.mean,  # the older fields, read by tests and estimates
        baseline_std=baseline.std,
        baseline_min=baseline.min,
        baseline_max=baseline.max,
        poor_vision_threshold=rules.poor_vision_threshold,
        high_injection_count=rules.high_injection_count,
        long_treatment_days=math.floor(rules.long_treatment_months * DAYS_PER_MONTH),
        rule_probabilities=(
            rules.poor_vision_probability,
            rules.high_injection_probability,
            rules.long_treatment_probability,
        ),
        loading_interval_days=protocol.loading_dose_interval_days or protocol.min_interval_days,
        baseline=baseline,
        rule_blocks=compile_blocks(rules),
    )


def _transition_probabilities(protocol: Protocol) -> npt.NDArray[np.float64]:
    """Rows 0-3: base matrix; rows 4-7: after an injection (multiplied, renormalised)."""
    table = np.zeros((8, 4))
    for state, name in enumerate(STATE_NAMES):
        row = getattr(protocol.disease_transitions, name)
        base = np.array([getattr(row, target) for target in STATE_NAMES])
        multipliers = getattr(protocol.treatment_effect_on_transitions, name).multipliers
        treated = base * np.array([getattr(multipliers, target) for target in STATE_NAMES])
        table[state] = base / base.sum()
        table[state + _TREATED_CODE] = treated / treated.sum()
    return table


def _transition_thresholds(
    probabilities: npt.NDArray[np.float64],
) -> tuple[tuple[npt.NDArray[np.float32], ...], int]:
    """Cumulative thresholds, with the passes that cannot change the outcome dropped.

    A threshold after which a row has no probability left is +inf, so a state of probability
    0 is never drawn through rounding. Thresholds that are 0 in every row always count and
    those that are +inf in every row never do; both are folded into the returned floor.
    """
    cumulative = np.cumsum(probabilities, axis=1)[:, :3]
    remaining = probabilities[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]
    cumulative[remaining == 0.0] = np.inf
    kept = []
    floor = 0
    for column in cumulative.T:
        if (column == 0.0).all():
            floor += 1
        elif not np.isinf(column).all():
            kept.append(_readonly(column.astype(np.float32)))
    return tuple(kept), floor


def _vision_tables(protocol: Protocol) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    model = protocol.vision_change_model
    mean = np.zeros(8, dtype=np.float32)
    std = np.zeros(8, dtype=np.float32)
    for state, name in enumerate(STATE_NAMES):
        for treated, suffix in ((0, "untreated"), (_TREATED_CODE, "treated")):
            scenario = getattr(model, f"{name.lower()}_{suffix}")
            mean[state + treated] = scenario.mean
            std[state + treated] = scenario.std
    return mean, std


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
