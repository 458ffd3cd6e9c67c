"""Durable renames: flush a file's data, rename it into place, flush its directory.

A rename is atomic but not durable by itself: after a power cut the new name may point at a
file whose data never reached the disk (the kernel wrote the directory entry first), or the
rename may be lost altogether. So every file a run lists is flushed (`fsync`) under its
temporary name first, renamed, and then its directory is flushed, which makes the rename
itself survive. Order matters, and tests check it: fsync(file) -> rename -> fsync(dir).

A whole directory (saved results, a run) is replaced the same way: built beside the target,
flushed file by file, then swapped in with one `renameat2(RENAME_EXCHANGE)` where the kernel
and file system offer it, else with two renames (the target is missing for that instant,
never half old and half new); the old directory is deleted after.

Does not cover: choosing names (`engine.run_dir`), what is written (the callers).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
from pathlib import Path

__all__ = ["fsync_directory", "fsync_path", "fsync_tree", "rename_durably", "replace_directory"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


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


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under `root` (and `root` itself) to the disk."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_directory(Path(folder))


def replace_directory(staged: Path, target: Path) -> None:
    """Put the finished directory `staged` in place of `target` (a sibling of it).

    `staged` is flushed first; the old `target`, if any, is deleted once the swap is done.
    """
    fsync_tree(staged)
    if not target.exists():
        os.rename(staged, target)
    elif _exchange(staged, target):
        shutil.rmtree(staged)  # now the old directory
    else:
        old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        os.rename(target, old)
        try:
            os.rename(staged, target)
        except BaseException:
            os.rename(old, target)
            raise
        shutil.rmtree(old)
    fsync_directory(target.parent)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2; False where that is unsupported."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.renameat2(
            _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
        )
        return result == 0
    return False
