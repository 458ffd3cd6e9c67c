"""Load protocol YAML files into `Protocol` structs, with one clear message per bad file.

Covers: reading (file, bundled name or text), YAML decoding, schema validation, cross-field
checks and collecting unknown keys. Every failure becomes a `ProtocolError` naming the file,
the field path and the problem. Does not cover: what the fields mean (`engine.protocol`).
"""

from __future__ import annotations

import datetime
import typing
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import msgspec.yaml

from engine.errors import ProtocolError
from engine.protocol import Protocol
from engine.states import STATE_NAMES

__all__ = [
    "DEFAULT_PROTOCOL",
    "UnknownProtocolKeysWarning",
    "bundled_protocol_names",
    "load_protocol",
    "load_protocol_text",
    "resolve_protocol_path",
]

DEFAULT_PROTOCOL = "aflibercept_treat_and_extend"
ROW_SUM_TOLERANCE = 0.001
MAX_PROTOCOL_BYTES = 1 << 20
_STRING_FIELDS = ("name", "version", "description", "author", "created_date")


class UnknownProtocolKeysWarning(UserWarning):
    """A protocol file has keys the schema does not know; they are kept in `Protocol.extras`."""


def bundled_protocol_names() -> list[str]:
    """Names (file stems) of the protocols shipped inside the package, sorted."""
    folder = resources.files("engine") / "protocols"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_protocol_path(reference: str | Path) -> Path:
    """Return the file for `reference`: an existing path, or the name of a bundled protocol."""
    path = Path(reference)
    if path.is_file():
        return path
    name = str(reference)
    if name in bundled_protocol_names():
        return Path(str(resources.files("engine") / "protocols" / f"{name}.yaml"))
    bundled = ", ".join(bundled_protocol_names())
    raise ProtocolError(
        str(reference), None, f"no such file, and no bundled protocol of that name ({bundled})"
    )


