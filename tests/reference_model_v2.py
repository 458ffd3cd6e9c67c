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

from tests.reference_model_v2_rules import (
    ACTIVE,
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    FORTNIGHT,
    HIGHLY_ACTIVE,
    MONTHS,
    NAIVE,
    REASONS,
    SEXES,
    STABLE,
    STATES,
    adjustment,
    age_bands,
    band_bounds,
    band_of,
    baseline_cdf_table,
    baseline_density,
    ceiling,
    death_probability,
    female_probability,
    gradual_change,
    haemorrhage_risk,
    improvement_eligible,
    improvement_rate,
    measure,
    sample_baseline,
    transition_effect,
    transition_row,
    vision_effect,
)

__all__ = [
    "ACTIVE",
    "DAYS_PER_MONTH",
    "DAYS_PER_YEAR",
    "FORTNIGHT",
    "HIGHLY_ACTIVE",
    "MONTHS",
    "NAIVE",
    "REASONS",
    "SEXES",
    "STABLE",
    "STATES",
    "Discontinuation",
    "Patient",
    "Regimen",
    "Visit",
    "adjustment",
    "age_bands",
    "attrition_probability",
    "band_bounds",
    "band_of",
    "baseline_cdf_table",
    "baseline_density",
    "ceiling",
    "death_probability",
    "enrol",
    "female_probability",
    "gradual_change",
    "haemorrhage_risk",
    "improvement_eligible",
    "improvement_rate",
    "measure",
    "sample_baseline",
    "simulate_patient",
    "transition_effect",
    "transition_row",
    "vision_effect",
]


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

    def decide(
        self, t: int, state: int, since_injection: int | None, lost_letters: int = 0
    ) -> tuple[bool, int]:
        """(inject?, days to the next visit) at a visit on day `t` seeing `state`, having lost
        `lost_letters` of measured VA since the previous visit."""
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
            threshold = rules.shorten_on_vision_loss_letters  # amdsim's extension, section 5
            if threshold is not None and state in (NAIVE, STABLE) and lost_letters >= threshold:
                state = ACTIVE  # for the interval only: the injection decision is made
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
    gain_factor: float = 1.0

    @property
    def injections(self) -> int:
        """Injections given."""
        return sum(v.injected for v in self.visits)

    def va_at_month(self, month: int, horizon_days: int) -> int | None:
        """Last measured VA at or before month `month` (LOCF); None beyond the horizon."""
        day = math.floor(month * DAYS_PER_MONTH)
        if day > horizon_days:
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
    patient = Patient(age, sex, responder, baseline, measured)
    cv = parameters.vision.vision_improvement.patient_gain_cv
    if cv > 0:  # docs/model.md 12: lognormal with mean 1 and this coefficient of variation
        sigma = math.sqrt(math.log(1.0 + cv * cv))
        patient.gain_factor = math.exp(rng.gauss(-0.5 * sigma * sigma, sigma))
    return patient


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
                change = max(0.0, mean + std * rng.gauss(0.0, 1.0)) * patient.gain_factor
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
            lost = patient.visits[-2].vision - measured if len(patient.visits) > 1 else 0
            visit.injected, interval = regimen.decide(t, state, since, lost)
            if visit.injected:
                injection_days.append(t)
            next_visit = t + interval
        k += 1
    patient.final_true, patient.final_state = va, state
    for before, after in zip(patient.visits, patient.visits[1:], strict=False):
        before.interval = after.day - before.day
    return patient
