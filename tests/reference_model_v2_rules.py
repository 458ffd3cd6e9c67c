"""Pure per-rule functions of the time-based model (docs/model.md sections 2 and 3), in plain Python.

Part of the independent reference (tests/reference_model_v2.py re-exports them): each function
is one rule written from docs/model.md, never from the kernel, and is what the statistical tests
use as the expected probability, curve or distribution.
"""

from __future__ import annotations

import math
import random

STATES = ("NAIVE", "STABLE", "ACTIVE", "HIGHLY_ACTIVE")
NAIVE, STABLE, ACTIVE, HIGHLY_ACTIVE = range(4)
REASONS = (
    "death",
    "poor_vision",
    "deterioration",
    "stable_disease",
    "no_improvement",
    "attrition",
    "administrative",
)
SEXES = ("female", "male")
FORTNIGHT = 14
DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12
MONTHS = (3, 6, 12, 24, 36, 60)


# --- section 2: patients at enrolment ---------------------------------------------------------
def band_bounds(label: str) -> tuple[float, float]:
    """Ages a band covers, [lo, hi): ``"a-b"`` is [a, b + 1), ``"95+"`` is [95, 100)."""
    if label.endswith("+"):
        lo = float(label[:-1])
        return lo, 100.0
    lo, hi = label.split("-")
    return float(lo), float(hi) + 1.0


def band_of(bands, age: float) -> str:
    """The band of `age` (years; floor taken here); below the first uses it, above the last too."""
    whole = math.floor(age)
    ordered = sorted(bands, key=lambda label: band_bounds(label)[0])
    for label in ordered:
        lo, hi = band_bounds(label)
        if lo <= whole < hi:
            return label
    return ordered[0] if whole < band_bounds(ordered[0])[0] else ordered[-1]


def age_bands(demographics) -> list[tuple[str, float, float, float]]:
    """(label, lo, hi, probability) of `age_distribution_weights`, before the age shift."""
    weights = demographics.age_distribution_weights
    total = sum(weights.values())
    return [(label, *band_bounds(label), w / total) for label, w in weights.items()]


def adjustment(demographics, population_type: str):
    """The population type's adjustments (neutral when the file lists none)."""
    found = demographics.population_type_adjustments.get(population_type)
    return found


def female_probability(demographics, age: float, population_type: str) -> float:
    """P(female) for an enrolment age (section 2), clipped to [0, 1]."""
    share = demographics.gender_distribution_by_age[
        band_of(demographics.gender_distribution_by_age, age)
    ]
    adj = adjustment(demographics, population_type)
    if adj is not None:
        share += adj.female_proportion_adjustment
    return min(1.0, max(0.0, share))


def baseline_density(dist, x: float) -> float:
    """Unnormalised density of the true baseline VA (continuous types; beta on [min, max])."""
    lo, hi = dist.min, dist.max
    if dist.type == "uniform":
        return 1.0 if lo <= x <= hi else 0.0
    if dist.type == "normal":
        return math.exp(-0.5 * ((x - dist.mean) / dist.std) ** 2)
    if not lo < x < hi:
        return 0.0
    u = (x - lo) / (hi - lo)
    density = u ** (dist.alpha - 1) * (1 - u) ** (dist.beta - 1)
    if dist.type == "beta_with_threshold" and x > dist.threshold:
        density *= 1 - dist.threshold_reduction
    return density


def baseline_cdf_table(dist, step: float = 0.01) -> list[tuple[float, float]]:
    """(x, P(true baseline <= x)) on a grid over [0, 100], normal clipping mass included."""
    if dist.type == "normal" and dist.std == 0:
        value = min(dist.max, max(dist.min, dist.mean))
        return [(0.0, 0.0), (value - 1e-9, 0.0), (value, 1.0), (100.0, 1.0)]
    if dist.type == "normal":

        def phi(x: float) -> float:
            return 0.5 * (1 + math.erf((x - dist.mean) / (dist.std * math.sqrt(2))))

        out = []
        for i in range(round(100 / step) + 1):
            x = i * step
            out.append((x, 0.0 if x < dist.min else 1.0 if x >= dist.max else phi(x)))
        return out
    n = round(100 / step)
    xs = [i * step for i in range(n + 1)]
    dens = [baseline_density(dist, x) for x in xs]
    cum, out = 0.0, [(xs[0], 0.0)]
    for i in range(1, n + 1):
        # Trapezoids; the beta's integrable edge singularities do not occur for shapes >= 1.
        cum += 0.5 * (dens[i - 1] + dens[i]) * step
        out.append((xs[i], cum))
    return [(x, c / cum) for x, c in out]


def sample_baseline(dist, rng: random.Random) -> float:
    """True baseline VA (section 2) with an independent method (rejection for the threshold)."""
    lo, hi = dist.min, dist.max
    if dist.type == "normal":
        return min(hi, max(lo, dist.mean + dist.std * rng.gauss(0.0, 1.0)))
    if dist.type == "uniform":
        return lo + rng.random() * (hi - lo)
    while True:
        x = lo + (hi - lo) * rng.betavariate(dist.alpha, dist.beta)
        if dist.type == "beta" or x <= dist.threshold or rng.random() >= dist.threshold_reduction:
            return x


def ceiling(vision, baseline: float) -> float:
    """Highest true VA of a patient with this true baseline (section 2)."""
    c = vision.vision_ceilings
    if baseline > c.high_baseline_threshold:
        absolute = c.absolute_ceiling_high_baseline
    elif baseline < c.low_baseline_threshold:
        absolute = c.absolute_ceiling_low_baseline
    else:
        absolute = c.absolute_ceiling_default
    if c.ceiling_rule == "gain":  # amdsim's extension (docs/model.md 12)
        return min(baseline + c.baseline_ceiling_gain, absolute)
    return min(c.baseline_ceiling_factor * baseline, absolute)


