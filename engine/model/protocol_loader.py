"""Load protocol YAML files into `Protocol` structs, with one clear message per bad file.

Covers: reading (file, bundled name or text), schema validation in this order: no NaN or
infinity anywhere (comparisons with NaN pass silently, so it is refused first and by name),
types, each number's plausible `Range`, cross-field checks; then collecting unknown keys.
Every failure becomes a `ProtocolError` naming the file, the field path and the problem.
Does not cover: decoding YAML within bounds (`engine.model.protocol_yaml`), what the fields mean
(`engine.model.v1.protocol`).
"""

from __future__ import annotations

import datetime
import math
import re
import reprlib
import typing
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from engine.errors import ProtocolError
from engine.model.protocol_yaml import MAX_PROTOCOL_BYTES, decode_protocol_yaml
from engine.model.states import STATE_NAMES
from engine.model.v1.layout_checks import (
    check_raw_layout,
    finish_layout,
    never_firing_rules,
    optional_struct,
)
from engine.model.v1.protocol import Protocol, field_range, protocol_ranges

__all__ = [
    "DEFAULT_PROTOCOL",
    "UnknownProtocolKeysWarning",
    "bundled_protocol_names",
    "load_protocol",
    "load_protocol_text",
    "resolve_protocol_path",
    "validate_protocol",
]

DEFAULT_PROTOCOL = "aflibercept_treat_and_extend"
ROW_SUM_TOLERANCE = 0.001
MAX_UNKNOWN_KEYS_LISTED = 20
_STRING_FIELDS = ("name", "version", "description", "author", "created_date")
# Values quoted in messages stay short whatever the file holds (Repr takes no arguments
# before Python 3.12).
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist = 2, 4, 4
_SHORT.maxstring = _SHORT.maxother = 60
# Keys shown bare in field paths; any other key is quoted (``$.extra['odd key']``), so a path
# stays one line and cannot be mistaken for another.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


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
    raw = decode_protocol_yaml(data, source)
    protocol = _validate(raw, source)
    extras = _collect_unknown_keys(raw, Protocol, "$")
    extras.update(never_firing_rules(raw))
    if extras:
        listed = ", ".join(list(extras)[:MAX_UNKNOWN_KEYS_LISTED])
        if len(extras) > MAX_UNKNOWN_KEYS_LISTED:
            listed += f" and {len(extras) - MAX_UNKNOWN_KEYS_LISTED:,} more"
        warnings.warn(
            UnknownProtocolKeysWarning(f"{source}: unknown keys kept but not used: {listed}"),
            stacklevel=2,
        )
        protocol = msgspec.structs.replace(protocol, extras=extras)
    return protocol


def validate_protocol(protocol: Protocol, source: str = "<protocol>") -> Protocol:
    """Check a `Protocol` built in Python as a file would be checked; returns it unchanged.

    Struct constructors do not validate, so this is what stands between ``Protocol(...)``
    with a NaN in it and the kernel. `extras` are the caller's and are not checked.
    """
    try:
        raw = msgspec.to_builtins(
            msgspec.structs.replace(protocol, extras={}), enc_hook=_python_number
        )
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise ProtocolError(source, "$", f"holds a value that is not plain data ({exc})") from exc
    raw.pop("extras", None)
    _validate(raw, source)
    return protocol


def _python_number(value: Any) -> Any:
    """numpy scalars (``np.float64(0.5)``) as the Python numbers they stand for."""
    if hasattr(value, "item") and hasattr(value, "dtype"):
        return value.item()
    raise NotImplementedError(f"values of type {type(value).__name__} are not supported")


def _validate(raw: dict[str, Any], source: str) -> Protocol:
    """The checks of the module docstring, in its order; the first failure is raised."""
    _check_finite(raw, "$", source)
    raw = check_raw_layout(raw, source)
    try:
        protocol = msgspec.convert(_normalise_scalars(raw), Protocol)
    except msgspec.ValidationError as exc:
        path, problem = _describe_validation_error(str(exc), raw)
        raise ProtocolError(source, path, problem) from exc
    _check_ranges(protocol, source)
    protocol = finish_layout(protocol, raw, source)
    _check_cross_fields(protocol, source)
    return protocol


