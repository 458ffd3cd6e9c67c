"""Damaged, foreign and unindexed part files: found, named, never served as good rows
(issue 10, case 4); files flushed before and after every rename (issue 10, case 7)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from engine import run_simulation
from engine.errors import ResultsFormatError
from engine.integrity import verify_run
from engine.manifest import read_checkpoint, read_manifest, write_manifest
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, resume_run, run_pipeline
from engine.pipeline.batches import decode_batch, encode_shard
from engine.pipeline.parts import PartFiles
from engine.results import ParquetResults
from engine.run_dir import RunPaths, temporary_name, write_atomically
from tests.helpers import V1_PROTOCOL, simulate

# Over the in-memory threshold, so it streams; six shards in three pairs of part files.
PARAMS = RunParameters(n_patients=3000, years=1, seed=4, shard_size=500)


def streamed_run(run_dir: Path, compression: str) -> Path:
    options = PipelineOptions(
        workers=1, writer_lanes=1, compression=compression, checkpoint_every=1000
    )
    run_pipeline(load_protocol(V1_PROTOCOL), PARAMS, run_dir, options)
    return run_dir


@pytest.fixture(scope="module", params=["none", "zstd"])
def original(request, tmp_path_factory) -> Path:
    """A finished streaming run, never modified (tests damage copies of it)."""
    run_dir = tmp_path_factory.mktemp(request.param) / "20261202-000000-aaaa"
    return streamed_run(run_dir, request.param)


@pytest.fixture
def run_copy(original, tmp_path) -> Path:
    """A copy of the finished run under the same run id (its directory name)."""
    return Path(shutil.copytree(original, tmp_path / "copy" / original.name))


def corrupt_row_group(path: Path, row_group: int, column: str = "day") -> None:
    """Overwrite bytes in the middle of one column chunk's data page (size unchanged)."""
    metadata = pq.read_metadata(path)
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    chunk = metadata.row_group(row_group).column(names.index(column))
    offset = chunk.data_page_offset + chunk.total_compressed_size * 3 // 4
    with open(path, "r+b") as handle:
        handle.seek(offset)
        old = handle.read(8)
        handle.seek(offset)
        handle.write(bytes(byte ^ 0xFF for byte in old))


def a_patient_in(run_dir: Path, file: int, visits_row_group: int) -> int:
    """The id of a patient whose visits are in that row group of that visits file."""
    for location in read_checkpoint(RunPaths(run_dir).checkpoint).shards:
        groups = range(
            location.visits_row_group, location.visits_row_group + location.row_group_count
        )
        if location.file == file and visits_row_group in groups:
            offset = visits_row_group - location.visits_row_group
            return location.first_patient + offset * max(location.row_group_patients, 1)
    raise AssertionError("no such row group")


def set_status(run_dir: Path, status: str) -> None:
    paths = RunPaths(run_dir)
    write_manifest(
        paths.manifest, msgspec.structs.replace(read_manifest(paths.manifest), status=status)
    )


def test_corrupted_part_file_is_reported_by_verify(run_copy):
    paths = RunPaths(run_copy)
    assert verify_run(paths, read_manifest(paths.manifest), read_checkpoint(paths.checkpoint)) == []
    corrupt_row_group(paths.part_file("visits", 1), 0)
    damage = verify_run(paths, read_manifest(paths.manifest), read_checkpoint(paths.checkpoint))
    assert [item.file for item in damage] == ["visits/part-00001.parquet"]
    assert "row group 0" in damage[0].problem
    assert "checksum" in damage[0].problem.lower()


def test_get_patient_on_a_damaged_row_group_raises_naming_file_and_row_group(run_copy, original):
    paths = RunPaths(run_copy)
    patient_id = a_patient_in(run_copy, 1, 0)
    corrupt_row_group(paths.part_file("visits", 1), 0)
    with ParquetResults(run_copy) as results:
        with pytest.raises(ResultsFormatError) as caught:
            results.get_patient(patient_id)
        assert "visits/part-00001.parquet: row group 0 cannot be read" in str(caught.value)
        with pytest.raises(ResultsFormatError, match=r"part-00001\.parquet: row group"):
            list(results.iterate_visits())
        # Undamaged files still serve their rows, equal to the original's.
        with ParquetResults(original) as good:
            assert results.get_patient(0).visits.equals(good.get_patient(0).visits)


def test_resume_refuses_a_run_with_a_corrupted_part_file(run_copy):
    paths = RunPaths(run_copy)
    corrupt_row_group(paths.part_file("patients", 2), 0, column="baseline_vision")
    with pytest.raises(ResultsFormatError, match=r"patients/part-00002\.parquet: row group 0"):
        resume_run(run_copy, PipelineOptions(workers=1))  # completed: checked, not "complete"
    set_status(run_copy, "cancelled")
    with pytest.raises(ResultsFormatError, match=r"1 damaged file: patients/part-00002"):
        resume_run(run_copy, PipelineOptions(workers=1))
    assert paths.part_file("patients", 2).is_file(), "a refused resume deletes nothing"


