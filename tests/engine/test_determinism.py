"""Same inputs, same rows: outputs depend on protocol, seed, N and years only (DESIGN 3)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.model.parameters import Recruitment
from engine.model.protocol_loader import load_protocol
from engine.model.shards import plan_blocks
from engine.model.v1.kernel import simulate_shards
from tests.helpers import V1_PROTOCOL, concat_columns, simulate

RECRUITMENTS = [
    Recruitment(),
    Recruitment(mode="period", period_days=365),
    Recruitment(mode="rate", patients_per_week=400.0),
]


def _assert_same_outputs(left, right) -> None:
    assert [o.shard_index for o in left] == [o.shard_index for o in right]
    for a, b in zip(left, right, strict=True):
        for table in ("patients", "visits"):
            for name, column in getattr(a, table).items():
                other = getattr(b, table)[name]
                assert column.dtype == other.dtype, (table, name)
                assert np.array_equal(column, other), (
                    f"shard {a.shard_index} {table}.{name} differs"
                )


@pytest.mark.parametrize("recruitment", RECRUITMENTS, ids=lambda r: r.mode)
def test_same_seed_gives_identical_output(recruitment):
    protocol = load_protocol(V1_PROTOCOL)
    _, first = simulate(
        protocol, n_patients=5_000, shard_size=1_000, recruitment=recruitment, seed=7
    )
    _, second = simulate(
        protocol, n_patients=5_000, shard_size=1_000, recruitment=recruitment, seed=7
    )
    _assert_same_outputs(first, second)


def test_different_seeds_give_different_output():
    protocol = load_protocol(V1_PROTOCOL)
    _, first = simulate(protocol, n_patients=2_000, seed=1)
    _, second = simulate(protocol, n_patients=2_000, seed=2)
    assert not np.array_equal(first[0].patients["final_vision"], second[0].patients["final_vision"])


@pytest.mark.parametrize("recruitment", RECRUITMENTS, ids=lambda r: r.mode)
@pytest.mark.parametrize(
    "grouping",
    [
        [[0], [1], [2], [3], [4], [5], [6]],
        [[0, 1, 2], [3, 4, 5, 6]],
        [[5, 6], [0, 1], [2, 3, 4]],
        [[0, 1, 2, 3, 4, 5, 6]],
    ],
    ids=["one-by-one", "two-blocks", "out-of-order", "all-together"],
)
def test_output_does_not_depend_on_how_whole_shards_are_grouped(grouping, recruitment):
    protocol = load_protocol("ranibizumab_prn_monthly")
    _, reference = simulate(
        protocol, n_patients=6_500, shard_size=1_000, recruitment=recruitment, seed=3
    )
    _, grouped = simulate(
        protocol,
        n_patients=6_500,
        shard_size=1_000,
        recruitment=recruitment,
        seed=3,
        blocks=grouping,
    )
    _assert_same_outputs(reference, grouped)


def test_a_shard_depends_on_its_index_not_on_the_cohort_size():
    """Shard 0 of a 1,000-patient run is shard 0 of a 10,000-patient run (cohort mode)."""
    protocol = load_protocol(V1_PROTOCOL)
    _, small = simulate(protocol, n_patients=1_000, shard_size=1_000, seed=11)
    _, large = simulate(protocol, n_patients=10_000, shard_size=1_000, seed=11)
    _assert_same_outputs(small, large[:1])


def test_shards_simulated_together_must_be_consecutive():
    protocol = load_protocol(V1_PROTOCOL)
    params, _ = simulate(protocol, n_patients=3_000, shard_size=1_000)
    from engine.model.v1.tables import compile_protocol

    with pytest.raises(ValueError, match="consecutive"):
        simulate_shards(compile_protocol(protocol), params, [0, 2])


def test_blocks_cover_every_shard_once_in_order():
    protocol = load_protocol(V1_PROTOCOL)
    params, _ = simulate(protocol, n_patients=100, shard_size=10)
    blocks = plan_blocks(params, block_patients=35)
    assert [list(b) for b in blocks] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


@pytest.mark.parametrize("period_days", [90, 730])
def test_period_recruitment_spreads_arrivals_uniformly_in_id_order(period_days):
    protocol = load_protocol(V1_PROTOCOL)
    recruitment = Recruitment(mode="period", period_days=period_days)
    _, outputs = simulate(
        protocol, n_patients=40_000, shard_size=4_096, recruitment=recruitment, seed=5
    )
    enrolled = concat_columns(outputs, "patients")["enrollment_day"]
    assert enrolled.min() >= 0 and enrolled.max() < period_days
    assert (np.diff(enrolled) >= 0).all()  # ids are in arrival order
    # Uniform on [0, period) floored to days: mean (period - 1) / 2, sd period / sqrt(12).
    expected = (period_days - 1) / 2
    assert abs(enrolled.mean() - expected) <= 4 * period_days / np.sqrt(12 * len(enrolled))
    # Every quarter of the period gets a quarter of the patients (within 4 SE).
    quarters = np.bincount((enrolled * 4) // period_days, minlength=4)
    assert np.all(
        np.abs(quarters / len(enrolled) - 0.25) <= 4 * np.sqrt(0.25 * 0.75 / len(enrolled))
    )


def test_rate_recruitment_enrols_at_the_weekly_rate():
    protocol = load_protocol(V1_PROTOCOL)
    rate = 70.0  # ten a day
    recruitment = Recruitment(mode="rate", patients_per_week=rate)
    _, outputs = simulate(
        protocol, n_patients=20_000, years=10, shard_size=4_096, recruitment=recruitment, seed=9
    )
    enrolled = concat_columns(outputs, "patients")["enrollment_day"]
    assert (np.diff(enrolled) >= 0).all()
    # The last of n arrivals of a Poisson process comes at Gamma(n) mean gaps.
    n = len(enrolled)
    mean_gap_days = 7 / rate
    assert abs(enrolled[-1] - n * mean_gap_days) <= 4 * np.sqrt(n) * mean_gap_days + 1
    per_day = np.bincount(enrolled)[:-1]  # whole days only
    assert abs(per_day.mean() - rate / 7) <= 4 * np.sqrt(rate / 7 / len(per_day))


def test_late_enrollers_are_followed_only_until_the_horizon():
    protocol = load_protocol(V1_PROTOCOL)
    recruitment = Recruitment(mode="period", period_days=700)
    params, outputs = simulate(protocol, n_patients=3_000, years=2, recruitment=recruitment)
    visits = concat_columns(outputs, "visits")
    patients = concat_columns(outputs, "patients")
    assert (visits["day"] < params.horizon_days).all()
    first_rows = np.concatenate(([0], np.cumsum(patients["visits"])[:-1]))
    assert (visits["day"][first_rows] == patients["enrollment_day"]).all()
    assert patients["visits"][-100:].mean() < patients["visits"][:100].mean()