def _check_finite(node: Any, path: str, source: str) -> None:
    """Refuse NaN and infinities anywhere, unknown keys included (JSON has no such numbers).

    The walk is bounded: `decode_protocol_yaml` has capped values and depth.
    """
    if isinstance(node, float) and not math.isfinite(node):
        expected = field_range(path)
        what = expected.describe() if expected else "a finite number"
        raise ProtocolError(source, path, f"expected {what}, got {node!r}")
    if isinstance(node, dict):
        for key, value in node.items():
            _check_finite(value, path + _segment(key), source)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_finite(value, f"{path}[{index}]", source)


def _check_ranges(protocol: Protocol, source: str) -> None:
    """Every number inside its plausible `Range` (the schema's own bounds are looser)."""
    for path, expected in protocol_ranges().items():
        value: Any = protocol
        for part in path.split(".")[1:]:
            value = getattr(value, part)
            if value is None:  # an optional block the file leaves out
                break
        if value is not None and not expected.contains(value):
            raise ProtocolError(source, path, f"expected {expected.describe()}, got {value!r}")


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
    if where.startswith("key` in `"):  # a mapping key that is not text (`1: x`, `null: x`)
        path = where.removeprefix("key` in `").rstrip("`")
        found, node = _lookup(raw, path)
        keys = [key for key in node if not isinstance(key, str)] if found else []
        shown = f", got {_SHORT.repr(keys[0])}" if keys else ""
        return path, f"expected field names (text) as keys{shown}"
    expected = field_range(path)
    found, value = _lookup(raw, path)
    if expected is not None and found:
        return path, f"expected {expected.describe()}, got {_SHORT.repr(value)}"
    if text.startswith("Object missing required field `"):
        field = text.split("`")[1]
        return f"{path}.{field}", "required field is missing"
    if text.startswith("Object contains unknown field `"):
        field = text[text.index("`") + 1 : text.rindex("`")]
        states = ", ".join(STATE_NAMES)
        shown = field if _PLAIN_KEY.match(field) else _SHORT.repr(field)
        return path + _segment(field), f"unknown state `{shown}`; expected one of {states}"
    if text.startswith("Invalid enum value"):
        choices = ", ".join(typing.get_args(typing.get_type_hints(Protocol)["protocol_type"]))
        return path, f"{text[0].lower()}{text[1:]}; expected one of {choices}"
    problem = text[0].lower() + text[1:]
    for json_word, yaml_word in (("`object`", "a mapping"), ("`array`", "a list")):
        problem = problem.replace(json_word, yaml_word)
    if found:
        shown = _SHORT.repr(value)
        problem += f" ({shown})" if ", got" in problem else f", got {shown}"
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
    if baseline is not None and baseline.min >= baseline.max:
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
        child = path + _segment(key)
        hint = hints.get(key) if isinstance(key, str) else None
        if hint is None or key == "extras":
            extras[child] = _with_text_keys(value)
            continue
        hint = optional_struct(hint)
        if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
            extras.update(_collect_unknown_keys(value, hint, child))
    return extras


def _segment(key: Any) -> str:
    """One step of a field path: ``.key``, or ``[...]`` quoting a key that is not plain."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f".{key}"
    return f"[{_SHORT.repr(key)}]"


def _with_text_keys(value: Any) -> Any:
    """`value` with every mapping key made text (``50: 0.1`` -> ``"50": 0.1``).

    Unknown blocks are kept in the manifest, whose JSON has text keys only; a date or null
    key would otherwise make the run's manifest unwritable.
    """
    if isinstance(value, dict):
        return {
            key if isinstance(key, str) else str(key): _with_text_keys(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_text_keys(item) for item in value]
    return value
