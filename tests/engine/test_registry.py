"""The run registry: listing, searching, cleanup, eviction, and many processes at once."""

from __future__ import annotations

import datetime
import json
import os
import threading
import time

import msgspec
import psutil
import pytest

from engine.errors import AmdsimError, RunNotFoundError, RunPathError
from engine.manifest import Manifest, write_manifest
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline.processes import CONTEXT
from engine.registry import Registry, RegistryLockedError, _locked
from engine.run_dir import RunLock, RunPaths, new_run_id
from tests.helpers import V1_PROTOCOL


def manifest(
    run_id: str,
    status: str = "completed",
    alive: bool = False,
    name: str = "Aflibercept",
    **changes,
) -> Manifest:
    me = psutil.Process()
    protocol = msgspec.structs.replace(load_protocol(V1_PROTOCOL), name=name)
    return Manifest(
        run_id=run_id,
        status=status,
        protocol=protocol,
        parameters=RunParameters(n_patients=5000, years=5, seed=1),
        shard_count=2,
        compression="zstd",
        workers=1,
        created=changes.pop("created", datetime.datetime.now(datetime.UTC)),
        package_version="test",
        supervisor_pid=me.pid if alive else 999_999_999,
        supervisor_started=me.create_time() if alive else 0.0,
        **changes,
    )


def run_id(i: int) -> str:
    return f"20261129-1200{i:02d}-{i:04x}"


@pytest.fixture
def registry(tmp_path):
    return Registry(tmp_path)


def test_registered_runs_are_listed_newest_first_and_found_by_id(registry):
    base = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
    for i in range(3):
        registry.register(manifest(run_id(i), created=base + datetime.timedelta(days=i)))
    assert [e.run_id for e in registry.list()] == [run_id(2), run_id(1), run_id(0)]
    assert registry.get(run_id(1)).status == "completed"
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        registry.get("nope")


def test_a_running_run_whose_supervisor_is_gone_shows_as_interrupted(registry):
    registry.register(manifest(run_id(1), status="running", alive=False))
    registry.register(manifest(run_id(2), status="running", alive=True))
    assert registry.get(run_id(1)).status == "interrupted"
    assert registry.get(run_id(2)).status == "running"


def test_updates_keep_the_name_and_cleanup_mark(registry):
    registry.register(manifest(run_id(1), status="running", alive=True))
    registry.rename(run_id(1), "baseline scenario")
    registry.mark_for_cleanup(run_id(1))
    registry.update(manifest(run_id(1), status="completed", bytes_on_disk=1234))
    entry = registry.get(run_id(1))
    assert (entry.name, entry.marked_for_cleanup, entry.status, entry.bytes_on_disk) == (
        "baseline scenario",
        True,
        "completed",
        1234,
    )


def test_search_by_text_status_date_and_size(registry):
    base = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
    registry.register(manifest(run_id(1), name="Aflibercept T&E", created=base, bytes_on_disk=10))
    registry.register(
        manifest(
            run_id(2),
            name="Ranibizumab PRN",
            created=base + datetime.timedelta(days=5),
            bytes_on_disk=500,
        )
    )
    registry.register(
        manifest(
            run_id(3),
            name="Ranibizumab PRN",
            status="failed",
            created=base + datetime.timedelta(days=9),
            bytes_on_disk=50,
        )
    )
    registry.rename(run_id(1), "first try")
    assert [e.run_id for e in registry.search("ranibizumab")] == [run_id(3), run_id(2)]
    assert [e.run_id for e in registry.search("FIRST")] == [run_id(1)]
    assert [e.run_id for e in registry.search(status="failed")] == [run_id(3)]
    assert [
        e.run_id
        for e in registry.search(
            since=base + datetime.timedelta(days=1), until=base + datetime.timedelta(days=6)
        )
    ] == [run_id(2)]
    assert [e.run_id for e in registry.search(min_bytes=40, max_bytes=100)] == [run_id(3)]


def test_delete_removes_the_directory_and_refuses_a_running_run(registry):
    for i, status in ((1, "completed"), (2, "running")):
        registry.register(manifest(run_id(i), status=status, alive=True))
        registry.run_dir(run_id(i)).mkdir()
    registry.delete(run_id(1))
    assert not registry.run_dir(run_id(1)).exists()
    assert [e.run_id for e in registry.list()] == [run_id(2)]
    with pytest.raises(AmdsimError, match="is still running; cancel it first"):
        registry.delete(run_id(2))
    registry.delete(run_id(2), force=True)
    assert registry.list() == []


