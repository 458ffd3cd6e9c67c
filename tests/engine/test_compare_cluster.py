"""`amdsim compare --cluster`: blocks and PSA draws as Dask tasks give the local results.

One LocalCluster (2 single-threaded worker processes) serves the module; the Python API and
the in-process CLI reach it through its client or its address, and one subprocess test
starts its own ``--cluster local:2`` end to end.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.cli import main
from engine.compare.executors import open_blocks
from engine.compare.runner import (
    BLOCKS_DIR,
    ArmSpec,
    CompareCancelled,
    CompareSpec,
    block_plan,
    run_blocks,
    write_spec,
)
from engine.compare.valuation import eye_bands, eye_settings
from engine.errors import ClusterError
from engine.model.parameters import RunParameters, validate_parameters
from engine.model.protocol_loader import load_protocol
from tests.cli.in_process import run_cli

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "engine" / "psa" / "examples" / "aflibercept_uncertainty.yaml"
VIEW_2Q8 = "aflibercept_2q8_view"
VIEW_PRN = "aflibercept_2q8_then_capped_prn_view"
SMALL = ("--patients", "2000", "--years", "1", "--seed", "5")
PSA = ("--psa", "3", "--uncertainty", str(FULL))  # calibrated parameters: draws re-simulate
TASK_PREFIX = "amdsim-compare-block-"


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes for the module, closed with its workers."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture(autouse=True)
def no_cluster_from_environment(monkeypatch):
    monkeypatch.delenv("AMDSIM_CLUSTER", raising=False)


def _spec(patients: int = 4000, shard_size: int = 500) -> CompareSpec:
    """Several blocks of small shards, so the blocks spread over both workers."""
    params = validate_parameters(
        RunParameters(n_patients=patients, years=1.0, seed=11, shard_size=shard_size)
    )
    bands = eye_bands(
        [0.0, 20.0, 50.0, 65.0, 80.0],
        [0.4, 0.52, 0.57, 0.81, 0.89],
        [0.1, 0.2, 0.3, 0.2, 0.2],
        35.0,
    )
    return CompareSpec(
        arms=[
            ArmSpec(name=name, source=name, protocol=load_protocol(name))
            for name in (VIEW_2Q8, VIEW_PRN)
        ],
        params=params,
        eye=eye_settings(bands, 0.35, 0.035, 0.035),
        shards_per_block=1,
    )


def _blocks(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((directory / BLOCKS_DIR).iterdir())}


def _document(directory: Path) -> dict:
    """comparison.json without its run id (the only field that differs between runs)."""
    document = json.loads((directory / "comparison.json").read_text())
    document["run"].pop("id")
    return document


def _scheduler_keys(dask_scheduler) -> list[str]:
    return [str(key) for key in dask_scheduler.tasks]


def _wait_for_no_block_tasks(dask_client, timeout_s: float = 10.0) -> list[str]:
    """The scheduler's comparison tasks, once none is left (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        keys = [k for k in dask_client.run_on_scheduler(_scheduler_keys) if k.startswith("amdsim-")]
        if not keys or time.monotonic() > deadline:
            return keys
        time.sleep(0.05)


def test_blocks_on_a_dask_cluster_are_byte_identical_to_local_ones(client, tmp_path) -> None:
    spec = _spec()
    here, there = tmp_path / "here", tmp_path / "there"
    write_spec(here, spec)
    write_spec(there, spec)
    run_blocks(here, spec, workers=2)
    run_blocks(there, spec, workers=1, client=client)
    assert len(block_plan(spec)) == 8
    assert _blocks(here) == _blocks(there)  # totals merge from these, in block order
    assert _wait_for_no_block_tasks(client) == []  # results released once saved


def test_a_cancelled_comparison_drops_its_tasks_keeps_the_cluster_and_resumes(
    client, tmp_path
) -> None:
    spec = _spec(patients=6000)
    reference, directory = tmp_path / "reference", tmp_path / "cancelled"
    write_spec(reference, spec)
    write_spec(directory, spec)
    run_blocks(reference, spec, workers=2)
    cancel = threading.Event()

    def cancel_after_first_block(done: int, total: int) -> None:
        if done > 0:
            cancel.set()

    with pytest.raises(CompareCancelled):
        run_blocks(directory, spec, 1, cancel_after_first_block, cancel, client=client)
    kept = len(_blocks(directory))
    assert 1 <= kept < len(block_plan(spec))
    assert _wait_for_no_block_tasks(client) == []
    assert client.status == "running" and len(client.nthreads()) == 2  # the cluster stays up
    run_blocks(directory, spec, workers=1, client=client)
    assert _blocks(directory) == _blocks(reference)