def test_part_file_copied_from_another_run_is_refused(run_copy, tmp_path):
    compression = read_manifest(RunPaths(run_copy).manifest).compression
    other = streamed_run(tmp_path / "other" / "20261202-000000-beef", compression)
    paths = RunPaths(run_copy)
    target = paths.part_file("visits", 1)
    shutil.copyfile(RunPaths(other).part_file("visits", 1), target)
    # Same parameters and an id as long: the same size, so only the run id tells them apart.
    assert target.stat().st_size == read_checkpoint(paths.checkpoint).parts[1].visits_bytes
    patient_id = a_patient_in(run_copy, 1, 0)
    with (
        ParquetResults(run_copy) as results,
        pytest.raises(ResultsFormatError, match="belongs to run 20261202-000000-beef"),
    ):
        results.get_patient(patient_id)
    damage = verify_run(paths, read_manifest(paths.manifest), read_checkpoint(paths.checkpoint))
    assert [item.file for item in damage] == ["visits/part-00001.parquet"]
    assert "belongs to run 20261202-000000-beef, not 20261202-000000-aaaa" in damage[0].problem
    set_status(run_copy, "failed")
    with pytest.raises(ResultsFormatError, match=r"visits/part-00001\.parquet: belongs to run"):
        resume_run(run_copy, PipelineOptions(workers=1))


def test_completed_run_without_checkpoint_still_opens(run_copy, original):
    RunPaths(run_copy).checkpoint.unlink()
    with ParquetResults(run_copy) as results, ParquetResults(original) as good:
        assert results.patient_count == good.patient_count == PARAMS.n_patients
        assert results.part_file_count == good.part_file_count
        assert results.bytes_on_disk == good.bytes_on_disk
        for patient_id in (0, 1499, 2999):
            assert results.get_patient(patient_id).visits.equals(
                good.get_patient(patient_id).visits
            )
        ours = results.get_patient_range(0, PARAMS.n_patients)
        theirs = good.get_patient_range(0, PARAMS.n_patients)
        assert ours[0].equals(theirs[0]) and ours[1].equals(theirs[1])
        assert results.summary_stats() == good.summary_stats()


def test_part_files_are_fsynced_before_rename_and_their_directory_after(tmp_path, monkeypatch):
    """Case 7: fsync(file) -> rename -> fsync(dir), for both tables of every pair."""
    params, outputs = simulate(load_protocol(V1_PROTOCOL), 200, years=1, shard_size=200)
    (batch,) = encode_shard(outputs[0], 0, params.horizon_days, 4 << 20)
    paths = RunPaths(tmp_path / "run")
    parts = PartFiles(paths, "zstd", 1 << 30, {"amdsim.run_id": "run"})
    parts.write(decode_batch(batch))
    trace = record_fsyncs_and_renames(monkeypatch)
    parts.roll()
    for table in ("patients", "visits"):
        final = paths.part_file(table, 0)
        flushed = trace.index(("fsync", str(temporary_name(final))))
        renamed = trace.index(("rename", str(final)))
        directory = trace.index(("fsync", str(final.parent)), renamed)
        assert flushed < renamed < directory


def test_manifest_checkpoint_and_stats_writes_are_fsynced_around_the_rename(tmp_path, monkeypatch):
    """Case 7: what write_atomically replaces (manifest, checkpoint, stats) survives a power cut."""
    target = tmp_path / "manifest.json"
    trace = record_fsyncs_and_renames(monkeypatch)
    write_atomically(target, b"{}")
    assert trace == [
        ("fsync", str(temporary_name(target))),
        ("rename", str(target)),
        ("fsync", str(tmp_path)),
    ]


def test_saved_results_are_fsynced_before_rename_and_their_directory_after(tmp_path, monkeypatch):
    """Case 7 for `InMemoryResults.save`: its tables are on disk before results.json names them."""
    results = run_simulation(n_patients=50, years=1, seed=1)
    trace = record_fsyncs_and_renames(monkeypatch)
    results.save(tmp_path / "saved")
    for name in ("patients.parquet", "visits.parquet", "results.json"):
        final = tmp_path / "saved" / name
        flushed = trace.index(("fsync", str(temporary_name(final))))
        renamed = trace.index(("rename", str(final)))
        directory = trace.index(("fsync", str(final.parent)), renamed)
        assert flushed < renamed < directory


def record_fsyncs_and_renames(monkeypatch) -> list[tuple[str, str]]:
    trace: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        trace.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source, target) -> None:
        real_replace(source, target)
        trace.append(("rename", str(target)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return trace
