"""The metrics samples' rates and ETA, from recorded progress on a fake clock."""

from __future__ import annotations

import msgspec
import pytest

from engine.memory import MemoryLevel
from engine.memory.limits import MemoryLimit
from engine.memory.monitor import MemorySnapshot
from engine.model.parameters import RunParameters
from engine.pipeline.assignment import ShardProgress
from engine.pipeline.sampling import RecentRate, SampleRecorder
from ipc.messages import MetricsSample

PATIENTS = 2_000_000
STARTUP_S = 5.0
RATE = 10_000.0  # patients per second once the workers are going
INTERVAL_S = 0.5  # the supervisor samples at least twice a second
SNAPSHOT = MemorySnapshot(
    usage_bytes=1 << 30, by_pid={}, limit=MemoryLimit(8 << 30, "test"), level=MemoryLevel.GREEN
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(recorder: SampleRecorder, patients: int, status: str = "running") -> MetricsSample:
    return recorder.sample(
        status=status,
        progress=ShardProgress(patients=patients, visits=20 * patients),
        channel_slots=0,
        channel=None,
        memory=SNAPSHOT,
        processes=[],
        paused=False,
        batch_shards=1,
    )


def recorded_run(resumed: int = 0) -> list[tuple[float, MetricsSample]]:
    """(true seconds left, sample) every 0.5 s: 5 s of start-up, then 10,000 patients/s."""
    clock = FakeClock()
    params = RunParameters(n_patients=PATIENTS, years=10, seed=0)
    recorder = SampleRecorder("run", params, clock=clock, resumed_patients=resumed)
    start, samples = clock.now, []
    while True:
        clock.now += INTERVAL_S
        elapsed = clock.now - start
        patients = min(PATIENTS, resumed + round(RATE * max(0.0, elapsed - STARTUP_S)))
        if patients == PATIENTS:
            return samples
        samples.append(((PATIENTS - patients) / RATE, record(recorder, patients)))


@pytest.mark.parametrize("resumed", [0, 500_000])
def test_eta_after_start_up_is_within_ten_percent_of_the_time_left(resumed):
    """15 s after a 5 s start-up the ETA follows the recent rate, not the whole-run average."""
    samples = recorded_run(resumed)
    steady = [(left, s) for left, s in samples if s.elapsed_s >= STARTUP_S + 15]
    assert len(steady) > 100
    for true_left, sample in steady:
        assert sample.eta_s == pytest.approx(true_left, rel=0.10), sample.elapsed_s
        assert sample.recent_patients_per_s == pytest.approx(RATE, rel=0.10)


def test_there_is_no_eta_before_progress_or_once_the_run_has_stopped():
    clock = FakeClock()
    recorder = SampleRecorder(
        "run", RunParameters(n_patients=100_000, years=1, seed=0), clock=clock
    )
    clock.now += 1
    assert record(recorder, 0).eta_s is None
    clock.now += 1
    assert record(recorder, 40_000).eta_s is not None
    for status in ("cancelled", "failed", "completed"):
        clock.now += 1
        assert record(recorder, 60_000, status).eta_s is None


def test_recent_rate_weights_irregular_intervals_by_their_length():
    """A long interval counts for more than a short one; a zero-length one is ignored."""
    rate = RecentRate(time_constant_s=5.0)
    rate.start(0.0, 0)
    rate.update(0.1, 100)  # 1,000/s for 0.1 s
    rate.update(0.1, 100)
    assert rate.update(10.1, 200_100) == pytest.approx(20_000, rel=0.02)


def test_a_sample_from_an_older_sender_still_decodes():
    """`recent_patients_per_s` is a new field with a default: older samples decode as 0."""
    clock = FakeClock()
    recorder = SampleRecorder("run", RunParameters(n_patients=10_000, years=1, seed=0), clock=clock)
    clock.now += 1
    old = msgspec.structs.asdict(record(recorder, 5_000))
    del old["recent_patients_per_s"]
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(old), type=MetricsSample)
    assert decoded.recent_patients_per_s == 0.0
