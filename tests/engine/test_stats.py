"""Streaming statistics equal exact computations, and never depend on merge or arrival order."""

from __future__ import annotations

import itertools
import random

import msgspec
import numpy as np
import pandas as pd
import pytest

from engine.model.parameters import DAYS_PER_MONTH, DAYS_PER_YEAR, Recruitment
from engine.model.protocol_loader import load_protocol
from engine.pipeline.batches import DecodedBatch, encode_shard
from engine.stats.moments import Moments
from engine.stats.run_stats import RunStatistics, StatsAccumulator, histogram_quantiles
from engine.stats.shard_stats import ShardStats, shard_stats
from engine.stats.tdigest import TDigest
from engine.stats.tree import ShardTree
from tests.helpers import V1_PROTOCOL, concat_columns, simulate

SEED = 11
QS = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]


def rank_error(values: np.ndarray, estimate: float, q: float) -> float:
    ordered = np.sort(values)
    low = np.searchsorted(ordered, estimate, side="left") / len(ordered)
    high = np.searchsorted(ordered, estimate, side="right") / len(ordered)
    return max(0.0, low - q, q - high)


# -- moments -------------------------------------------------------------------------------


def test_moments_match_numpy_to_1e9_relative():
    values = np.random.default_rng(SEED).lognormal(2.0, 1.0, 100_000)
    moments = Moments.of(values)
    assert moments.count == len(values)
    assert moments.mean == pytest.approx(values.mean(), rel=1e-9)
    assert moments.variance == pytest.approx(values.var(ddof=1), rel=1e-9)


def test_chan_merge_of_any_split_in_any_order_matches_the_whole():
    rng = np.random.default_rng(SEED)
    values = rng.normal(50, 20, 50_000)
    whole = Moments.of(values)
    cuts = np.sort(rng.choice(len(values), size=30, replace=False))
    parts = [Moments.of(chunk) for chunk in np.split(values, cuts)]
    for order in (parts, parts[::-1], random.Random(SEED).sample(parts, len(parts))):
        merged = Moments.merge_all(order)
        assert merged.count == whole.count
        assert merged.mean == pytest.approx(whole.mean, rel=1e-12)
        assert merged.variance == pytest.approx(whole.variance, rel=1e-9)


def test_moments_of_counts_equal_moments_of_repeated_values():
    values = np.array([3.0, 7.0, 11.0])
    counts = np.array([2, 5, 1])
    repeated = Moments.of(np.repeat(values, counts))
    from_counts = Moments.of_counts(values, counts)
    assert from_counts.count == repeated.count
    assert from_counts.mean == pytest.approx(repeated.mean, rel=1e-12)
    assert from_counts.m2 == pytest.approx(repeated.m2, rel=1e-12)


# -- t-digest ------------------------------------------------------------------------------


def test_digest_rank_error_is_within_1e4_after_shard_by_shard_merging():
    values = np.random.default_rng(SEED).lognormal(1.0, 0.8, 1_000_000)
    digests = [TDigest.from_values(values[i : i + 4096]) for i in range(0, len(values), 4096)]
    merged = digests[0].merge(digests[1:])
    assert merged.count == len(values)
    assert (merged.min, merged.max) == (values.min(), values.max())
    for q in QS:
        assert rank_error(values, merged.quantile(q), q) <= 1e-4, f"q={q} (seed {SEED})"
    assert merged.centroid_count <= 1100


def test_digest_of_counts_equals_digest_of_repeated_values_and_extremes_are_exact():
    values = np.array([1.0, 2.0, 5.0, 9.0])
    counts = np.array([10, 1, 4, 3])
    assert np.array_equal(
        TDigest.from_counts(values, counts).quantile(np.array(QS)),
        TDigest.from_values(np.repeat(values, counts)).quantile(np.array(QS)),
    )
    digest = TDigest.from_counts(values, counts)
    assert digest.quantile(0.0) == 1.0 and digest.quantile(1.0) == 9.0
    assert digest.cdf(0.5) == 0.0 and digest.cdf(9.0) == 1.0
    cdf = [digest.cdf(x) for x in np.linspace(1, 9, 50)]
    assert cdf == sorted(cdf)


