"""The SimulationResults interface, asserted the same way for every tier that implements it."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from engine import run_simulation
from engine.errors import (
    MemoryBudgetError,
    ParameterError,
    ProtocolError,
    ResultsFormatError,
    RunNotFoundError,
)
from engine.manifest import read_checkpoint
from engine.model.parameters import DAYS_PER_YEAR, RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, run_pipeline
from engine.results import InMemoryResults, ParquetResults, ResultsFactory
from tests.helpers import V1_PROTOCOL

N_PATIENTS = 2_500
TIERS = [
    "memory",
    "memory-pickled",
    "memory-from-parquet",
    "memory-from-arrow",
    "parquet",
    "parquet-via-factory",
    "parquet-small-row-groups",
]


@pytest.fixture(scope="module")
def fresh() -> InMemoryResults:
    return run_simulation(
        V1_PROTOCOL, n_patients=N_PATIENTS, years=4, seed=42, shard_size=1_000, in_memory=True
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The same run, streamed to disk by two workers into several part files."""
    folder = tmp_path_factory.mktemp("runs") / "run"
    params = RunParameters(n_patients=N_PATIENTS, years=4, seed=42, shard_size=1_000)
    run_pipeline(
        load_protocol(V1_PROTOCOL), params, folder, PipelineOptions(workers=2, roll_bytes=60_000)
    )
    return folder


@pytest.fixture(scope="module")
def cut_run_dir(tmp_path_factory) -> Path:
    """The same run with shards cut into parts (small slots) and rows into row groups of 150."""
    folder = tmp_path_factory.mktemp("runs") / "run"
    params = RunParameters(n_patients=N_PATIENTS, years=4, seed=42, shard_size=1_000)
    options = PipelineOptions(workers=1, slot_bytes=128 << 10, row_group_patients=150)
    run_pipeline(load_protocol(V1_PROTOCOL), params, folder, options)
    return folder


@pytest.fixture(params=TIERS)
def results(request, fresh, run_dir, cut_run_dir, tmp_path):
    """Every way of holding the same run."""
    if request.param == "memory":
        yield fresh
    elif request.param == "memory-pickled":
        yield pickle.loads(pickle.dumps(fresh))
    elif request.param == "parquet-small-row-groups":
        checkpoint = read_checkpoint(cut_run_dir / "checkpoint.json")
        assert max(loc.part_count for loc in checkpoint.shards) > 1, "shards should be cut"
        assert max(loc.row_group_count for loc in checkpoint.shards) > 1, "parts span row groups"
        with ParquetResults(cut_run_dir) as opened:
            yield opened
    elif request.param in ("parquet", "parquet-via-factory"):
        opened = (
            ParquetResults(run_dir) if request.param == "parquet" else ResultsFactory.open(run_dir)
        )
        assert isinstance(opened, ParquetResults)
        yield opened
        opened.close()
    else:
        table_format = request.param.rsplit("-", 1)[1]
        fresh.save(tmp_path / "saved", table_format)
        yield ResultsFactory.open(tmp_path / "saved")


def _table(batches) -> pa.Table:
    return pa.Table.from_batches(list(batches))


def test_counts_match_the_run(results):
    assert results.patient_count == N_PATIENTS
    assert results.visit_count == sum(b.num_rows for b in results.iterate_visits())
    assert results.storage == ("parquet" if isinstance(results, ParquetResults) else "memory")
    assert results.memory_usage_mb >= 0


def test_summary_equals_an_exact_recomputation_from_the_rows(results):
    patients = _table(results.iterate_patients()).to_pydict()
    stats = results.summary_stats()
    horizon = results.parameters.horizon_days
    follow_up = sum(
        (d if stopped else horizon) - e
        for d, stopped, e in zip(
            patients["discontinuation_day"],
            patients["discontinued"],
            patients["enrollment_day"],
            strict=True,
        )
    )
    assert stats.patients == N_PATIENTS
    assert stats.visits == results.visit_count
    assert stats.injections == sum(patients["injections"])
    assert stats.injections_per_patient_year == pytest.approx(
        sum(patients["injections"]) / (follow_up / DAYS_PER_YEAR)
    )
    assert stats.mean_baseline_vision == pytest.approx(np.mean(patients["baseline_vision"]))
    assert stats.mean_final_vision == pytest.approx(np.mean(patients["final_vision"]))
    reasons = patients["discontinuation_reason"]
    for reason, rate in stats.discontinuation_rate_by_reason.items():
        assert rate == pytest.approx(reasons.count(reason) / N_PATIENTS)
    assert stats.discontinuation_rate == pytest.approx(sum(patients["discontinued"]) / N_PATIENTS)


