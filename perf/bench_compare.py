"""Paired comparisons and PSA: what the second arm costs, and how fast a PSA runs.

Three measurements, each through the code `amdsim compare` runs (run_blocks, run_psa):

1. Two arms (VIEW 2q8 vs ALTAIR T&E) x N patients x Y years against one arm alone, same
   patients, same workers: wall time and the ratio (target <= 2.2: the second arm should cost
   about what the first does, the pairing almost nothing).
2. A PSA of K draws x n patients: wall time, peak RSS, and the share of draws priced without
   re-simulating, twice: prices and utilities only (every draw reused) and with the
   calibration's parameters drawn too (every draw simulated again).
3. A PSA at the design goal's scale (100k patients x 10 years, two arms) measured on a few
   draws and extrapolated to 1,000 draws.

    python perf/bench_compare.py [--patients 1000000] [--years 5] [--psa-draws 200]
        [--psa-patients 10000] [--goal-draws 10] [--workers 2] [--skip-goal]

Prints figures with the load average; quote them with it (docs/analysis.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._shared import compare_request  # noqa: E402
from engine.compare.psa_flow import run_psa  # noqa: E402
from engine.compare.runner import run_blocks  # noqa: E402
from engine.compare.setup import (  # noqa: E402
    PsaRequest,
    new_comparison,
    protocols_calibration,
)

VIEW_2Q8 = "aflibercept_2q8_view"
ALTAIR = "aflibercept_treat_and_extend_altair"
ECONOMIC_ONLY = ROOT / "engine" / "psa" / "examples" / "economic_uncertainty.yaml"
FULL = ROOT / "engine" / "psa" / "examples" / "aflibercept_uncertainty.yaml"


def request(protocols: list[str], patients: int, years: float, psa: PsaRequest | None = None):
    """A comparison request with the bundled costs and utilities (shared with the asv suite)."""
    return compare_request(protocols, patients, years, psa)


def simulate(folder: Path, protocols: list[str], patients: int, years: float, workers: int):
    """Seconds to simulate a comparison (spec written, every block run and merged)."""
    req = request(protocols, patients, years)
    spec = new_comparison(folder, req)
    started = time.perf_counter()
    run_blocks(folder, spec, workers)
    return time.perf_counter() - started


def psa(folder: Path, patients: int, years: float, draws: int, workers: int, full: bool):
    """(seconds, draws served without re-simulation, draws) of a PSA after its base run."""
    calibration = protocols_calibration([VIEW_2Q8, ALTAIR]) if full else None
    uncertainty = FULL if full else ECONOMIC_ONLY
    req = request(
        [VIEW_2Q8, ALTAIR], patients, years, PsaRequest.build(draws, 3, uncertainty, calibration)
    )
    spec = new_comparison(folder, req)
    started = time.perf_counter()
    base = run_blocks(folder, spec, workers)
    summary = run_psa(folder, spec, req, base, workers)
    seconds = time.perf_counter() - started
    return seconds, summary["served_without_resimulation"], len(summary["acceptability"]["arms"])


def peak_rss_mib() -> float:
    """Peak RSS of this process and of the largest worker it waited for, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--psa-draws", type=int, default=200)
    parser.add_argument("--psa-patients", type=int, default=10_000)
    parser.add_argument("--goal-draws", type=int, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-goal", action="store_true")
    parser.add_argument("--goal-only", action="store_true")
    args = parser.parse_args()
    print(f"bench_compare: {os.cpu_count()} CPUs, workers {args.workers}, load average {load()}")
    with tempfile.TemporaryDirectory(prefix="amdsim-bench-compare-") as tmp:
        root = Path(tmp)
        if not args.goal_only:
            arms_and_psa(root, args)
        if not args.skip_goal:
            goal(root, args)


def arms_and_psa(root: Path, args: argparse.Namespace) -> None:
    """Measurements 1 and 2: the second arm's cost, and PSA draws with and without simulation."""
    one = simulate(root / "one", [ALTAIR], args.patients, args.years, args.workers)
    two = simulate(root / "two", [VIEW_2Q8, ALTAIR], args.patients, args.years, args.workers)
    print(
        f"  {args.patients:,} patients x {args.years:g} y: one arm {one:.1f} s, two arms "
        f"{two:.1f} s, ratio {two / one:.2f} (target <= 2.2); load {load()}"
    )
    for full in (False, True):
        label = "prices, utilities and calibrated parameters" if full else "prices and utilities"
        folder = root / f"psa-{full}"
        seconds, reused, _ = psa(
            folder, args.psa_patients, args.years, args.psa_draws, args.workers, full
        )
        print(
            f"  PSA {args.psa_draws} draws x {args.psa_patients:,} patients x {args.years:g} y "
            f"({label}): {seconds:.1f} s, {seconds / args.psa_draws:.3f} s/draw, served "
            f"without re-simulation {reused / args.psa_draws:.0%}, peak RSS "
            f"{peak_rss_mib():,.0f} MiB; load {load()}"
        )


def goal(root: Path, args: argparse.Namespace) -> None:
    """Measurement 3: a few draws at the goal's scale, extrapolated to 1,000."""
    seconds, _, _ = psa(root / "goal", 100_000, 10.0, args.goal_draws, args.workers, True)
    per_draw = seconds / (args.goal_draws + 1)  # the base run is one more simulation
    print(
        f"  goal scale: {args.goal_draws} simulated draws x 100,000 patients x 10 y, two arms: "
        f"{seconds:.0f} s ({per_draw:.1f} s per simulated draw); 1,000 draws would take "
        f"{per_draw * 1001 / 3600:.1f} h with every draw simulated, {per_draw / 3600:.2f} h "
        f"with prices and utilities only; load {load()}"
    )


if __name__ == "__main__":
    main()
