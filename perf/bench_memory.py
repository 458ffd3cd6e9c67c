"""Memory under load: peak RSS of a run's whole process tree as the cohort grows, a run
inside a 1 GiB limit, and leak checks. Prints figures; asserts nothing.

1. ``amdsim run`` for 100k, 1M and 10M patients x 10 years, each in a fresh process,
   its tree sampled with psutil at 20 Hz: peak total RSS, wall time, the up-front estimate,
   and peak(10M) / peak(100k) (target <= 1.2).
2. 1M patients x 5 years inside 1 GiB: a new cgroup where this machine allows it, else
   RLIMIT_AS on each process; peak RSS, wall time and the limit the run itself reported.
3. Leaks: 20 consecutive runs, then 200 open/read/close cycles of results, in this process:
   RSS growth after warm-up (target <= 5 %).

    python perf/bench_memory.py [--sizes 100000,1000000,10000000] [--skip-limit] [--skip-leaks]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.load.confine

from engine.memory.estimate import estimate_run
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions
from engine.pipeline.options import resolve_options
from tests.load.confine import confined, run_confined
from tests.load.leaks import consecutive_runs, growth_after_warm_up, open_read_close_cycles

MiB = 1 << 20
AMDSIM = str(Path(sys.executable).with_name("amdsim"))


class TreeSampler:
    """Peak summed RSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval_s)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def scaling(sizes: list[int], years: float) -> None:
    print(f"1. peak RSS of the whole tree, {years:g} years, default workers (fresh process each)")
    peaks = {}
    options = resolve_options(PipelineOptions(), RunParameters(n_patients=sizes[0], years=years))
    for patients in sizes:
        params = RunParameters(n_patients=patients, years=years, seed=3)
        estimate = estimate_run(load_protocol(), params, options)
        with tempfile.TemporaryDirectory(prefix="amdsim-bench-") as tmp:
            command = [AMDSIM, "run", "--patients", str(patients), "--years", str(years)]
            command += ["--seed", "3", "--json", "--runs-dir", tmp]
            started = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            sampler = TreeSampler(process.pid)
            out, err = process.communicate()
            wall = time.perf_counter() - started
            peak = sampler.stop()
        if process.returncode != 0:
            print(f"   {patients:>11,} patients: failed: {err.decode()[-500:]}")
            continue
        summary = json.loads(out)
        peaks[patients] = peak
        print(
            f"   {patients:>11,} patients  peak {peak / MiB:5.0f} MiB  wall {wall:7.1f} s  "
            f"{summary['summary']['visits']:>13,} visits  "
            f"estimate {estimate.memory_bytes / MiB:4.0f} MiB more + start-up"
        )
    if len(peaks) > 1:
        ratio = peaks[max(peaks)] / peaks[min(peaks)]
        print(f"   peak({max(peaks):,}) / peak({min(peaks):,}) = {ratio:.2f} (target <= 1.2)")


def limited_run() -> None:
    print("2. 1,000,000 patients x 5 years inside a 1 GiB limit")
    with confined(1 << 30) as confinement, tempfile.TemporaryDirectory() as tmp:
        command = [AMDSIM, "run", "--patients", "1000000", "--years", "5", "--json"]
        started = time.perf_counter()
        result = run_confined(confinement, [*command, "--runs-dir", tmp], timeout_s=1800)
        wall = time.perf_counter() - started
        cgroup_peak = None
        if confinement.directory is not None:
            for name in ("memory.max_usage_in_bytes", "memory.peak"):
                path = confinement.directory / name
                if path.is_file():
                    cgroup_peak = int(path.read_text())
    if result.returncode != 0:
        print(f"   failed under {confinement.kind}: {result.stderr[-800:]}")
        return
    summary = json.loads(result.stdout)
    print(f"   confined by {confinement.kind}; status {summary['status']}, wall {wall:.1f} s")
    print(f"   peak RSS of the run's processes {summary['peak_rss_bytes'] / MiB:.0f} MiB")
    if cgroup_peak is not None:
        print(f"   cgroup's own peak (incl. page cache) {cgroup_peak / MiB:.0f} MiB")
    print(
        f"   limit the run reported: {summary['memory_limit_bytes'] / MiB:.0f} MiB "
        f"({summary['memory_limit_source']})"
    )


def leaks() -> None:
    print("3. leaks, in this process")
    with tempfile.TemporaryDirectory() as tmp:
        samples = consecutive_runs(Path(tmp) / "runs", 20)
        print(
            f"   20 runs: RSS {_mib(samples[4])} after 5, {_mib(samples[-1])} after 20, "
            f"growth {growth_after_warm_up(samples, 4, 3):+.1%}"
        )
        samples = open_read_close_cycles(Path(tmp) / "cycles", 200)
        print(
            f"   200 open/read/close cycles (both tiers): RSS {_mib(samples[20])} after 20, "
            f"{_mib(samples[-1])} after 200, growth {growth_after_warm_up(samples, 20, 15):+.1%}"
        )


def _mib(n: int) -> str:
    return f"{n / MiB:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--skip-limit", action="store_true")
    parser.add_argument("--skip-leaks", action="store_true")
    args = parser.parse_args()
    print(
        f"bench_memory: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    )
    scaling([int(s) for s in args.sizes.split(",")], args.years)
    if not args.skip_limit:
        limited_run()
    if not args.skip_leaks:
        leaks()


if __name__ == "__main__":
    main()
