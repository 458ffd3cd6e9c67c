"""Find the real memory limit of this process: RAM, cgroup (v1 or v2) or rlimit.

A laptop's limit is its RAM; a container's is its cgroup's ``memory.max`` (v2) or
``memory.limit_in_bytes`` (v1), which `psutil.virtual_memory()` does not see; a shell with
``ulimit -v`` sets RLIMIT_AS. The limit that applies is the smallest of them.

Everything is read through a `SystemProbe`, whose file roots and calls tests replace, so
limits can be checked against fake cgroup files and made-up numbers.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass, field
from pathlib import Path

import psutil

__all__ = ["MemoryLimit", "SystemProbe", "detect_memory_limit"]

log = logging.getLogger(__name__)

# cgroup v1 writes "no limit" as the largest page-aligned int64; anything this big is none.
_UNLIMITED = 1 << 60


@dataclass
class SystemProbe:
    """Where memory facts come from. Replace the roots or override the methods in tests."""

    proc_root: Path = Path("/proc")
    cgroup_root: Path = Path("/sys/fs/cgroup")

    def physical_bytes(self) -> int:
        """Physical memory of the machine."""
        return int(psutil.virtual_memory().total)

    def available_bytes(self) -> int:
        """Memory the machine could still hand out (its own view: no cgroup or rlimit)."""
        return int(psutil.virtual_memory().available)

    def rlimit(self, which: int) -> int | None:
        """The soft limit of `which` (a `resource.RLIMIT_*`), None when unlimited."""
        soft, _hard = resource.getrlimit(which)
        return None if soft in (resource.RLIM_INFINITY, -1) or soft >= _UNLIMITED else soft

    def read(self, path: Path) -> str | None:
        """A small kernel file's text, None when it does not exist or cannot be read."""
        try:
            return path.read_text()
        except OSError:
            return None

    def tree_rss(self, pid: int) -> dict[int, int]:
        """Resident bytes of `pid` and each of its descendants, by pid."""
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return {}
        rss = {}
        for process in processes:
            try:
                rss[process.pid] = process.memory_info().rss
            except psutil.Error:  # exited between listing and reading
                continue
        return rss


@dataclass(frozen=True)
class MemoryLimit:
    """The limit that applies (`bytes`), what set it (`source`), and every candidate seen."""

    bytes: int
    source: str
    candidates: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """For messages: ``1.0 GiB (cgroup v2 memory.max)``."""
        return f"{self.bytes / 2**30:.1f} GiB ({self.source})"


def detect_memory_limit(probe: SystemProbe | None = None) -> MemoryLimit:
    """The smallest of physical RAM, the cgroup limits and RLIMIT_AS/RLIMIT_DATA."""
    probe = probe or SystemProbe()
    candidates = {"physical memory": probe.physical_bytes()}
    for source, limit in _cgroup_limits(probe):
        candidates[source] = limit
    for name in ("RLIMIT_AS", "RLIMIT_DATA"):
        limit = probe.rlimit(getattr(resource, name))
        if limit is not None:
            candidates[name] = limit
    source = min(candidates, key=lambda name: candidates[name])
    log.info("memory limit %.2f GiB from %s", candidates[source] / 2**30, source)
    return MemoryLimit(bytes=candidates[source], source=source, candidates=candidates)


def _cgroup_limits(probe: SystemProbe) -> list[tuple[str, int]]:
    """Limits of this process's cgroups and of their ancestors (they apply too)."""
    text = probe.read(probe.proc_root / "self" / "cgroup") or ""
    found = []
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            mounts = [probe.cgroup_root, probe.cgroup_root / "unified"]
            limit = _smallest_on_path(probe, mounts, path, "memory.max")
            if limit is not None:
                found.append(("cgroup v2 memory.max", limit))
        elif "memory" in controllers.split(","):
            mounts = [probe.cgroup_root / "memory"]
            limit = _smallest_on_path(probe, mounts, path, "memory.limit_in_bytes")
            if limit is not None:
                found.append(("cgroup v1 memory.limit_in_bytes", limit))
    return found


def _smallest_on_path(
    probe: SystemProbe, mounts: list[Path], cgroup_path: str, filename: str
) -> int | None:
    """The smallest limit in `filename` from the cgroup up to the mount's root.

    In a container the mount's root often is the container's own cgroup and the path in
    /proc/self/cgroup is not under it; the root's file is then the one that applies.
    """
    parts = [p for p in cgroup_path.strip().split("/") if p]
    limits = []
    for mount in mounts:
        for depth in range(len(parts), -1, -1):
            text = probe.read(mount.joinpath(*parts[:depth], filename))
            if text is None:
                continue
            value = text.strip()
            if value != "max" and value.isdigit() and int(value) < _UNLIMITED:
                limits.append(int(value))
    return min(limits) if limits else None
