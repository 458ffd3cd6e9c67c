"""A directory that becomes read-only on demand, for tests of read-only file systems.

As root, permissions do not stop writes, so the directory is a real tmpfs mount, filled
while writable and then remounted read-only. Where mounting is impossible (no privilege,
no ``mount``), writes under it are refused by patching Python's file functions instead,
which covers what amdsim itself writes in this process (not pyarrow's or a subprocess's:
tests needing those ask for `real`). Unmounted and unpatched at the end, always.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["ReadOnlyDirectory", "read_only_directory"]


class ReadOnlyDirectory:
    """`path` is writable until `freeze()`; `real` says whether it is a real mount."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        self._monkeypatch = monkeypatch
        path.mkdir(parents=True, exist_ok=True)
        # AMDSIM_TEST_NO_MOUNT=1 tries the fallback on a machine that could mount.
        self.real = not os.environ.get("AMDSIM_TEST_NO_MOUNT") and _mount(
            ["-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)]
        )

    def freeze(self) -> None:
        """Make the directory read-only (remount, or refuse writes under it)."""
        if self.real:
            if not _mount(["-o", "remount,ro", str(self.path)]):
                pytest.fail(f"could not remount {self.path} read-only")
        else:
            _refuse_writes_under(self.path, self._monkeypatch)

    def require_real(self) -> None:
        """Skip the test unless the directory is a real mount (a subprocess must see it)."""
        if not self.real:
            pytest.skip(
                "mounting a tmpfs is not allowed here; patched writes do not reach a subprocess"
            )

    def close(self) -> None:
        if self.real:
            subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)


@contextlib.contextmanager
def read_only_directory(path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReadOnlyDirectory]:
    """A `ReadOnlyDirectory` at `path`, unmounted on the way out whatever happens."""
    directory = ReadOnlyDirectory(path, monkeypatch)
    try:
        yield directory
    finally:
        directory.close()


def _mount(arguments: list[str]) -> bool:
    if shutil.which("mount") is None:
        return False
    try:
        done = subprocess.run(["mount", *arguments], check=False, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _refuse_writes_under(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = root.resolve()

    def under(path: object) -> bool:
        if not isinstance(path, str | os.PathLike):
            return False
        target = Path(os.fspath(path)).absolute()
        return target == root or root in target.parents

    def refuse(path: object) -> OSError:
        return OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))  # type: ignore[arg-type]

    real_open, real_os_open = io.open, os.open

    def fake_open(file, mode="r", *args, **kwargs):
        if under(file) and any(flag in mode for flag in "wax+"):
            raise refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        if under(path) and flags & writing:
            raise refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guard(function):
        def guarded(path, *args, **kwargs):
            if under(path):
                raise refuse(path)
            return function(path, *args, **kwargs)

        return guarded

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    for name in ("mkdir", "replace", "rename", "unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))
    monkeypatch.setattr(shutil, "rmtree", guard(shutil.rmtree))
