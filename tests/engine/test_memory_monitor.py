"""The memory limit, levels, guards and run estimates, against fake cgroup files and numbers."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from engine.errors import DiskSpaceError, MemoryBudgetError, ParameterError
from engine.memory import (
    MemoryLevel,
    MemoryMonitor,
    SystemProbe,
    Thresholds,
    check_memory_before,
    detect_memory_limit,
)
from engine.memory.estimate import BYTES_PER_VISIT, check_run_fits, estimate_run
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, Supervisor
from tests.helpers import V1_PROTOCOL

GiB = 1 << 30
MiB = 1 << 20


class FakeProbe(SystemProbe):
    """A machine with `ram` bytes, the given rlimits, cgroup files under `root`, and a
    process tree whose resident bytes the test sets."""

    def __init__(self, root: Path, ram: int = 16 * GiB, rlimits: dict[int, int] | None = None):
        super().__init__(proc_root=root / "proc", cgroup_root=root / "sys/fs/cgroup")
        self.ram = ram
        self.rlimits = rlimits or {}
        self.rss = {1: 100 * MiB}

    def physical_bytes(self) -> int:
        return self.ram

    def rlimit(self, which: int) -> int | None:
        return self.rlimits.get(which)

    def tree_rss(self, pid: int) -> dict[int, int]:
        return dict(self.rss)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_physical_memory_is_the_limit_without_cgroup_or_rlimit(tmp_path):
    limit = detect_memory_limit(FakeProbe(tmp_path, ram=8 * GiB))
    assert (limit.bytes, limit.source) == (8 * GiB, "physical memory")


def test_cgroup_v2_memory_max_wins_over_ram(tmp_path):
    write(tmp_path / "proc/self/cgroup", "0::/user.slice/job\n")
    write(tmp_path / "sys/fs/cgroup/user.slice/job/memory.max", f"{GiB}\n")
    write(tmp_path / "sys/fs/cgroup/user.slice/memory.max", "max\n")
    limit = detect_memory_limit(FakeProbe(tmp_path))
    assert (limit.bytes, limit.source) == (GiB, "cgroup v2 memory.max")
    assert limit.candidates["physical memory"] == 16 * GiB


def test_a_tighter_ancestor_cgroup_applies(tmp_path):
    write(tmp_path / "proc/self/cgroup", "0::/outer/inner\n")
    write(tmp_path / "sys/fs/cgroup/outer/inner/memory.max", "max\n")
    write(tmp_path / "sys/fs/cgroup/outer/memory.max", f"{512 * MiB}\n")
    assert detect_memory_limit(FakeProbe(tmp_path)).bytes == 512 * MiB


def test_cgroup_v1_limit_and_its_unlimited_value(tmp_path):
    write(tmp_path / "proc/self/cgroup", "5:cpu:/\n4:memory:/docker/abc\n")
    write(tmp_path / "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", f"{2 * GiB}\n")
    limit = detect_memory_limit(FakeProbe(tmp_path))
    assert (limit.bytes, limit.source) == (2 * GiB, "cgroup v1 memory.limit_in_bytes")
    write(tmp_path / "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712")
    assert detect_memory_limit(FakeProbe(tmp_path)).source == "physical memory"


def test_cgroup_v1_path_outside_the_mount_falls_back_to_the_mount_root(tmp_path):
    # In a container the mount's root is the container's cgroup; the host path is not there.
    write(tmp_path / "proc/self/cgroup", "4:memory:/process_api/f3c2\n")
    write(tmp_path / "sys/fs/cgroup/memory/memory.limit_in_bytes", f"{3 * GiB}\n")
    assert detect_memory_limit(FakeProbe(tmp_path)).bytes == 3 * GiB


def test_rlimit_as_wins_when_smallest(tmp_path):
    write(tmp_path / "proc/self/cgroup", "0::/\n")
    write(tmp_path / "sys/fs/cgroup/memory.max", f"{4 * GiB}\n")
    probe = FakeProbe(tmp_path, rlimits={resource.RLIMIT_AS: GiB, resource.RLIMIT_DATA: 2 * GiB})
    limit = detect_memory_limit(probe)
    assert (limit.bytes, limit.source) == (GiB, "RLIMIT_AS")
    assert set(limit.candidates) == {
        "physical memory",
        "cgroup v2 memory.max",
        "RLIMIT_AS",
        "RLIMIT_DATA",
    }


def test_garbage_in_cgroup_files_is_ignored(tmp_path):
    write(tmp_path / "proc/self/cgroup", "nonsense\n0::/a\n")
    write(tmp_path / "sys/fs/cgroup/a/memory.max", "lots\n")
    assert detect_memory_limit(FakeProbe(tmp_path)).source == "physical memory"


@pytest.mark.parametrize(
    ("used_mib", "level"),
    [(0, "green"), (699, "green"), (700, "yellow"), (850, "yellow"), (851, "red")],
)
def test_levels_at_the_default_thresholds(tmp_path, used_mib, level):
    probe = FakeProbe(tmp_path, ram=1000 * MiB)
    probe.rss = {1: used_mib * MiB // 2, 2: used_mib * MiB - used_mib * MiB // 2}
    monitor = MemoryMonitor(root_pid=1, probe=probe)
    assert monitor.level() == MemoryLevel(level)
    assert monitor.get_memory_usage_mb() == pytest.approx(used_mib)
    assert monitor.get_memory_percentage() == pytest.approx(used_mib / 10)


def test_thresholds_are_configurable_and_validated(tmp_path):
    probe = FakeProbe(tmp_path, ram=1000 * MiB)
    probe.rss = {1: 600 * MiB}
    assert MemoryMonitor(1, probe, Thresholds(yellow=0.5, red=0.9)).level() == "yellow"
    assert MemoryMonitor(1, probe, Thresholds(yellow=0.3, red=0.55)).level() == "red"
    with pytest.raises(ParameterError, match="0 < yellow < red <= 1"):
        Thresholds(yellow=0.9, red=0.8)


def test_the_real_tree_includes_child_processes():
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; b = bytearray(80 << 20); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        monitor = MemoryMonitor()
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if monitor.snapshot().by_pid.get(child.pid, 0) > 80 * MiB:
                break
            time.sleep(0.05)
        snapshot = monitor.snapshot()
        assert snapshot.by_pid[child.pid] > 80 * MiB
        assert snapshot.usage_bytes >= snapshot.by_pid[child.pid] + 10 * MiB  # plus ourselves
    finally:
        child.stdin.close()
        child.wait(10)


def test_require_refuses_with_use_limit_estimate_and_advice(tmp_path):
    probe = FakeProbe(tmp_path, ram=GiB)
    probe.rss = {1: 600 * MiB}
    monitor = MemoryMonitor(root_pid=1, probe=probe)
    monitor.require(200 * MiB, "a small thing")  # 78 %: yellow, allowed
    with pytest.raises(MemoryBudgetError) as error:
        monitor.require(300 * MiB, "loading the visits")
    message = str(error.value)
    for part in ("loading the visits", "300 MiB", "600 MiB", "1.0 GiB (physical memory)", "88 %"):
        assert part in message
    assert "fewer workers" in message and "on disk" in message


def test_decorator_estimates_from_the_arguments(tmp_path):
    probe = FakeProbe(tmp_path, ram=GiB)
    monitor = MemoryMonitor(root_pid=1, probe=probe)
    calls = []

    @check_memory_before(estimate=lambda n: n * MiB, monitor=monitor, operation="allocating")
    def allocate(n: int) -> int:
        calls.append(n)
        return n

    assert allocate(100) == 100
    with pytest.raises(MemoryBudgetError, match="allocating needs about 900 MiB"):
        allocate(900)
    assert calls == [100], "the refused call must not run"


def test_decorator_with_a_fixed_estimate_and_a_monitor_factory(tmp_path):
    probe = FakeProbe(tmp_path, ram=GiB)
    probe.rss = {1: 850 * MiB}

    @check_memory_before(estimate=64 * MiB, monitor=lambda: MemoryMonitor(1, probe))
    def work() -> str:
        return "done"

    with pytest.raises(MemoryBudgetError, match="work needs about 64 MiB"):
        work()
    probe.rss = {1: 100 * MiB}
    assert work() == "done"


def test_run_estimate_scales_with_patients_and_compression():
    protocol = load_protocol(V1_PROTOCOL)
    options = PipelineOptions(workers=2, writer_lanes=1, slots_per_worker=4)
    small = estimate_run(protocol, RunParameters(n_patients=100_000, years=5), options)
    large = estimate_run(protocol, RunParameters(n_patients=1_000_000, years=5), options)
    assert large.visits == pytest.approx(10 * small.visits, rel=0.001)
    assert large.disk_bytes == pytest.approx(10 * small.disk_bytes, rel=0.001)
    assert large.memory_bytes == small.memory_bytes, "memory must not grow with the cohort"
    assert 15 < small.visits_per_patient < 40
    raw = estimate_run(
        protocol,
        RunParameters(n_patients=100_000, years=5),
        PipelineOptions(workers=2, writer_lanes=1, slots_per_worker=4, compression="none"),
    )
    assert raw.disk_bytes / small.disk_bytes == pytest.approx(
        BYTES_PER_VISIT["none"] / BYTES_PER_VISIT["zstd"]
    )


def test_disk_estimate_refuses_when_free_space_is_short(tmp_path):
    protocol = load_protocol(V1_PROTOCOL)
    options = PipelineOptions(workers=1, writer_lanes=1, slots_per_worker=4)
    estimate = estimate_run(protocol, RunParameters(n_patients=1_000_000, years=10), options)
    monitor = MemoryMonitor()
    check_run_fits(estimate, monitor, tmp_path / "run", free_bytes=estimate.disk_bytes * 2)
    with pytest.raises(DiskSpaceError) as error:
        check_run_fits(estimate, monitor, tmp_path / "run", free_bytes=50 * MiB)
    message = str(error.value)
    assert "50 MiB are free" in message and str(tmp_path) in message
    assert f"{estimate.visits:,} visits" in message


def test_supervisor_refuses_before_creating_anything(tmp_path):
    params = RunParameters(n_patients=200_000, years=5, seed=1)
    options = PipelineOptions(workers=1, free_disk_bytes=1 * MiB)
    supervisor = Supervisor(load_protocol(V1_PROTOCOL), params, tmp_path / "run", options)
    with pytest.raises(DiskSpaceError, match="only 1 MiB are free"):
        supervisor.start()
    assert not (tmp_path / "run").exists()


def test_supervisor_refuses_a_run_whose_memory_does_not_fit(tmp_path):
    probe = FakeProbe(tmp_path / "machine", ram=300 * MiB)  # the estimate alone is larger
    supervisor = Supervisor(
        load_protocol(V1_PROTOCOL),
        RunParameters(n_patients=50_000, years=5, seed=1),
        tmp_path / "run",
        PipelineOptions(workers=2),
        monitor=MemoryMonitor(root_pid=1, probe=probe),
    )
    with pytest.raises(MemoryBudgetError, match=r"this run \(about [\d,]+ visits"):
        supervisor.start()
    assert not (tmp_path / "run").exists()


def test_loading_saved_results_is_refused_when_it_would_cross_red(tmp_path, monkeypatch):
    from engine import run_simulation
    from engine.memory import guard
    from engine.results.memory import InMemoryResults

    saved = run_simulation(load_protocol(V1_PROTOCOL), n_patients=200, years=2, seed=1).save(
        tmp_path / "s"
    )
    probe = FakeProbe(tmp_path / "machine", ram=GiB)
    probe.rss = {1: int(0.85 * GiB) - 1024}  # just under red: the estimate tips it over
    monkeypatch.setattr(guard, "_shared", MemoryMonitor(root_pid=1, probe=probe))
    with pytest.raises(MemoryBudgetError, match="loading saved results into memory needs"):
        InMemoryResults.load(saved)
    probe.rss = {1: 100 * MiB}
    assert InMemoryResults.load(saved).patient_count == 200


class ProbeWithAvailable(FakeProbe):
    """A FakeProbe whose machine still has `available` bytes free for everyone."""

    def __init__(self, root: Path, available: int, **kwargs) -> None:
        super().__init__(root, **kwargs)
        self.available = available

    def available_bytes(self) -> int:
        return self.available


def test_headroom_is_what_is_left_under_the_real_limit_and_what_the_machine_has(tmp_path):
    write(tmp_path / "proc/self/cgroup", "0::/job\n")
    write(tmp_path / "sys/fs/cgroup/job/memory.max", f"{512 * MiB}\n")
    probe = ProbeWithAvailable(tmp_path, available=20 * GiB)
    probe.rss = {1: 112 * MiB}
    monitor = MemoryMonitor(probe=probe)
    assert monitor.headroom_bytes() == 400 * MiB, "the cgroup, not the host, bounds it"
    probe.available = 50 * MiB
    assert monitor.headroom_bytes() == 50 * MiB, "a busy host bounds it below the cgroup"
    probe.rss = {1: 600 * MiB}
    assert monitor.headroom_bytes() == 0
