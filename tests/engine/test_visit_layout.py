"""The current visit-based layout (docs/model-v1-layout.md): the origin's newer files load
unchanged and run; each distribution type, protocol type, loading source and rule block does
what the document says; everything it refuses is refused with its field path.

Statistical tests: alpha 1e-5 each (two-sided z bound 4.42 standard errors), n = 100,000
draws, so each detects a 0.5-letter error of a mean (>= 7 standard errors here) or a 0.01
error of a share with power above 0.999.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from engine import run_simulation
from engine.errors import ProtocolError
from engine.model.protocol_loader import (
    UnknownProtocolKeysWarning,
    load_protocol,
    load_protocol_text,
    validate_protocol,
)
from engine.model.states import VISIT_LAYOUT_REASON_NAMES
from engine.model.v1.baseline import compile_baseline, draw_baseline
from engine.model.v1.protocol import Protocol, newer_layout_ranges, protocol_ranges
from tests.engine.test_protocol_fuzz import FUZZ, _paths, check_loader_contract, set_ranged_numbers
from tests.helpers import concat_columns, constant_matrix, default_protocol_dict, simulate

# ../shared beside the repository (a worktree under /work/wt/ looks one level further up).
_CANDIDATES = [Path(__file__).resolve().parents[n] / ".." / "shared" for n in (2, 3)]
REFERENCE = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0]) / "reference-formats"
VISIT_FILES = sorted((REFERENCE / "visit-based").glob("*.yaml"))
POPULATION_FILES = sorted((REFERENCE / "populations").glob("*.yaml"))
Z = 4.42  # two-sided normal quantile at alpha 1e-5
N = 100_000


def _load(data: dict, source: str = "layout.yaml"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownProtocolKeysWarning)
        return load_protocol_text(yaml.safe_dump(data, sort_keys=False), source=source)


def _newer(**changes) -> dict:
    """The default protocol in the newer layout: a distribution, rule blocks, no flat rules."""
    data = copy.deepcopy(default_protocol_dict())
    data.pop("loading_doses")
    data.pop("baseline_vision")
    data["baseline_vision_distribution"] = {"mean": 70, "std": 10, "min": 20, "max": 90}
    data["discontinuation_rules"] = {}
    data.update(changes)
    return data


def _refused(data: dict, path: str, fragment: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        _load(data, "bad.yaml")
    assert caught.value.path == path, str(caught.value)
    assert fragment in caught.value.problem, str(caught.value)
    assert "\n" not in str(caught.value)


# --- the origin's files ------------------------------------------------------------------------
@pytest.mark.skipif(not VISIT_FILES, reason="../shared/reference-formats is absent")
@pytest.mark.parametrize("path", VISIT_FILES, ids=[p.name for p in VISIT_FILES])
def test_every_visit_based_reference_file_loads_unchanged_and_runs(path):
    raw = yaml.safe_load(path.read_text())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        protocol = load_protocol(path)
    messages = " ".join(str(w.message) for w in caught)
    read = set(protocol.__struct_fields__)
    for key in raw:
        if key not in read:  # descriptive blocks: named as not used
            assert f"$.{key}" in messages, key
    for name in ("non_compliance", "adverse_event"):
        if name in raw["discontinuation_rules"]:
            assert f"$.discontinuation_rules.{name}" in messages
    results = run_simulation(protocol, n_patients=2000, years=2, seed=5, in_memory=True)
    assert results.patient_count == 2000
    stats = results.summary_stats()
    assert stats.injections >= 2000
    assert set(stats.discontinuation_rate_by_reason) <= set(VISIT_LAYOUT_REASON_NAMES)


@pytest.mark.skipif(not VISIT_FILES, reason="../shared/reference-formats is absent")
def test_reference_loading_doses_and_types_are_read():
    by_name = {p.name: p for p in VISIT_FILES}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tt = load_protocol(by_name["eylea_2mg_treat_and_treat.yaml"])
        te = load_protocol(by_name["aflibercept_2mg_treat_and_extend.yaml"])
    assert (tt.protocol_type, tt.loading_doses, tt.loading_dose_interval_days) == ("fixed", 3, 28)
    assert (te.protocol_type, te.loading_doses, te.loading_dose_interval_days) == (
        "treat_and_extend",
        3,
        28,
    )
    _, outputs = simulate(tt, 50, years=1, seed=2)
    visits = concat_columns(outputs, "visits")
    first = visits["patient_id"] == visits["patient_id"][0]
    days = visits["day"][first]
    assert list(np.diff(days)[:4]) == [28, 28, 63, 63][: len(days) - 1]
    assert visits["injected"].all()


# --- baseline distributions --------------------------------------------------------------------
def _draws(distribution: dict) -> np.ndarray:
    protocol = _load(_newer(baseline_vision_distribution=distribution))
    return draw_baseline(compile_baseline(protocol), np.random.default_rng(11), N)


def _rounded_beta_moments(alpha, beta, low, high, threshold=None, reduction=0.0):
    """Mean of the rounded letters and P(letters > threshold), by integration on a fine grid
    (independent of the kernel's tabulated inverse)."""
    x = (np.arange(2_000_000) + 0.5) / 2_000_000
    density = x ** (alpha - 1) * (1 - x) ** (beta - 1)
    letters = low + (high - low) * x
    if threshold is not None:
        density = np.where(letters > threshold, density * (1 - reduction), density)
    density /= density.sum()
    rounded = np.clip(np.rint(letters), low, high)
    share = float(density[rounded > threshold].sum()) if threshold is not None else None
    return float((density * rounded).sum()), share


def test_a_normal_distribution_without_type_gives_the_rows_of_baseline_vision():
    older = copy.deepcopy(default_protocol_dict())
    newer = copy.deepcopy(older)
    newer["baseline_vision_distribution"] = newer.pop("baseline_vision")
    newer["baseline_vision_distribution"]["type"] = "normal"
    for data in (newer, {**newer, "baseline_vision_distribution": older["baseline_vision"]}):
        a = concat_columns(simulate(_load(older), 300, years=2)[1], "visits")
        b = concat_columns(simulate(_load(data), 300, years=2)[1], "visits")
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_uniform_gives_every_whole_letter_in_range_with_the_right_mean():
    values = _draws({"type": "uniform", "min": 20, "max": 90})
    assert set(np.unique(values)) == set(range(20, 91))
    sd = math.sqrt((71**2 - 1) / 12)
    assert abs(values.mean() - 55.0) < Z * sd / math.sqrt(N)


def test_beta_has_the_scaled_beta_mean():
    values = _draws({"type": "beta", "alpha": 3.5, "beta": 2.0, "min": 5, "max": 98})
    expected, _ = _rounded_beta_moments(3.5, 2.0, 5, 98)
    assert values.min() >= 5 and values.max() <= 98
    assert abs(values.mean() - expected) < Z * values.std() / math.sqrt(N)


def test_beta_with_threshold_reduces_the_share_above_the_threshold():
    spec = {"type": "beta_with_threshold", "alpha": 3.5, "beta": 2.0, "min": 5, "max": 98}
    values = _draws({**spec, "threshold": 70, "threshold_reduction": 0.6})
    expected_mean, share = _rounded_beta_moments(3.5, 2.0, 5, 98, 70, 0.6)
    assert abs(values.mean() - expected_mean) < Z * values.std() / math.sqrt(N)
    observed = float((values > 70).mean())
    assert abs(observed - share) < Z * math.sqrt(share * (1 - share) / N)
    plain, _ = _rounded_beta_moments(3.5, 2.0, 5, 98)
    assert expected_mean < plain - 3  # the reduction matters at this power


@pytest.mark.skipif(not POPULATION_FILES, reason="../shared/reference-formats is absent")
@pytest.mark.parametrize("path", POPULATION_FILES, ids=[p.name for p in POPULATION_FILES])
def test_population_files_load_as_distributions(path):
    distribution = yaml.safe_load(path.read_text())
    values = _draws(distribution)
    assert distribution["min"] <= values.min() and values.max() <= distribution["max"]


# --- protocol types and loading ----------------------------------------------------------------
def _days_of_first_patient(data: dict, years: float = 2.0) -> list[int]:
    visits = concat_columns(simulate(_load(data), 5, years=years)[1], "visits")
    return visits["day"][visits["patient_id"] == 0].tolist(), visits


@pytest.mark.parametrize("kind", ["treat_and_treat", "fixed_interval", "fixed"])
def test_fixed_types_load_every_28_days_then_every_max_interval(kind):
    data = _newer(
        protocol_type=kind,
        min_interval_days=56,
        max_interval_days=63,
        loading_dose_injections=3,
        loading_dose_interval_days=28,
    )
    days, visits = _days_of_first_patient(data)
    gaps = np.diff(days).tolist()
    assert gaps[:2] == [28, 28] and set(gaps[2:]) == {63}
    assert visits["injected"].all()


def test_nested_loading_phase_equals_the_top_level_keys():
    top = _newer(loading_dose_injections=3, loading_dose_interval_days=21)
    nested = _newer(
        treat_and_extend_parameters={"loading_phase": {"number_of_doses": 3, "interval_days": 21}}
    )
    a = concat_columns(simulate(_load(top), 200, years=2)[1], "visits")
    b = concat_columns(simulate(_load(nested), 200, years=2)[1], "visits")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    first_three = a["visit"] < 3
    assert a["injected"][first_three].all()
    assert set(np.diff(a["day"])[a["visit"][:-1] < 2].tolist()) == {21}


def test_treat_and_treat_loading_windows_use_their_earliest_day():
    data = _newer(
        protocol_type="treat_and_treat",
        min_interval_days=56,
        max_interval_days=63,
        treat_and_treat_parameters={
            "loading_phase": {
                "number_of_doses": 3,
                "dose_1_to_2_days": [30, 35],
                "dose_2_to_3_days": [30, 35],
            },
            "maintenance_phase": {"interval_days": [56, 63], "starts_after_dose": 3},
        },
    )
    days, _ = _days_of_first_patient(data)
    assert np.diff(days).tolist()[:3] == [30, 30, 63]


# --- rule blocks -------------------------------------------------------------------------------
def _deterministic(target: str, change: float, baseline: float, **changes) -> dict:
    """Every visit goes to `target`; every vision change is exactly `change`."""
    scenarios = {
        f"{s}_{t}": {"mean": change, "std": 0.0}
        for s in ("naive", "stable", "active", "highly_active")
        for t in ("treated", "untreated")
    }
    data = _newer(
        disease_transitions=constant_matrix(target),
        treatment_effect_on_transitions={},
        vision_change_model=scenarios,
        baseline_vision_distribution={"mean": baseline, "std": 0.0, "min": 0, "max": 100},
    )
    data.update(changes)
    return data


def _stops(data: dict, years: float = 3.0):
    """(discontinuation visit, day, reason name) of patient 0, or None."""
    _, outputs = simulate(_load(data), 3, years=years)
    patients = concat_columns(outputs, "patients")
    if not patients["discontinued"][0]:
        return None
    visits = concat_columns(outputs, "visits")
    return (
        int(visits["visit"][visits["patient_id"] == 0][-1]),
        int(patients["discontinuation_day"][0]),
        VISIT_LAYOUT_REASON_NAMES[patients["discontinuation_reason"][0]],
    )


def _block(criteria: dict, reason: str, probability: float = 1.0) -> dict:
    return {"criteria": criteria, "probability": probability, "reason": reason}


@pytest.mark.parametrize(("weeks", "expected"), [(8, (3, 126)), (9, (4, 196))])
def test_stable_extended_interval_fires_after_n_stable_visits_at_a_long_enough_interval(
    weeks, expected
):
    rule = _block(
        {"consecutive_stable_visits": 3, "minimum_interval_weeks": weeks}, "stable_disease"
    )
    data = _deterministic("STABLE", 0, 60, discontinuation_rules={"stable_extended_interval": rule})
    # intervals 28, 42, 56, 70 (extension 14): visits on days 28, 70, 126, 196
    assert _stops(data) == (*expected, "stable_disease")
    active = _deterministic(
        "ACTIVE", 0, 60, discontinuation_rules={"stable_extended_interval": rule}
    )
    assert _stops(active) is None


def test_stable_extended_interval_needs_vision_within_its_spread():
    rule = _block(
        {"consecutive_stable_visits": 3, "minimum_interval_weeks": 0, "vision_stable_threshold": 2},
        "stable_disease",
    )
    rules = {"stable_extended_interval": rule}
    assert _stops(_deterministic("STABLE", 1, 60, discontinuation_rules=rules))[0] == 3
    assert _stops(_deterministic("STABLE", 2, 50, discontinuation_rules=rules)) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("poor_response_25_letters", "poor_response"),
        ("critical_vision_15_letters", "severe_vision_loss"),
    ],
)
def test_vision_below_rules_fire_on_the_nth_consecutive_visit_below(name, reason):
    rule = _block({"va_less_than": 25, "consecutive_visits": 2}, reason)
    # VA 35 at enrolment, then 30, 25, 20 (1st below), 15 (2nd below)
    data = _deterministic("ACTIVE", -5, 40, discontinuation_rules={name: rule})
    assert _stops(data)[0::2] == (4, reason)
    never = _deterministic("ACTIVE", 0, 40, discontinuation_rules={name: rule})
    assert _stops(never) is None


