"""Reading files written by any amdsim version: format versions and the upgrades between them.

Every JSON file amdsim writes (a run's manifest, checkpoint and statistics, saved in-memory
results' header) carries ``format_version``. `decode_versioned` reads one: the current
version decodes straight into its struct; an older one is first brought up to date as plain
JSON data by the owning module's upgrade steps (``UPGRADES[n]`` turns version n into n + 1);
a newer one is refused with a message saying to upgrade amdsim.

To change a format: bump the owning module's version constant, add the step from the old
version to ``UPGRADES``, and commit a fixture written by the new version (see
``tests/fixtures/README.md``); the fixtures of older versions keep being read by the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from engine.errors import ResultsFormatError

__all__ = ["Upgrades", "decode_versioned", "stored_version"]

T = TypeVar("T")
Upgrades = Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]]
FIRST_VERSION = 1  # files written before format_version existed count as this


class _Versioned(msgspec.Struct):
    format_version: int = FIRST_VERSION


_VERSION_DECODER = msgspec.json.Decoder(_Versioned)


def stored_version(data: bytes) -> int:
    """The format version a JSON document was written in (only that field is decoded)."""
    return _VERSION_DECODER.decode(data).format_version


def decode_versioned(
    data: bytes,
    kind: type[T],
    current: int,
    upgrades: Upgrades,
    source: str,
    what: str,
    dec_hook: Callable[[type, Any], Any] | None = None,
) -> T:
    """Decode `data` as `kind`, upgrading older versions; `ResultsFormatError` if impossible.

    `source` names the file and `what` its kind ("manifest") in messages; `dec_hook`
    decodes custom field types (msgspec's hook, e.g. a stored protocol of either model).
    """
    try:
        version = stored_version(data)
        if version == current:
            return msgspec.json.decode(data, type=kind, dec_hook=dec_hook)
        if version > current:
            raise ResultsFormatError(
                f"{source} has format version {version}; this amdsim reads up to {current}. "
                "Upgrade amdsim to open it."
            )
        document = msgspec.json.decode(data)
        while version < current:
            step = upgrades.get(version)
            if step is None:
                raise ResultsFormatError(
                    f"{source} has format version {version}, which this amdsim cannot read "
                    f"(no upgrade from {version} to {version + 1})"
                )
            document = step(document)
            version += 1
            document["format_version"] = version
        return msgspec.convert(document, kind, dec_hook=dec_hook)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ResultsFormatError(f"{source} is not a valid {what}: {exc}") from exc