def measure(true_va: float, noise_std: float, z: float) -> int:
    """Measured VA: clip(round-half-even(true + noise * z), 0, 100) (sections 2 and 4)."""
    return min(100, max(0, round(true_va + noise_std * z)))


# --- section 3.1: death -----------------------------------------------------------------------
def death_probability(parameters, sex: str, age: float, population_type: str) -> float:
    """Fortnightly probability of death at `age` (years, continuous) for `sex`."""
    table = getattr(parameters.mortality.mortality_rates, sex)
    ages = sorted(table)
    a = min(ages[-1], max(ages[0], math.floor(age)))
    q = table[a]
    hr = parameters.mortality.hazard_ratios.primary
    demographics = parameters.demographics
    adj = adjustment(demographics, population_type)
    multiplier = adj.mortality_risk_multiplier if adj is not None else 1.0
    survival = 1.0
    bias = demographics.survival_bias_factors
    if bias:
        label = band_of(bias, a)
        lo, hi = band_bounds(label)
        if lo <= a < hi:
            survival = 1 + (bias[label] - 1) * (hr - 1) / hr
    if q >= 1.0:
        return 1.0
    rate = -math.log(1 - q) * hr * multiplier * survival
    return 1 - math.exp(-rate * FORTNIGHT / DAYS_PER_YEAR)


# --- section 3.2: transitions -----------------------------------------------------------------
def transition_effect(parameters, d: int | None, responder: bool) -> float:
    """e(d): the last injection's effect on transitions, d days after it (None: never)."""
    if d is None:
        return 0.0
    decay = parameters.treatment_effect.treatment_decay
    if d <= decay.full_effect_duration_days:
        e = 1.0
    else:
        halvings = (d - decay.full_effect_duration_days) / decay.half_life_days
        e = max(decay.minimum_effect, 0.5**halvings)
    if not responder:
        e *= parameters.treatment_effect.treatment_response.non_responder_effect
    return e


def transition_row(parameters, state: int, d: int | None, responder: bool) -> list[float]:
    """P'[state][*]: the fortnightly row with the treatment effect applied, renormalised."""
    e = transition_effect(parameters, d, responder)
    matrix = parameters.disease_transitions.fortnightly_transitions
    row = getattr(matrix, STATES[state])
    multipliers = getattr(parameters.treatment_effect.treatment_multipliers, STATES[state])
    weights = []
    for target in STATES:
        m = getattr(multipliers.multipliers, target)
        weights.append(getattr(row, target) * (1 + e * (m - 1)))
    total = sum(weights)
    return [w / total for w in weights]


# --- section 3.3: vision ----------------------------------------------------------------------
def vision_effect(parameters, d: int | None, responder: bool) -> float:
    """v(d): the piecewise-linear vision effect of the last injection (None: never, 0)."""
    if d is None:
        return 0.0
    c = parameters.vision.treatment_effect_decay
    full, gradual, faster = (
        c.full_effect_duration_days,
        c.gradual_decline_end_days,
        c.faster_decline_end_days,
    )
    if d <= full:
        v = 1.0
    elif d <= gradual:
        v = c.effect_at_gradual_start + (c.effect_at_faster_start - c.effect_at_gradual_start) * (
            d - full
        ) / (gradual - full)
    elif d <= faster:
        v = c.effect_at_faster_start + (c.effect_at_minimal_start - c.effect_at_faster_start) * (
            d - gradual
        ) / (faster - gradual)
    else:
        rate = parameters.vision.misc_parameters.minimal_effect_decay_rate
        v = max(0.0, c.effect_at_minimal_start - rate * (d - faster) / faster)
    if not responder:
        v *= parameters.treatment_effect.treatment_response.non_responder_effect
    return v


def gradual_change(parameters, state: int, v: float) -> tuple[float, float]:
    """(mean, std) of the fortnight's change outside an improvement phase."""
    pair = getattr(parameters.vision.vision_decline_fortnightly, STATES[state])
    u, t = pair.untreated, pair.treated
    return u.mean + v * (t.mean - u.mean), u.std + v * (t.std - u.std)


def improvement_rate(parameters, state: int) -> tuple[float, float]:
    """(mean, std) of the change in an improvement phase; NAIVE uses STABLE's."""
    rates = parameters.vision.vision_improvement.improvement_rate
    r = getattr(rates, STATES[max(state, STABLE)])
    return r.mean, r.std


def improvement_eligible(parameters, state: int, v: float, injections: int, gap: int | None):
    """May a patient not in a phase start one now (section 3.3.1)? `gap`: days between the
    latest injection and the one before (None with fewer than two injections)."""
    imp = parameters.vision.vision_improvement
    if state == NAIVE or v <= parameters.vision.misc_parameters.treatment_effect_threshold:
        return False
    by_count = injections <= imp.max_treatments_for_improvement
    by_gap = gap is not None and gap >= imp.treatment_gap_for_improvement_days
    return by_count or by_gap


def haemorrhage_risk(parameters, state: int, d: int | None) -> float:
    """Fortnightly haemorrhage risk (ACTIVE and HIGHLY_ACTIVE only)."""
    if state not in (ACTIVE, HIGHLY_ACTIVE):
        return 0.0
    h = parameters.vision.hemorrhage_risk
    if d is not None and d <= h.treated_threshold_days:
        risk = h.risk_treated_fortnightly
    elif d is not None and d <= h.medium_gap_threshold_days:
        risk = h.risk_medium_gap_fortnightly
    else:
        risk = h.risk_long_gap_fortnightly
    if state == HIGHLY_ACTIVE:
        risk *= h.highly_active_multiplier
    return min(1.0, risk)
