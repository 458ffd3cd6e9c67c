"""A run under memory pressure slows down instead of failing, and writes the same rows.

The level is driven by a probe that measures the real process tree and adds ballast, so the
supervisor sees yellow or red while the processes are the real ones.
"""

from __future__ import annotations

import msgspec
import pytest

from engine.memory import MemoryMonitor, SystemProbe
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, Supervisor, run_pipeline
from ipc.messages import Assign
from tests.engine.test_pipeline import assert_same, read_run
from tests.helpers import V1_PROTOCOL

LIMIT = 64 << 30
PARAMS = RunParameters(n_patients=60_000, years=2, seed=5, shard_size=1_000)


class PressureProbe(SystemProbe):
    """The real tree plus ballast that keeps the tree at `fraction` of a 64 GiB limit."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def physical_bytes(self) -> int:
        return LIMIT

    def rlimit(self, which: int) -> int | None:
        return None

    def read(self, path):
        return None  # no cgroup: the 64 GiB is the limit

    def tree_rss(self, pid: int) -> dict[int, int]:
        real = super().tree_rss(pid)
        return {**real, 0: max(0, int(self.fraction * LIMIT) - sum(real.values()))}


class RecordingSupervisor(Supervisor):
    """Records every task handed out: its size and how many tasks were then in flight."""

    assigned: list[tuple[int, int]]

    def _send(self, worker, message):
        if isinstance(message, Assign):
            self.assigned.append((len(message.shards), self._tasks_in_flight()))
        super()._send(worker, message)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run_pipeline(load_protocol(V1_PROTOCOL), PARAMS, run_dir, PipelineOptions(workers=2))
    return read_run(run_dir)


def run_under(tmp_path, fraction: float, **option_changes):
    options = PipelineOptions(workers=2, metrics_interval_s=0.05, **option_changes)
    supervisor = RecordingSupervisor(
        load_protocol(V1_PROTOCOL),
        PARAMS,
        tmp_path / "run",
        options,
        monitor=MemoryMonitor(probe=PressureProbe(fraction)),
    )
    supervisor.assigned = []
    supervisor.start()
    manifest = supervisor.run()
    return supervisor, manifest


def test_yellow_pauses_handing_out_but_never_stalls(tmp_path, reference):
    supervisor, manifest = run_under(tmp_path, 0.75, checkpoint_every=0)
    assert manifest.status == "completed"
    assert supervisor.memory_events["pauses"] >= 1
    assert supervisor.memory_events["batch_reductions"] == 0, "yellow must not shrink tasks"
    assert max(in_flight for _, in_flight in supervisor.assigned) == 1, supervisor.assigned
    assert supervisor.latest_sample.memory_level == "yellow"
    assert supervisor.latest_sample.paused
    assert_same(read_run(tmp_path / "run")[0], reference[0])
    assert_same(read_run(tmp_path / "run")[1], reference[1])


def test_red_halves_the_shards_per_task(tmp_path, reference):
    supervisor, manifest = run_under(tmp_path, 0.9, check_resources=False)
    assert manifest.status == "completed"
    sizes = [size for size, _ in supervisor.assigned]
    assert sizes == sorted(sizes, reverse=True), sizes
    assert sizes[-1] < sizes[0] or sizes[0] == 1
    assert supervisor.memory_events["batch_reductions"] >= 1
    assert supervisor.latest_sample.batch_shards < len(range(0, 32))  # below a full block
    assert supervisor.latest_sample.memory_level == "red"
    patients, visits = read_run(tmp_path / "run")
    assert_same(patients, reference[0])
    assert_same(visits, reference[1])


def test_green_hands_out_whole_blocks_to_every_worker(tmp_path):
    supervisor, manifest = run_under(tmp_path, 0.0)  # no ballast: the real tree alone
    assert manifest.status == "completed"
    assert supervisor.memory_events == {
        "pauses": 0,
        "batch_reductions": 0,
        "worker_memory_errors": 0,
    }
    assert supervisor.assigned[0][0] == 32  # 32,768 patients per block / 1,000 per shard
    assert supervisor.latest_sample.memory_limit_bytes == LIMIT
    assert supervisor.latest_sample.memory_limit_source == "physical memory"
    # The up-front estimate is an upper bound of the measured peak, and not a wild one.
    peak = supervisor.peak_rss_total - supervisor.memory_at_start  # what the run added
    estimate = supervisor.estimate.memory_bytes
    assert 0 < peak <= estimate <= 2.5 * peak, (peak >> 20, estimate >> 20)


def test_memory_error_in_a_worker_halves_its_batch_and_the_rows_are_unchanged(tmp_path, reference):
    options = PipelineOptions(workers=1, worker_memory_error_above_shards=5)
    supervisor = Supervisor(load_protocol(V1_PROTOCOL), PARAMS, tmp_path / "run", options)
    supervisor.start()
    manifest = supervisor.run()
    assert manifest.status == "completed"
    # 32 -> 16 -> 8 -> 4 shards at once: three MemoryErrors, then it fits.
    assert supervisor.memory_events["worker_memory_errors"] == 3
    patients, visits = read_run(tmp_path / "run")
    assert_same(patients, reference[0])
    assert_same(visits, reference[1])


def test_a_single_shard_that_does_not_fit_fails_the_run_with_the_memory_error(tmp_path):
    from engine.errors import WorkerCrashedError

    options = PipelineOptions(workers=1, worker_memory_error_above_shards=0, max_attempts=2)
    with pytest.raises(WorkerCrashedError, match="MemoryError: injected") as error:
        run_pipeline(load_protocol(V1_PROTOCOL), PARAMS, tmp_path / "run", options)
    assert "MemoryError" in error.value.traceback


def test_metrics_samples_from_an_older_sender_still_decode():
    # Fields added for memory have defaults, so a sample without them decodes.
    from ipc.messages import MetricsSample

    old = {
        "run_id": "r",
        "time": 0.0,
        "elapsed_s": 0.0,
        "status": "running",
        "shards_done": 0,
        "shards_total": 1,
        "patients_done": 0,
        "patients_total": 1,
        "visits_written": 0,
        "patients_per_s": 0.0,
        "visits_per_s": 0.0,
        "eta_s": None,
        "processes": [],
        "channel_slots": 1,
        "channel_in_use": 0,
        "channel_peak": 0,
        "bytes_written": 0,
    }
    sample = msgspec.json.decode(msgspec.json.encode(old), type=MetricsSample)
    assert (sample.memory_level, sample.memory_limit_bytes, sample.paused) == ("green", 0, False)
