"""What ``amdsim run --profile DIR`` costs: the same CLI run with and without it.

Runs ``python -m engine.cli run --patients N --years Y --workers W`` (default protocol) as a
subprocess, alternating plain, profiled, plain, ... so that a change in the machine's load
hits both; each run writes into a fresh temporary runs directory (and profile directory).
The time is the whole command's wall clock, start to exit: it includes starting the
processes and every process rendering and writing its profile on the way out. Prints each
time, the medians, profiled / plain, the profile files' total size, and the load average
(``os.getloadavg``) before and after; quote them with it (docs/profiling.md). Also the CPU
seconds of all the run's processes, which a busy machine disturbs less than the wall clock.

    python perf/bench_profile_overhead.py [--patients 200000] [--years 5] [--workers 1]
                                          [--runs 3]
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
            command += ["--profile", str(profiles)]
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
    print(f"{args.patients:,} patients x {args.years:g} years, {args.workers} worker(s):")
    for name, times in (("wall", wall), ("cpu", cpu)):
        plain_s, profiled_s = statistics.median(times[False]), statistics.median(times[True])
        print(
            f"  {name}: median plain {plain_s:.2f} s, profiled {profiled_s:.2f} s, "
            f"ratio {profiled_s / plain_s:.3f}"
        )
    print(f"  profiles written: {statistics.median(sizes) / 2**20:.1f} MiB per run (median)")


if __name__ == "__main__":
    main()
