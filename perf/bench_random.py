"""Draws/s of the common-random-number generator against numpy's PCG64, medians of 5 runs.

One kernel block (32,768 patients, `engine.shards.BLOCK_PATIENTS`) drawn for many steps:
uniforms and standard normals from `CounterRandom` (a fresh key per step, as the kernel
draws), then `Generator.random` and `Generator.standard_normal` of PCG64 into the same
preallocated array. Also a draw for a random half of the patients (`rows=`), the kernel's
usual case once some have died or left, and normals for 2,048 rows (a visit sub-step's
size, where the cost per call matters). Prints draws/s, the ratio to PCG64 (target >= 0.7
for uniforms, issue 11) and the load average, since the machine is shared.

    python perf/bench_random.py [--patients 32768] [--steps 400] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.model.v2.random_numbers import CounterRandom, Purpose  # noqa: E402


def median_rates(
    draws: dict[str, tuple[Callable[[int], object], int]], steps: int, runs: int
) -> dict[str, float]:
    """Median over `runs` of draws/s for `steps` calls of each `draw(step)`.

    The contenders take turns within each run, so a change in the machine's load hits all
    of them alike and the ratios stay fair.
    """
    rates: dict[str, list[float]] = {name: [] for name in draws}
    for _ in range(runs):
        for name, (draw, per_step) in draws.items():
            started = time.perf_counter()
            for step in range(steps):
                draw(step)
            rates[name].append(steps * per_step / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=32_768)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    n, steps, runs = args.patients, args.steps, args.runs
    crn = CounterRandom(11, np.arange(n, dtype=np.int64))
    pcg = np.random.Generator(np.random.PCG64(11))
    out = np.empty(n)
    half = np.sort(pcg.choice(n, n // 2, replace=False))
    out_half = np.empty(half.size)
    few = np.sort(pcg.choice(n, min(n, 2048), replace=False))  # a visit sub-step's size
    out_few = np.empty(few.size)

    m = half.size
    rates = median_rates(
        {
            "crn uniform": (lambda s: crn.uniform(s, Purpose.DEATH, out=out), n),
            "pcg64 random": (lambda s: pcg.random(out=out), n),
            "crn normal": (lambda s: crn.normal(s, Purpose.VISION_CHANGE, out=out), n),
            "pcg64 standard_normal": (lambda s: pcg.standard_normal(out=out), n),
            "crn uniform, half rows": (
                lambda s: crn.uniform(s, Purpose.DEATH, rows=half, out=out_half),
                m,
            ),
            "pcg64 random, half": (lambda s: pcg.random(out=out_half), m),
            "crn normal, 2,048 rows": (
                lambda s: crn.normal(s, Purpose.MEASUREMENT_NOISE, rows=few, out=out_few),
                few.size,
            ),
            "pcg64 normal, 2,048": (lambda s: pcg.standard_normal(out=out_few), few.size),
        },
        steps,
        runs,
    )
    print(f"draws/s, {n:,} patients x {steps} steps, median of {runs} (numpy {np.__version__})")
    for name, rate in rates.items():
        print(f"  {name:<26} {rate / 1e6:8.1f} M/s")
    for crn_name, pcg_name in (
        ("crn uniform", "pcg64 random"),
        ("crn normal", "pcg64 standard_normal"),
        ("crn uniform, half rows", "pcg64 random, half"),
        ("crn normal, 2,048 rows", "pcg64 normal, 2,048"),
    ):
        print(f"  ratio {crn_name} / {pcg_name}: {rates[crn_name] / rates[pcg_name]:.2f}x")
    print("  target: uniform ratio >= 0.70x")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