def test_a_tied_value_merged_from_many_shards_is_returned_exactly_not_an_ulp_off():
    value = 1 / 0.3 * 0.06  # a ratio, like injections per year: not exact in binary
    rng = np.random.default_rng(4)
    shards = [TDigest.from_counts([value, 7.0], [int(w), 1]) for w in rng.integers(50, 500, 300)]
    merged = shards[0].merge(shards[1:])
    estimates = merged.quantile(np.array(QS))
    assert (estimates[:-1] == value).all(), "a tie's quantile must be the tied value itself"
    assert merged.cdf(value) == pytest.approx(1 - 300 / merged.count)


def test_heavily_tied_values_spread_over_many_shards_give_exact_quantiles():
    # Whole days, as days between injections are: few distinct values, each tied many times,
    # each shard holding a few copies of most of them. Merged like a run merges shards.
    rng = np.random.default_rng(11)
    shards = [rng.geometric(0.05, size=3000) * 14 for _ in range(256)]
    digests = []
    for values in shards:
        counts = np.bincount(values)
        distinct = np.flatnonzero(counts)
        digests.append(TDigest.from_counts(distinct, counts[distinct]))
    tree = ShardTree(len(digests), lambda parts: parts[0].merge(parts[1:]))
    for index in rng.permutation(len(digests)):
        tree.add(int(index), digests[index])
    merged = tree.result()
    everything = np.concatenate(shards)
    assert merged.centroid_count <= 2 * merged.compression
    for q in QS:
        assert rank_error(everything, merged.quantile(q), q) == 0.0, q


def test_digest_survives_serialisation_and_merging_leaves_inputs_unchanged():
    first = TDigest.from_values(np.arange(1000.0))
    second = TDigest.from_values(np.arange(1000.0, 3000.0))
    before = msgspec.msgpack.encode(first.state())
    merged = first.merge([second])
    assert msgspec.msgpack.encode(first.state()) == before
    restored = TDigest.from_state(
        msgspec.msgpack.decode(msgspec.msgpack.encode(merged.state()), type=type(merged.state()))
    )
    assert np.array_equal(restored.quantile(np.array(QS)), merged.quantile(np.array(QS)))
    empty = TDigest()
    assert TDigest.from_state(empty.state()).count == 0


@pytest.mark.parametrize("bad", [[1.0, float("nan")], [float("inf")]])
def test_digest_rejects_values_that_are_not_finite(bad):
    with pytest.raises(ValueError, match="finite values only"):
        TDigest.from_values(bad)


def test_quantile_of_an_empty_digest_or_outside_zero_one_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        TDigest().quantile(0.5)
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        TDigest.from_values([1.0, 2.0]).quantile(1.5)


# -- the shard-order tree ------------------------------------------------------------------


@pytest.mark.parametrize(("shards", "fan_in"), [(1, 16), (7, 2), (100, 16), (257, 4)])
def test_tree_gives_the_same_result_whatever_the_arrival_order(shards, fan_in):
    def concatenate(parts):  # order-sensitive on purpose
        return tuple(itertools.chain.from_iterable(parts))

    results = set()
    for seed in range(5):
        order = random.Random(seed).sample(range(shards), shards)
        tree = ShardTree(shards, concatenate, fan_in)
        for shard in order:
            tree.add(shard, (shard,))
        assert tree.complete
        results.add(tree.result())
    assert results == {tuple(range(shards))}


def test_tree_resumes_from_its_pending_nodes():
    def concatenate(parts):
        return tuple(itertools.chain.from_iterable(parts))

    order = random.Random(3).sample(range(50), 50)
    tree = ShardTree(50, concatenate, 4)
    for shard in order[:23]:
        tree.add(shard, (shard,))
    resumed = ShardTree.from_nodes(50, concatenate, tree.nodes(), 4)
    for shard in order[23:]:
        resumed.add(shard, (shard,))
    assert resumed.result() == tuple(range(50))
    with pytest.raises(ValueError, match="already added"):
        resumed.add(order[0], (0,))


