"""What ``amdsim run --profile DIR`` costs: the same CLI run with and without it.

Runs ``python -m engine.cli run --patients N --years Y --workers W`` (default protocol) as a
subprocess, alternating plain, profiled, plain, ... so that a change in the machine's load
hits both; each run writes into a fresh temporary runs directory (and profile directory).
The time is the whole command's wall clock, start to exit: it includes starting the
processes and every process rendering and writing its profile on the way out. Prints each
time, the medians, profiled / plain, the profile files' total size, and the load average
(``os.getloadavg``) before and after; quote them with it (docs/profiling.md). Also the CPU
seconds of all the run's processes, which a busy machine disturbs less than the wall clock,
and then the kernel alone in this process, plain and profiled at 1 ms and 10 ms intervals.

    python perf/bench_profile_overhead.py [--patients 200000] [--years 5] [--workers 1]
                                          [--runs 3] [--interval-ms 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(args: argparse.Namespace, profile: bool) -> tuple[float, float, int]:
    """Wall seconds the command took, CPU seconds of all its processes, and the bytes of
    profiles it wrote.

    CPU time (user + system of the command and every child it waited for) moves less with
    the machine's load than the wall clock does.
    """
    with tempfile.TemporaryDirectory(prefix="amdsim-profile-bench-") as scratch:
        command = [
            sys.executable,
            "-m",
            "engine.cli",
            "run",
            "--patients",
            str(args.patients),
            "--years",
            str(args.years),
            "--workers",
            str(args.workers),
            "--runs-dir",
            str(Path(scratch) / "runs"),
        ]
        profiles = Path(scratch) / "profiles"
        if profile:
            command += ["--profile", str(profiles), "--profile-interval", str(args.interval_ms)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        size = sum(p.stat().st_size for p in profiles.iterdir()) if profile else 0
    return seconds, cpu_s, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--interval-ms", type=float, default=10.0, help="--profile-interval")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    wall: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    sizes: list[int] = []
    for run in range(args.runs):
        for profile in (False, True):
            seconds, cpu_s, size = timed_run(args, profile)
            wall[profile].append(seconds)
            cpu[profile].append(cpu_s)
            if profile:
                sizes.append(size)
            label = "profiled" if profile else "plain   "
            print(
                f"run {run + 1} {label} wall {seconds:6.2f} s  cpu {cpu_s:6.2f} s"
                + (f"  ({size >> 10} KiB of profiles)" * profile)
            )
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{args.patients:,} patients x {args.years:g} years, {args.workers} worker(s), "
        f"sampled every {args.interval_ms:g} ms:"
    )
    for name, times in (("wall", wall), ("cpu", cpu)):
        plain_s, profiled_s = statistics.median(times[False]), statistics.median(times[True])
        print(
            f"  {name}: median plain {plain_s:.2f} s, profiled {profiled_s:.2f} s, "
            f"ratio {profiled_s / plain_s:.3f}"
        )
    print(f"  profiles written: {int(statistics.median(sizes)) >> 10} KiB per run (median)")
    kernel_overhead(args)


def kernel_overhead(args: argparse.Namespace) -> None:
    """The kernel alone, in this process: unprofiled, and profiled every 1 ms and 10 ms.

    What the workers pay: pyinstrument's hook runs on every Python and C call (a cost the
    interval does not change) and records the stack once per interval.
    """
    sys.path.insert(0, str(ROOT))
    from pyinstrument import Profiler

    from engine.model.interface import compile_model
    from engine.model.parameters import RunParameters
    from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol

    params = RunParameters(n_patients=min(args.patients, 40_960), years=args.years, seed=1)
    model = compile_model(load_protocol(DEFAULT_PROTOCOL))
    shards = list(range(params.shard_count))

    def simulate(interval_s: float | None) -> float:
        profiler = None if interval_s is None else Profiler(interval_s, async_mode="disabled")
        if profiler is not None:
            profiler.start()
        started = time.perf_counter()
        model.simulate_shards(params, shards)
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.stop()
        return seconds

    simulate(None)  # warm up
    intervals = {"plain": None, "1 ms": 0.001, "10 ms": 0.01}
    times: dict[str, list[float]] = {name: [] for name in intervals}
    for _ in range(5):
        for name, interval_s in intervals.items():
            times[name].append(simulate(interval_s))
    plain_s = statistics.median(times["plain"])
    print(f"kernel alone, {params.n_patients:,} patients x {args.years:g} years, median of 5:")
    for name, seconds in times.items():
        median_s = statistics.median(seconds)
        print(f"  {name:6s} {median_s:.3f} s  ratio {median_s / plain_s:.3f}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