def test_treatment_failure_needs_the_loss_and_the_visit_count():
    def rule(visits):
        return {
            "treatment_failure": _block(
                {"vision_loss_from_baseline": 30, "visits_on_treatment": visits},
                "inadequate_response",
            )
        }

    # baseline 60; VA 55 at enrolment, then 50, 45, 40, 35, 30 (loss 30 at visit 5)
    assert _stops(_deterministic("ACTIVE", -5, 60, discontinuation_rules=rule(0)))[0::2] == (
        5,
        "inadequate_response",
    )
    assert _stops(_deterministic("ACTIVE", -5, 60, discontinuation_rules=rule(7)))[0] == 7
    assert _stops(_deterministic("ACTIVE", -1, 60, discontinuation_rules=rule(0)), 1) is None


def test_annual_rules_are_checked_at_the_first_visit_after_each_year():
    fixed = {"protocol_type": "fixed", "min_interval_days": 56, "max_interval_days": 56}
    review = {"stable_at_annual_review": _block({"months_on_treatment": 12}, "stable_disease")}
    # visits every 56 days: the first on or after day 365 is day 392
    data = _deterministic("STABLE", 0, 60, discontinuation_rules=review, **fixed)
    assert _stops(data)[1:] == (392, "stable_disease")
    assert _stops(_deterministic("ACTIVE", 0, 60, discontinuation_rules=review, **fixed)) is None
    failure = {
        "treatment_failure": _block(
            {"vision_loss_from_baseline": 5, "assessed_at": "annual_review"}, "inadequate_response"
        )
    }
    data = _deterministic("ACTIVE", -5, 60, discontinuation_rules=failure, **fixed)
    assert _stops(data)[1:] == (392, "inadequate_response")


