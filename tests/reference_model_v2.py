"""Independent per-patient reference of the time-based model (docs/model.md), in plain Python.

Written from docs/model.md only, never from the kernel (engine/model/v2/), so that agreement
between the two is evidence that both follow the page. It uses `random.Random` and `math`, one
patient at a time, and is slow on purpose: clarity over speed. The small pure functions (one per
rule) are the expectations the statistical tests compare the kernel with. Enrolment is day 0:
"day" and "days since enrolment" are the same number here.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

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


# --- section 5: protocol types ----------------------------------------------------------------
class Regimen:
    """The treatment decision and next interval at each visit (section 5), one patient."""

    def __init__(self, protocol) -> None:
        self.protocol = protocol
        self.loading_left = protocol.loading_dose_injections
        self.interval = (
            protocol.loading_dose_interval_days if self.loading_left else protocol.min_interval_days
        )

    def rules_at(self, t: int):
        """The protocol, or the latest phase that has started by day `t`."""
        current = self.protocol
        for phase in sorted(self.protocol.phases, key=lambda p: p.start_day):
            if phase.start_day <= t:
                current = phase
        return current

    def decide(self, t: int, state: int, since_injection: int | None) -> tuple[bool, int]:
        """(inject?, days to the next visit) at a visit on day `t` seeing `state`."""
        rules = self.rules_at(t)
        inject = None
        if self.loading_left > 0:
            self.loading_left -= 1
            inject = True
            if self.loading_left > 0:
                return True, self.protocol.loading_dose_interval_days
        kind = rules.protocol_type
        if kind == "treat_and_extend":
            if inject is None:
                when_active = self.protocol.injection_rule == "when_active"
                inject = state != STABLE if when_active else True
            if state == STABLE:
                self.interval += rules.extension_days
            elif state == ACTIVE:
                self.interval -= rules.shortening_days
            elif state == HIGHLY_ACTIVE:
                self.interval = rules.min_interval_days
            self.interval = min(
                rules.max_interval_days, max(rules.min_interval_days, self.interval)
            )
            return inject, self.interval
        if kind == "prn":
            if inject is None:
                cap = rules.max_days_between_injections
                due = cap is not None and (since_injection is None or since_injection >= cap)
                inject = state in (ACTIVE, HIGHLY_ACTIVE) or due
            return inject, rules.min_interval_days
        return True, rules.max_interval_days  # treat_and_treat, fixed, fixed_interval


# --- section 4: discontinuation at visits -----------------------------------------------------
class Discontinuation:
    """Counters and conditions of the visit-time discontinuation categories, one patient."""

    def __init__(self, parameters) -> None:
        self.categories = parameters.discontinuation.discontinuation_parameters
        priority = parameters.discontinuation.discontinuation_priority
        self.order = [priority[rank] for rank in sorted(priority)]
        self.below = self.loss = self.stable = self.no_gain = 0

    def update(self, measured: int, baseline: int, state: int) -> None:
        """Count this visit (every visit, the enrolment visit included, before the checks)."""
        c = self.categories
        if c.poor_vision is not None:
            self.below = self.below + 1 if measured < c.poor_vision.vision_threshold else 0
        if c.deterioration is not None:
            lost = measured - baseline <= c.deterioration.vision_loss_threshold
            self.loss = self.loss + 1 if lost else 0
        self.stable = self.stable + 1 if state == STABLE else 0
        self.no_gain = self.no_gain + 1 if measured <= baseline else 0

    def candidates(self, t: int, injections: int) -> list[tuple[str, float]]:
        """(reason, probability) of every category whose condition holds, in priority order."""
        c, out = self.categories, []
        for category in self.order:
            if category == "poor_vision" and c.poor_vision is not None:
                if self.below > c.poor_vision.grace_period_visits:
                    out.append(("poor_vision", c.poor_vision.discontinuation_probability))
            elif category == "deterioration" and c.deterioration is not None:
                if self.loss >= c.deterioration.visits_with_loss_threshold:
                    out.append(("deterioration", c.deterioration.discontinuation_probability))
            elif category == "treatment_decision" and c.treatment_decision is not None:
                td = c.treatment_decision
                if injections >= td.min_treatments_before_decision:
                    if self.stable >= td.stable_disease_visits_threshold:
                        out.append(("stable_disease", td.stable_discontinuation_probability))
                    if self.no_gain >= td.no_improvement_visits_threshold:
                        out.append(("no_improvement", td.no_improvement_probability))
            elif category == "attrition" and c.attrition is not None:
                out.append(("attrition", attrition_probability(c.attrition, t, injections)))
            elif category == "administrative" and c.administrative is not None:
                out.append(("administrative", c.administrative.probability_per_visit))
        return out


def attrition_probability(attrition, t: int, injections: int) -> float:
    """Attrition at a visit on day `t` after `injections` injections (section 4)."""
    months = t / DAYS_PER_MONTH
    ta, ba = attrition.time_adjustment, attrition.injection_burden_adjustment
    time = ta.months_0_12 if months < 12 else ta.months_12_24 if months < 24 else ta.months_24_plus
    per_year = injections / max(1.0, t / DAYS_PER_YEAR)
    burden = (
        ba.injections_per_year_0_6
        if per_year < 6
        else ba.injections_per_year_6_12
        if per_year < 12
        else ba.injections_per_year_12_plus
    )
    return min(1.0, attrition.base_probability_per_visit * time * burden)


# --- one patient ------------------------------------------------------------------------------
@dataclass
class Visit:
    """One visit: day, measured VA, injected, state seen, days to the next visit (None: last)."""

    day: int
    vision: int
    injected: bool
    state: int
    interval: int | None = None


@dataclass
class Patient:
    """One simulated patient: enrolment draws, visits and outcome (enrolment on day 0)."""

    age: float
    sex: str
    responder: bool
    baseline_true: float
    baseline_measured: int
    visits: list[Visit] = field(default_factory=list)
    death_day: int | None = None
    discontinuation_day: int | None = None
    discontinuation_reason: str | None = None
    final_true: float = 0.0
    final_state: int = NAIVE
    haemorrhages: int = 0
    phases: int = 0

    @property
    def injections(self) -> int:
        """Injections given."""
        return sum(v.injected for v in self.visits)

    def va_at_month(self, month: int, horizon_days: int) -> int | None:
        """Last measured VA at or before month `month` (LOCF); None beyond the horizon."""
        day = month * DAYS_PER_MONTH
        if day >= horizon_days:
            return None
        seen = [v.vision for v in self.visits if v.day <= day]
        return seen[-1] if seen else None


def enrol(protocol, rng: random.Random) -> Patient:
    """Age, sex, baseline and responder status of a new patient (section 2)."""
    parameters = protocol.parameters
    demographics = parameters.demographics
    population = protocol.population_type
    bands = age_bands(demographics)
    u, cum = rng.random(), 0.0
    _, lo, hi, _ = bands[-1]
    for band in bands:
        cum += band[3]
        if u < cum:
            _, lo, hi, _ = band
            break
    age = lo + rng.random() * (hi - lo)
    adj = adjustment(demographics, population)
    if adj is not None:
        age += adj.age_shift
    sex = "female" if rng.random() < female_probability(demographics, age, population) else "male"
    baseline = sample_baseline(protocol.baseline_vision_distribution, rng)
    noise = parameters.vision.vision_measurement.measurement_noise_std
    measured = measure(baseline, noise, rng.gauss(0.0, 1.0))
    response = parameters.treatment_effect.treatment_response
    responder = rng.random() < response.responder_probability
    return Patient(age, sex, responder, baseline, measured)


def simulate_patient(protocol, horizon_days: int, seed: int) -> Patient:
    """Simulate one patient enrolled on day 0 until death or `horizon_days` (exclusive)."""
    rng = random.Random(seed)
    parameters = protocol.parameters
    vision = parameters.vision
    noise = vision.vision_measurement.measurement_noise_std
    imp = vision.vision_improvement
    patient = enrol(protocol, rng)
    top = ceiling(vision, patient.baseline_true)
    state, va = NAIVE, patient.baseline_true
    regimen, stops = Regimen(protocol), Discontinuation(parameters)
    injection_days: list[int] = []
    phase_left = 0
    next_visit: int | None = 0
    k = 0
    while FORTNIGHT * k < horizon_days:
        start = FORTNIGHT * k
        if k >= 1:
            age = patient.age + start / DAYS_PER_YEAR
            p = death_probability(parameters, patient.sex, age, protocol.population_type)
            if rng.random() < p:
                patient.death_day = start
                if patient.discontinuation_reason is None:
                    patient.discontinuation_day, patient.discontinuation_reason = start, "death"
                break
            d = start - injection_days[-1] if injection_days else None
            row = transition_row(parameters, state, d, patient.responder)
            u, cum, new = rng.random(), 0.0, HIGHLY_ACTIVE
            for j, pj in enumerate(row):
                cum += pj
                if u < cum:
                    new = j
                    break
            state = new
            v = vision_effect(parameters, d, patient.responder)
            if phase_left == 0:
                gap = injection_days[-1] - injection_days[-2] if len(injection_days) > 1 else None
                if improvement_eligible(parameters, state, v, len(injection_days), gap):
                    chance = getattr(imp.improvement_probability, STATES[state])
                    if rng.random() < chance:
                        phase_left = imp.max_improvement_duration_fortnights
                        patient.phases += 1
            if phase_left > 0:
                mean, std = improvement_rate(parameters, state)
                change = max(0.0, mean + std * rng.gauss(0.0, 1.0))
                phase_left -= 1
            else:
                mean, std = gradual_change(parameters, state, v)
                change = mean + std * rng.gauss(0.0, 1.0)
            loss = 0.0
            if rng.random() < haemorrhage_risk(parameters, state, d):
                h = vision.hemorrhage_risk
                loss = h.hemorrhage_loss_min + rng.random() * (
                    h.hemorrhage_loss_max - h.hemorrhage_loss_min
                )
                patient.haemorrhages += 1
            va = min(top, max(0.0, va + change - loss))
        while next_visit is not None and next_visit < min(start + FORTNIGHT, horizon_days):
            t = next_visit
            # Reading: the enrolment visit's measurement is the measured baseline (one
            # measurement at enrolment; docs/model.md does not say whether it is a second one).
            first = not patient.visits
            measured = (
                patient.baseline_measured if first else measure(va, noise, rng.gauss(0.0, 1.0))
            )
            stops.update(measured, patient.baseline_measured, state)
            visit = Visit(t, measured, False, state)
            patient.visits.append(visit)
            if not first:
                for reason, probability in stops.candidates(t, len(injection_days)):
                    if rng.random() < probability:
                        patient.discontinuation_day, patient.discontinuation_reason = t, reason
                        next_visit = None
                        break
                if next_visit is None:
                    break
            since = t - injection_days[-1] if injection_days else None
            visit.injected, interval = regimen.decide(t, state, since)
            if visit.injected:
                injection_days.append(t)
            next_visit = t + interval
        k += 1
    patient.final_true, patient.final_state = va, state
    for before, after in zip(patient.visits, patient.visits[1:], strict=False):
        before.interval = after.day - before.day
    return patient
