"""Durable renames: flush a file's data, rename it into place, flush its directory.

A rename is atomic but not durable by itself: after a power cut the new name may point at a
file whose data never reached the disk (the kernel wrote the directory entry first), or the
rename may be lost altogether. So every file a run lists is flushed (`fsync`) under its
temporary name first, renamed, and then its directory is flushed, which makes the rename
itself survive. Order matters, and tests check it: fsync(file) -> rename -> fsync(dir).

Does not cover: choosing names (`engine.run_dir`), what is written (the callers).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_directory", "fsync_path", "rename_durably"]


def fsync_path(path: Path) -> None:
    """Flush a closed file's data and size to the disk (any descriptor of the file will do)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_directory(path: Path) -> None:
    """Flush a directory's entries, so the renames and creations in it survive a power cut."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def rename_durably(source: Path, target: Path) -> None:
    """Rename a closed file into place for good: flush it, rename, flush the directory."""
    fsync_path(source)
    os.replace(source, target)
    fsync_directory(target.parent)
