"""Decode a protocol file's YAML within bounds: size, nesting depth and alias expansion.

A protocol is about 200 values nested four levels deep, but its file comes from users and
uploads. YAML lets a small file describe an enormous document: aliases to anchors that hold
aliases ("billion laughs") expand exponentially wherever the data is walked (validation,
copying, the manifest's JSON), and deep nesting exhausts the recursion of whatever walks it.
So, before anything is built, the file's event stream is scanned once (PyYAML's parser is a
loop, not recursion): the number of values the document would have with every alias expanded
is counted with each anchor's size remembered, so the count costs one pass whatever the
aliases multiply to, and the scan stops at the first limit crossed. Only a file within the
limits is then decoded (safe loader: plain data, no Python objects).

Every failure is a `ProtocolError` about the whole file (no field path: there is no document
yet). Does not cover: what the values mean (`engine.model.protocol_loader`).
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.yaml
import yaml

from engine.errors import ProtocolError

__all__ = ["MAX_DEPTH", "MAX_PROTOCOL_BYTES", "MAX_VALUES", "decode_protocol_yaml"]

MAX_PROTOCOL_BYTES = 1 << 20
# Ten times the nesting and a hundred times the values of the largest protocol we know.
MAX_DEPTH = 40
MAX_VALUES = 20_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# What PyYAML raises for malformed input besides YAMLError (bad timestamps, encodings...).
_YAML_FAILURES = (yaml.YAMLError, msgspec.DecodeError, ValueError, LookupError, AttributeError)


def decode_protocol_yaml(
    data: bytes | str, source: str, contents: str = "protocol fields"
) -> dict[str, Any]:
    """The YAML mapping in `data`; `ProtocolError` naming `source` if it is not one or too big.

    `contents` says what the mapping should hold ("vision parameters" for a parameter file).
    """
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogateescape")
    if len(data) > MAX_PROTOCOL_BYTES:
        raise ProtocolError(source, None, f"file is larger than {MAX_PROTOCOL_BYTES} bytes")
    if not data.strip():
        raise ProtocolError(source, None, f"file is empty; expected a YAML mapping of {contents}")
    try:
        _check_bounds(data, source)
        raw = msgspec.yaml.decode(data)
    except _YAML_FAILURES as exc:
        raise ProtocolError(source, None, f"is not valid YAML: {_yaml_problem(exc)}") from exc
    if raw is None:
        raise ProtocolError(source, None, f"file is empty; expected a YAML mapping of {contents}")
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise ProtocolError(source, "$", f"expected a YAML mapping of {contents}, got a {kind}")
    return raw


def _check_bounds(data: bytes, source: str) -> None:
    """Scan the event stream; raise at the first limit crossed, before anything is built.

    ``sizes`` holds each anchor's expanded value count; an alias adds its anchor's count, so
    ``expanded`` is what the document would hold with every alias copied out. A key repeated
    in one mapping is refused too: YAML loaders silently keep the last one, so the first value
    a user wrote (``min_interval_days`` twice) would vanish without a word.
    """
    sizes: dict[str, int] = {}
    open_collections: list[_Open] = []
    expanded = 0
    for event in yaml.parse(data, Loader=_Loader):
        if isinstance(event, yaml.NodeEvent) and open_collections:
            open_collections[-1].child(event, source)
        if isinstance(event, yaml.CollectionStartEvent):
            open_collections.append(_Open(expanded, event))
            expanded += 1
            if len(open_collections) > MAX_DEPTH:
                raise ProtocolError(
                    source,
                    None,
                    f"nests deeper than {MAX_DEPTH} levels; a protocol needs at most 5",
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            closed = open_collections.pop()
            if closed.anchor is not None:
                sizes[closed.anchor] = expanded - closed.started
        elif isinstance(event, yaml.ScalarEvent):
            expanded += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            expanded += sizes.get(event.anchor, 1)  # an unknown anchor fails in the decoder
        if expanded > MAX_VALUES:
            raise ProtocolError(
                source,
                None,
                f"holds more than {MAX_VALUES:,} values once its aliases are expanded; "
                "a protocol has a few hundred (is an alias repeating an alias?)",
            )


class _Open:
    """A mapping or list being scanned: where its count started, its anchor, a map's keys."""

    __slots__ = ("anchor", "expect_key", "keys", "started")

    def __init__(self, started: int, event: yaml.CollectionStartEvent) -> None:
        self.started = started
        self.anchor = event.anchor
        self.keys: set[str] | None = set() if isinstance(event, yaml.MappingStartEvent) else None
        self.expect_key = True

    def child(self, event: yaml.NodeEvent, source: str) -> None:
        """Note a node starting directly inside; refuse a plain key seen before in a mapping."""
        if self.keys is None:
            return
        if self.expect_key and isinstance(event, yaml.ScalarEvent) and event.value != "<<":
            if event.value in self.keys:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                key = event.value[:60]
                shown = key if key.isprintable() else repr(key)
                raise ProtocolError(
                    source,
                    None,
                    f"repeats the key `{shown}` in one mapping (line {line}); YAML "
                    "would silently keep only the last value, so write it once",
                )
            self.keys.add(event.value)
        self.expect_key = not self.expect_key


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's problem and position ("line 2, column 1"), or its whole message folded."""
    cause = exc if isinstance(exc, yaml.YAMLError) else exc.__cause__ or exc.__context__
    problem = getattr(cause, "problem", None)
    mark = getattr(cause, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, UnicodeDecodeError) or "unacceptable character" in str(exc):
        return "the file is not text (it contains bytes that are not UTF-8 characters)"
    return " ".join(str(cause or exc).split())
