"""Statistical profiles of a run's processes (``--profile DIR``): pyinstrument in each one.

Every process of a run, and every cluster task, profiles itself with pyinstrument from its
start to its end and writes into DIR one speedscope file (``<name>.speedscope.json``, open
it at https://www.speedscope.app) and, if asked (`ProfileTarget.html`), one pyinstrument
HTML page (``<name>.html``, offline; a second or more to render for a long worker).
pyinstrument runs inside the process it profiles: it needs no ptrace permission (a
container or a Dask worker rarely grants it) and no helper process that could be left
behind.

Why this shape: pyinstrument samples only the thread that started it, so a process with
threads that matter (the writer's lanes) starts one more profiler in each such thread
(`ProcessProfile.thread`); the speedscope file then holds one profile per thread, the
main thread's first. The HTML page shows the main thread only.

Files appear whole or not at all: each is written under a hidden temporary name in DIR
and hard-linked to its final name, which never replaces a file already there (a replaced
worker, a resume into the same DIR, a retried cluster task): the next free name is taken
instead (``worker-1-pid4242``, ``task-8-1``). Writing a profile never fails the run: a
failure to write is logged as a warning.

Does not cover: what is not sampled: a process killed by a signal (SIGKILL) or ending with
``os._exit`` (a child whose supervisor died) writes nothing; threads other than the main
thread and those registered with `ProcessProfile.thread` are not sampled.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

__all__ = [
    "HTML_SUFFIX",
    "SPEEDSCOPE_SUFFIX",
    "ProcessProfile",
    "ProfileTarget",
    "merge_speedscope",
    "write_new_file",
]

log = logging.getLogger(__name__)
SPEEDSCOPE_SUFFIX = ".speedscope.json"
HTML_SUFFIX = ".html"
_TEMPORARY_PREFIX = ".profile-"


class ProfileTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where a run's processes write their profiles, and whether HTML pages too.

    Travels to every process (`PipelineOptions.profile`, the worker's and writer's
    configurations, a cluster's `BlockTask`); `directory` must be absolute for remote
    Dask workers.
    """

    directory: str
    html: bool = False  # also NAME.html: pyinstrument's offline page (main thread only)
    # pyinstrument's default is 1 ms; that slowed the kernel by 6-17%, 10 ms by 2-6%
    # (docs/profiling.md), and still gives 100 samples a second: plenty for a whole run.
    interval_s: float = 0.01


class ProcessProfile:
    """The profile of one process (or Dask task), written into `directory` when it stops.

    A context manager: entering starts sampling the calling thread, leaving (normally or by
    an exception, including ``SystemExit`` and ``KeyboardInterrupt``) stops it and writes
    the files. With `target` None it does nothing, so callers need no branch.

    Parameters
    ----------
    names
        The file name stems to try in order (``worker-1``, then ``worker-1-pid4242``...);
        the first that is not taken in `directory` is used.
    """

    def __init__(self, target: ProfileTarget | None, names: Iterable[str]) -> None:
        self.directory = None if target is None else Path(target.directory)
        self.html = target is not None and target.html
        self.interval_s = 0.01 if target is None else target.interval_s
        self.names = names
        self.written: list[Path] = []
        self._profiler: Any = None
        self._threads: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    @classmethod
    def of_process(cls, target: ProfileTarget | None, name: str) -> ProcessProfile:
        """The profile of a process called `name`; a second one of that name gets its pid."""
        pid = os.getpid()
        more = (f"{name}-pid{pid}-{n}" for n in itertools.count(2))
        return cls(target, itertools.chain([name, f"{name}-pid{pid}"], more))

    @property
    def enabled(self) -> bool:
        """Whether this profile samples and writes anything."""
        return self.directory is not None

    def start(self) -> None:
        """Start sampling the calling thread (idempotent)."""
        if self.directory is None or self._profiler is not None:
            return
        from pyinstrument import Profiler  # noqa: PLC0415 - only profiled runs load it

        self._profiler = Profiler(interval=self.interval_s, async_mode="disabled")
        self._profiler.start()

    @contextlib.contextmanager
    def thread(self, name: str) -> Iterator[None]:
        """Sample the calling (non-main) thread too, as the profile named `name`."""
        if self.directory is None:
            yield
            return
        from pyinstrument import Profiler  # noqa: PLC0415

        profiler = Profiler(interval=self.interval_s, async_mode="disabled")
        profiler.start()
        try:
            yield
        finally:
            session = profiler.stop()
            with self._lock:
                self._threads.append((name, session))

    def stop(self) -> list[Path]:
        """Stop sampling and write the files (once); the paths written, [] if none."""
        profiler, self._profiler = self._profiler, None
        if profiler is None or self.directory is None:
            return self.written
        try:
            session = profiler.stop()
            with self._lock:
                threads = sorted(self._threads, key=lambda item: item[0])
            self.written = self._write(session, threads)
        except Exception as exc:  # a profile is a diagnostic: it never fails the run
            log.warning("could not write the profile into %s: %s", self.directory, exc)
        return self.written

    def _write(self, session: Any, threads: list[tuple[str, Any]]) -> list[Path]:
        from pyinstrument.renderers import HTMLRenderer, SpeedscopeRenderer  # noqa: PLC0415

        assert self.directory is not None
        parts = [(threading.current_thread().name, session), *threads]
        speedscope = merge_speedscope(
            [(label, json.loads(SpeedscopeRenderer().render(s))) for label, s in parts]
        )
        data = json.dumps(speedscope, separators=(",", ":")).encode()
        path = write_new_file(self.directory, self.names, SPEEDSCOPE_SUFFIX, data)
        if not self.html:
            return [path]
        stem = path.name.removesuffix(SPEEDSCOPE_SUFFIX)
        html = HTMLRenderer().render(session).encode()
        return [path, write_new_file(self.directory, [stem], HTML_SUFFIX, html)]

    def __enter__(self) -> ProcessProfile:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def merge_speedscope(files: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One speedscope document holding the profiles of several, each named by its label.

    Frames live in one shared table; each document's frame indices are shifted by the
    frames that came before it.
    """
    frames: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    for label, document in files:
        offset = len(frames)
        frames.extend(document["shared"]["frames"])
        for profile in document["profiles"]:
            events = [{**event, "frame": event["frame"] + offset} for event in profile["events"]]
            profiles.append({**profile, "name": label, "events": events})
    first = files[0][1]
    return {**first, "profiles": profiles, "shared": {"frames": frames}, "activeProfileIndex": 0}


def write_new_file(directory: Path, stems: Iterable[str], suffix: str, data: bytes) -> Path:
    """Write `data` to the first ``<stem><suffix>`` not taken in `directory`; its path.

    Written under a hidden temporary name, then hard-linked into place: the link fails
    rather than replace a file, and a crash leaves at most the temporary file, never a half
    profile under a profile's name.
    """
    temporary = directory / f"{_TEMPORARY_PREFIX}{os.getpid()}-{threading.get_ident()}{suffix}"
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        for stem in stems:
            target = directory / f"{stem}{suffix}"
            try:
                os.link(temporary, target)
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links: a rename, checked first
                if target.exists():
                    continue
                os.replace(temporary, target)
            return target
        raise FileExistsError(f"no free name for a profile in {directory}")
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