@pytest.mark.parametrize("batch_size", [1_000, 777])
def test_iteration_yields_every_row_in_order_in_bounded_batches(results, batch_size):
    patient_batches = list(results.iterate_patients(batch_size))
    visit_batches = list(results.iterate_visits(batch_size * 10))
    assert all(b.num_rows <= batch_size for b in patient_batches)
    assert all(b.num_rows <= batch_size * 10 for b in visit_batches)
    ids = np.concatenate([b.column("patient_id").to_numpy() for b in patient_batches])
    assert ids.tolist() == list(range(N_PATIENTS))
    visit_ids = np.concatenate([b.column("patient_id").to_numpy() for b in visit_batches])
    assert len(visit_ids) == results.visit_count
    assert (np.diff(visit_ids) >= 0).all()


def test_iteration_refuses_a_batch_size_below_one(results):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        next(results.iterate_visits(0))


@pytest.mark.parametrize("patient_id", [0, 999, 1_000, N_PATIENTS - 1])
def test_get_patient_returns_the_row_and_that_patients_visits(results, patient_id):
    record = results.get_patient(patient_id)
    assert record.patient["patient_id"] == patient_id
    visits = record.visits.to_pydict()
    assert set(visits["patient_id"]) == {patient_id}
    assert visits["visit"] == list(range(record.patient["visits"]))
    assert visits["vision"][-1] == record.patient["final_vision"]
    assert sum(visits["injected"]) == record.patient["injections"]


@pytest.mark.parametrize("patient_id", [-1, N_PATIENTS])
def test_get_patient_outside_the_run_raises_key_error(results, patient_id):
    with pytest.raises(KeyError, match=f"patient {patient_id} is not in this run"):
        results.get_patient(patient_id)


def test_get_patient_range_returns_the_patients_and_their_visits(results):
    patients, visits = results.get_patient_range(990, 1_010)
    assert patients.column("patient_id").to_pylist() == list(range(990, 1_010))
    assert set(visits.column("patient_id").to_pylist()) == set(range(990, 1_010))
    assert visits.num_rows == sum(patients.column("visits").to_pylist())
    clamped, _ = results.get_patient_range(N_PATIENTS - 5, N_PATIENTS + 50)
    assert clamped.num_rows == 5
    empty, no_visits = results.get_patient_range(10, 5)
    assert empty.num_rows == 0 and no_visits.num_rows == 0


def test_to_dataframe_gives_both_tables(results):
    visits = results.to_dataframe("visits")
    patients = results.to_dataframe("patients")
    assert len(visits) == results.visit_count
    assert len(patients) == N_PATIENTS
    assert list(visits.columns) == [
        "patient_id",
        "visit",
        "day",
        "vision",
        "injected",
        "disease_state",
        "interval_days",
    ]
    assert str(visits["disease_state"].dtype) == "category"


def test_to_dataframe_refuses_when_it_would_not_fit_the_budget(results, monkeypatch):
    # The machine has 1,000 bytes left: the budget is half of the headroom under the limit.
    monkeypatch.setattr("engine.memory.limits.SystemProbe.available_bytes", lambda self: 1_000)
    with pytest.raises(
        MemoryBudgetError, match=r"the visits table as a DataFrame needs about .* MiB budget"
    ) as caught:
        results.to_dataframe("visits")
    assert "iterate_visits()" in str(caught.value)


def test_to_dataframe_rejects_an_unknown_table(results):
    with pytest.raises(ValueError, match="table must be 'patients' or 'visits'"):
        results.to_dataframe("nope")


def test_close_is_idempotent_and_the_context_manager_closes(results):
    with results as opened:
        assert opened is results
    results.close()
    results.close()


def test_protocol_parameters_and_statistics_are_the_same_in_every_tier(results, fresh):
    assert results.protocol == fresh.protocol
    assert results.parameters == fresh.parameters
    assert results.summary_stats() == fresh.summary_stats()
    assert results.statistics() == fresh.statistics()


@pytest.mark.parametrize("patient_id", [0, 7, 999, 1_000, 1_999, N_PATIENTS - 1])
def test_every_tier_returns_exactly_the_in_memory_rows_for_a_patient(results, fresh, patient_id):
    ours = results.get_patient(patient_id)
    theirs = fresh.get_patient(patient_id)
    assert ours.patient == theirs.patient
    assert ours.visits.to_pydict() == theirs.visits.to_pydict()


def test_iteration_covers_every_patient_and_visit_once_with_the_same_rows(results, fresh):
    ours = pa.Table.from_batches(list(results.iterate_visits(3_000)))
    theirs = pa.Table.from_batches(list(fresh.iterate_visits(3_000)))
    assert ours.num_rows == theirs.num_rows
    assert ours.to_pydict() == theirs.to_pydict()
    patients = pa.Table.from_batches(list(results.iterate_patients(333))).to_pydict()
    assert patients == pa.Table.from_batches(list(fresh.iterate_patients(333))).to_pydict()