# -- statistics of real runs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def run():
    params, outputs = simulate(
        load_protocol(V1_PROTOCOL),
        n_patients=12_000,
        years=4,
        seed=SEED,
        shard_size=1000,
        recruitment=Recruitment(mode="period", period_days=200),
    )
    accumulator = StatsAccumulator(params.shard_count, params.horizon_days)
    for output in outputs:
        accumulator.add(
            output.shard_index,
            0,
            1,
            shard_stats(output.patients, output.visits, params.horizon_days),
        )
    return params, outputs, accumulator.result()


def test_histogram_quantiles_equal_numpy_inverted_cdf_exactly(run):
    _, outputs, stats = run
    patients = concat_columns(outputs, "patients")
    change = patients["final_vision"].astype(int) - patients["baseline_vision"]
    for which, values in (
        ("baseline", patients["baseline_vision"]),
        ("final", patients["final_vision"]),
        ("change", change),
    ):
        expected = np.quantile(values, QS, method="inverted_cdf")
        assert stats.va_quantiles(which, QS) == list(expected.astype(float)), which
    counts = np.bincount(np.array([5, 5, 7, 9, 9, 9]))
    assert histogram_quantiles(counts, [0.0, 0.5, 1.0]) == [5.0, 7.0, 9.0]


def test_vision_by_month_since_enrollment_equals_a_groupby_over_the_rows(run):
    _, outputs, stats = run
    patients = concat_columns(outputs, "patients")
    visits = pd.DataFrame(concat_columns(outputs, "visits"))
    enrolled = np.repeat(patients["enrollment_day"], patients["visits"])
    visits["month"] = np.floor((visits["day"] - enrolled) / DAYS_PER_MONTH).astype(int)
    grouped = visits.groupby("month")["vision"]
    monthly = stats.monthly_vision([0.1, 0.5, 0.9])
    assert monthly.month == list(grouped.size().index)
    assert monthly.count == list(grouped.size())
    np.testing.assert_allclose(monthly.mean, grouped.mean(), rtol=1e-12)
    np.testing.assert_allclose(monthly.std, grouped.std(), rtol=1e-9)
    for q, key in ((0.1, "p10"), (0.5, "p50"), (0.9, "p90")):
        expected = grouped.quantile(
            q, interpolation="lower"
        )  # not the same rule: check exactly below
        exact = [np.quantile(group, q, method="inverted_cdf") for _, group in grouped]
        assert monthly.quantiles[key] == [float(v) for v in exact]
        assert len(expected) == len(exact)


def test_workload_per_calendar_month_equals_counting_the_rows(run):
    params, outputs, stats = run
    patients = concat_columns(outputs, "patients")
    visits = concat_columns(outputs, "visits")
    month = np.floor(visits["day"] / DAYS_PER_MONTH).astype(int)
    workload = stats.workload()
    months = len(workload["visits"])
    assert np.array_equal(workload["visits"], np.bincount(month, minlength=months))
    assert np.array_equal(
        workload["injections"], np.bincount(month[visits["injected"]], minlength=months)
    )
    last = np.where(
        patients["discontinued"], patients["discontinuation_day"], params.horizon_days - 1
    )
    first_month = np.floor(patients["enrollment_day"] / DAYS_PER_MONTH).astype(int)
    last_month = np.floor(last / DAYS_PER_MONTH).astype(int)
    active = [int(((first_month <= m) & (last_month >= m)).sum()) for m in range(months)]
    assert list(workload["active_patients"]) == active
    assert workload["month_start_day"][1] == 30


