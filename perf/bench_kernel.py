"""Kernel-only speed: 100k patients x 5 years on one core, median of 5 runs, and peak RSS.

Prints patients/s and visits/s of the vectorised kernel (shard outputs as numpy columns, no
Arrow, no I/O), what share of that time the random draws alone take, and the speed of the
per-patient Python loop (tests/reference_model.py) measured in the same run, for the ratio.

    python perf/bench_kernel.py [--patients 100000] [--years 5] [--runs 5] [--block-patients N]

With ``--model v2`` it measures the time-based kernel instead (protocol: the origin's
eylea_time_based.yaml from ../shared/reference-formats, loaded by the tests' helper):
patient-fortnights/s, counting every simulated fortnight including untreated follow-up, and
the share of the time spent inside the counter-based random number calls.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.model.interface import compile_model  # noqa: E402
from engine.model.parameters import RunParameters  # noqa: E402
from engine.model.protocol_loader import load_protocol  # noqa: E402
from engine.model.shards import BLOCK_PATIENTS, plan_blocks, shard_generator  # noqa: E402
from engine.model.v2.draws import crn_source  # noqa: E402
from engine.model.v2.kernel import simulate_block  # noqa: E402
from engine.model.v2.tables import compile_time_based  # noqa: E402
from tests.engine.timebased_protocols import reference_protocol  # noqa: E402
from tests.reference_model import simulate_patient  # noqa: E402


def kernel_run(model, params, block_patients: int) -> tuple[float, int]:
    """Seconds and visits for one whole run of the kernel."""
    started = time.perf_counter()
    visits = 0
    for block in plan_blocks(params, block_patients=block_patients):
        visits += sum(output.visit_count for output in model.simulate_shards(params, block))
    return time.perf_counter() - started, visits


def draws_only(params, visits: int) -> float:
    """Seconds to draw what the kernel draws for `visits` visits: 2 uniforms + 1 normal each."""
    per_shard = visits // params.shard_count
    out_u = np.empty(per_shard, dtype=np.float32)
    out_z = np.empty(per_shard, dtype=np.float32)
    started = time.perf_counter()
    for shard in range(params.shard_count):
        rng = shard_generator(params.seed, shard)
        rng.random(dtype=np.float32, out=out_u)
        rng.standard_normal(dtype=np.float32, out=out_z)
        rng.random(dtype=np.float32, out=out_u)
    return time.perf_counter() - started


def reference_loop(protocol, params, patients: int) -> tuple[float, int]:
    rng = random.Random(params.seed)
    started = time.perf_counter()
    visits = sum(
        len(simulate_patient(protocol, params.horizon_days, rng).visits) for _ in range(patients)
    )
    return time.perf_counter() - started, visits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--block-patients", type=int, default=BLOCK_PATIENTS)
    parser.add_argument("--protocol", default="aflibercept_treat_and_extend")
    parser.add_argument("--model", choices=("v1", "v2"), default="v1")
    args = parser.parse_args()
    if args.model == "v2":
        bench_v2(args)
        return

    if hasattr(os, "sched_setaffinity"):
        # One core; the last one, because CPU 0 also serves the machine's interrupts.
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    protocol = load_protocol(args.protocol)
    model = compile_model(protocol)
    params = RunParameters(n_patients=args.patients, years=args.years, seed=1)

    kernel_run(model, params, args.block_patients)  # warm-up: imports, allocator, caches
    times = []
    for _ in range(args.runs):
        seconds, visits = kernel_run(model, params, args.block_patients)
        times.append(seconds)
    median = statistics.median(times)
    draw_s = statistics.median(draws_only(params, visits) for _ in range(3))
    loop_s, loop_visits = reference_loop(protocol, params, patients=500)
    loop_rate = loop_visits / loop_s
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"bench_kernel: {args.protocol}, {args.patients:,} patients x {args.years:g} years, one core"
    )
    print(f"  shards of {params.shard_size}, {args.block_patients:,} patients per kernel call")
    print(f"  visits per run          {visits:,} ({visits / args.patients:.1f} per patient)")
    print(f"  run times (s)           {', '.join(f'{t:.3f}' for t in times)}")
    print(f"  median of {args.runs}            {median:.3f} s")
    print(f"  patients/s              {args.patients / median:,.0f}")
    print(f"  visits/s                {visits / median / 1e6:.2f} M")
    print(f"  random draws alone      {draw_s:.3f} s = {draw_s / median:.0%} of the kernel's time")
    print(f"  per-patient Python loop {loop_rate / 1e3:.0f} k visits/s (500 patients)")
    print(f"  speed-up over the loop  {visits / median / loop_rate:.0f}x")
    print(f"  peak RSS                {peak_rss_mib:.0f} MiB")


class TimedSource:
    """A CRN source that adds the seconds spent in its calls to `TimedSource.seconds`."""

    seconds = 0.0

    def __init__(self, seed: int, ids: np.ndarray) -> None:
        started = time.perf_counter()
        self.inner = crn_source(seed, ids)
        TimedSource.seconds += time.perf_counter() - started

    def _timed(self, method: str, *args, **kwargs):
        started = time.perf_counter()
        result = getattr(self.inner, method)(*args, **kwargs)
        TimedSource.seconds += time.perf_counter() - started
        return result

    def uniform(self, *args, **kwargs):
        return self._timed("uniform", *args, **kwargs)

    def normal(self, *args, **kwargs):
        return self._timed("normal", *args, **kwargs)

    def uniform_at(self, *args, **kwargs):
        return self._timed("uniform_at", *args, **kwargs)

    def normal_at(self, *args, **kwargs):
        return self._timed("normal_at", *args, **kwargs)

    def uniforms_at(self, *args, **kwargs):
        return self._timed("uniforms_at", *args, **kwargs)


def v2_run(tables, params, block_patients: int) -> tuple[float, float, int, int, float]:
    """Seconds, seconds in random calls, patient-fortnights, visits and CPU seconds of a run."""
    TimedSource.seconds = 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    fortnights = visits = 0
    for block in plan_blocks(params, block_patients=block_patients):
        outputs, count = simulate_block(tables, params, block, TimedSource)
        fortnights += count
        visits += sum(output.visit_count for output in outputs)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return elapsed, TimedSource.seconds, fortnights, visits, cpu


def bench_v2(args: argparse.Namespace) -> None:
    """The time-based kernel's figures (see the module docstring)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    protocol = reference_protocol()
    if protocol is None:
        raise SystemExit("bench_kernel: the origin's reference files are not beside the repo")
    tables = compile_time_based(protocol)
    params = RunParameters(n_patients=args.patients, years=args.years, seed=1)
    v2_run(tables, params, args.block_patients)  # warm-up
    runs = [v2_run(tables, params, args.block_patients) for _ in range(args.runs)]
    median = statistics.median(r[0] for r in runs)
    draw_share = statistics.median(r[1] / r[0] for r in runs)
    _, _, fortnights, visits, _ = runs[0]
    cpu = statistics.median(r[4] for r in runs)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"bench_kernel v2: eylea_time_based, {args.patients:,} patients x {args.years:g} years")
    print(f"  one core, {args.block_patients:,} patients per kernel call, load average {load}")
    print(f"  patient-fortnights      {fortnights:,} per run; visits {visits:,}")
    print(f"  run times (s)           {', '.join(f'{r[0]:.3f}' for r in runs)}")
    print(f"  median of {args.runs}            {median:.3f} s")
    print(f"  patient-fortnights/s    {fortnights / median / 1e6:.2f} M (target >= 20 M)")
    print(f"  by CPU time             {fortnights / cpu / 1e6:.2f} M/s (less sensitive to load)")
    print(f"  patients/s              {args.patients / median:,.0f}")
    print(f"  random number calls     {draw_share:.0%} of the kernel's time")
    print(f"  peak RSS                {peak_rss_mib:.0f} MiB")


if __name__ == "__main__":
    main()
