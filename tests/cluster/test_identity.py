"""A run on a Dask cluster gives the local pipeline's rows and statistics, byte for byte,
whatever the number of workers (which changes how shards are cut into tasks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cluster import run_on_cluster
from engine.manifest import read_checkpoint, read_manifest
from engine.model.parameters import Recruitment, RunParameters
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from engine.pipeline import PipelineOptions, run_pipeline
from engine.results import ParquetResults
from tests.engine.test_v2_pipeline import _decoded, assert_same, on_disk

RECRUITMENT = {
    "cohort": Recruitment(),
    "period": Recruitment(mode="period", period_days=365),
}


def _local(protocol, params: RunParameters, run_dir: Path) -> Path:
    run_pipeline(protocol, params, run_dir, PipelineOptions(workers=2))
    return run_dir


def _assert_clean(run_dir: Path) -> None:
    """Only listed part files, no temporaries, no token left behind."""
    checkpoint = read_checkpoint(run_dir / "checkpoint.json")
    listed = {n for p in checkpoint.parts for n in (p.patients_file, p.visits_file)}
    on_disk = {p.name for table in ("patients", "visits") for p in (run_dir / table).iterdir()}
    assert on_disk == listed, f"unlisted files: {sorted(on_disk - listed)}"
    assert not list(run_dir.rglob(".*.tmp")), "temporary files left"
    assert not (run_dir / "cluster-token").exists()


@pytest.mark.parametrize("mode", list(RECRUITMENT))
def test_two_and_three_dask_workers_write_the_local_runs_rows_and_statistics(
    tmp_path, two_workers, three_workers, mode
) -> None:
    protocol = load_protocol(DEFAULT_PROTOCOL)
    params = RunParameters(
        n_patients=30_000, years=5.0, seed=11, shard_size=1000, recruitment=RECRUITMENT[mode]
    )
    reference = on_disk(_local(protocol, params, tmp_path / "local"), params.n_patients)
    for name, client in (("two", two_workers), ("three", three_workers)):
        run_dir = tmp_path / name
        runs = []
        manifest = run_on_cluster(client, protocol, params, run_dir, on_started=runs.append)
        assert manifest.status == "completed"
        assert runs[0].progress.bytes_written == manifest.bytes_on_disk  # each file once
        assert manifest.cluster.startswith("tcp://") and manifest.cluster_dashboard
        assert_same(on_disk(run_dir, params.n_patients), reference)
        assert (run_dir / "stats.json").read_bytes() == (tmp_path / "local/stats.json").read_bytes()
        _assert_clean(run_dir)


def test_a_visit_based_protocol_runs_on_the_cluster_as_locally(tmp_path, two_workers) -> None:
    protocol = load_protocol("aflibercept_treat_and_extend")  # the format-1 model
    params = RunParameters(n_patients=12_000, years=3.0, seed=5, shard_size=1000)
    _local(protocol, params, tmp_path / "local")
    run_on_cluster(two_workers, protocol, params, tmp_path / "cluster")
    assert read_manifest(tmp_path / "cluster/manifest.json").format_version == 1
    tables = []
    for name in ("local", "cluster"):
        with ParquetResults(tmp_path / name) as results:
            tables.append([_decoded(t) for t in results.get_patient_range(0, params.n_patients)])
    for ours, theirs in zip(*tables, strict=True):
        assert ours.num_rows == theirs.num_rows and ours.equals(theirs)
    assert (tmp_path / "cluster/stats.json").read_bytes() == (
        tmp_path / "local/stats.json"
    ).read_bytes()


@pytest.mark.slow
def test_200k_patients_over_5_years_identical_on_two_and_three_workers(
    tmp_path, two_workers, three_workers
) -> None:
    protocol = load_protocol(DEFAULT_PROTOCOL)
    params = RunParameters(n_patients=200_000, years=5.0, seed=2026)
    reference = on_disk(_local(protocol, params, tmp_path / "local"), params.n_patients)
    for name, client in (("two", two_workers), ("three", three_workers)):
        run_on_cluster(client, protocol, params, tmp_path / name)
        assert_same(on_disk(tmp_path / name, params.n_patients), reference)
        stats = json.loads((tmp_path / name / "stats.json").read_bytes())
        assert stats == json.loads((tmp_path / "local/stats.json").read_bytes())
