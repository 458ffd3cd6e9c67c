"""Paired comparisons: common random numbers make differences between arms the regimen's alone."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from engine.compare.block import compile_arms, simulate_compare_block
from engine.compare.features import EyeSettings
from engine.compare.matrix_moments import MatrixMoments
from engine.compare.totals import merge_blocks
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.model.v2.kernel import simulate_shards
from engine.model.v2.tables import compile_time_based

ALTAIR = "aflibercept_treat_and_extend_altair"
VIEW_2Q8 = "aflibercept_2q8_view"
EYE = EyeSettings(
    edges=[0.0, 36.0, 55.0, 70.0],
    fellow_probabilities=[0.3, 0.3, 0.2, 0.2],
    treated_eye_better_share=0.5,
)


def test_a_protocol_against_itself_gives_exactly_zero_paired_differences() -> None:
    protocol = load_protocol(ALTAIR)
    model = compile_arms([protocol, protocol])
    params = RunParameters(n_patients=3000, years=5.0, seed=11, shard_size=1000)
    blocks = [simulate_compare_block(model, params, EYE, b, [b]) for b in range(3)]
    pair = merge_blocks(blocks).pairs[0]
    size = pair.features.size // 2
    assert np.all(pair.features.mean[:size] == 0.0)
    assert np.all(pair.features.m2[:size, :size] == 0.0)
    assert all(m.count == 3000 and m.mean == 0.0 and m.m2 == 0.0 for m in pair.va)
    assert pair.same_patients


def test_patients_who_never_exceed_12_weeks_have_identical_rows_when_the_maximum_is_12() -> None:
    """Max interval 16 -> 12 weeks: only patients who reached over 12 weeks can differ."""
    sixteen = load_protocol(ALTAIR)
    assert sixteen.max_interval_days == 112
    twelve = msgspec.structs.replace(sixteen, max_interval_days=84)
    params = RunParameters(n_patients=4000, years=3.0, seed=3)
    first = simulate_shards(compile_time_based(sixteen), params, [0])[0].visits
    second = simulate_shards(compile_time_based(twelve), params, [0])[0].visits

    def rows_by_patient(visits):
        order = np.argsort(visits["patient_id"], kind="stable")
        ids, starts = np.unique(visits["patient_id"][order], return_index=True)
        columns = {name: values[order] for name, values in visits.items()}
        ends = [*starts[1:].tolist(), len(order)]
        return {
            int(i): {name: col[s:e] for name, col in columns.items()}
            for i, s, e in zip(ids, starts, ends, strict=True)
        }

    a, b = rows_by_patient(first), rows_by_patient(second)
    # The interval after the last visit is not recorded: a patient whose last visit is over
    # 12 weeks before the horizon may have been given a longer one, so only patients seen
    # within 12 weeks of the horizon count as never over 12 weeks.
    horizon = params.horizon_days
    never_over = [
        p
        for p, rows in a.items()
        if not (rows["interval_days"] > 84).any() and horizon - rows["day"][-1] <= 84
    ]
    reached = [p for p, rows in a.items() if (rows["interval_days"] > 84).any()]
    assert len(never_over) > 500 and len(reached) > 500, "both kinds of patient are present"
    for p in never_over:
        for name in a[p]:
            np.testing.assert_array_equal(a[p][name], b[p][name], err_msg=f"patient {p} {name}")
    differing = sum(
        1
        for p in reached
        if len(a[p]["day"]) != len(b[p]["day"]) or not np.array_equal(a[p]["day"], b[p]["day"])
    )
    assert differing == len(reached), "a patient who reached 16 weeks is seen sooner at 12"


def _va12(protocol, seed: int, patients: int) -> np.ndarray:
    params = RunParameters(n_patients=patients, years=1.1, seed=seed, shard_size=patients)
    out = simulate_shards(compile_time_based(protocol), params, [0])[0].patients
    return out["va_m12"].astype(float) - out["baseline_vision"].astype(float)


def test_crn_shrinks_the_standard_error_of_the_paired_12_month_difference() -> None:
    """T&E vs 2q8, 20,000 patients: the paired SE is at most 0.33 of independent seeds'."""
    n = 20_000
    tae, q8 = load_protocol(ALTAIR), load_protocol(VIEW_2Q8)
    paired = _va12(q8, 7, n) - _va12(tae, 7, n)
    se_paired = paired.std(ddof=1) / math.sqrt(n)
    a, b = _va12(tae, 7, n), _va12(q8, 8, n)  # independent seeds
    se_independent = math.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n)
    ratio = se_paired / se_independent
    assert ratio <= 0.33, f"paired SE {se_paired:.3f} vs independent {se_independent:.3f}"


def test_the_comparison_does_not_depend_on_how_blocks_are_grouped_into_processes() -> None:
    """Blocks merged in block order: finishing order does not change a bit."""
    model = compile_arms([load_protocol(ALTAIR), load_protocol(VIEW_2Q8)])
    params = RunParameters(n_patients=2500, years=2.0, seed=4, shard_size=500)
    blocks = [simulate_compare_block(model, params, EYE, b, [b]) for b in range(5)]
    forward = merge_blocks(blocks)
    backward = merge_blocks(list(reversed(blocks)))
    for x, y in zip(forward.arms, backward.arms, strict=True):
        assert x.counts == y.counts
        np.testing.assert_array_equal(x.features.m2, y.features.m2)
    np.testing.assert_array_equal(forward.pairs[0].features.mean, backward.pairs[0].features.mean)


def test_arm_moments_equal_the_moments_of_all_patients_at_once() -> None:
    model = compile_arms([load_protocol(ALTAIR)])
    params = RunParameters(n_patients=1200, years=2.0, seed=2, shard_size=400)
    merged = (
        merge_blocks([simulate_compare_block(model, params, EYE, b, [b]) for b in range(3)])
        .arms[0]
        .features
    )
    whole = (
        simulate_compare_block(
            model, RunParameters(n_patients=1200, years=2.0, seed=2, shard_size=1200), EYE, 0, [0]
        )
        .arms[0]
        .features
    )
    whole = MatrixMoments.from_state(whole)
    assert merged.count == whole.count == 1200
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_better_seeing_eye_years_follow_the_fellow_eye_share(share: float) -> None:
    """All treated eyes better: BSE years are the treated eye's; none: the fellow eye's band."""
    model = compile_arms([load_protocol(ALTAIR)])
    params = RunParameters(n_patients=4000, years=2.0, seed=6, shard_size=4000)
    eye = msgspec.structs.replace(EYE, treated_eye_better_share=share)
    f = MatrixMoments.from_state(
        simulate_compare_block(model, params, eye, 0, [0]).arms[0].features
    )
    bands = len(EYE.edges)
    alive = f.mean[0]
    bse = f.mean[2 : 2 + bands]
    if share == 0.0:
        # Fellow eye held in its band: shares of alive years match the band probabilities.
        np.testing.assert_allclose(bse / alive, EYE.fellow_probabilities, atol=0.03)
    else:
        assert bse[-1] / alive > 0.3  # treated eyes mostly see >= 70 letters on treatment
    assert bse.sum() == pytest.approx(alive)