def test_sketched_quantities_match_the_rows(run):
    params, outputs, stats = run
    patients = concat_columns(outputs, "patients")
    visits = concat_columns(outputs, "visits")
    end = np.where(patients["discontinued"], patients["discontinuation_day"], params.horizon_days)
    follow_up = end - patients["enrollment_day"]
    per_year = patients["injections"] / (follow_up / DAYS_PER_YEAR)
    assert stats.sketch_mean("injections_per_year") == pytest.approx(per_year.mean(), rel=1e-9)
    # Ratios of small integers: many near-ties, so the documented tie bound applies.
    bound = stats.sketches.injections_per_year.digest.tie_rank_error_bound()
    assert bound < 1e-3
    for q, estimate in zip(QS, stats.sketch_quantiles("injections_per_year", QS), strict=True):
        assert rank_error(per_year, estimate, q) <= bound
    rows = np.flatnonzero(visits["injected"])
    same = visits["patient_id"][rows][1:] == visits["patient_id"][rows][:-1]
    gaps = np.diff(visits["day"][rows])[same]
    for q, estimate in zip(QS, stats.sketch_quantiles("days_between_injections", QS), strict=True):
        assert rank_error(gaps, estimate, q) <= 1e-4
    stopped = follow_up[patients["discontinued"]]
    assert stats.sketch_mean("time_to_discontinuation_days") == pytest.approx(
        stopped.mean(), rel=1e-9
    )


def test_totals_and_categorical_counts_match_the_rows(run):
    _, outputs, stats = run
    patients = concat_columns(outputs, "patients")
    totals = stats.totals()
    assert totals.patients == 12_000
    assert totals.visits == int(patients["visits"].sum())
    assert totals.injections == int(patients["injections"].sum())
    assert totals.final_state_counts == tuple(np.bincount(patients["final_state"], minlength=4))
    reasons = patients["discontinuation_reason"]
    assert totals.discontinued_by_reason == tuple(np.bincount(reasons[reasons >= 0], minlength=3))
    assert np.array_equal(
        stats.distribution("injections_per_patient"), np.bincount(patients["injections"])
    )


def test_statistics_do_not_depend_on_arrival_order_or_on_how_shards_are_split(run):
    params, outputs, expected = run
    for seed in range(3):
        accumulator = StatsAccumulator(params.shard_count, params.horizon_days)
        for output in random.Random(seed).sample(outputs, len(outputs)):
            # Small slots cut each shard into parts, delivered in shuffled order.
            parts = [
                DecodedBatch(batch)
                for batch in encode_shard(output, 0, params.horizon_days, 64 << 10)
            ]
            assert len(parts) > 1
            for part in random.Random(seed).sample(parts, len(parts)):
                batch = part.batch
                accumulator.add(batch.shard, batch.part, batch.part_count, part.stats)
        assert accumulator.result() == expected


def test_accumulator_state_survives_a_restart_mid_run(run):
    params, outputs, expected = run
    accumulator = StatsAccumulator(params.shard_count, params.horizon_days)
    order = random.Random(5).sample(outputs, len(outputs))
    stats = {o.shard_index: shard_stats(o.patients, o.visits, params.horizon_days) for o in outputs}
    for output in order[:5]:
        accumulator.add(output.shard_index, 0, 1, stats[output.shard_index])
    saved = msgspec.json.encode(accumulator.state())
    resumed = StatsAccumulator.from_state(
        msgspec.json.decode(saved, type=type(accumulator.state()))
    )
    for output in order[5:]:
        resumed.add(output.shard_index, 0, 1, stats[output.shard_index])
    assert resumed.result() == expected
    with pytest.raises(ValueError, match="already added"):
        resumed.add(order[0].shard_index, 0, 1, stats[order[0].shard_index])


def test_statistics_round_trip_through_their_stored_form(run):
    _, _, stats = run
    stored = msgspec.json.encode(stats.state())
    again = RunStatistics.from_state(msgspec.json.decode(stored, type=type(stats.state())))
    assert again == stats
    assert again.va_quantiles("final") == stats.va_quantiles("final")
    assert isinstance(shard_stats, object) and ShardStats
