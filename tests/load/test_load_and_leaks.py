"""Load and leak suite: a run inside 1 GiB, flat memory with cohort size, no growth over
many runs and many open/read/close cycles, and disk full. Marked slow; CI runs them.

pytest-memray does not follow spawned children, so these measure processes with psutil;
the memray leak check of the open/close path is `tests/engine/test_memory_limits.py`.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import run_simulation
from engine.errors import WriterFailedError
from engine.memory import MemoryMonitor
from engine.parameters import RunParameters
from engine.pipeline import PipelineOptions, Supervisor, run_pipeline
from engine.protocol_loader import load_protocol
from engine.registry import Registry
from engine.results import ResultsFactory
from engine.run_dir import new_run_id
from tests.load.confine import confined, run_confined

GiB = 1 << 30
MiB = 1 << 20
AMDSIM = str(Path(sys.executable).with_name("amdsim"))

pytestmark = pytest.mark.slow


def rss() -> int:
    """Resident bytes of this process once garbage is collected and Arrow's pool has handed
    back what it caches (it keeps freed blocks for reuse, which is not a leak)."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    return psutil.Process().memory_info().rss


def growth_after_warm_up(samples: list[int], warm_up: int, window: int = 3) -> float:
    """Relative growth from the end of the warm-up to the end, on medians of `window`
    samples so a single allocator hiccup does not decide."""
    start = statistics.median(samples[warm_up : warm_up + window])
    end = statistics.median(samples[-window:])
    return (end - start) / start


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
            load_protocol(),
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
    samples, tree = [], []
    monitor = MemoryMonitor()
    for i in range(20):
        supervisor = Supervisor(
            load_protocol(),
            RunParameters(n_patients=20_000, years=3, seed=i),
            tmp_path / f"run-{i}",
            PipelineOptions(workers=1, metrics_interval_s=0.1),
        )
        supervisor.start()
        assert supervisor.run().status == "completed"
        del supervisor
        samples.append(rss())
        tree.append(monitor.snapshot().usage_bytes)  # this process and any child left over
    growth = growth_after_warm_up(samples, warm_up=4)
    assert growth <= 0.05, [s >> 20 for s in samples]
    assert growth_after_warm_up(tree, warm_up=4) <= 0.05, [t >> 20 for t in tree]


def test_200_open_read_close_cycles_do_not_grow_memory(tmp_path):
    streamed = tmp_path / "streamed"
    run_pipeline(
        load_protocol(),
        RunParameters(n_patients=30_000, years=3, seed=4),
        streamed,
        PipelineOptions(workers=1),
    )
    in_memory = tmp_path / "memory"
    run_simulation(load_protocol(), n_patients=800, years=3, seed=4).save(in_memory)
    samples = []
    for cycle in range(200):
        for folder in (streamed, in_memory):
            with ResultsFactory.open(folder) as results:
                results.summary_stats()
                results.get_patient(cycle * 3 % results.patient_count)
                next(iter(results.iterate_visits(5_000)))
                results.get_patient_range(10, 60)
        samples.append(rss())
    growth = growth_after_warm_up(samples, warm_up=20, window=15)
    assert growth <= 0.05, [s >> 20 for s in samples[::20]]


def test_disk_full_fails_the_run_in_the_registry_and_leaves_only_complete_files(tmp_path):
    run_dir = tmp_path / new_run_id()
    options = PipelineOptions(
        workers=1, roll_bytes=200_000, writer_fail_after_bytes=600_000, checkpoint_every=0
    )
    with pytest.raises(WriterFailedError, match="No space left on device") as error:
        run_pipeline(
            load_protocol(), RunParameters(n_patients=40_000, years=3, seed=6), run_dir, options
        )
    assert "the writer failed" in str(error.value)
    (entry,) = Registry(tmp_path).list()
    assert entry.run_id == run_dir.name and entry.status == "failed"
    assert "No space left on device" in entry.error
    assert not list(run_dir.rglob("*.tmp")), "a temporary file was left"
    for part in run_dir.rglob("*.parquet"):  # a final name means a footer and every row
        assert pq.ParquetFile(part).metadata.num_rows > 0
