"""StateManager: what a session holds, LRU eviction by count and size, cleanup and gc."""

from __future__ import annotations

import gc
import weakref

import pytest

from engine import run_simulation
from engine.errors import MemoryBudgetError, ParameterError
from engine.memory import MemoryMonitor
from engine.model.protocol_loader import load_protocol
from engine.state_manager import StateManager
from tests.engine.test_memory_monitor import FakeProbe
from tests.helpers import V1_PROTOCOL

MiB = 1 << 20


class FakeResults:
    """Stands in for a results object: a size, and whether it was closed."""

    def __init__(self, size_mib: float = 1.0) -> None:
        self.size_mib = size_mib
        self.closed = False

    @property
    def memory_usage_mb(self) -> float:
        return self.size_mib

    def close(self) -> None:
        self.closed = True


def test_holds_and_returns_by_key_with_sizes_from_the_results():
    manager = StateManager()
    a, b = FakeResults(3), FakeResults(5)
    manager.put("a", a)
    manager.put("b", b)
    assert manager.get("a") is a and manager.get("b") is b and manager.get("c") is None
    assert manager.total_bytes == 8 * MiB and len(manager) == 2 and "a" in manager


def test_count_limit_evicts_the_least_recently_used_and_closes_it():
    manager = StateManager(max_items=2)
    a, b, c = FakeResults(), FakeResults(), FakeResults()
    manager.put("a", a)
    manager.put("b", b)
    manager.get("a")  # now b is the least recently used
    manager.put("c", c)
    assert [h.key for h in manager.held()] == ["a", "c"]
    assert b.closed and not a.closed and not c.closed
    assert manager.evictions == 1


def test_size_limit_evicts_until_the_total_fits():
    manager = StateManager(max_items=10, max_bytes=10 * MiB)
    held = {k: FakeResults(4) for k in "abc"}
    for key, results in held.items():
        manager.put(key, results)
    assert [h.key for h in manager.held()] == ["b", "c"] and held["a"].closed
    manager.put("big", FakeResults(9))
    assert [h.key for h in manager.held()] == ["big"]
    assert manager.total_bytes == 9 * MiB and manager.evictions == 3


def test_results_larger_than_the_budget_are_refused_with_advice():
    manager = StateManager(max_bytes=10 * MiB)
    keep = FakeResults(2)
    manager.put("keep", keep)
    with pytest.raises(MemoryBudgetError, match=r"'huge' take 11 MiB, more than .* 10 MiB"):
        manager.put("huge", FakeResults(11))
    assert manager.get("keep") is keep and not keep.closed


def test_replacing_a_key_closes_the_old_object():
    manager = StateManager()
    old, new = FakeResults(), FakeResults()
    manager.put("run", old)
    manager.put("run", new)
    assert old.closed and not new.closed and len(manager) == 1


def test_release_and_cleanup_close_everything_and_collect():
    collected = []
    manager = StateManager(collect=lambda: collected.append(1))
    items = [FakeResults() for _ in range(3)]
    for i, results in enumerate(items):
        manager.put(str(i), results)
    assert manager.release("1") and not manager.release("1")
    assert items[1].closed
    assert manager.cleanup() == 2
    assert all(r.closed for r in items) and len(manager) == 0 and manager.total_bytes == 0
    assert collected == [1]


def test_runs_starting_and_completing_collect_garbage():
    collected = []
    manager = StateManager(collect=lambda: collected.append(1))
    manager.before_run()
    manager.run_completed()
    assert len(collected) == 2 == manager.collections


def test_red_memory_releases_everything(tmp_path):
    probe = FakeProbe(tmp_path, ram=1000 * MiB)
    manager = StateManager(monitor=MemoryMonitor(root_pid=1, probe=probe))
    results = FakeResults()
    manager.put("run", results)
    probe.rss = {1: 800 * MiB}
    assert manager.check_memory() == "yellow" and not results.closed
    probe.rss = {1: 900 * MiB}
    assert manager.check_memory() == "red" and results.closed and len(manager) == 0
    assert StateManager().check_memory() is None


def test_limits_are_validated():
    with pytest.raises(ParameterError, match="must be positive"):
        StateManager(max_items=0)


def test_real_results_are_freed_after_cleanup():
    results = run_simulation(load_protocol(V1_PROTOCOL), n_patients=500, years=2, seed=3)
    manager = StateManager()
    manager.put("run", results)
    assert manager.total_bytes == int(results.memory_usage_mb * MiB) > 0
    ref = weakref.ref(results)
    del results
    gc.collect()
    assert ref() is not None, "held results must stay alive"
    manager.cleanup()
    assert ref() is None, "released results must be garbage"