def test_futility_needs_low_vision_without_improvement():
    rules = {
        "futility": _block({"vision_below_threshold": 22, "no_improvement_visits": 4}, "futility")
    }
    # VA 35, 30, 25, 20 (below 22 but 3 visits without improvement), 15 (4): visit 4
    assert _stops(_deterministic("ACTIVE", -5, 40, discontinuation_rules=rules))[0::2] == (
        4,
        "futility",
    )
    assert _stops(_deterministic("ACTIVE", 1, 10, discontinuation_rules=rules)) is None


def test_frequent_injections_after_months_when_intervals_never_grew():
    def rules(attempts):
        return {
            "frequent_injections": _block(
                {"max_achieved_interval_weeks": 4, "attempts": attempts, "months_on_treatment": 12},
                "treatment_burden",
            )
        }

    # HIGHLY_ACTIVE at every visit: intervals stay at 28; 12 months = 366 days -> day 392
    data = _deterministic("HIGHLY_ACTIVE", 0, 60, discontinuation_rules=rules(0))
    assert _stops(data)[1:] == (392, "treatment_burden")
    stable = _deterministic("STABLE", 0, 60, discontinuation_rules=rules(0))
    assert _stops(stable) is None  # intervals grew beyond 4 weeks
    assert _stops(_deterministic("HIGHLY_ACTIVE", 0, 60, discontinuation_rules=rules(1))) is None


