"""The physical limits a run is compared with, measured on this machine, one core each.

- random numbers: numpy's PCG64 uniforms and standard normals into a preallocated array
  (the fastest numpy draws; the v2 model's counter-based generator is measured against them
  by perf/bench_random.py);
- memory bandwidth: a 256 MiB numpy copy (read + write), GB/s;
- Parquet encoding: a 1M-visit table with the run's visit columns written by pyarrow into
  memory, zstd and uncompressed, in visits/s and MB/s of Arrow data.

Then the kernel and the pipeline's per-visit rates from the same process for comparison, so
docs/performance.md can say how far each stage is from what the machine can do. Medians of
`--runs`, with the load average, since the machine is shared.

    python perf/bench_limits.py [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.columns import VISIT_COLUMNS  # noqa: E402
from engine.model.interface import compile_model  # noqa: E402
from engine.model.parameters import RunParameters  # noqa: E402
from engine.model.protocol_loader import load_protocol  # noqa: E402
from engine.model.shards import plan_blocks  # noqa: E402

VISITS = 1_000_000


def median_seconds(work: Callable[[], object], runs: int) -> float:
    """Median wall seconds of `runs` calls of `work` (after one warm-up call)."""
    work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def visit_table():
    """A table shaped like a run's visits: the real columns, plausible values."""
    import pyarrow as pa

    rng = np.random.default_rng(0)
    columns = {}
    for spec in VISIT_COLUMNS:
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            columns[spec.name] = rng.random(VISITS) < 0.4
        elif np.issubdtype(dtype, np.floating):
            columns[spec.name] = rng.normal(60, 15, VISITS).astype(dtype)
        else:
            columns[spec.name] = np.sort(rng.integers(0, 3_650, VISITS)).astype(dtype)
    return pa.table(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"bench_limits: medians of {args.runs} runs, load average {os.getloadavg()[0]:.2f}")

    out = np.empty(1 << 22)
    rng = np.random.Generator(np.random.PCG64(1))
    uniform_s = median_seconds(lambda: rng.random(out=out), args.runs)
    normal_s = median_seconds(lambda: rng.standard_normal(out=out), args.runs)
    print(f"  PCG64 uniforms               {out.size / uniform_s / 1e6:8.0f} M draws/s")
    print(f"  PCG64 standard normals       {out.size / normal_s / 1e6:8.0f} M draws/s")

    print(f"  memory copy (read + write)   {copy_bandwidth(args.runs) / 1e9:8.1f} GB/s")

    import pyarrow.parquet as pq

    table = visit_table()
    for compression in ("zstd", "none"):

        def write(compression: str = compression) -> None:
            pq.write_table(table, io.BytesIO(), compression=compression)

        seconds = median_seconds(write, args.runs)
        print(
            f"  Parquet encode ({compression:<4})        {VISITS / seconds / 1e6:8.1f} M visits/s "
            f"({table.nbytes / seconds / 1e6:,.0f} MB/s of Arrow data)"
        )

    for name in ("aflibercept_treat_and_extend", "aflibercept_treat_and_extend_altair"):
        print(f"  kernel {name:<36} {kernel_rate(name, args.runs) / 1e6:6.1f} M visits/s")


def copy_bandwidth(runs: int) -> float:
    """Bytes/s read plus written by a 256 MiB numpy copy."""
    source = np.ones(256 << 17)  # 256 MiB of float64
    target = np.empty_like(source)
    return 2 * source.nbytes / median_seconds(lambda: np.copyto(target, source), runs)


def kernel_rate(protocol_name: str, runs: int) -> float:
    """Visits/s of one block (32,768 patients x 5 years) through the model's kernel."""
    model = compile_model(load_protocol(protocol_name))
    params = RunParameters(n_patients=32_768, years=5.0, seed=1)
    shards = plan_blocks(params)[0]
    visits = sum(o.visit_count for o in model.simulate_shards(params, shards))
    return visits / median_seconds(lambda: model.simulate_shards(params, shards), runs)


if __name__ == "__main__":
    main()
