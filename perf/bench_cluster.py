"""A run on a local Dask cluster against the local pipeline, and what 100 workers would need.

Everything in one process and one invocation, on this machine:

1. The same run (N patients x Y years, the CLI's default protocol) through the local
   pipeline (`run_pipeline`, default options) and through a ``LocalCluster(n_workers=2,
   threads_per_worker=1)`` (`run_on_cluster`, default options), alternating local, cluster,
   local, ... so that a change in the machine's load hits both; visits/s from each call to
   its final manifest, medians of `--runs`, and cluster / local (target >= 0.7). The cluster
   is started once, before the runs (its start-up is printed apart): a cluster outlives runs.
   Each pair's stats.json must be byte-identical (the determinism contract, docs/cluster.md).
2. Task overhead, two ways: (a) in a run, per task, the worker's compute time as Dask's task
   stream records it minus the seconds the task itself reports simulating and writing (what
   is left: decoding the task, compiling the model once per worker and run, checking the
   token, encoding the result); (b) the scheduler round trip of a no-op task, submitted and
   awaited one at a time (client -> scheduler -> worker -> scheduler -> client), and the
   no-op tasks per second the scheduler runs when they are all submitted at once.
3. Peak RSS of each Dask worker process after all runs (``resource.getrusage`` in the
   worker, through ``client.run``), against the memory limit it advertises and the task
   memory the sizing planned (engine/cluster/sizing.py).
4. Weak scaling on paper: seconds per task and part-file bytes and files per task, hence
   what 100 workers (one thread each, tasks of the same size: a run 50x this one) would ask
   of shared storage (MB/s, files/s) and of the scheduler and client (tasks/s).

    python perf/bench_cluster.py [--patients 1000000] [--years 5] [--runs 3] [--workers 2]
                                 [--noop-tasks 200] [--protocol NAME] [--quick]

``--quick``: 100k patients x 2 years, 3 runs, 50 no-op tasks (under a minute). Prints
figures with the load average; quote them with it (docs/cluster.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distributed import Client, LocalCluster, get_task_stream  # noqa: E402

from engine.cluster import run_on_cluster  # noqa: E402
from engine.cluster.run import ClusterRun  # noqa: E402
from engine.model.parameters import RunParameters  # noqa: E402
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol  # noqa: E402
from engine.pipeline import PipelineOptions, run_pipeline  # noqa: E402
from engine.pipeline.options import resolve_options  # noqa: E402
from engine.run_dir import RunPaths  # noqa: E402

MiB = 1 << 20
SCALE_WORKERS = 100


def part_files(run_dir: Path) -> list[Path]:
    """The run's finished part files, both tables."""
    paths = RunPaths(run_dir)
    return paths.part_files("patients") + paths.part_files("visits")


def local_run(protocol: Any, params: RunParameters, folder: Path) -> dict[str, Any]:
    """One local pipeline run with default options: wall time, visits, stats.json."""
    run_dir = folder / "local"
    started = time.perf_counter()
    manifest = run_pipeline(protocol, params, run_dir, PipelineOptions())
    wall_s = time.perf_counter() - started
    stats = (run_dir / "stats.json").read_bytes()
    shutil.rmtree(run_dir)
    return {
        "wall_s": wall_s,
        "visits": manifest.visits,
        "visits_per_s": manifest.visits / wall_s,
        "stats": stats,
    }


def cluster_run(
    client: Client, protocol: Any, params: RunParameters, folder: Path
) -> dict[str, Any]:
    """One run on the cluster: wall time, visits, stats.json, and per-task figures."""
    run_dir = folder / "cluster"
    runs: list[ClusterRun] = []
    with get_task_stream(client) as stream:
        started = time.perf_counter()
        manifest = run_on_cluster(client, protocol, params, run_dir, PipelineOptions(), runs.append)
        wall_s = time.perf_counter() - started
    run = runs[0]
    assert run.plan is not None
    tasks = [t for t in stream.data if str(t["key"]).startswith(f"amdsim-{run.run_id}-")]
    compute_s = [
        sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
        for t in tasks
    ]
    files = part_files(run_dir)
    part_bytes = sum(p.stat().st_size for p in files)
    stats = (run_dir / "stats.json").read_bytes()
    shutil.rmtree(run_dir)
    seconds = run.task_seconds
    return {
        "wall_s": wall_s,
        "visits": manifest.visits,
        "visits_per_s": manifest.visits / wall_s,
        "stats": stats,
        "tasks": len(run.plan.blocks),
        "tasks_seen": len(tasks),
        "shards_per_task": statistics.median(len(b) for b in run.plan.blocks),
        "batch_shards": run.plan.batch_shards,
        "task_memory_bytes": run.plan.task_memory_bytes,
        "worker_limit_bytes": run.plan.worker_limit_bytes or 0,
        "task_s": statistics.median(compute_s) if compute_s else 0.0,
        "compute_s": sum(compute_s),
        "simulate_s": seconds.get("simulate", 0.0),
        "write_s": seconds.get("write", 0.0),
        "part_bytes": part_bytes,
        "part_files": len(files),
        "dashboard": manifest.cluster_dashboard,
    }


def _noop(i: int) -> int:
    return i


