"""Streaming runs end to end: supervisor, worker processes, writer, Parquet on disk.

`run_pipeline` from the start of the supervisor to the final manifest, as `perf/
bench_pipeline.py` measures it at 1M patients; here small cohorts, so process start-up
(about half a second) is a visible share of the time: a regression there shows too.
"""

from __future__ import annotations

from benchmarks._shared import new_scratch_dir, protocol_of, remove_scratch_dir, run_parameters
from engine.pipeline import PipelineOptions, run_pipeline

PATIENTS = 20_000


class Pipeline:
    """A 20k-patient x 5-year run into a scratch folder, with 1 or 2 workers."""

    params = (["v1", "v2"], [1, 2])
    param_names = ["model", "workers"]
    timeout = 180
    # Each call starts processes and writes files: few samples, no warm-up calls.
    repeat = (1, 3, 20.0)
    warmup_time = 0.0

    def setup(self, model: str, workers: int) -> None:
        self.protocol = protocol_of(model)
        self.params_ = run_parameters(PATIENTS)
        self.folder = new_scratch_dir()
        self.runs = 0

    def teardown(self, model: str, workers: int) -> None:
        remove_scratch_dir(self.folder)

    def _run(self, workers: int, **options):
        self.runs += 1
        return run_pipeline(
            self.protocol,
            self.params_,
            self.folder / f"run-{self.runs}",
            PipelineOptions(workers=workers, **options),
        )

    def time_run_pipeline(self, model: str, workers: int) -> None:
        """Seconds from starting the supervisor to the completed manifest."""
        self._run(workers)

    def peakmem_run_pipeline(self, model: str, workers: int) -> None:
        """Peak RSS of the supervisor process alone (workers and writer are children)."""
        self._run(workers)

    def track_peak_rss_all_processes(self, model: str, workers: int) -> int:
        """Peak RSS summed over the run's processes, as the supervisor samples it (20 Hz)."""
        supervisors = []
        run_pipeline(
            self.protocol,
            self.params_,
            self.folder / "tracked",
            PipelineOptions(workers=workers, metrics_interval_s=0.05),
            on_started=supervisors.append,
        )
        return supervisors[0].peak_rss_total

    track_peak_rss_all_processes.unit = "bytes"


class PipelineDisk:
    """What a run leaves on disk, per visit (independent of the number of workers)."""

    params = ["v1", "v2"]
    param_names = ["model"]
    timeout = 120

    def setup(self, model: str) -> None:
        self.folder = new_scratch_dir()

    def teardown(self, model: str) -> None:
        remove_scratch_dir(self.folder)

    def track_bytes_per_visit(self, model: str) -> float:
        """Bytes on disk per visit (zstd, both tables): the figure behind the disk estimate."""
        manifest = run_pipeline(
            protocol_of(model),
            run_parameters(PATIENTS),
            self.folder / "run",
            PipelineOptions(workers=1),
        )
        return manifest.bytes_on_disk / manifest.visits

    track_bytes_per_visit.unit = "bytes/visit"
