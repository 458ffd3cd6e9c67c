"""Reading a large run back: patient lookups, summaries, a full pass, and the stored digests.

Builds a 10M-patient x 5-year run once (kept under perf/results/, reused when present),
then prints, each measured in a fresh reader process where memory or coldness matters:

1. `get_patient` latency, p50/p99: first lookup of a freshly opened run; cold lookups (row
   group not in memory, file footers already open); cached lookups (targets: cold p50
   <= 2 ms, cached <= 50 us).
2. `summary_stats()` on a freshly opened run, and again (target <= 50 ms).
3. `iterate_patients(10_000)` over every patient: rows/s and the reader's peak RSS (target
   <= 200 MB).
4. The run's stored t-digests against exact quantiles of the same 10M values recomputed from
   the rows: rank error at p1, p5, p50, p95, p99 (target <= 1e-4; ties counted fairly).

    python perf/bench_results.py [--patients 10000000] [--years 5] [--lookups 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.manifest import read_manifest  # noqa: E402
from engine.model.parameters import DAYS_PER_YEAR, RunParameters  # noqa: E402
from engine.model.protocol_loader import load_protocol  # noqa: E402
from engine.pipeline import PipelineOptions, run_pipeline  # noqa: E402
from engine.results import ParquetResults  # noqa: E402
from perf.bench_tdigest import QUANTILES, rank_error  # noqa: E402

RESULTS_DIR = ROOT / "perf" / "results"


def ensure_run(patients: int, years: float) -> Path:
    """The benchmark run directory, built now unless a finished one with these sizes exists."""
    run_dir = RESULTS_DIR / f"bench-{patients}-{years:g}y"
    params = RunParameters(n_patients=patients, years=years, seed=1)
    if (run_dir / "manifest.json").is_file():
        manifest = read_manifest(run_dir / "manifest.json")
        if manifest.status == "completed" and manifest.parameters == params:
            print(f"reusing {run_dir} ({manifest.visits:,} visits)")
            return run_dir
        import shutil

        shutil.rmtree(run_dir)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    print(f"building {patients:,} patients x {years:g} years into {run_dir} ...", flush=True)
    started = time.perf_counter()
    manifest = run_pipeline(load_protocol(), params, run_dir, PipelineOptions())
    took = time.perf_counter() - started
    print(
        f"  built in {took:.1f} s: {manifest.visits:,} visits ({manifest.visits / took / 1e6:.2f} "
        f"M visits/s), {manifest.bytes_on_disk / 2**20:,.0f} MiB on disk"
    )
    return run_dir


def percentiles(samples_s: list[float]) -> str:
    values = np.array(samples_s) * 1e6
    p50, p99 = np.percentile(values, [50, 99])
    return f"p50 {_us(p50)}, p99 {_us(p99)}"


def _us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.1f} us"


# -- measurements, each run in its own process (`--measure NAME`) -------------------------


def measure_lookups(run_dir: Path, lookups: int) -> dict:
    rng = random.Random(3)
    n = read_manifest(run_dir / "manifest.json").parameters.n_patients
    first = []
    for _ in range(min(50, lookups)):
        started = time.perf_counter()
        with ParquetResults(run_dir) as results:
            results.get_patient(rng.randrange(n))
        first.append(time.perf_counter() - started)
    with ParquetResults(run_dir) as results:
        shard_size = results.parameters.shard_size
        shards = results.parameters.shard_count
        for shard in range(0, shards, max(1, shards // 64)):  # open every file's footer
            results.get_patient(shard * shard_size)
        # Cold: each lookup in a shard not read before (no row group cache hit).
        order = rng.sample(range(shards), min(lookups, shards))
        cold = []
        ids = []
        for shard in order:
            patient = shard * shard_size + rng.randrange(min(shard_size, n - shard * shard_size))
            ids.append(patient)
            started = time.perf_counter()
            results.get_patient(patient)
            cold.append(time.perf_counter() - started)
        recent = ids[-min(len(ids), 1000) :]
        cached = []
        for _ in range(5):
            for patient in recent:
                started = time.perf_counter()
                results.get_patient(patient)
                cached.append(time.perf_counter() - started)
        cache = results.cache_statistics()
    return {
        "first": first,
        "cold": cold,
        "cached": cached,
        "hits": cache.hits,
        "misses": cache.misses,
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def measure_summary(run_dir: Path) -> dict:
    started = time.perf_counter()
    results = ParquetResults(run_dir)
    opened = time.perf_counter()
    results.summary_stats()
    first = time.perf_counter()
    again = []
    for _ in range(20):
        started_again = time.perf_counter()
        results.summary_stats()
        again.append(time.perf_counter() - started_again)
    results.close()
    return {"open": opened - started, "first": first - opened, "again": statistics.median(again)}


def measure_iterate(run_dir: Path) -> dict:
    results = ParquetResults(run_dir)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    rows = 0
    biggest = 0
    for batch in results.iterate_patients(10_000):
        rows += batch.num_rows
        biggest = max(biggest, batch.num_rows)
    took = time.perf_counter() - started
    results.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rows": rows, "seconds": took, "baseline": baseline, "peak": peak, "batch": biggest}


def measure_digests(run_dir: Path) -> dict:
    """Exact values recomputed from the rows, against the run's stored digests."""
    results = ParquetResults(run_dir)
    horizon = results.parameters.horizon_days
    per_year, stopped_after, gaps = [], [], []
    for batch in results.iterate_patients(1_000_000):
        columns = {
            name: batch.column(name).to_numpy(zero_copy_only=False) for name in batch.schema.names
        }
        stopped = columns["discontinued"]
        day = np.where(
            stopped, np.nan_to_num(columns["discontinuation_day"].astype(float)), horizon
        )
        follow_up = day - columns["enrollment_day"]
        per_year.append(columns["injections"] / (follow_up / DAYS_PER_YEAR))
        stopped_after.append(follow_up[stopped])
    for batch in results.iterate_visits(5_000_000):
        injected = batch.column("injected").to_numpy(zero_copy_only=False)
        patient = batch.column("patient_id").to_numpy()[injected]
        day = batch.column("day").to_numpy()[injected]
        same = patient[1:] == patient[:-1]
        gaps.append((day[1:] - day[:-1])[same])
        # A patient split across two batches loses one gap at the seam: at most one per
        # batch, a few dozen among tens of millions, far below the errors measured.
    statistics_ = results.statistics()
    report = {}
    for name, values in (
        ("injections_per_year", per_year),
        ("time_to_discontinuation_days", stopped_after),
        ("days_between_injections", gaps),
    ):
        exact = np.sort(np.concatenate(values))
        estimates = np.array(statistics_.sketch_quantiles(name, QUANTILES))
        report[name] = {
            "count": len(exact),
            "rank_error": rank_error(exact, estimates, QUANTILES).tolist(),
            "distinct": len(np.unique(exact)),
        }
    results.close()
    return report


