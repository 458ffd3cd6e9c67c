"""Bytes on disk per visit for each compression: the figures behind the run's disk estimate.

Runs the bundled default protocol for 200k patients x 5 years once per compression and prints
bytes per visit (patients and visits tables together, whole run directory). The constants
in `engine.memory.estimate.BYTES_PER_VISIT` are these figures plus a margin.

    python perf/bench_disk_bytes.py [--patients N] [--years Y]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, run_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--years", type=float, default=5.0)
    args = parser.parse_args()
    protocol = load_protocol()
    params = RunParameters(n_patients=args.patients, years=args.years, seed=11)
    print(f"bytes per visit on disk, {args.patients:,} patients x {args.years:g} years")
    with tempfile.TemporaryDirectory() as tmp:
        for compression in ("zstd", "snappy", "gzip", "none"):
            started = time.perf_counter()
            manifest = run_pipeline(
                protocol,
                params,
                Path(tmp) / compression,
                PipelineOptions(workers=1, compression=compression),
            )
            wall = time.perf_counter() - started
            print(
                f"  {compression:<6} {manifest.bytes_on_disk / manifest.visits:6.2f} bytes/visit "
                f"({manifest.bytes_on_disk / 2**20:7.1f} MiB, {manifest.visits:,} visits, "
                f"{wall:.1f} s)"
            )


if __name__ == "__main__":
    main()