def noop_round_trips(client: Client, count: int) -> tuple[float, float]:
    """Median seconds of a no-op task awaited alone; no-op tasks/s submitted all at once."""
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        client.submit(_noop, i, pure=False).result()
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    client.gather(client.map(_noop, range(count * 5), pure=False))
    return statistics.median(latencies), count * 5 / (time.perf_counter() - started)


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def median(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="Dask workers, one thread each")
    parser.add_argument("--noop-tasks", type=int, default=200)
    parser.add_argument("--protocol", default=DEFAULT_PROTOCOL, help="bundled name or file")
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    args = parser.parse_args()
    if args.quick:
        args.patients, args.years, args.noop_tasks = 100_000, 2.0, 50

    protocol = load_protocol(args.protocol)
    params = RunParameters(n_patients=args.patients, years=args.years, seed=1)
    local_workers = resolve_options(PipelineOptions(), params).workers
    print(
        f"bench_cluster: {args.patients:,} patients x {args.years:g} years, protocol "
        f"{args.protocol}, medians of {args.runs} runs, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    folder = Path(tempfile.mkdtemp(prefix="amdsim-bench-cluster-"))
    started = time.perf_counter()
    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    print(
        f"  LocalCluster({args.workers} workers x 1 thread) up in {time.perf_counter() - started:.1f} s"
    )
    try:
        local, on_cluster = [], []
        for _ in range(args.runs):
            local.append(local_run(protocol, params, folder))
            on_cluster.append(cluster_run(client, protocol, params, folder))
        same = sum(a["stats"] == b["stats"] for a, b in zip(local, on_cluster, strict=True))
        round_trip_s, noop_rate = noop_round_trips(client, args.noop_tasks)
        peaks = client.run(_peak_rss_bytes)
        end_load = os.getloadavg()[0]
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(folder, ignore_errors=True)

    local_rate = median(local, "visits_per_s")
    cluster_rate = median(on_cluster, "visits_per_s")
    ratio = cluster_rate / local_rate
    walls = lambda rs: ", ".join(f"{r['wall_s']:.2f}" for r in rs)  # noqa: E731
    print(f"  visits per run                 {local[0]['visits']:,}")
    print(
        f"  local pipeline ({local_workers} worker + writer) {local_rate / 1e6:6.2f} M visits/s "
        f"({median(local, 'wall_s'):.2f} s; runs {walls(local)})"
    )
    print(
        f"  Dask LocalCluster ({args.workers} x 1 thread) {cluster_rate / 1e6:6.2f} M visits/s "
        f"({median(on_cluster, 'wall_s'):.2f} s; runs {walls(on_cluster)})"
    )
    verdict = "ok" if ratio >= 0.7 else "BELOW target"
    print(f"    cluster / local              {ratio:6.2f} ({verdict}; target >= 0.7)")
    print(f"    stats.json identical         {same} of {args.runs} pairs")

    first = on_cluster[-1]
    tasks = median(on_cluster, "tasks")
    overhead_s = (
        median(on_cluster, "compute_s")
        - median(on_cluster, "simulate_s")
        - median(on_cluster, "write_s")
    ) / tasks
    print(
        f"  tasks per run                  {tasks:.0f} ({first['shards_per_task']:.0f} shards each, "
        f"{first['batch_shards']} simulated at once; task stream saw {first['tasks_seen']})"
    )
    print(
        f"    seconds per task (compute)   {median(on_cluster, 'task_s'):6.2f} median; summed over tasks: "
        f"simulate {median(on_cluster, 'simulate_s'):.2f} s, write {median(on_cluster, 'write_s'):.2f} s, "
        f"compute {median(on_cluster, 'compute_s'):.2f} s"
    )
    print(
        f"    overhead per task, in run    {overhead_s * 1e3:6.1f} ms (compute - simulate - write)"
    )
    print(
        f"    no-op task round trip        {round_trip_s * 1e3:6.1f} ms median of {args.noop_tasks}"
    )
    print(
        f"    no-op tasks, all submitted   {noop_rate:6.0f} tasks/s ({args.noop_tasks * 5} tasks)"
    )
    limit = first["worker_limit_bytes"]
    print(
        "  peak RSS per Dask worker       "
        + ", ".join(f"{v / MiB:.0f}" for v in sorted(peaks.values()))
        + f" MiB (limit {limit / MiB:,.0f} MiB each; planned task {first['task_memory_bytes'] / MiB:.0f} MiB)"
    )

    # Per task, as a mean over the run's tasks (summed compute seconds / tasks), so that
    # bytes and seconds describe the same tasks; a loaded machine makes tasks slower and
    # the storage figures lower.
    task_s = median(on_cluster, "compute_s") / tasks
    bytes_per_task = median(on_cluster, "part_bytes") / tasks
    files_per_task = median(on_cluster, "part_files") / tasks
    print(
        f"  weak scaling: per task {task_s:.2f} s, {bytes_per_task / 1e6:.1f} MB in "
        f"{files_per_task:.1f} part files (means: sums over the run's tasks / tasks)"
    )
    if task_s > 0:
        rate = SCALE_WORKERS / task_s
        print(
            f"    {SCALE_WORKERS} workers x 1 thread need  {rate * bytes_per_task / 1e6:6.1f} MB/s "
            f"written, {rate * files_per_task:.1f} part files/s (each: temporary name, fsync, "
            f"rename, fsync of its directory), {rate:.1f} tasks/s through scheduler and client"
        )
    print(f"  load average at the end        {end_load:.2f}")


if __name__ == "__main__":
    main()