def test_blocks_are_checked_in_file_order_and_never_firing_ones_never_fire():
    stable = _block({"consecutive_stable_visits": 1}, "stable_disease")
    below = _block({"va_less_than": 100, "consecutive_visits": 1}, "poor_response")
    first = {"stable_extended_interval": stable, "poor_response_25_letters": below}
    second = {"poor_response_25_letters": below, "stable_extended_interval": stable}
    assert (
        _stops(_deterministic("STABLE", 0, 60, discontinuation_rules=first))[2] == "stable_disease"
    )
    assert (
        _stops(_deterministic("STABLE", 0, 60, discontinuation_rules=second))[2] == "poor_response"
    )
    silent = {
        "non_compliance": _block({"missed_consecutive_visits": 0}, "lost_to_follow_up"),
        "adverse_event": _block({"severe_adverse_event": True}, "adverse_event"),
    }
    data = _deterministic("ACTIVE", -5, 60, discontinuation_rules=silent)
    with pytest.warns(UnknownProtocolKeysWarning, match=r"non_compliance.*adverse_event"):
        protocol = load_protocol_text(yaml.safe_dump(data, sort_keys=False), source="x.yaml")
    outputs = simulate(protocol, 200, years=2)[1]
    assert not concat_columns(outputs, "patients")["discontinued"].any()


