"""The figures of a target, against an independent per-patient computation and the kernel's own
milestone columns; common random numbers across calls and horizons."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.calibration.figures import _follow_up, evaluate_targets, figure_value, horizon_days
from engine.calibration.targets import Target
from engine.columns import NULL
from engine.model.interface import compile_model
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol

PROTOCOL = (
    Path(__file__).resolve().parents[2]
    / "engine"
    / "protocols"
    / "time_based_uncalibrated_treat_and_extend.yaml"
)
PATIENTS = 3000


def target(figure: str, *, day: int | None = None, window=(None, None), view="locf") -> Target:
    return Target(
        id=f"t_{figure}",
        role="calibration",
        protocol="p",
        figure=figure,  # type: ignore[arg-type]
        view=view,  # type: ignore[arg-type]
        day=day,
        from_day=window[0],
        to_day=window[1],
        value=0.0,
        ci=(-1.0e9, 1.0e9),
        source="test",
    )


@pytest.fixture(scope="module")
def protocol():
    return load_protocol(PROTOCOL)


@pytest.fixture(scope="module")
def outputs(protocol):
    params = RunParameters(n_patients=PATIENTS, years=2.0, seed=7, shard_size=1000)
    return compile_model(protocol).simulate_shards(params, list(range(params.shard_count)))


@pytest.fixture(scope="module")
def people(outputs) -> list[dict]:
    return reference_patients(outputs)


def reference_patients(outputs) -> list[dict]:
    """Per patient, by plain loops over the visit rows: no shared code with figures.py."""
    people = []
    for output in outputs:
        p, v = output.patients, output.visits
        rows: dict[int, list[int]] = {}
        for row, pid in enumerate(v["patient_id"].tolist()):
            rows.setdefault(pid, []).append(row)
        for i, pid in enumerate(p["patient_id"].tolist()):
            enrol = int(p["enrollment_day"][i])
            stop = int(p["discontinuation_day"][i])
            death = int(p["death_day"][i])
            people.append(
                {
                    "baseline": int(p["baseline_vision"][i]),
                    "stop": None if stop == NULL else stop - enrol,
                    "death": None if death == NULL else death - enrol,
                    "visits": [
                        (int(v["day"][r]) - enrol, int(v["vision"][r]), bool(v["injected"][r]))
                        for r in rows.get(pid, [])
                    ],
                }
            )
    return people


def reference_value(people: list[dict], t: Target) -> float:
    def treated(person: dict, day: int) -> bool:
        return all(x is None or x > day for x in (person["stop"], person["death"]))

    if t.figure == "injections":
        counts = [
            sum(1 for d, _, shot in person["visits"] if shot and t.from_day <= d < t.to_day)
            for person in people
            if t.view == "locf"
            or (t.view == "observed" and treated(person, t.to_day - 1))
            or (t.view == "entered" and treated(person, t.from_day))
        ]
        return sum(counts) / len(counts)
    if t.figure == "discontinued":
        return (
            100.0 * sum(p["stop"] is not None and p["stop"] < t.day for p in people) / len(people)
        )
    changes = []
    for person in people:
        if t.view == "observed" and not treated(person, t.day):
            continue
        seen = [vision for d, vision, _ in person["visits"] if d <= t.day]
        changes.append(seen[-1] - person["baseline"])
    n = len(changes)
    mean = sum(changes) / n
    if t.figure == "va_change":
        return mean
    if t.figure == "va_change_sd":
        return math.sqrt(sum((c - mean) ** 2 for c in changes) / (n - 1))
    rule = {
        "gained_15": lambda c: c >= 15,
        "lost_lt_15": lambda c: c > -15,
        "lost_15": lambda c: c <= -15,
    }[t.figure]
    return 100.0 * sum(map(rule, changes)) / n


CASES = [
    target("injections", window=(0, 364)),
    target("injections", window=(364, 672)),
    target("injections", window=(90, 400), view="observed"),
    target("injections", window=(364, 672), view="entered"),
    *(
        target(f, day=d, view=view)
        for f in ("va_change", "va_change_sd", "gained_15", "lost_lt_15", "lost_15")
        for d in (0, 100, 364, 672)
        for view in ("locf", "observed")
    ),
    target("discontinued", day=364),
    target("discontinued", day=700),
]


@pytest.mark.parametrize("case", CASES, ids=lambda t: f"{t.figure}-{t.day}-{t.from_day}-{t.view}")
def test_each_figure_equals_an_independent_per_patient_computation(
    outputs, people, case: Target
) -> None:
    estimate = figure_value(_follow_up(outputs), case)
    assert estimate.value == pytest.approx(reference_value(people, case), rel=1e-12, abs=1e-12)
    assert estimate.se > 0 or case.day == 0


def test_va_change_at_month_12_and_year_1_injections_match_the_kernels_own_columns(outputs) -> None:
    cohort = _follow_up(outputs)
    patients = {
        name: np.concatenate([o.patients[name] for o in outputs])
        for name in ("va_m12", "baseline_vision", "injections_y1", "treated_m12")
    }
    month_12 = 365  # floor(12 x 30.4375): the outcome table's month 12
    locf = figure_value(cohort, target("va_change", day=month_12))
    assert locf.value == pytest.approx(
        np.mean(patients["va_m12"].astype(float) - patients["baseline_vision"]), abs=1e-12
    )
    observed = figure_value(cohort, target("va_change", day=month_12, view="observed"))
    assert observed.n == int(patients["treated_m12"].sum())
    year_1 = figure_value(cohort, target("injections", window=(0, 364)))
    assert year_1.value == pytest.approx(patients["injections_y1"].mean(), abs=1e-12)


def test_standard_errors_are_the_textbook_ones(outputs) -> None:
    cohort = _follow_up(outputs)
    mean = figure_value(cohort, target("va_change", day=364))
    sd = figure_value(cohort, target("va_change_sd", day=364))
    share = figure_value(cohort, target("gained_15", day=364))
    n = cohort.patients
    assert mean.se == pytest.approx(sd.value / math.sqrt(n), rel=1e-12)
    assert sd.se == pytest.approx(sd.value / math.sqrt(2 * (n - 1)), rel=1e-12)
    p = share.value / 100
    assert share.se == pytest.approx(100 * math.sqrt(p * (1 - p) / n), rel=1e-12)


def test_common_random_numbers_same_values_whatever_else_is_simulated(protocol) -> None:
    year_1 = [target("va_change", day=364), target("injections", window=(0, 364))]
    alone = evaluate_targets(year_1, {"p": protocol}, 2000, 3)
    with_later = evaluate_targets(
        [*year_1, target("va_change", day=1000)], {"p": protocol}, 2000, 3
    )
    assert alone == with_later[:2]
    other_seed = evaluate_targets(year_1, {"p": protocol}, 2000, 4)
    assert other_seed != alone


def test_horizon_is_one_past_the_last_day_read() -> None:
    assert horizon_days([target("va_change", day=364)]) == 365
    assert horizon_days([target("injections", window=(364, 672)), target("lost_15", day=10)]) == 672