def test_saved_tables_equal_the_original(fresh, tmp_path):
    for table_format in ("parquet", "arrow"):
        folder = fresh.save(tmp_path / table_format, table_format)
        loaded = InMemoryResults.load(folder)
        assert _table(loaded.iterate_visits()).equals(_table(fresh.iterate_visits()))
        assert _table(loaded.iterate_patients()).equals(_table(fresh.iterate_patients()))
        assert not list(folder.glob(".*tmp")), "temporary files left behind"


def test_loading_a_directory_without_results_names_it(tmp_path):
    with pytest.raises(RunNotFoundError, match="holds no saved results"):
        InMemoryResults.load(tmp_path)


def test_loading_a_corrupt_header_is_a_format_error(fresh, tmp_path):
    folder = fresh.save(tmp_path / "r")
    (folder / "results.json").write_text("{not json")
    with pytest.raises(ResultsFormatError, match=r"results\.json is not a valid results header"):
        InMemoryResults.load(folder)


def test_loading_a_newer_format_asks_for_an_upgrade(fresh, tmp_path):
    folder = fresh.save(tmp_path / "r")
    header = json.loads((folder / "results.json").read_text())
    header["format_version"] = 99
    (folder / "results.json").write_text(json.dumps(header))
    with pytest.raises(
        ResultsFormatError, match=r"format version 99; this amdsim reads up to 2\. Upgrade"
    ):
        InMemoryResults.load(folder)


def test_loading_a_truncated_table_is_a_format_error(fresh, tmp_path):
    folder = fresh.save(tmp_path / "r")
    data = (folder / "visits.parquet").read_bytes()
    (folder / "visits.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsFormatError, match=r"visits\.parquet cannot be read"):
        InMemoryResults.load(folder)


@pytest.mark.parametrize("in_memory", [True, False], ids=["in-memory", "streamed"])
def test_run_simulation_reports_progress_up_to_every_patient(tmp_path, in_memory):
    seen = []
    results = run_simulation(
        n_patients=70_000, years=1, on_progress=seen.append, in_memory=in_memory, runs_dir=tmp_path
    )
    done = [p.patients_done for p in seen]
    assert done == sorted(done) and done[-1] == 70_000 and len(done) >= 2
    assert seen[-1].visits_done == results.visit_count
    assert seen[-1].fraction == 1.0
    results.close()


def test_run_simulation_refuses_bad_inputs_before_simulating():
    with pytest.raises(ProtocolError):
        run_simulation("no_such_protocol")
    with pytest.raises(ParameterError):
        run_simulation(n_patients=-5)


def test_the_patient_cache_counts_hits_and_misses(run_dir):
    with ParquetResults(run_dir, patient_cache_size=2) as results:
        for patient_id in (5, 5, 6, 5, 7, 8, 5):
            results.get_patient(patient_id)
        stats = results.cache_statistics()
        assert (stats.hits, stats.misses) == (2, 5)  # 5 is evicted by 7 and 8 before its last read
        assert stats.size == 2 and stats.hit_rate == pytest.approx(2 / 7)


def test_opening_something_that_is_not_a_run_says_so(tmp_path):
    with pytest.raises(RunNotFoundError, match="holds no results"):
        ResultsFactory.open(tmp_path)
    with pytest.raises(RunNotFoundError, match="is not a run directory"):
        ParquetResults(tmp_path)


def test_a_corrupt_checkpoint_or_newer_manifest_is_a_format_error(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "checkpoint.json").write_text("{")
    with pytest.raises(ResultsFormatError, match=r"checkpoint\.json is not a valid checkpoint"):
        ParquetResults(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultsFormatError, match="format version 99; this amdsim reads up to 2"):
        ParquetResults(copy)


def test_results_refuse_to_read_after_close(run_dir):
    results = ParquetResults(run_dir)
    results.close()
    with pytest.raises(ResultsFormatError, match="these results are closed"):
        results.get_patient(3)


def test_the_factory_picks_the_tier_by_size():
    assert ResultsFactory.tier(1_000) == "memory"
    assert ResultsFactory.tier(1_001) == "parquet"


def test_run_simulation_streams_a_large_run_to_disk(tmp_path):
    results = run_simulation(n_patients=3_000, years=1, runs_dir=tmp_path)
    assert isinstance(results, ParquetResults) and results.patient_count == 3_000
    assert results.paths.root.parent == tmp_path
    results.close()
