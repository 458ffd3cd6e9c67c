"""Path options (``--out``, ``--runs-dir``): refuse a file, or a path under one, up front.

Checked before a command simulates or writes anything, so a mistyped option costs nothing and
says which option is wrong (exit 2) instead of failing later inside ``mkdir``. What the
operating system refuses later (a read-only file system) is a `FileSystemError` (exit 1).
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ParameterError

__all__ = ["check_directory_option", "check_file_option"]


def check_directory_option(path: Path, option: str) -> Path:
    """`path` if it is a directory or could be created as one; else `ParameterError`.

    The error names the option and the file in the way: ``--out results.csv/x:
    results.csv is a file, not a directory``.
    """
    _check_folders(path, f"{option} {path}")
    return path


def check_file_option(path: Path, option: str) -> Path:
    """`path` if a file could be written there (not a directory, no file in the way)."""
    if path.is_dir():
        raise ParameterError(f"{option} {path} is a directory; name the file to write")
    _check_folders(path.parent, f"{option} {path}")
    return path


def _check_folders(path: Path, given: str) -> None:
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return
        if candidate.exists() or candidate.is_symlink():
            raise ParameterError(f"{given}: {candidate} is a file, not a directory")