def test_cleanup_removes_marked_runs_and_orphans_and_marks_vanished_runs_missing(
    registry, tmp_path
):
    for i in range(1, 4):
        registry.register(manifest(run_id(i)))
        registry.run_dir(run_id(i)).mkdir()
    registry.mark_for_cleanup(run_id(1))
    registry.run_dir(run_id(2)).rmdir()  # vanished behind the registry's back
    orphan = tmp_path / run_id(9)
    orphan.mkdir()
    an_hour_ago = time.time() - 3600
    os.utime(orphan, (an_hour_ago, an_hour_ago))
    starting = tmp_path / run_id(8)  # just created by a supervisor, not yet registered
    starting.mkdir()
    (tmp_path / "not-a-run").mkdir()  # never touched: not named like a run
    expected = {
        "removed": [run_id(1)],
        "orphans": [run_id(9)],
        "kept_orphans": [],
        "missing": [run_id(2)],
        "unreadable": [],
    }
    assert registry.cleanup(dry_run=True, orphans=True) == expected
    assert orphan.exists() and registry.run_dir(run_id(1)).exists()
    assert registry.get(run_id(2)).status == "completed"
    assert registry.cleanup(orphans=True) == expected
    assert not orphan.exists() and (tmp_path / "not-a-run").exists() and starting.exists()
    assert {e.run_id: e.status for e in registry.list()} == {
        run_id(2): "missing",
        run_id(3): "completed",
    }


def test_a_run_killed_before_it_registered_is_listed_from_its_manifest_not_removed(
    registry,
):
    run_dir = registry.run_dir(run_id(6))
    run_dir.mkdir()
    write_manifest(run_dir / "manifest.json", manifest(run_id(6), status="running"))
    an_hour_ago = time.time() - 3600
    os.utime(run_dir, (an_hour_ago, an_hour_ago))
    assert [(e.run_id, e.status) for e in registry.list()] == [(run_id(6), "interrupted")]
    assert registry.cleanup(orphans=True)["orphans"] == []
    assert run_dir.exists()


def test_cleanup_leaves_an_unregistered_directory_whose_supervisor_holds_its_lock(registry):
    run_dir = registry.run_dir(run_id(5))
    run_dir.mkdir()
    lock = RunLock(RunPaths(run_dir))
    an_hour_ago = time.time() - 3600
    os.utime(run_dir, (an_hour_ago, an_hour_ago))
    try:
        assert registry.cleanup(orphans=True)["orphans"] == []
        assert run_dir.exists()
    finally:
        lock.release()
    os.utime(run_dir, (an_hour_ago, an_hour_ago))
    assert registry.cleanup(orphans=True)["orphans"] == [run_id(5)]


def test_a_cap_marks_the_oldest_finished_runs_for_cleanup_never_a_running_one(registry):
    """Case 19: beyond `max_runs`, the oldest finished runs are marked (not deleted at once)."""
    base = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)

    def add(i: int, **changes) -> None:
        registry.register(
            manifest(run_id(i), created=base + datetime.timedelta(hours=i), **changes)
        )
        registry.run_dir(run_id(i)).mkdir(exist_ok=True)

    add(1, status="running", alive=True)
    add(2)
    add(3, status="running", alive=False)  # interrupted: resumable, never marked
    add(4, status="failed")
    assert registry.set_max_runs(2) == [run_id(2), run_id(4)][:2]
    assert registry.max_runs == 2 and Registry(registry.root).max_runs == 2  # stored
    marked = {e.run_id for e in registry.list() if e.marked_for_cleanup}
    assert marked == {run_id(2), run_id(4)}
    add(5)  # one more: run 5 is the newest finished run, so it stays unmarked... over the cap
    assert {e.run_id for e in registry.list() if e.marked_for_cleanup} == {
        run_id(2),
        run_id(4),
        run_id(5),
    }
    assert all(registry.run_dir(run_id(i)).is_dir() for i in range(1, 6))  # only marked
    assert registry.remove_marked() == [run_id(2), run_id(4), run_id(5)]
    assert {e.run_id for e in registry.list()} == {run_id(1), run_id(3)}
    assert not registry.run_dir(run_id(2)).exists() and registry.run_dir(run_id(1)).exists()
    registry.set_max_runs(None)
    add(6)
    assert not registry.get(run_id(6)).marked_for_cleanup
    with pytest.raises(ValueError, match="at least 1"):
        registry.set_max_runs(0)


def test_remove_marked_leaves_a_marked_run_whose_supervisor_holds_its_lock(registry):
    """Case 19: cleanup never deletes a running run, even if its entry looks finished."""
    registry.register(manifest(run_id(1)))
    run_dir = registry.run_dir(run_id(1))
    run_dir.mkdir()
    registry.mark_for_cleanup(run_id(1))
    lock = RunLock(RunPaths(run_dir))  # a resume has just taken it over
    try:
        assert registry.remove_marked(dry_run=True) == []
        assert registry.remove_marked() == []
        assert run_dir.is_dir() and registry.get(run_id(1)).marked_for_cleanup
    finally:
        lock.release()
    assert registry.remove_marked() == [run_id(1)]
    assert not run_dir.exists()


