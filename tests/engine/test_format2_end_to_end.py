"""The time-based model's runs end to end: kernel -> worker statistics -> channel -> writer ->
`ParquetResults`, and in memory; skipped until the kernel is on this branch."""

from __future__ import annotations

import msgspec
import numpy as np
import pyarrow as pa
import pytest

from engine.columns import PATIENT_COLUMNS_V2
from engine.errors import AmdsimError
from engine.formats import stored_version
from engine.manifest import read_checkpoint
from engine.model.parameters import RunParameters
from engine.pipeline import PipelineOptions, resume_run, run_pipeline
from engine.results import InMemoryResults, ParquetResults
from engine.run_dir import RunPaths
from engine.runner import run_simulation
from tests.engine.test_format2_outputs import direct_outcome_table

timebased = pytest.importorskip("tests.engine.timebased_protocols")
pytest.importorskip("engine.model.v2.kernel")

PARAMS = RunParameters(n_patients=1500, years=3, seed=7, shard_size=512)


def numpy_columns(table: pa.Table) -> dict[str, np.ndarray]:
    columns = {}
    for spec in PATIENT_COLUMNS_V2:
        column = table.column(spec.name)
        if spec.dictionary is not None:
            values = [-1 if v is None else spec.dictionary.index(v) for v in column.to_pylist()]
        else:
            values = [-1 if v is None else v for v in column.to_pylist()]
        columns[spec.name] = np.asarray(values, dtype=spec.dtype)
    return columns


def test_a_time_based_run_streams_and_stays_in_memory_with_identical_rows_and_table(tmp_path):
    protocol = timebased.simple_protocol()
    memory = run_simulation(
        protocol, PARAMS.n_patients, PARAMS.years, PARAMS.seed, shard_size=512, in_memory=True
    )
    assert isinstance(memory, InMemoryResults)
    run_dir = tmp_path / "run"
    manifest = run_pipeline(protocol, PARAMS, run_dir, PipelineOptions(workers=1))
    assert manifest.format_version == 2
    paths = RunPaths(run_dir)
    for document in (paths.manifest, paths.checkpoint, paths.stats):
        assert stored_version(document.read_bytes()) == 2, document.name
    with ParquetResults(run_dir) as streamed:
        assert streamed.protocol == protocol  # decoded back into a TimeBasedProtocol
        assert streamed.manifest.reproducibility.random_scheme == "counter-based"
        ours = streamed.get_patient_range(0, PARAMS.n_patients)
        theirs = memory.get_patient_range(0, PARAMS.n_patients)
        # (values, not Arrow layout: Parquet may re-encode dictionaries)
        assert ours[0].to_pydict() == theirs[0].to_pydict()
        assert ours[1].to_pydict() == theirs[1].to_pydict()
        table = streamed.statistics().outcome_table()
        assert table is not None
        # NaN (months beyond a 3-year horizon) is unequal to itself: compare as JSON
        assert msgspec.json.encode(table) == msgspec.json.encode(
            memory.statistics().outcome_table()
        )
        assert table == direct_outcome_table(numpy_columns(ours[0]))
        assert msgspec.json.encode(streamed.statistics().state()) == msgspec.json.encode(
            memory.statistics().state()
        )
    saved = InMemoryResults.load(memory.save(tmp_path / "saved"))
    assert saved.protocol == protocol
    assert saved.get_patient(3).patient == memory.get_patient(3).patient


def test_a_failed_time_based_run_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path):
    protocol = timebased.simple_protocol()
    params = RunParameters(n_patients=3000, years=2, seed=3, shard_size=128)
    run_pipeline(protocol, params, tmp_path / "whole", PipelineOptions(workers=1))
    # Every batch closes its part files (a checkpoint each); the disk "fills" part-way.
    failing = PipelineOptions(workers=1, roll_bytes=1, writer_fail_after_bytes=60_000)
    with pytest.raises(AmdsimError):
        run_pipeline(protocol, params, tmp_path / "run", failing)
    done = {loc.shard for loc in read_checkpoint(tmp_path / "run" / "checkpoint.json").shards}
    assert done and len(done) < params.shard_count  # resumed from a checkpoint, not from nothing
    assert resume_run(tmp_path / "run", PipelineOptions(workers=1)).status == "completed"
    with ParquetResults(tmp_path / "whole") as whole, ParquetResults(tmp_path / "run") as resumed:
        ours = resumed.get_patient_range(0, params.n_patients)
        theirs = whole.get_patient_range(0, params.n_patients)
        assert ours[0].to_pydict() == theirs[0].to_pydict()
        assert ours[1].to_pydict() == theirs[1].to_pydict()
        assert msgspec.json.encode(resumed.statistics().state()) == msgspec.json.encode(
            whole.statistics().state()
        )