def load_protocol(reference: str | Path = DEFAULT_PROTOCOL) -> Protocol:
    """Load and validate a protocol from a file path or a bundled protocol name.

    Raises `ProtocolError` for a missing, unreadable, oversized or invalid file; warns with
    `UnknownProtocolKeysWarning` (one line listing every unknown key) when keys are unknown.
    """
    path = resolve_protocol_path(reference)
    try:
        if path.stat().st_size > MAX_PROTOCOL_BYTES:
            raise ProtocolError(path.name, None, f"file is larger than {MAX_PROTOCOL_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise ProtocolError(path.name, None, f"cannot be read ({exc.strerror})") from exc
    return load_protocol_text(data, source=path.name)


def load_protocol_text(data: bytes | str, source: str = "<protocol>") -> Protocol:
    """Validate protocol YAML given as text; `source` names it in messages."""
    raw = _decode_yaml(data, source)
    try:
        protocol = msgspec.convert(_normalise_scalars(raw), Protocol)
    except msgspec.ValidationError as exc:
        path, problem = _describe_validation_error(str(exc), raw)
        raise ProtocolError(source, path, problem) from exc
    _check_cross_fields(protocol, source)
    extras = _collect_unknown_keys(raw, Protocol, "$")
    if extras:
        warnings.warn(
            UnknownProtocolKeysWarning(
                f"{source}: unknown keys kept but not used: {', '.join(extras)}"
            ),
            stacklevel=2,
        )
        protocol = msgspec.structs.replace(protocol, extras=extras)
    return protocol


def _decode_yaml(data: bytes | str, source: str) -> dict[str, Any]:
    if isinstance(data, str):
        data = data.encode()
    if not data.strip():
        raise ProtocolError(
            source, None, "file is empty; expected a YAML mapping of protocol fields"
        )
    try:
        raw = msgspec.yaml.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(source, None, f"is not valid YAML: {_yaml_problem(exc)}") from exc
    if raw is None:
        raise ProtocolError(
            source, None, "file is empty; expected a YAML mapping of protocol fields"
        )
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise ProtocolError(
            source, "$", f"expected a YAML mapping of protocol fields, got a {kind}"
        )
    return raw


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's problem and position ("line 2, column 1"), or its whole message folded."""
    cause = exc.__cause__ or exc.__context__
    problem = getattr(cause, "problem", None)
    mark = getattr(cause, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, UnicodeDecodeError) or "unacceptable character" in str(exc):
        return "the file is not text (it contains bytes that are not UTF-8 characters)"
    return " ".join(str(cause or exc).split())


def _normalise_scalars(raw: dict[str, Any]) -> dict[str, Any]:
    """Accept numbers and dates where the schema wants text (``version: 1.0``).

    A literal ``extras`` key is dropped here: it is the user's data, reported as unknown,
    never taken as our own field.
    """
    out = {key: value for key, value in raw.items() if key != "extras"}
    for key in _STRING_FIELDS:
        value = out.get(key)
        if isinstance(value, datetime.date):
            out[key] = value.isoformat()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = str(value)
    return out


def _describe_validation_error(message: str, raw: Any) -> tuple[str, str]:
    """Turn msgspec's message into (field path, problem) in our one-line style."""
    text, _, where = message.partition(" - at `")
    path = where.rstrip("`") or "$"
    if text.startswith("Object missing required field `"):
        field = text.split("`")[1]
        return f"{path}.{field}", "required field is missing"
    if text.startswith("Object contains unknown field `"):
        field = text.split("`")[1]
        states = ", ".join(STATE_NAMES)
        return f"{path}.{field}", f"unknown state `{field}`; expected one of {states}"
    if text.startswith("Invalid enum value"):
        choices = ", ".join(typing.get_args(typing.get_type_hints(Protocol)["protocol_type"]))
        return path, f"{text[0].lower()}{text[1:]}; expected one of {choices}"
    problem = text[0].lower() + text[1:]
    for json_word, yaml_word in (("`object`", "a mapping"), ("`array`", "a list")):
        problem = problem.replace(json_word, yaml_word)
    found, value = _lookup(raw, path)
    if found:
        problem += f" ({value!r})" if ", got" in problem else f", got {value!r}"
    return path, problem


def _lookup(raw: Any, path: str) -> tuple[bool, Any]:
    node = raw
    for part in path.removeprefix("$").replace("[", ".").replace("]", "").split("."):
        if not part:
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _check_cross_fields(protocol: Protocol, source: str) -> None:
    """Checks no single field can express; the first failure is raised."""
    for state in STATE_NAMES:
        row = getattr(protocol.disease_transitions, state)
        total = sum(getattr(row, target) for target in STATE_NAMES)
        if abs(total - 1.0) > ROW_SUM_TOLERANCE:
            raise ProtocolError(
                source,
                f"$.disease_transitions.{state}",
                f"sums to {total:.6g}; each row must sum to 1 +/- {ROW_SUM_TOLERANCE}",
            )
        multipliers = getattr(protocol.treatment_effect_on_transitions, state).multipliers
        treated = sum(getattr(row, t) * getattr(multipliers, t) for t in STATE_NAMES)
        if treated <= 0.0:
            raise ProtocolError(
                source,
                f"$.treatment_effect_on_transitions.{state}.multipliers",
                f"gives every transition from {state} probability 0; "
                "at least one reachable state needs a multiplier above 0",
            )
    if protocol.max_interval_days < protocol.min_interval_days:
        raise ProtocolError(
            source,
            "$.max_interval_days",
            f"is {protocol.max_interval_days}, below min_interval_days "
            f"{protocol.min_interval_days}; it must be >= min_interval_days",
        )
    baseline = protocol.baseline_vision
    if baseline.min >= baseline.max:
        raise ProtocolError(
            source,
            "$.baseline_vision.max",
            f"is {baseline.max:g}, not above min {baseline.min:g}; the range needs min < max",
        )


def _collect_unknown_keys(raw: Any, schema: type, path: str) -> dict[str, Any]:
    """Keys of `raw` that `schema` (a Struct type) does not declare, by field path."""
    if not isinstance(raw, dict):
        return {}
    hints = typing.get_type_hints(schema)
    extras: dict[str, Any] = {}
    for key, value in raw.items():
        child = f"{path}.{key}"
        hint = hints.get(str(key))
        if hint is None or key == "extras":
            extras[child] = value
        elif isinstance(hint, type) and issubclass(hint, msgspec.Struct):
            extras.update(_collect_unknown_keys(value, hint, child))
    return extras
