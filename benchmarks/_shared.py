"""Inputs the benchmarks (and `perf/` scripts) share: protocols, parameters, scratch folders.

Only public `engine` functions that exist on every benchmarked commit are used here, so an
older commit's environment can run the suite too. Nothing here is timed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from engine.model.parameters import Recruitment, RunParameters
from engine.model.protocol_loader import load_protocol

__all__ = [
    "PROTOCOLS",
    "compare_request",
    "new_scratch_dir",
    "protocol_of",
    "remove_scratch_dir",
    "run_parameters",
]

# One bundled protocol per model: v1 (visit-based, DESIGN section 4) and v2 (time-based,
# section 4b; the package's default protocol).
PROTOCOLS = {
    "v1": "aflibercept_treat_and_extend",
    "v2": "aflibercept_treat_and_extend_altair",
}
YEARS = 5.0
SEED = 1


def protocol_of(model: str):
    """The bundled protocol benchmarked for `model` ("v1" or "v2"), loaded and validated."""
    return load_protocol(PROTOCOLS[model])


def run_parameters(patients: int, years: float = YEARS, shard_size: int = 4096) -> RunParameters:
    """A cohort of `patients` enrolled on day 0, followed `years`, with the suite's seed."""
    return RunParameters(n_patients=patients, years=years, seed=SEED, shard_size=shard_size)


def new_scratch_dir() -> Path:
    """A new empty folder outside the source tree; remove it with `remove_scratch_dir`."""
    return Path(tempfile.mkdtemp(prefix="amdsim-asv-"))


def remove_scratch_dir(folder: Path | None) -> None:
    """Delete a folder made by `new_scratch_dir` (None or already gone: nothing to do)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def compare_request(protocols: list[str], patients: int, years: float, psa=None):
    """A paired-comparison request with the bundled costs and utilities, as `amdsim compare`
    builds it with its default options (seed 7, cohort recruitment, 3.5 % discounting)."""
    # Imported here: the other benchmarks' processes (and their peakmem) need not load it.
    from engine.compare.setup import CompareRequest  # noqa: PLC0415

    return CompareRequest.build(
        protocols=protocols,
        patients=patients,
        years=years,
        seed=7,
        recruitment=Recruitment(),
        costs=None,
        utilities=None,
        drugs={},
        cost_rate=0.035,
        outcome_rate=0.035,
        thresholds=[20_000.0, 30_000.0],
        session_capacity=20.0,
        psa=psa,
    )
