"""Claiming the run directory: empty for a new run; for a resume or a restart, taking over
an existing run under its lock.

A restart wipes the directory (but its lock) and starts over with the run's own protocol
and parameters. A resume checks that the run may go on (`engine.resume`), loads its
checkpoint, discards what the interruption left that the checkpoint does not list, and keeps
the run's compression and slot size, since shards must be cut as before.

Does not cover: the checks themselves (`engine.resume`), running (`engine.pipeline.supervisor`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from engine import resume
from engine.errors import ParameterError, RunStateError
from engine.manifest import Checkpoint, Manifest
from engine.pipeline.options import DEFAULT_CHECKPOINT_EVERY, PipelineOptions
from engine.run_dir import RunPaths

__all__ = ["Mode", "TakeOver", "checkpoint_every", "claim_directory", "take_over"]

log = logging.getLogger(__name__)
Mode = Literal["new", "resume", "restart"]


@dataclass(frozen=True)
class TakeOver:
    """What a supervisor starts from: the run's previous manifest and, when resuming, its
    checkpoint, the files discarded and the options adjusted to the run."""

    options: PipelineOptions
    previous: Manifest | None = None
    checkpoint: Checkpoint | None = None
    discarded: list[str] = field(default_factory=list)


def claim_directory(paths: RunPaths, mode: Mode) -> None:
    """Check the run directory suits `mode` (creating it for a new run), before its lock.

    A new run needs an empty or absent directory (`ParameterError` otherwise); a resume or
    restart needs a run directory (`RunStateError`).
    """
    if mode == "new":
        if paths.root.exists() and any(paths.root.iterdir()):
            raise ParameterError(f"run directory {paths.root} already exists and is not empty")
        paths.root.mkdir(parents=True, exist_ok=True)
    elif not paths.manifest.is_file():
        raise RunStateError(f"{paths.root} is not a run directory (no manifest.json)")


def take_over(paths: RunPaths, mode: Mode, options: PipelineOptions) -> TakeOver:
    """Prepare a resume or a restart (nothing to do for a new run); call under the run's lock."""
    if mode == "new":
        return TakeOver(options)
    previous = resume.read_run_manifest(paths)
    if mode == "restart":
        resume.wipe_run_directory(paths)
        return TakeOver(options, previous)
    resume.check_resumable(paths, previous)
    checkpoint = resume.load_checkpoint(paths, previous)
    discarded = resume.discard_unlisted_files(paths, checkpoint)
    if discarded:
        log.info("discarded what the interruption left: %s", ", ".join(discarded))
    options = msgspec.structs.replace(
        options, compression=previous.compression, slot_bytes=previous.slot_bytes
    )
    return TakeOver(options, previous, checkpoint, discarded)


def checkpoint_every(options: PipelineOptions, previous: Manifest | None, mode: Mode) -> int:
    """Patients between checkpoints: the option, else a resumed run's own, else the default."""
    if options.checkpoint_every is not None:
        return options.checkpoint_every
    if previous is not None and mode == "resume":
        return previous.checkpoint_every
    return DEFAULT_CHECKPOINT_EVERY
