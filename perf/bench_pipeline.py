"""End-to-end speed and memory of streaming runs, against the kernel alone, in one invocation.

1. 1M patients x 5 years with 1 and 2 workers, median of 3 runs each: visits/s end to end
   (supervisor start to manifest), kernel-only visits/s (same machine, same invocation, a
   fresh process), their ratio, peak RSS summed over every process of the run (psutil,
   sampled at 20 Hz), bytes per visit on disk, channel peak occupancy, and where the
   worker and writer spent their time.
2. 100k vs 1M vs 5M patients: peak total RSS must stay flat (ratio <= 1.2).

    python perf/bench_pipeline.py [--runs 3] [--patients 1000000] [--scaling 100000,1000000,5000000]
                                  [--shard-size 4096]   (small shards: batches travel inline)
                                  [--protocol time_based_uncalibrated_treat_and_extend]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.model.parameters import RunParameters  # noqa: E402
from engine.model.protocol_loader import load_protocol  # noqa: E402
from engine.pipeline import PipelineOptions, Supervisor  # noqa: E402
from ipc.messages import StageTimes  # noqa: E402

DEFAULT = "aflibercept_treat_and_extend"

KERNEL_ONLY = """
import statistics, sys, time
sys.path.insert(0, {root!r})
from engine.model.interface import compile_model
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.model.shards import plan_blocks
model = compile_model(load_protocol({protocol!r}))
params = RunParameters(n_patients={patients}, years={years}, seed=1)
times = []
for _ in range({runs}):
    started = time.perf_counter()
    visits = sum(o.visit_count for block in plan_blocks(params) for o in model.simulate_shards(params, block))
    times.append(time.perf_counter() - started)
print(visits / statistics.median(times))
"""


class RssSampler:
    """Peak of the summed RSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    if "resource_tracker" not in " ".join(process.cmdline()):
                        total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_s)


def pipeline_run(
    patients: int, years: float, workers: int, shard_size: int = 4096, protocol: str = DEFAULT
) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="amdsim-bench-"))
    try:
        params = RunParameters(n_patients=patients, years=years, seed=1, shard_size=shard_size)
        with RssSampler() as sampler:
            started = time.perf_counter()
            supervisor = Supervisor(
                load_protocol(protocol), params, folder / "run", PipelineOptions(workers=workers)
            )
            supervisor.start()
            manifest = supervisor.run()
            wall_s = time.perf_counter() - started
        sample = supervisor.latest_sample
        return {
            "wall_s": wall_s,
            "visits": manifest.visits,
            "visits_per_s": manifest.visits / wall_s,
            "peak_rss": max(sampler.peak_bytes, supervisor.peak_rss_total),
            "bytes_per_visit": manifest.bytes_on_disk / manifest.visits,
            "compression_ratio": manifest.compression_ratio,
            "channel_peak": sample.channel_peak if sample else 0,
            "channel_slots": sample.channel_slots if sample else 0,
            **_stage_seconds(supervisor.stage_times),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stage_seconds(times: list[StageTimes]) -> dict[str, float]:
    """Seconds per stage, summed over the workers (``worker_...``) and the writer's lanes and
    receiving thread (``writer_...``), from the run's own stage timings."""
    seconds: dict[str, float] = {}
    for entry in times:
        prefix = "worker" if entry.role == "worker" else "writer"
        for stage, value in entry.stages.items():
            key = f"{prefix}_{stage}_s"
            seconds[key] = seconds.get(key, 0.0) + value
    return seconds


def kernel_only(patients: int, years: float, runs: int, protocol: str = DEFAULT) -> float:
    script = KERNEL_ONLY.format(
        root=str(ROOT), patients=patients, years=years, runs=runs, protocol=protocol
    )
    output = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    )
    return float(output.stdout.strip())


def median(results: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--scaling", default="100000,1000000,5000000")
    parser.add_argument("--shard-size", type=int, default=4096)
    parser.add_argument("--protocol", default=DEFAULT, help="bundled name or file")
    args = parser.parse_args()
    mib = 2**20

    print(
        f"bench_pipeline: {args.patients:,} patients x {args.years:g} years, shard size "
        f"{args.shard_size:,}, medians of {args.runs} runs, protocol {args.protocol}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    kernel_rate = kernel_only(args.patients, args.years, args.runs, args.protocol)
    print(f"  kernel only (one core)       {kernel_rate / 1e6:6.2f} M visits/s")
    for workers in (1, 2):
        results = [
            pipeline_run(args.patients, args.years, workers, args.shard_size, args.protocol)
            for _ in range(args.runs)
        ]
        rate = median(results, "visits_per_s")
        walls = ", ".join(f"{r['wall_s']:.2f}" for r in results)
        print(
            f"  {workers} worker{'s' if workers > 1 else ' '} + writer            {rate / 1e6:6.2f} M visits/s end to end "
            f"({median(results, 'wall_s'):.2f} s; runs {walls})"
        )
        patients_rate = args.patients / median(results, "wall_s")
        print(f"    patients/s end to end      {patients_rate:,.0f}")
        print(f"    pipeline / kernel          {rate / kernel_rate:6.2f}")
        print(f"    peak RSS, all processes    {median(results, 'peak_rss') / mib:6.0f} MiB")
        print(
            f"    bytes per visit on disk    {median(results, 'bytes_per_visit'):6.2f} (zstd, ratio {median(results, 'compression_ratio'):.1f}x)"
        )
        print(
            f"    channel peak occupancy     {median(results, 'channel_peak'):.0f} of {median(results, 'channel_slots'):.0f} slots"
        )
        print(
            f"    worker time: simulate {median(results, 'worker_simulate_s'):.2f} s, statistics {median(results, 'worker_statistics_s'):.2f} s, "
            f"encode {median(results, 'worker_encode_s'):.2f} s, waiting for a slot {median(results, 'worker_waiting for a slot_s'):.2f} s (summed over workers)"
        )
        print(
            f"    writer time: Parquet {median(results, 'writer_Parquet_s'):.2f} s, decode {median(results, 'writer_decode_s'):.2f} s, "
            f"statistics merge {median(results, 'writer_statistics merge_s'):.2f} s (lanes summed)"
        )

    sizes = [int(s) for s in args.scaling.split(",") if s]
    if sizes:
        print(f"  peak total RSS by cohort size ({args.years:g} years, default workers):")
        peaks = []
        for patients in sizes:
            result = pipeline_run(
                patients, args.years, 0, shard_size=args.shard_size, protocol=args.protocol
            )
            peaks.append(result["peak_rss"])
            print(
                f"    {patients:>10,} patients   {result['peak_rss'] / mib:6.0f} MiB   {result['visits_per_s'] / 1e6:5.2f} M visits/s"
            )
        ratio = max(peaks) / peaks[0]
        verdict = "flat" if ratio <= 1.2 else "NOT flat"
        print(f"    largest / smallest peak    {ratio:6.2f} ({verdict}; target <= 1.2)")


if __name__ == "__main__":
    main()