def test_a_block_probability_is_the_share_stopping_at_the_first_eligible_visit():
    rules = {
        "stable_extended_interval": _block({"consecutive_stable_visits": 1}, "stable_disease", 0.3)
    }
    protocol = _load(_deterministic("STABLE", 0, 60, discontinuation_rules=rules))
    patients = concat_columns(simulate(protocol, N // 4, years=0.1)[1], "patients")
    n = len(patients["discontinued"])
    share = float(patients["discontinued"].mean())  # one eligible visit (day 28) before 36.5
    assert abs(share - 0.3) < Z * math.sqrt(0.3 * 0.7 / n)


# --- refusals ----------------------------------------------------------------------------------
def _with_rules(**blocks):
    return _newer(discontinuation_rules=blocks)


REFUSALS = {
    "both-baselines": (
        {**_newer(), "baseline_vision": {"mean": 70, "std": 10, "min": 20, "max": 90}},
        "$.baseline_vision_distribution",
        "together",
    ),
    "no-baseline": (
        {k: v for k, v in _newer().items() if k != "baseline_vision_distribution"},
        "$.baseline_vision_distribution",
        "required",
    ),
    "beta-without-alpha": (
        _newer(baseline_vision_distribution={"type": "beta", "beta": 2, "min": 5, "max": 98}),
        "$.baseline_vision_distribution.alpha",
        "required",
    ),
    "normal-with-alpha": (
        _newer(baseline_vision_distribution={"mean": 60, "std": 5, "alpha": 2}),
        "$.baseline_vision_distribution.alpha",
        "not a parameter of type normal",
    ),
    "threshold-outside": (
        _newer(
            baseline_vision_distribution={
                "type": "beta_with_threshold",
                "alpha": 2,
                "beta": 2,
                "min": 5,
                "max": 60,
                "threshold": 70,
                "threshold_reduction": 0.5,
            }
        ),
        "$.baseline_vision_distribution.threshold",
        "between min",
    ),
    "beta-shape-below-1": (
        _newer(baseline_vision_distribution={"type": "beta", "alpha": 0.5, "beta": 2}),
        "$.baseline_vision_distribution.alpha",
        "between 1 and 100",
    ),
    "unknown-type": (
        _newer(baseline_vision_distribution={"type": "lognormal", "mean": 1, "std": 1}),
        "$.baseline_vision_distribution.type",
        "lognormal",
    ),
    "loading-contradiction": (
        _newer(
            loading_dose_injections=3,
            treat_and_extend_parameters={"loading_phase": {"number_of_doses": 4}},
        ),
        "$.treat_and_extend_parameters.loading_phase.number_of_doses",
        "$.loading_dose_injections is 3",
    ),
    "loading-vs-loading_doses": (
        {**_newer(loading_dose_injections=3), "loading_doses": 0},
        "$.loading_dose_injections",
        "$.loading_doses is 0",
    ),
    "interval-contradiction": (
        _newer(
            loading_dose_interval_days=28,
            treat_and_treat_parameters={"loading_phase": {"dose_1_to_2_days": [35, 42]}},
        ),
        "$.treat_and_treat_parameters.loading_phase.dose_1_to_2_days[0]",
        "is 35",
    ),
    "maintenance-window": (
        _newer(treat_and_treat_parameters={"maintenance_phase": {"interval_days": [56, 70]}}),
        "$.treat_and_treat_parameters.maintenance_phase.interval_days",
        "agree",
    ),
    "clinical-improvements": (
        _newer(clinical_improvements={"enabled": True}),
        "$.clinical_improvements.enabled",
        "not implemented",
    ),
    "unknown-rule": (
        _with_rules(poor_response_20_letters=_block({"va_less_than": 20}, "poor_response")),
        "$.discontinuation_rules.poor_response_20_letters",
        "unknown discontinuation rule",
    ),
    "unknown-criterion": (
        _with_rules(futility=_block({"vision_below_threshold": 35, "oct_dry": True}, "futility")),
        "$.discontinuation_rules.futility.criteria.oct_dry",
        "not a criterion",
    ),
    "unknown-reason": (
        _with_rules(futility=_block({"vision_below_threshold": 35}, "gave_up")),
        "$.discontinuation_rules.futility.reason",
        "expected one of",
    ),
    "not-attributable": (
        _with_rules(
            poor_response_25_letters=_block(
                {"va_less_than": 25, "attributable_to_amd": False}, "poor_response"
            )
        ),
        "$.discontinuation_rules.poor_response_25_letters.criteria.attributable_to_amd",
        "must be true",
    ),
    "mixed-layouts": (
        _with_rules(
            futility=_block({"vision_below_threshold": 35}, "futility"), poor_vision_probability=0.1
        ),
        "$.discontinuation_rules.poor_vision_probability",
        "use one layout",
    ),
    "flat-incomplete": (
        _with_rules(poor_vision_threshold=35),
        "$.discontinuation_rules.poor_vision_probability",
        "required field is missing",
    ),
    "probability-out-of-range": (
        _with_rules(
            futility={**_block({"vision_below_threshold": 35}, "futility"), "probability": 2}
        ),
        "$.discontinuation_rules.futility.probability",
        "",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_what_the_model_cannot_express_is_refused_with_its_path(case):
    data, path, fragment = REFUSALS[case]
    _refused(data, path, fragment)


def test_a_resolved_protocol_survives_validation_and_the_manifest_round_trip():
    rules = {"futility": _block({"vision_below_threshold": 35}, "futility")}
    protocol = _load(_newer(loading_dose_injections=3, discontinuation_rules=rules))
    assert validate_protocol(protocol) is protocol
    stored = msgspec.json.decode(msgspec.json.encode(protocol), type=Protocol)
    assert stored == protocol


# --- fuzz: the newer layout keeps the loader's contract ---------------------------------------
def _everything() -> dict:
    """A newer-layout document using every block this layout adds."""
    rules = {
        "stable_extended_interval": _block(
            {"consecutive_stable_visits": 3, "minimum_interval_weeks": 8}, "stable_disease", 0.1
        ),
        "poor_response_25_letters": _block(
            {"va_less_than": 25, "consecutive_visits": 2}, "poor_response", 0.9
        ),
        "frequent_injections": _block(
            {"max_achieved_interval_weeks": 5, "attempts": 1, "months_on_treatment": 6},
            "treatment_burden",
            0.2,
        ),
        "stable_at_annual_review": _block({"months_on_treatment": 12}, "stable_disease", 0.1),
        "treatment_failure": _block({"vision_loss_from_baseline": 20}, "inadequate_response", 0.5),
        "futility": _block({"vision_below_threshold": 35, "no_improvement_visits": 3}, "futility"),
        "non_compliance": _block({"missed_consecutive_visits": 2}, "lost_to_follow_up"),
    }
    return _newer(
        baseline_vision_distribution={
            "type": "beta_with_threshold",
            "alpha": 3.5,
            "beta": 2.0,
            "min": 5,
            "max": 98,
            "threshold": 70,
            "threshold_reduction": 0.6,
        },
        loading_dose_injections=3,
        treat_and_extend_parameters={"loading_phase": {"number_of_doses": 3, "interval_days": 28}},
        discontinuation_rules=rules,
    )


@st.composite
def newer_layout_documents(draw: st.DrawFn) -> str:
    """The document above with up to six numbers set inside their ranges and up to two keys
    deleted or replaced by an odd scalar."""
    document = _everything()
    fields = sorted({**protocol_ranges(), **newer_layout_ranges()}.items())
    set_ranged_numbers(draw, document, fields, min_size=0, max_size=6)
    for _ in range(draw(st.integers(0, 2))):
        paths = _paths(document)
        if not paths:
            break
        *parents, leaf = draw(st.sampled_from(paths))
        node = document
        for key in parents:
            node = node[key]
        if draw(st.booleans()):
            del node[leaf]
        else:
            node[leaf] = draw(st.sampled_from([None, -1, 0, 1.5, "x", True, [], {}]))
    for row in (document.get("disease_transitions") or {}).values():
        if isinstance(row, dict) and all(isinstance(v, int | float) for v in row.values()):
            total = sum(row.values())
            if total > 0:
                row.update({state: value / total for state, value in row.items()})
    return yaml.safe_dump(document, sort_keys=False)


@FUZZ
@given(newer_layout_documents())
def test_newer_layout_documents_run_or_fail_with_a_field_path(text):
    check_loader_contract(text)


def test_new_reasons_are_written_to_parquet_and_older_runs_keep_their_dictionary(tmp_path):
    rules = {
        "futility": _block({"vision_below_threshold": 100, "no_improvement_visits": 1}, "futility")
    }
    newer = _load(_deterministic("ACTIVE", -1, 60, discontinuation_rules=rules))
    results = run_simulation(newer, 300, years=1, seed=2, runs_dir=tmp_path, in_memory=False)
    patients = pa.Table.from_batches(list(results.iterate_patients(batch_size=100)))
    reasons = patients.column("discontinuation_reason").to_pylist()
    assert reasons == ["futility"] * 300
    assert results.summary_stats().discontinuation_rate_by_reason["futility"] == 1.0
    older = run_simulation(_load(default_protocol_dict()), 300, years=1, seed=2, in_memory=True)
    batch = next(older.iterate_patients(batch_size=300))
    dictionary = batch.column("discontinuation_reason").dictionary.to_pylist()
    assert dictionary == ["poor_vision", "high_injections", "long_treatment"]
