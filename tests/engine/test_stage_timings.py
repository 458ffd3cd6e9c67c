"""Stage timings: each worker and writer thread says where its time went, live and at the end.

Checked: a stage clock charges nested stages exclusively and its stages (``other`` included)
add up to its wall time; in a real run every process's stages add up to its wall time, the
named stages cover nearly all of it, the metrics stream carries them while the run goes and
the manifest keeps them; a writer slowed on purpose shows as more Parquet time in its lane
and more waiting for a slot in the workers, and the bottleneck sentence names the writer.
"""

from __future__ import annotations

import threading
import time

import pytest

from engine.manifest import read_manifest
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions
from engine.pipeline.launch import run_pipeline
from engine.pipeline.stage_clock import OTHER, StageClock
from engine.run_dir import RunPaths
from engine.stage_timings import describe_bottleneck
from ipc.messages import StageTimes

PROTOCOL = load_protocol("aflibercept_treat_and_extend")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_nested_stages_are_charged_exclusively_and_add_up_to_the_wall_time():
    fake = FakeClock()
    clock = StageClock("worker-1", "worker", ("simulate", "encode", "statistics"), clock=fake)
    fake.now += 1.0  # outside any stage: other
    with clock.stage("encode"):
        fake.now += 2.0
        with clock.stage("statistics"):
            fake.now += 3.0
        fake.now += 0.5
    with clock.stage("simulate"):
        fake.now += 4.0
        open_snapshot = clock.snapshot(pid=7)  # taken inside an open stage
    times = clock.snapshot(pid=7)
    assert times.stages == {
        "simulate": 4.0,
        "encode": 2.5,
        "statistics": 3.0,
        OTHER: 1.0,
    }
    assert times.wall_s == pytest.approx(10.5)
    assert sum(times.stages.values()) == pytest.approx(times.wall_s)
    assert open_snapshot.stages["simulate"] == 4.0  # the open stage's time so far counts
    assert list(times.stages)[-1] == OTHER


def test_a_stage_left_by_an_exception_is_still_charged():
    fake = FakeClock()
    clock = StageClock("writer", "writer", ("Parquet",), clock=fake)
    with pytest.raises(OSError), clock.stage("Parquet"):
        fake.now += 2.0
        raise OSError("disk full")
    fake.now += 1.0
    assert clock.snapshot().stages == {"Parquet": 2.0, OTHER: 1.0}


def _times(name: str, role: str, **stages: float) -> StageTimes:
    seconds = {stage.replace("_", " "): value for stage, value in stages.items()}
    return StageTimes(name=name, role=role, pid=1, wall_s=sum(seconds.values()), stages=seconds)


@pytest.mark.parametrize(
    ("worker_stages", "expected"),
    [
        ({"simulate": 8.0, "waiting_for_a_slot": 1.0, "other": 1.0}, "workers' simulate stage"),
        ({"simulate": 3.0, "waiting_for_a_slot": 6.0, "other": 1.0}, "bottleneck is the writer"),
        ({"simulate": 3.0, "waiting_for_work": 6.0, "other": 1.0}, "waited for work 60 %"),
        ({"simulate": 3.0, "start-up": 6.0, "other": 1.0}, "Start-up took 60 %"),
    ],
)
def test_the_bottleneck_sentence_follows_the_stage_shares(worker_stages, expected):
    times = [
        _times("worker-1", "worker", **worker_stages),
        _times("worker-2", "worker", **worker_stages),
        _times("writer lane 1", "writer", Parquet=7.0, waiting_for_batches=3.0),
    ]
    sentence = describe_bottleneck(times)
    assert expected in sentence, sentence
    if "writer" in expected:
        assert "70 % of their time on Parquet" in sentence


def _run(tmp_path, name: str, options: PipelineOptions, patients: int = 40_000):
    params = RunParameters(n_patients=patients, years=3, seed=5, shard_size=1_000)
    samples: list[list[StageTimes]] = []
    stop = threading.Event()

    def watch(supervisor) -> None:
        def poll() -> None:
            while not stop.is_set():
                sample = supervisor.latest_sample
                if sample is not None and sample.status == "running" and sample.stages:
                    samples.append(sample.stages)
                time.sleep(0.05)

        threading.Thread(target=poll, daemon=True).start()

    try:
        manifest = run_pipeline(PROTOCOL, params, tmp_path / name, options, on_started=watch)
    finally:
        stop.set()
    return manifest, samples


def _role(times: list[StageTimes], prefix: str) -> list[StageTimes]:
    return [t for t in times if t.name.startswith(prefix)]


def test_every_process_reports_stages_that_add_up_to_its_wall_time(tmp_path):
    options = PipelineOptions(workers=2, writer_lanes=2, metrics_interval_s=0.1)
    started = time.monotonic()
    manifest, samples = _run(tmp_path, "plain", options, patients=200_000)
    elapsed = time.monotonic() - started
    times = manifest.stage_timings
    names = sorted(t.name for t in times)
    assert names == ["worker-1", "worker-2", "writer", "writer lane 1", "writer lane 2"]
    for entry in times:
        assert entry.pid > 0
        assert list(entry.stages)[-1] == OTHER
        assert all(seconds >= 0 for seconds in entry.stages.values()), entry
        assert sum(entry.stages.values()) == pytest.approx(entry.wall_s, rel=1e-9)
        assert 0 < entry.wall_s <= elapsed
        # The named stages are where the time goes: what none covers is a small rest.
        assert entry.stages[OTHER] < 0.15 * entry.wall_s + 0.05, entry
    for worker in _role(times, "worker-"):
        assert worker.stages["simulate"] > 0 and worker.stages["encode"] > 0
    assert _role(times, "writer lane")[0].stages["Parquet"] > 0
    # The manifest on disk keeps them (what `amdsim run --timings` and the dashboard read).
    assert read_manifest(RunPaths(tmp_path / "plain").manifest).stage_timings == times
    # Live: the metrics stream carried them while the run went, growing.
    assert samples, "no metrics sample carried stage timings while the run went"
    walls = sorted({max(t.wall_s for t in stages) for stages in samples})
    assert len(walls) >= 2, "the stage timings did not move while the run went"


def test_a_slow_writer_shows_in_its_parquet_stage_and_in_the_workers_waiting(tmp_path):
    base = PipelineOptions(workers=2, writer_lanes=1, slots_per_worker=1, metrics_interval_s=0.1)
    delay_s = 0.05
    slow = PipelineOptions(
        workers=2,
        writer_lanes=1,
        slots_per_worker=1,
        metrics_interval_s=0.1,
        writer_delay_per_batch_s=delay_s,
    )
    quick, _ = _run(tmp_path, "quick", base)
    slowed, _ = _run(tmp_path, "slow", slow)
    batches = 40  # 40 shards of 1,000 patients, one channel batch each

    def lane_parquet(manifest) -> float:
        return _role(manifest.stage_timings, "writer lane")[0].stages["Parquet"]

    def slot_wait_s(manifest) -> float:
        return sum(t.stages["waiting for a slot"] for t in _role(manifest.stage_timings, "worker-"))

    injected = batches * delay_s
    assert lane_parquet(slowed) - lane_parquet(quick) >= 0.9 * injected
    # The workers are held up by the full channel for most of what the writer lost.
    assert slot_wait_s(slowed) - slot_wait_s(quick) >= 0.5 * injected, (
        slot_wait_s(quick),
        slot_wait_s(slowed),
    )
    assert "bottleneck is the writer" in describe_bottleneck(slowed.stage_timings)