def test_small_in_memory_runs_are_listed_never_missing_and_delete_leaves_their_folder(
    registry, tmp_path
):
    """Case 18: memory entries own no run directory; a saved one names its folder."""
    from engine.small_runs import memory_entry

    params = RunParameters(n_patients=100, years=1, seed=3)
    totals = (100, 900)
    now = datetime.datetime.now(datetime.UTC)
    saved = tmp_path / "elsewhere"
    saved.mkdir()
    (saved / "results.json").write_text("{}")
    registry.add(memory_entry(run_id(1), "Mine", params, totals, now))
    registry.add(memory_entry(run_id(2), "Mine", params, totals, now, saved))
    entries = {e.run_id: e for e in registry.list()}
    assert (entries[run_id(1)].storage, entries[run_id(1)].saved) == ("memory", False)
    assert entries[run_id(2)].location == str(saved.resolve()) and entries[run_id(2)].saved
    assert (entries[run_id(1)].patients, entries[run_id(1)].visits) == (100, 900)
    assert registry.cleanup()["missing"] == []
    registry.delete(run_id(2))
    assert (saved / "results.json").is_file()
    registry.add(memory_entry(run_id(3), "Mine", params, totals, now, saved))
    (saved / "results.json").unlink()
    saved.rmdir()
    assert registry.cleanup()["missing"] == [run_id(3)]


def test_a_read_only_runs_root_is_a_file_system_error_naming_the_path(tmp_path, monkeypatch):
    """Case 14: the registry turns an OSError into one line: path and reason."""
    from engine.errors import FileSystemError
    from tests.read_only import read_only_directory

    with read_only_directory(tmp_path / "ro", monkeypatch) as directory:
        registry = Registry(directory.path)
        registry.register(manifest(run_id(1)))
        directory.freeze()
        with pytest.raises(FileSystemError, match=r"registry.lock: read-only file system"):
            registry.mark_for_cleanup(run_id(1))
        with pytest.raises(FileSystemError, match=r"cannot create the runs root: .*read-only"):
            Registry(directory.path / "runs")
        assert [e.run_id for e in Registry(directory.path).list()] == [run_id(1)]


def test_refresh_sees_changes_made_by_another_registry_object(tmp_path):
    mine, theirs = Registry(tmp_path), Registry(tmp_path)
    theirs.register(manifest(run_id(7)))
    assert run_id(7) in {e.run_id for e in mine.list()}  # list() refreshes
    mine.refresh()
    assert mine.get(run_id(7)).run_id == run_id(7)


