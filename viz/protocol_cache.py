"""Protocols as the dashboard reads them: loaded once per file version, shared by sessions.

Every new session showed the chosen protocol's card, listed the time-based protocols for
Compare and copied one into the editor: 19 loads and ~0.35 s of a first page load here, for
files that rarely change. A protocol is kept until its file, or the folder beside it (where
its parameter files live), changes: the key holds the file's size and modification time and
the folder's modification time, which moves when a file in it is added, removed or replaced
by a rename, as editors and `viz.protocol_editor` save. A file edited in place with its
size and time kept is not noticed; the CLI always reads afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from engine.model.any_protocol import AnyProtocol
from engine.model.protocol_loader import load_protocol, resolve_protocol_path

__all__ = ["cached_protocol"]

MAX_KEPT = 64  # protocols, not bytes: each is a few kilobytes once parsed

_kept: OrderedDict[tuple, AnyProtocol] = OrderedDict()
_lock = threading.Lock()  # small runs start from server threads (`viz.small_run`)


def _version(path: Path) -> tuple:
    file, folder = path.stat(), path.parent.stat()
    return (str(path.resolve()), file.st_size, file.st_mtime_ns, folder.st_mtime_ns)


def cached_protocol(reference: str | Path) -> AnyProtocol:
    """`load_protocol(reference)`, from the cache when the file has not changed.

    Raises what `load_protocol` raises (a file that does not load is not kept, so it is
    read again next time and its error said again).
    """
    path = resolve_protocol_path(reference)
    try:
        key = _version(path)
    except OSError:
        return load_protocol(path)  # says why it cannot be read
    with _lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    protocol = load_protocol(path)
    with _lock:
        _kept[key] = protocol
        while len(_kept) > MAX_KEPT:
            _kept.popitem(last=False)
    return protocol
