"""Leak checks shared by the load tests and `perf/bench_memory.py`: settled RSS of this
process, growth after warm-up, and the two workloads measured (consecutive runs, and
open/read/close cycles of results in both tiers)."""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable
from pathlib import Path

import psutil
import pyarrow as pa

from engine import run_simulation
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, Supervisor, run_pipeline
from engine.results import ResultsFactory
from tests.helpers import V1_PROTOCOL

__all__ = ["consecutive_runs", "growth_after_warm_up", "open_read_close_cycles", "settled_rss"]


def settled_rss() -> int:
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


def consecutive_runs(
    folder: Path, count: int = 20, after_each: Callable[[], None] | None = None
) -> list[int]:
    """Run `count` small streaming runs in this process; settled RSS after each."""
    samples = []
    for i in range(count):
        supervisor = Supervisor(
            load_protocol(V1_PROTOCOL),
            RunParameters(n_patients=20_000, years=3, seed=i),
            folder / f"run-{i}",
            PipelineOptions(workers=1, metrics_interval_s=0.1),
        )
        supervisor.start()
        if supervisor.run().status != "completed":
            raise RuntimeError(f"run {i} of the leak check did not complete")
        del supervisor
        samples.append(settled_rss())
        if after_each is not None:
            after_each()
    return samples


def open_read_close_cycles(folder: Path, cycles: int = 200) -> list[int]:
    """Build a streamed run and saved in-memory results under `folder`, then open, read and
    close both `cycles` times; settled RSS after each cycle."""
    streamed = folder / "streamed"
    run_pipeline(
        load_protocol(V1_PROTOCOL),
        RunParameters(n_patients=30_000, years=3, seed=4),
        streamed,
        PipelineOptions(workers=1),
    )
    saved = folder / "memory"
    run_simulation(load_protocol(V1_PROTOCOL), n_patients=800, years=3, seed=4).save(saved)
    samples = []
    for cycle in range(cycles):
        for results_dir in (streamed, saved):
            with ResultsFactory.open(results_dir) as results:
                results.summary_stats()
                results.get_patient(cycle * 3 % results.patient_count)
                next(iter(results.iterate_visits(5_000)))
                results.get_patient_range(10, 60)
        samples.append(settled_rss())
    return samples