def test_a_lock_held_too_long_is_reported(tmp_path):
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with _locked(tmp_path / "registry.lock"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    with (
        pytest.raises(RegistryLockedError, match="stayed locked for 0 s"),
        _locked(tmp_path / "registry.lock", timeout_s=0.2),
    ):
        pass
    release.set()
    thread.join()


def test_a_corrupt_registry_file_is_reported_not_overwritten(tmp_path):
    (tmp_path / "registry.json").write_text("{broken")
    with pytest.raises(AmdsimError, match="is not a valid run registry"):
        Registry(tmp_path)
    assert (tmp_path / "registry.json").read_text() == "{broken"


def _hammer(root: str, worker: int, operations: int) -> None:
    registry = Registry(root)
    for i in range(operations):
        rid = f"20261129-{worker:02d}{i:04d}-{worker:04x}"
        registry.register(manifest(rid, status="running", alive=False))
        registry.update(manifest(rid, status="completed", bytes_on_disk=i))
        if i % 5 == 0:
            registry.rename(rid, f"worker {worker} run {i}")


def _watch(root: str, stop, problems) -> None:
    path = os.path.join(root, "registry.json")
    while not stop.is_set():
        try:
            with open(path, "rb") as handle:
                json.loads(handle.read())
        except FileNotFoundError:
            pass
        except ValueError as exc:
            problems.append(str(exc))


@pytest.mark.slow
def test_eight_processes_times_fifty_operations_lose_nothing_and_the_file_is_always_valid(tmp_path):
    # A thread parses the file continuously while eight processes change it.
    watcher_problems: list[str] = []
    watcher_stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(str(tmp_path), watcher_stop, watcher_problems))
    watcher.start()
    workers = [CONTEXT.Process(target=_hammer, args=(str(tmp_path), w, 50)) for w in range(8)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    watcher_stop.set()
    watcher.join()
    assert all(p.exitcode == 0 for p in workers)
    assert watcher_problems == []
    entries = {e.run_id: e for e in Registry(tmp_path).list()}
    assert len(entries) == 8 * 50
    assert all(e.status == "completed" for e in entries.values())
    renamed = [e for e in entries.values() if e.name]
    assert len(renamed) == 8 * 10


def test_new_run_ids_are_valid_and_distinct():
    from engine.run_dir import validate_run_id

    ids = {validate_run_id(new_run_id()) for _ in range(50)}
    assert len(ids) > 40


def test_cleanup_never_deletes_runs_it_cannot_read(registry, tmp_path):
    """Case 3: a newer format, a copied run and a truncated manifest were rmtree'd as orphans."""
    an_hour_ago = time.time() - 3600
    manifests = {
        run_id(1): msgspec.json.encode(manifest(run_id(1), format_version=99)),
        run_id(2): msgspec.json.encode(manifest(run_id(7))),  # copied from run 7
        run_id(3): msgspec.json.encode(manifest(run_id(3)))[:200],
    }
    for name, data in manifests.items():
        (tmp_path / name / "visits").mkdir(parents=True)
        (tmp_path / name / "manifest.json").write_bytes(data)
        (tmp_path / name / "visits" / "part-00000.parquet").write_bytes(b"PAR1")
    (tmp_path / run_id(4) / "patients").mkdir(parents=True)  # data, no manifest
    (tmp_path / run_id(4) / "patients" / "part-00000.parquet").write_bytes(b"PAR1")
    (tmp_path / run_id(5)).mkdir()  # nothing at all: a leftover
    for name in (run_id(i) for i in range(1, 6)):
        os.utime(tmp_path / name, (an_hour_ago, an_hour_ago))

    assert registry.list() == []
    reasons = {found.run_id: found.reason for found in registry.unreadable()}
    assert sorted(reasons) == [run_id(1), run_id(2), run_id(3), run_id(4)]
    assert "format version 99" in reasons[run_id(1)]
    assert f"belongs to run {run_id(7)}" in reasons[run_id(2)]
    assert "not a valid manifest" in reasons[run_id(3)]
    assert "no manifest.json" in reasons[run_id(4)]

    kept = registry.cleanup()
    assert kept["orphans"] == [] and kept["kept_orphans"] == [run_id(5)]
    report = registry.cleanup(orphans=True)
    assert [line.split()[0] for line in report["unreadable"]] == sorted(reasons)
    assert report["orphans"] == [run_id(5)] and not (tmp_path / run_id(5)).exists()
    for name in reasons:
        assert any((tmp_path / name).rglob("part-00000.parquet")), name


def test_deleting_a_run_never_follows_a_symbolic_link(registry, tmp_path):
    """Case 15: rmtree must not descend a link, and a run directory that is a link is refused
    (it used to be 'deleted' while rmtree silently failed)."""
    foreign = tmp_path / "foreign"
    (foreign / "deep").mkdir(parents=True)
    (foreign / "deep" / "part-00099.parquet").write_bytes(b"someone else's")
    registry.register(manifest(run_id(1)))
    run_dir = registry.run_dir(run_id(1))
    run_dir.mkdir()
    (run_dir / "visits").symlink_to(foreign)
    (run_dir / "extra").symlink_to(foreign / "deep")
    registry.delete(run_id(1))
    assert not os.path.lexists(run_dir)
    assert (foreign / "deep" / "part-00099.parquet").read_bytes() == b"someone else's"

    registry.register(manifest(run_id(2)))
    registry.run_dir(run_id(2)).symlink_to(foreign)
    with pytest.raises(RunPathError, match="is a symbolic link"):
        registry.delete(run_id(2))
    registry.mark_for_cleanup(run_id(2))
    report = registry.cleanup(orphans=True)
    assert report["removed"] == [] and report["unreadable"] == [
        f"{run_id(2)} (a symbolic link; left alone)"
    ]
    assert registry.run_dir(run_id(2)).is_symlink()
    assert [e.run_id for e in registry.list()] == [run_id(2)]
    assert (foreign / "deep" / "part-00099.parquet").is_file()


def test_a_symbolic_link_named_like_a_run_is_never_adopted_nor_removed(registry, tmp_path):
    """Case 15: a link under the root, to a real run elsewhere, was adopted (so show followed
    it) or reported as a removed orphan though rmtree had failed."""
    elsewhere = tmp_path / "elsewhere" / run_id(3)
    elsewhere.mkdir(parents=True)
    write_manifest(elsewhere / "manifest.json", manifest(run_id(3)))
    (tmp_path / run_id(3)).symlink_to(elsewhere)
    (tmp_path / run_id(4)).symlink_to(tmp_path / "nowhere")
    assert registry.list() == []
    assert [found.run_id for found in registry.unreadable()] == [run_id(3), run_id(4)]
    report = registry.cleanup(orphans=True)
    assert report["orphans"] == [] and len(report["unreadable"]) == 2
    assert (tmp_path / run_id(3)).is_symlink() and (elsewhere / "manifest.json").is_file()
