"""Load and leak suite: a run inside 1 GiB, flat memory with cohort size, no growth over
many runs and many open/read/close cycles, and disk full. Marked slow; CI runs them.

pytest-memray does not follow spawned children, so these measure processes with psutil;
the memray leak check of the open/close path is `tests/engine/test_memory_limits.py`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.errors import WriterFailedError
from engine.memory import MemoryMonitor
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, Supervisor, run_pipeline
from engine.registry import Registry
from engine.run_dir import new_run_id
from tests.helpers import V1_PROTOCOL
from tests.load.confine import confined, run_confined
from tests.load.leaks import consecutive_runs, growth_after_warm_up, open_read_close_cycles

GiB = 1 << 30
MiB = 1 << 20
AMDSIM = str(Path(sys.executable).with_name("amdsim"))

pytestmark = pytest.mark.slow


def test_a_million_patients_run_inside_a_1_gib_limit_and_the_run_reports_that_limit(tmp_path):
    with confined(GiB) as confinement:
        result = run_confined(
            confinement,
            (
                AMDSIM,
                "run",
                "--patients",
                "1000000",
                "--years",
                "5",
                "--json",
                "--runs-dir",
                str(tmp_path),
            ),
            timeout_s=900,
        )
    assert result.returncode == 0, f"under {confinement.kind}: {result.stderr[-3000:]}"
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed"
    assert summary["summary"]["patients"] == 1_000_000
    assert summary["memory_limit_bytes"] == GiB, summary["memory_limit_source"]
    expected_source = "RLIMIT_AS" if confinement.kind == "RLIMIT_AS" else confinement.kind
    assert summary["memory_limit_source"].startswith(expected_source)
    assert 0 < summary["peak_rss_bytes"] < GiB * 0.7, "a 1M run should stay green in 1 GiB"


def test_peak_memory_does_not_grow_with_the_cohort(tmp_path):
    peaks = {}
    for patients in (100_000, 1_000_000):
        supervisor = Supervisor(
            load_protocol(V1_PROTOCOL),
            RunParameters(n_patients=patients, years=10, seed=2),
            tmp_path / str(patients),
            PipelineOptions(workers=1, metrics_interval_s=0.1),
        )
        supervisor.start()
        assert supervisor.run().status == "completed"
        peaks[patients] = supervisor.peak_rss_total
    ratio = peaks[1_000_000] / peaks[100_000]
    assert ratio <= 1.2, {k: v >> 20 for k, v in peaks.items()}


def test_twenty_consecutive_runs_in_one_process_do_not_grow_its_memory(tmp_path):
    tree = []
    monitor = MemoryMonitor()

    def measure_tree() -> None:  # this process and any child left over
        tree.append(monitor.snapshot().usage_bytes)

    samples = consecutive_runs(tmp_path, 20, after_each=measure_tree)
    growth = growth_after_warm_up(samples, warm_up=4)
    assert growth <= 0.05, [s >> 20 for s in samples]
    assert growth_after_warm_up(tree, warm_up=4) <= 0.05, [t >> 20 for t in tree]


def test_200_open_read_close_cycles_do_not_grow_memory(tmp_path):
    samples = open_read_close_cycles(tmp_path, 200)
    growth = growth_after_warm_up(samples, warm_up=20, window=15)
    assert growth <= 0.05, [s >> 20 for s in samples[::20]]


def test_disk_full_fails_the_run_in_the_registry_and_leaves_only_complete_files(tmp_path):
    run_dir = tmp_path / new_run_id()
    options = PipelineOptions(
        workers=1, roll_bytes=200_000, writer_fail_after_bytes=600_000, checkpoint_every=0
    )
    with pytest.raises(WriterFailedError, match="No space left on device") as error:
        run_pipeline(
            load_protocol(V1_PROTOCOL),
            RunParameters(n_patients=40_000, years=3, seed=6),
            run_dir,
            options,
        )
    assert "the writer failed" in str(error.value)
    (entry,) = Registry(tmp_path).list()
    assert entry.run_id == run_dir.name and entry.status == "failed"
    assert "No space left on device" in entry.error
    assert not list(run_dir.rglob("*.tmp")), "a temporary file was left"
    for part in run_dir.rglob("*.parquet"):  # a final name means a footer and every row
        assert pq.ParquetFile(part).metadata.num_rows > 0
