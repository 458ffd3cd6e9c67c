"""Either model's protocol: which format a run of it writes, and decoding it back from JSON.

A run's manifest (and saved results' header) stores the protocol it ran, visit-based
(`Protocol`, format 1) or time-based (`TimeBasedProtocol`, format 2). msgspec cannot decode
an untagged union of two structs, so stored documents type the field as `StoredProtocol`, an
abstract class both protocols are registered with, and decode with `dec_hook`, which picks
the struct by `model_type` (present only in time-based protocols). Format-1 files therefore
read unchanged.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from engine.model.v1.protocol import Protocol
from engine.model.v2.schema import TimeBasedProtocol

__all__ = [
    "AnyProtocol",
    "RandomScheme",
    "StoredProtocol",
    "dec_hook",
    "format_version_of",
    "random_scheme_of",
]

AnyProtocol = Protocol | TimeBasedProtocol
RandomScheme = Literal["pcg64-per-shard", "counter-based"]


class _StoredProtocol(abc.ABC):  # noqa: B024 - a marker: both protocols are registered
    """The type of a stored protocol field; decoded by `dec_hook`."""


_StoredProtocol.register(Protocol)
_StoredProtocol.register(TimeBasedProtocol)

if TYPE_CHECKING:
    StoredProtocol = AnyProtocol
else:
    StoredProtocol = _StoredProtocol


def dec_hook(kind: type, value: Any) -> Any:
    """msgspec decoding hook for `StoredProtocol` fields (others are not custom types)."""
    if kind is _StoredProtocol:
        chosen = Protocol
        if isinstance(value, dict) and value.get("model_type") == "time_based":
            chosen = TimeBasedProtocol
            value = _files_moved_out_of_sources(value)
        # Through JSON again, typed: JSON object keys are strings, and the time-based schema
        # has integer-keyed tables that only a typed JSON decode reads back (convert refuses).
        return msgspec.json.decode(msgspec.json.encode(value), type=chosen)
    raise NotImplementedError(f"no decoding for {kind!r}")


def _files_moved_out_of_sources(value: dict[str, Any]) -> dict[str, Any]:
    """A time-based protocol stored before the files read were renamed `files`.

    Until issue 12, `sources` held the files the loader read (entries with `sha256`); it now
    holds citations and the files are `files`. Old manifests and saved results still open.
    """
    sources = value.get("sources")
    if not (isinstance(sources, list) and sources and "files" not in value):
        return value
    if not all(isinstance(entry, dict) and "sha256" in entry for entry in sources):
        return value
    return {**value, "files": sources, "sources": []}


def format_version_of(protocol: AnyProtocol) -> int:
    """The run-directory format a run of `protocol` writes: 1 visit-based, 2 time-based.

    Runs of v1 protocols stay format 1 forever (DESIGN section 3: their rows never change),
    so files of a format-1 run written today are those written before format 2 existed.
    """
    return 2 if isinstance(protocol, TimeBasedProtocol) else 1


def random_scheme_of(protocol: AnyProtocol) -> RandomScheme:
    """The random-number scheme of a run of `protocol` (DESIGN section 3)."""
    return "counter-based" if isinstance(protocol, TimeBasedProtocol) else "pcg64-per-shard"
