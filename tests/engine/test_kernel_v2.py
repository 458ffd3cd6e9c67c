"""The time-based kernel with its real random numbers: invariance, CRN, protocol types.

Exact checks only (no statistics): rows must not depend on shard size or grouping; draws
keyed on patients must be what the kernel used; each protocol type must give its intervals.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from engine.model.interface import compile_model
from engine.model.parameters import Recruitment, RunParameters
from engine.model.states import V2_REASON_NAMES
from engine.model.v2.draws import crn_source
from engine.model.v2.kernel import simulate_shards
from engine.model.v2.model import TimeBasedModel
from engine.model.v2.random_numbers import CounterRandom, Purpose
from engine.model.v2.tables import compile_time_based

from .timebased_protocols import reference_protocol, simple_protocol


def run_all(tables, params: RunParameters, groups: list[list[int]]) -> dict[str, dict]:
    """Every shard, simulated in `groups`, concatenated into patients and visits columns."""
    outputs = [o for group in groups for o in simulate_shards(tables, params, group)]
    assert [o.shard_index for o in outputs] == list(range(params.shard_count))
    return {
        table: {
            name: np.concatenate([getattr(o, table)[name] for o in outputs])
            for name in getattr(outputs[0], table)
        }
        for table in ("patients", "visits")
    }


def assert_same(a: dict, b: dict) -> None:
    for table in ("patients", "visits"):
        assert a[table].keys() == b[table].keys()
        for name in a[table]:
            np.testing.assert_array_equal(a[table][name], b[table][name], err_msg=f"{table}.{name}")


@pytest.mark.parametrize("mode", ["cohort", "rate"])
def test_rows_do_not_depend_on_shard_size_or_grouping(mode: str) -> None:
    tables = compile_time_based(simple_protocol())
    recruitment = (
        Recruitment(mode=mode, patients_per_week=20.0) if mode == "rate" else Recruitment()
    )
    common = {"n_patients": 37, "years": 2.0, "seed": 11, "recruitment": recruitment}
    one = RunParameters(shard_size=4096, **common)
    reference = run_all(tables, one, [[0]])
    assert len(reference["visits"]["day"]) > 37
    by_ten = RunParameters(shard_size=10, **common)
    assert_same(reference, run_all(tables, by_ten, [[0, 1, 2, 3]]))
    assert_same(reference, run_all(tables, by_ten, [[0], [1, 2], [3]]))
    by_one = RunParameters(shard_size=1, **common)
    assert_same(reference, run_all(tables, by_one, [list(range(37))]))
    assert_same(reference, run_all(tables, by_one, [[i] for i in range(37)]))


class Recording:
    """A CRN source that logs (patient id, step, purpose, value) of update-step uniforms."""

    log: ClassVar[list[tuple[int, int, Purpose, float]]] = []

    def __init__(self, seed: int, ids: np.ndarray) -> None:
        self.inner = crn_source(seed, ids)
        self.ids = ids

    def uniform(self, step, purpose, rows=None, draw=0):
        values = self.inner.uniform(step, purpose, rows, draw)
        ids = self.ids if rows is None else self.ids[rows]
        self.log.extend(
            zip(ids.tolist(), [step] * len(ids), [purpose] * len(ids), values, strict=True)
        )
        return values

    def normal(self, step, purpose, rows=None, draw=0):
        return self.inner.normal(step, purpose, rows, draw)

    def uniform_at(self, steps, purpose, rows):
        return self.inner.uniform_at(steps, purpose, rows)

    def normal_at(self, steps, purpose, rows):
        return self.inner.normal_at(steps, purpose, rows)

    def uniforms_at(self, steps, purposes, rows):
        return self.inner.uniforms_at(steps, purposes, rows)


def test_common_random_numbers_across_protocols() -> None:
    """Two protocols: the same people (age, sex, baseline, responder), the same deaths (death
    depends on nothing the protocol changes), and every logged draw is the keyed number of
    its patient, step and purpose (so compaction kept rows and ids together)."""
    params = RunParameters(n_patients=400, years=5.0, seed=3)
    outs = []
    logs = []
    for protocol in (
        simple_protocol(),
        simple_protocol(protocol_type="prn", loading_dose_injections=0),
    ):
        Recording.log = []
        block_out = simulate_shards(compile_time_based(protocol), params, [0], Recording)
        outs.append(block_out[0].patients)
        logs.append({(i, s, p): v for i, s, p, v in Recording.log})
    a, b = outs
    for name in ("age", "sex", "responder", "baseline_vision", "enrollment_day", "death_day"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (a["death_day"] >= 0).sum() > 20  # deaths happened, after compactions
    assert not np.array_equal(a["injections"], b["injections"])
    common = logs[0].keys() & logs[1].keys()
    assert len(common) > 10_000
    for key in list(common)[:2000]:
        assert logs[0][key] == logs[1][key]
    sample = list(logs[0].items())[::97]
    for (pid, step, purpose), value in sample:
        assert CounterRandom(3, np.array([pid])).uniform(step, purpose)[0] == value


def test_per_row_visit_draws_equal_counter_random() -> None:
    ids = np.arange(100, 160, dtype=np.int64)
    source = crn_source(9, ids)
    rows = np.array([3, 0, 59, 3, 17])
    steps = np.array([10**6 + 4, 10**6, 10**6 + 300, 10**6 + 1, 10**6 + 4])
    reference = CounterRandom(9, ids)
    for at, single in (
        (source.uniform_at, reference.uniform),
        (source.normal_at, reference.normal),
    ):
        got = at(steps, Purpose.MEASUREMENT_NOISE, rows)
        want = [
            single(int(s), Purpose.MEASUREMENT_NOISE, np.array([r]))[0]
            for r, s in zip(rows, steps, strict=True)
        ]
        assert got.tolist() == want
    purposes = [Purpose.DISCONTINUE_ATTRITION, Purpose.DEATH, Purpose.DISCONTINUE_STABLE]
    many = source.uniforms_at(steps, purposes, rows)
    assert many.shape == (3, 5)
    for i, purpose in enumerate(purposes):
        assert many[i].tolist() == source.uniform_at(steps, purpose, rows).tolist()
    assert source.uniforms_at(steps[:0], purposes, rows[:0]).shape == (3, 0)


def _course(protocol, years: float = 3.0, n: int = 60):
    params = RunParameters(n_patients=n, years=years, seed=5)
    out = simulate_shards(compile_time_based(protocol), params, [0])[0]
    return out.patients, out.visits


def _no_stops(protocol):
    """The protocol without any discontinuation category (visits go on to death/horizon)."""
    files = protocol.parameters
    empty = type(files.discontinuation.discontinuation_parameters)()
    from .timebased_protocols import edit

    return edit(protocol, parameters__discontinuation__discontinuation_parameters=empty)


@pytest.mark.parametrize("kind", ["treat_and_treat", "fixed", "fixed_interval"])
def test_fixed_types_inject_every_visit_at_max_interval(kind: str) -> None:
    protocol = _no_stops(simple_protocol(protocol_type=kind, max_interval_days=56))
    _, v = _course(protocol)
    assert v["injected"].all()
    gaps = v["interval_days"][v["interval_days"] >= 0]
    after_loading = v["visit"][v["interval_days"] >= 0] >= 2
    assert set(gaps[~after_loading].tolist()) == {7}
    assert set(gaps[after_loading].tolist()) == {56}


def test_treat_and_extend_intervals_follow_the_state() -> None:
    protocol = _no_stops(simple_protocol())
    _, v = _course(protocol)
    assert v["injected"].all()
    gap = v["interval_days"].astype(int)
    state = v["disease_state"]
    later = (v["visit"] >= 3) & (gap >= 0)
    previous = np.roll(gap, 1)
    expected = np.where(state == 1, previous + 14, np.where(state == 2, previous - 14, 21))
    expected = np.where(state == 0, previous, expected)
    assert (gap[later] == np.clip(expected, 21, 84)[later]).all()
    assert {21, 35, 84} <= set(gap[later].tolist())


def test_when_active_skips_stable_visits() -> None:
    protocol = _no_stops(simple_protocol(injection_rule="when_active"))
    _, v = _course(protocol)
    after = v["visit"] >= 3
    assert (v["injected"][after] == (v["disease_state"][after] != 1)).all()
    assert v["injected"][~after].all()


def test_prn_with_cap_and_a_phase() -> None:
    from engine.model.v2.schema import Phase

    protocol = _no_stops(
        simple_protocol(
            protocol_type="prn",
            loading_dose_injections=0,
            min_interval_days=28,
            max_days_between_injections=84,
            phases=[
                Phase(
                    start_day=364, protocol_type="fixed", min_interval_days=56, max_interval_days=56
                )
            ],
        )
    )
    _, v = _course(protocol)
    day_t = v["day"]  # cohort: day == days since enrolment
    gaps = v["interval_days"]
    before = (day_t < 364) & (gaps >= 0)
    assert set(gaps[before].tolist()) == {28}
    assert set(gaps[(day_t >= 364) & (gaps >= 0)].tolist()) == {56}
    prn = day_t < 364
    active = v["disease_state"] >= 2
    assert (v["injected"][prn & active]).all()
    # Never injected yet and a cap: the enrolment visit injects (docs/model.md is silent).
    assert v["injected"][v["visit"] == 0].all()
    assert not v["injected"][prn & (v["disease_state"] <= 1) & (v["visit"] == 1)].any()
    # The cap: between injections under PRN never more than 84 + 28 days pass.
    for pid in np.unique(v["patient_id"]):
        mine = (v["patient_id"] == pid) & prn & v["injected"]
        days = v["day"][mine]
        if len(days) > 1:
            assert np.diff(days).max() <= 84 + 28
    assert (v["injected"][(day_t >= 364)]).all()


def test_untreated_follow_up_continues_to_death_or_horizon() -> None:
    params = RunParameters(n_patients=500, years=5.0, seed=2)
    out = simulate_shards(compile_time_based(simple_protocol()), params, [0])[0]
    p, v = out.patients, out.visits
    stopped = p["discontinued"] & (p["discontinuation_reason"] != 0)
    assert stopped.sum() > 50
    later_death = stopped & (p["death_day"] > p["discontinuation_day"])
    assert later_death.sum() > 0
    alive = stopped & (p["death_day"] < 0)
    assert (p["alive_days"][alive] == params.horizon_days).all()
    assert (p["treated_days"][stopped] == p["discontinuation_day"][stopped]).all()
    # No visit after discontinuation; the last visit is the discontinuation visit.
    last = np.flatnonzero(np.r_[v["patient_id"][1:] != v["patient_id"][:-1], True])
    np.testing.assert_array_equal(v["day"][last][stopped], p["discontinuation_day"][stopped])
    assert not v["injected"][last][stopped].any()
    # The true VA kept changing after the last measurement (untreated decline).
    assert (p["final_vision"][alive] < v["vision"][last][alive]).mean() > 0.5
    assert set(V2_REASON_NAMES) == {
        "death", "poor_vision", "deterioration", "stable_disease", "no_improvement",
        "attrition", "administrative",
    }  # fmt: skip


def test_compile_model_dispatches_and_reference_protocols_run() -> None:
    protocol = reference_protocol()
    if protocol is None:
        pytest.skip("the origin's reference files are not beside the repository")
    model = compile_model(protocol)
    assert isinstance(model, TimeBasedModel)
    params = RunParameters(n_patients=200, years=2.0, seed=1)
    out = model.simulate_shards(params, [0])[0]
    assert out.patient_count == 200
    assert (np.diff(out.visits["patient_id"]) >= 0).all()
    other = reference_protocol("aflibercept_treat_and_treat_time_based.yaml")
    assert other is not None
    assert compile_model(other).simulate_shards(params, [0])[0].patient_count == 200
