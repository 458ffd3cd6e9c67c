"""The run estimate (engine.memory.estimate) for a time-based protocol: visits from its own
pilot shard, memory flat in the cohort, and a disk figure that a real run stays under.

Visits per patient: the pilot is shard 0 (4,096 patients); the per-patient visit count has
a mean of about 11.5 and a standard deviation of about 7 here (5 years), so the pilot's mean
has a standard error of about 0.9 % of it; the 5 % tolerance is over 5 standard errors
(false failure < 1e-6).
"""

from __future__ import annotations

import pytest

from engine.memory.estimate import BYTES_PER_VISIT, estimate_run
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.model.v2.schema import TimeBasedProtocol
from engine.pipeline import PipelineOptions, run_pipeline

BUNDLED = "time_based_uncalibrated_treat_and_extend"


def options(compression: str = "zstd") -> PipelineOptions:
    return PipelineOptions(workers=1, writer_lanes=1, slots_per_worker=4, compression=compression)


def test_the_estimate_of_a_time_based_run_scales_with_patients_and_not_memory():
    protocol = load_protocol(BUNDLED)
    assert isinstance(protocol, TimeBasedProtocol)
    small = estimate_run(protocol, RunParameters(n_patients=100_000, years=5), options())
    large = estimate_run(protocol, RunParameters(n_patients=1_000_000, years=5), options())
    assert large.visits == pytest.approx(10 * small.visits, rel=0.001)
    assert large.disk_bytes == pytest.approx(10 * small.disk_bytes, rel=0.001)
    assert large.memory_bytes == small.memory_bytes, "memory must not grow with the cohort"
    # Format 2 has more patient columns than BYTES_PER_VISIT was measured with: counted on top.
    assert small.disk_bytes > small.visits * BYTES_PER_VISIT["zstd"]
    assert 5 < small.visits_per_patient < 60
    assert "visits" in small.describe()


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_a_time_based_run_stays_within_its_disk_estimate(tmp_path, compression):
    protocol = load_protocol(BUNDLED)
    params = RunParameters(n_patients=20_000, years=5, seed=2)
    estimate = estimate_run(protocol, params, options(compression))
    manifest = run_pipeline(protocol, params, tmp_path / "run", options(compression))
    assert manifest.status == "completed"
    assert estimate.visits == pytest.approx(manifest.visits, rel=0.05)
    assert manifest.bytes_on_disk <= estimate.disk_bytes, "the disk estimate must err high"
