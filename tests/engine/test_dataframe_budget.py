"""`to_dataframe()` budgets from the real memory limit (cgroup, rlimit, RAM), not the host's.

Issue 10, case 17: in a 512 MiB cgroup the old budget (half of the host's available memory)
let a 909 MiB frame be built and the process was SIGKILLed.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from engine import run_simulation
from engine.errors import MemoryBudgetError
from engine.memory import MemoryMonitor, guard
from tests.engine.test_memory_monitor import MiB, ProbeWithAvailable, write
from tests.helpers import V1_PROTOCOL

GiB = 1 << 30


@pytest.fixture
def cgroup_512_mib(tmp_path, monkeypatch):
    """This process's monitor sees a 512 MiB cgroup on a host with 20 GiB free."""
    write(tmp_path / "proc/self/cgroup", "0::/job\n")
    write(tmp_path / "sys/fs/cgroup/job/memory.max", f"{512 * MiB}\n")
    probe = ProbeWithAvailable(tmp_path, available=20 * GiB)
    monkeypatch.setattr(guard, "_shared", MemoryMonitor(probe=probe))
    return probe


def test_to_dataframe_in_a_512_mib_cgroup_budgets_from_the_cgroup_not_the_host(cgroup_512_mib):
    results = run_simulation(n_patients=1_000, years=5, seed=3)
    # The tree already uses nearly all of the cgroup: the host's 20 GiB must not count.
    cgroup_512_mib.rss = {1: 511 * MiB}
    with pytest.raises(MemoryBudgetError, match=r"512 MiB|0\.5 GiB \(cgroup v2 memory\.max\)"):
        results.to_dataframe("visits")
    # With room under the same cgroup the frame is built.
    cgroup_512_mib.rss = {1: 100 * MiB}
    frame = results.to_dataframe("visits")
    assert len(frame) == results.visit_count


_CHILD = textwrap.dedent(
    """
    import sys
    from engine.errors import MemoryBudgetError
    from engine.results import ResultsFactory

    with ResultsFactory.open(sys.argv[1]) as results:
        try:
            results.to_dataframe("visits")
        except MemoryBudgetError as exc:
            print(exc)
            sys.exit(3)
    sys.exit(0)
    """
)


@pytest.mark.slow
def test_to_dataframe_in_a_real_512_mib_cgroup_refuses_instead_of_being_killed(tmp_path):
    from engine.model.parameters import RunParameters
    from engine.model.protocol_loader import load_protocol
    from engine.pipeline import PipelineOptions, run_pipeline
    from tests.load.confine import confined, run_confined

    run_dir = tmp_path / "run"
    params = RunParameters(n_patients=1_000_000, years=5, seed=4)
    manifest = run_pipeline(load_protocol(V1_PROTOCOL), params, run_dir, PipelineOptions(workers=1))
    assert manifest.uncompressed_bytes * 2.5 > 512 * MiB, "the frame must not fit in 512 MiB"
    with confined(512 * MiB) as confinement:
        if confinement.kind == "RLIMIT_AS":
            pytest.skip("no cgroup can be made here (RLIMIT_AS is not a resident limit)")
        result = run_confined(
            confinement,
            [sys.executable, "-c", _CHILD, str(run_dir)],
            timeout_s=300,
            cwd=Path(__file__).resolve().parents[2],
        )
    assert result.returncode == 3, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert "cgroup" in result.stdout