def test_a_block_failing_on_the_cluster_is_a_cluster_error(client) -> None:
    with (
        pytest.raises(ClusterError, match="ValueError: non-hexadecimal"),
        open_blocks(1, client) as blocks,
    ):
        blocks.result(blocks.submit("compare-block-test", bytes.fromhex, "zz"))
    assert client.submit(len, "still up", pure=False).result() == 8


@pytest.fixture(scope="module")
def local_psa(tmp_path_factory) -> Path:
    """A small comparison with 3 re-simulated PSA draws, run on this machine's workers."""
    out = tmp_path_factory.mktemp("local") / "cmp"
    assert main(["compare", VIEW_2Q8, VIEW_PRN, *SMALL, *PSA, "--json", "--out", str(out)]) == 0
    return out


def test_a_comparison_and_its_psa_on_a_cluster_match_the_local_run(
    client, local_psa, capsys, tmp_path
) -> None:
    out = tmp_path / "cluster"
    address = client.scheduler.address
    args = ("compare", VIEW_2Q8, VIEW_PRN, *SMALL, *PSA, "--cluster", address, "--json")
    result = run_cli(capsys, *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"on the Dask scheduler at {address}" in result.stderr
    assert _document(out) == _document(local_psa)
    assert _document(out)["psa"]["resimulated_draws"] == 3
    table = pq.read_table(out / "psa" / "draws.parquet").to_pydict()
    assert table == pq.read_table(local_psa / "psa" / "draws.parquet").to_pydict()
    assert _wait_for_no_block_tasks(client) == []


def test_resume_on_a_cluster_finishes_a_comparison_identically(
    client, local_psa, capsys, tmp_path
) -> None:
    directory = tmp_path / "resumed"
    shutil.copytree(local_psa, directory)
    for path in [
        *(directory / BLOCKS_DIR).iterdir(),
        *(directory / "psa").glob("draw-00000[12].json"),
        directory / "psa" / "draws.parquet",
        directory / "comparison.json",
    ]:
        path.unlink()
    address = client.scheduler.address
    result = run_cli(capsys, "compare", "--resume", str(directory), "--cluster", address)
    assert result.returncode == 0, result.stderr
    assert _document(directory) == _document(local_psa)
    assert json.loads((directory / "status.json").read_text())["status"] == "completed"


def test_a_bad_cluster_value_is_one_line_and_writes_nothing(capsys, tmp_path) -> None:
    out = tmp_path / "x"
    result = run_cli(
        capsys,
        "compare",
        VIEW_2Q8,
        VIEW_PRN,
        *SMALL,
        "--cluster",
        "no such:host",
        "--out",
        str(out),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --cluster 'no such:host': give a scheduler address (tcp://HOST:8786) or local:N"
    ]
    assert not out.exists()


def test_missing_dask_is_one_line_and_writes_nothing(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    out = tmp_path / "x"
    result = run_cli(
        capsys, "compare", VIEW_2Q8, VIEW_PRN, *SMALL, "--cluster", "local:2", "--out", str(out)
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "pip install -e '.[cluster]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_the_cli_runs_a_comparison_on_its_own_local_cluster(capsys, tmp_path) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    args = ("compare", VIEW_2Q8, VIEW_PRN, "--patients", "1000", "--years", "1", "--json")
    assert run_cli(capsys, *args, "--out", str(here)).returncode == 0
    ran = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args, "--cluster", "local:2", "--out", str(there)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "AMDSIM_CLUSTER": ""},
    )
    assert ran.returncode == 0, ran.stderr
    assert "on a local Dask cluster of 2 worker processes" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert _document(there) == _document(here)
    assert json.loads(ran.stdout)["arms"] == _document(here)["arms"]


def test_a_local_comparison_never_imports_dask(tmp_path) -> None:
    script = (
        "import sys\n"
        "from engine.cli import main\n"
        f"code = main(['compare', {VIEW_2Q8!r}, {VIEW_PRN!r}, '--patients', '500', "
        f"'--years', '1', '--workers', '1', '--json', '--out', {str(tmp_path / 'x')!r}])\n"
        "loaded = sorted(m for m in ('dask', 'distributed') if m in sys.modules)\n"
        "sys.exit(f'loaded {loaded}' if loaded else code)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "AMDSIM_CLUSTER": ""},
    )
    assert ran.returncode == 0, ran.stderr
