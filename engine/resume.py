"""Resuming an interrupted run, and restarting one from nothing.

A run whose supervisor died (kill -9, a power cut, the OOM killer), or that was cancelled or
failed, keeps what its last checkpoint lists: closed part files, where each shard is, and
the statistics of exactly those shards. Resuming discards everything else the crash left
(hidden temporaries, part files renamed after the last checkpoint was written, shared memory
of the dead processes) and simulates only the shards the checkpoint does not hold in full.
Shards are deterministic, so the finished run equals one that was never interrupted.

Before it trusts them, a resume checks every file the checkpoint lists (engine.integrity:
size, footer, run id, shard parts, row counts and every page checksum). A damaged or foreign
file makes it refuse, naming the files: the checkpoint's statistics include the shards of
that file and cannot be taken apart again, so re-simulating only those shards would count
them twice. `amdsim run --restart RUN` runs it again from nothing. A completed run is
checked the same way before resume says there is nothing to do.

Covers: deciding whether a run may be resumed and cleaning it up for that (called by the
supervisor while it holds the run's lock).
Does not cover: running (`engine.pipeline.supervisor`; the entry points `resume_run` and
`restart_run` are in `engine.pipeline`), the registry (`engine.registry`).
"""

from __future__ import annotations

import contextlib
import shutil

from engine.errors import ResultsFormatError, RunStateError
from engine.formats import stored_version
from engine.integrity import describe_damage, load_index, verify_run
from engine.manifest import Checkpoint, Manifest, read_checkpoint
from engine.model.interface import format_version_of
from engine.reproducibility import changed_files
from engine.results import run_state
from engine.run_dir import RunPaths, check_run_directory
from engine.run_liveness import supervisor_alive
from ipc.segments import remove_stale_segments

__all__ = [
    "discard_unlisted_files",
    "load_checkpoint",
    "read_run_manifest",
    "wipe_run_directory",
]


def read_run_manifest(paths: RunPaths) -> Manifest:
    """The run's manifest, or `RunNotFoundError`/`ResultsFormatError` saying what is wrong.

    A run directory that is a link, or whose table folder is one, is refused first
    (`RunPathError`): resuming deletes unlisted part files, and must never do so elsewhere.
    """
    check_run_directory(paths.root)
    return run_state.read_run_manifest(paths)


def check_resumable(paths: RunPaths, manifest: Manifest) -> None:
    """Raise `RunStateError` unless the run stopped before finishing and nothing runs it.

    A run continues only with the inputs it started with: a protocol or parameter file
    recorded in its manifest that changed or went missing since is refused, naming it.
    """
    run_id = manifest.run_id
    written_in = stored_version(paths.manifest.read_bytes())
    expected = format_version_of(manifest.protocol)
    if written_in != expected:
        raise RunStateError(
            f"run {run_id} was written in format {written_in}; this amdsim resumes such runs "
            f"in format {expected} only (start it again with 'amdsim run --restart')"
        )
    if manifest.status == "completed":
        _require_intact(paths, manifest, load_index(paths, manifest))
        raise RunStateError(f"run {run_id} is already complete; there is nothing to resume")
    if manifest.status == "running" and supervisor_alive(
        manifest.supervisor_pid, manifest.supervisor_started
    ):
        raise RunStateError(
            f"run {run_id} is still running (supervisor pid {manifest.supervisor_pid})"
        )
    changed = [] if manifest.reproducibility is None else changed_files(manifest.reproducibility)
    if changed:
        raise RunStateError(
            f"run {run_id} cannot be resumed: {'; '.join(changed)} (the manifest keeps the "
            "original content; restore it, or start again with 'amdsim run --restart')"
        )


def load_checkpoint(paths: RunPaths, manifest: Manifest) -> Checkpoint:
    """The run's checkpoint (empty if none was written), every file it lists verified.

    Raises `ResultsFormatError` naming the damaged, missing or foreign files.
    """
    if not paths.checkpoint.is_file():
        return Checkpoint(run_id=manifest.run_id)
    return _require_intact(paths, manifest, read_checkpoint(paths.checkpoint))


def _require_intact(paths: RunPaths, manifest: Manifest, checkpoint: Checkpoint) -> Checkpoint:
    """`checkpoint` if every file it lists is intact, else `ResultsFormatError` naming them."""
    damage = verify_run(paths, manifest, checkpoint)
    if damage:
        raise ResultsFormatError(describe_damage(manifest.run_id, damage))
    return checkpoint


def discard_unlisted_files(paths: RunPaths, checkpoint: Checkpoint) -> list[str]:
    """Delete what a crash left that `checkpoint` does not list; returns what went.

    Hidden temporaries, part files renamed after the checkpoint was written (their shards
    are simulated again), statistics of an earlier end, and this run's orphaned shared memory.
    """
    listed = {name for part in checkpoint.parts for name in (part.patients_file, part.visits_file)}
    doomed = list(paths.temporary_files())
    for table in ("patients", "visits"):
        doomed += [path for path in paths.part_files(table) if path.name not in listed]
    if paths.stats.is_file():
        doomed.append(paths.stats)
    if paths.cluster_token.is_file():  # tasks of a dead cluster client stop writing here
        doomed.append(paths.cluster_token)
    removed = []
    for path in doomed:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(str(path.relative_to(paths.root)))
    removed += [f"/dev/shm/{name}" for name in remove_stale_segments(paths.root.name)]
    return removed


def wipe_run_directory(paths: RunPaths) -> None:
    """Delete everything in the run directory but its lock (for a restart)."""
    for child in paths.root.iterdir():
        if child == paths.lock:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    remove_stale_segments(paths.root.name)
