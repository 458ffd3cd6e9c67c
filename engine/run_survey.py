"""Judging a directory under a runs root that the registry does not list, without trusting it.

Such a directory is one of three things:
- a run amdsim can read (a real directory holding its own readable manifest): a run killed
  before it registered, which the registry adopts;
- unreadable: a symbolic link named like a run, a manifest from a newer amdsim, a truncated
  manifest, a run copied under another id, part files without a manifest. amdsim lists it
  with the reason and never deletes it: what cannot be read may still be someone's results;
- a leftover: a real directory with no manifest and no part file at all (a run that died
  while starting). Only these may ``cleanup --orphans`` remove.

Does not cover: registered runs (`engine.registry`), the layout of a run (`engine.run_dir`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from engine.errors import AmdsimError
from engine.formats import decode_versioned
from engine.manifest import FORMAT_VERSION, MANIFEST_UPGRADES, Manifest
from engine.model.any_protocol import dec_hook
from engine.run_dir import RunPaths, check_run_directory

__all__ = ["DirectorySurvey", "UnreadableRun", "holds_data", "survey_directory"]

_DATA_MARKERS = (".parquet", ".arrow", "results.json")  # part files, saved results


class UnreadableRun(msgspec.Struct, frozen=True, kw_only=True):
    """A directory named like a run that amdsim cannot read, as ``amdsim list`` shows it."""

    run_id: str
    status: str = "unreadable"
    reason: str


@dataclass(frozen=True, slots=True)
class DirectorySurvey:
    """What one unlisted directory is: a readable run, unreadable (and why), or a leftover."""

    path: Path
    manifest: Manifest | None = None  # a run amdsim can read and adopt
    problem: str = ""  # why amdsim cannot read it; "" for a run or a leftover

    @property
    def leftover(self) -> bool:
        """True for a real directory holding no manifest and no part file: safe to remove."""
        return self.manifest is None and not self.problem


def survey_directory(path: Path) -> DirectorySurvey:
    """Look at `path` (named like a run, listed by no registry entry) without following links."""
    try:
        check_run_directory(path)
    except AmdsimError as exc:
        return DirectorySurvey(path, problem=_short(str(exc), path))
    manifest_path = RunPaths(path).manifest
    if not os.path.lexists(manifest_path):
        if holds_data(path):
            return DirectorySurvey(path, problem="it holds part files but no manifest.json")
        return DirectorySurvey(path)
    if manifest_path.is_symlink() or not manifest_path.is_file():
        return DirectorySurvey(path, problem="its manifest.json is a link or not a file")
    try:
        manifest = decode_versioned(
            manifest_path.read_bytes(),
            Manifest,
            FORMAT_VERSION,
            MANIFEST_UPGRADES,
            "manifest.json",
            "manifest",
            dec_hook=dec_hook,
        )
    except (AmdsimError, OSError) as exc:
        return DirectorySurvey(path, problem=_short(str(exc), path))
    if manifest.run_id != path.name:
        return DirectorySurvey(
            path,
            problem=f"its manifest.json belongs to run {manifest.run_id}: a copy or a renamed run",
        )
    return DirectorySurvey(path, manifest=manifest)


def holds_data(path: Path) -> bool:
    """True if anything under `path` (links not followed) is a part file or saved results."""
    for _, _, files in os.walk(path):  # os.walk never follows links by default
        if any(marker in name for name in files for marker in _DATA_MARKERS):
            return True
    return False


def _short(message: str, path: Path) -> str:
    """`message` with the run directory's own path left out (the listing names it already)."""
    return message.replace(f"{path}/", "").replace(str(path), "it")