MEASURES = {
    "lookups": measure_lookups,
    "summary": measure_summary,
    "iterate": measure_iterate,
    "digests": measure_digests,
}


def in_fresh_process(name: str, run_dir: Path, *extra: str) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--measure", name, "--run-dir", str(run_dir), *extra],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(output.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000_000)
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        extra = (args.lookups,) if args.measure == "lookups" else ()
        print(json.dumps(MEASURES[args.measure](args.run_dir, *extra)))
        return

    run_dir = ensure_run(args.patients, args.years)
    manifest = read_manifest(run_dir / "manifest.json")
    print(
        f"run: {manifest.patients:,} patients, {manifest.visits:,} visits, "
        f"{manifest.bytes_on_disk / 2**20:,.0f} MiB in "
        f"{len(list((run_dir / 'patients').glob('part-*.parquet')))} part files per table"
    )

    lookups = in_fresh_process("lookups", run_dir, "--lookups", str(args.lookups))
    print("get_patient (fresh reader process)")
    print(
        f"  open run + first lookup      {percentiles(lookups['first'])}  ({len(lookups['first'])} opens)"
    )
    print(
        f"  cold (row group read)        {percentiles(lookups['cold'])}  ({len(lookups['cold'])} lookups; target p50 <= 2 ms)"
    )
    print(f"  cached                       {percentiles(lookups['cached'])}  (target <= 50 us)")
    print(f"  cache hits / misses          {lookups['hits']:,} / {lookups['misses']:,}")
    print(f"  reader peak RSS              {lookups['peak'] / 2**20:,.0f} MiB")

    summary = in_fresh_process("summary", run_dir)
    print("summary_stats()")
    print(f"  open run                     {summary['open'] * 1000:.1f} ms")
    print(f"  first call (loads stats)     {summary['first'] * 1000:.1f} ms  (target <= 50 ms)")
    print(f"  later calls (median)         {summary['again'] * 1e6:.1f} us")

    iterate = in_fresh_process("iterate", run_dir)
    print("iterate_patients(10_000), every patient")
    print(
        f"  rows                         {iterate['rows']:,} in {iterate['seconds']:.2f} s ({iterate['rows'] / iterate['seconds'] / 1e6:.2f} M rows/s)"
    )
    print(
        f"  reader peak RSS              {iterate['peak'] / 2**20:,.0f} MiB (after open {iterate['baseline'] / 2**20:,.0f} MiB; target <= 200 MB)"
    )

    digests = in_fresh_process("digests", run_dir)
    print("stored t-digests vs exact quantiles of the same values (rank error)")
    labels = "  ".join(f"p{round(q * 100):<2d}     " for q in QUANTILES)
    print(f"  {'':34s}{labels}")
    for name, report in digests.items():
        errors = "  ".join(f"{e:.1e}" for e in report["rank_error"])
        print(
            f"  {name:32s}  {errors}   ({report['count']:,} values, {report['distinct']:,} distinct)"
        )


if __name__ == "__main__":
    main()
