"""Schema validation shared by every protocol layout: one-line errors with field paths.

Both loaders (visit-based, `engine.model.protocol_loader`; time-based,
`engine.model.v2.loader`) validate decoded YAML against a msgspec schema in the same order: no
NaN or infinity anywhere (comparisons with NaN pass silently, so it is refused first and by
name), types (msgspec), each number's plausible `Range` (inside mappings and lists too), then
their own cross-field checks. Every failure is a `ProtocolError` naming the file, the field
path (``$.vision_ceilings.high_baseline_threshold``, ``$.mortality_rates.male[70]``) and the
problem. Keys no schema field declares are collected by field path so they can be reported.

Does not cover: decoding YAML within bounds (`engine.model.protocol_yaml`), the layouts' own
cross-field checks and what the fields mean (the schema modules).
"""

from __future__ import annotations

import datetime
import functools
import math
import re
import reprlib
import types
import typing
from typing import Annotated, Any, Literal

import msgspec

from engine.errors import ProtocolError
from engine.model.states import STATE_NAMES
from engine.model.v1.protocol import Range

__all__ = [
    "MAX_UNKNOWN_KEYS_LISTED",
    "PROTOCOL_STRING_FIELDS",
    "UnknownProtocolKeysWarning",
    "check_finite",
    "check_ranges",
    "collect_unknown_keys",
    "convert",
    "describe_validation_error",
    "hint_at",
    "list_keys",
    "lookup",
    "normalise_scalars",
    "range_at",
    "segment",
    "short_repr",
    "with_text_keys",
]

MAX_UNKNOWN_KEYS_LISTED = 20
# Text fields of a protocol of either model that YAML may read as numbers or dates.
PROTOCOL_STRING_FIELDS = ("name", "version", "description", "author", "created_date")
# Values quoted in messages stay short whatever the file holds (Repr takes no arguments
# before Python 3.12).
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist = 2, 4, 4
_SHORT.maxstring = _SHORT.maxother = 60
# Keys shown bare in field paths; any other key is quoted (``$.extra['odd key']``), so a path
# stays one line and cannot be mistaken for another.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_+-]+$")
_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[([^\]]*)\]")


class UnknownProtocolKeysWarning(UserWarning):
    """A protocol or parameter file has keys the schema does not know; kept in `extras`."""


def short_repr(value: Any) -> str:
    """`value` as a short, one-line repr for messages."""
    return _SHORT.repr(value)


def segment(key: Any) -> str:
    """One step of a field path: ``.key``, or ``[...]`` quoting a key that is not plain."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f".{key}"
    return f"[{_SHORT.repr(key)}]"


def list_keys(keys: list[str]) -> str:
    """Comma-separated keys, at most `MAX_UNKNOWN_KEYS_LISTED`, then how many more."""
    listed = ", ".join(keys[:MAX_UNKNOWN_KEYS_LISTED])
    if len(keys) > MAX_UNKNOWN_KEYS_LISTED:
        listed += f" and {len(keys) - MAX_UNKNOWN_KEYS_LISTED:,} more"
    return listed


# --- type hints ------------------------------------------------------------------------------
@functools.cache
def _struct_hints(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema, include_extras=True)


def _optional_arm(hint: Any) -> Any:
    """``X | None`` -> ``X`` (the hint unchanged otherwise)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(hint) if arm is not type(None)]
        if len(arms) == 1:
            return arms[0]
    return hint


def _bare(hint: Any) -> Any:
    """The type under ``Annotated`` and ``| None``."""
    hint = _optional_arm(hint)
    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    return _optional_arm(hint)


def _is_struct(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, msgspec.Struct)


def _range_of(hint: Any) -> Range | None:
    hint = _optional_arm(hint)
    if typing.get_origin(hint) is not Annotated:
        return None
    return next((m for m in hint.__metadata__ if isinstance(m, Range)), None)


def hint_at(root: Any, path: str) -> Any | None:
    """The type hint of the value at field path `path` under `root` (a schema), if known.

    A path step into a mapping gives its value type (msgspec writes it ``[...]``), into a
    list its item type.
    """
    hint = root
    for name, bracket in _PATH_TOKEN.findall(path.removeprefix("$")):
        kind = _bare(hint)
        origin = typing.get_origin(kind)
        if _is_struct(kind) and name:
            hint = _struct_hints(kind).get(name)
            if hint is None:
                return None
        elif origin is dict:
            hint = typing.get_args(kind)[1]
        elif origin is list and bracket != "...":
            hint = typing.get_args(kind)[0]
        else:
            return None
    return hint


def range_at(root: Any, path: str) -> Range | None:
    """The `Range` of the number at `path` under the schema `root`, if it has one."""
    return _range_of(hint_at(root, path))


# --- the checks, in the order a loader runs them -------------------------------------------
def check_finite(node: Any, root: Any, path: str, source: str) -> None:
    """Refuse NaN and infinities anywhere, unknown keys included (JSON has no such numbers).

    The walk is bounded: `decode_protocol_yaml` has capped values and depth.
    """
    if isinstance(node, float) and not math.isfinite(node):
        expected = range_at(root, path)
        what = expected.describe() if expected else "a finite number"
        raise ProtocolError(source, path, f"expected {what}, got {node!r}")
    if isinstance(node, dict):
        for key, value in node.items():
            check_finite(value, root, path + segment(key), source)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_finite(value, root, f"{path}[{index}]", source)


def convert(raw: Any, schema: Any, source: str, path: str = "$") -> Any:
    """`raw` as `schema` (msgspec, strict); a `ProtocolError` with the field path if not.

    `path` is where `raw` sits in its file (``$.parameters.vision`` for an embedded block).
    """
    try:
        return msgspec.convert(raw, schema)
    except msgspec.ValidationError as exc:
        where, problem = describe_validation_error(str(exc), raw, schema)
        raise ProtocolError(source, path + where.removeprefix("$"), problem) from exc


def check_ranges(value: Any, hint: Any, path: str, source: str) -> None:
    """Every number inside its plausible `Range` (the schema's own bounds are looser).

    Walks the validated struct with its schema, through nested structs, mappings (age-band
    weights, life tables) and lists (phases), in schema order; the first failure is raised.
    """
    if value is None:
        return
    expected = _range_of(hint)
    if expected is not None and isinstance(value, int | float) and not isinstance(value, bool):
        if not expected.contains(value):
            raise ProtocolError(source, path, f"expected {expected.describe()}, got {value!r}")
        return
    kind = _bare(hint)
    if isinstance(value, msgspec.Struct):
        for name, field_hint in _struct_hints(type(value)).items():
            check_ranges(getattr(value, name), field_hint, f"{path}.{name}", source)
    elif isinstance(value, dict) and typing.get_origin(kind) is dict:
        item_hint = typing.get_args(kind)[1]
        for key, item in value.items():
            check_ranges(item, item_hint, path + segment(key), source)
    elif isinstance(value, list) and typing.get_origin(kind) is list:
        item_hint = typing.get_args(kind)[0]
        for index, item in enumerate(value):
            check_ranges(item, item_hint, f"{path}[{index}]", source)


def normalise_scalars(
    raw: dict[str, Any], string_fields: tuple[str, ...] = PROTOCOL_STRING_FIELDS
) -> dict[str, Any]:
    """Accept numbers and dates where the schema wants text (``version: 1.0``).

    A literal ``extras`` key is dropped here: it is the user's data, reported as unknown,
    never taken as our own field.
    """
    out = {key: value for key, value in raw.items() if key != "extras"}
    for key in string_fields:
        value = out.get(key)
        if isinstance(value, datetime.date):
            out[key] = value.isoformat()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = str(value)
    return out


# --- messages --------------------------------------------------------------------------------
def describe_validation_error(message: str, raw: Any, root: Any) -> tuple[str, str]:
    """Turn msgspec's message into (field path, problem) in our one-line style.

    msgspec writes a step into a mapping as ``[...]``; the entry at fault is found again
    (the first that fails on its own, as msgspec checks them in order) so the path names it.
    """
    text, _, where = message.partition(" - at `")
    where = where.rstrip("`")
    if "[...]" in where:
        resolved = _resolve_mapping_step(where, raw, root)
        if resolved is not None:
            return resolved
    path = where or "$"
    if where.startswith("key` in `"):  # a mapping key of the wrong type (`1: x`, `null: x`)
        path = where.removeprefix("key` in `")
        return path, _key_problem(raw, root, path)
    expected = range_at(root, path)
    found, value = lookup(raw, path)
    if expected is not None and found:
        return path, f"expected {expected.describe()}, got {_SHORT.repr(value)}"
    if text.startswith("Object missing required field `"):
        field = text.split("`")[1]
        return f"{path}.{field}", "required field is missing"
    if text.startswith("Object contains unknown field `"):
        field = text[text.index("`") + 1 : text.rindex("`")]
        states = ", ".join(STATE_NAMES)
        shown = field if _PLAIN_KEY.match(field) else _SHORT.repr(field)
        return path + segment(field), f"unknown state `{shown}`; expected one of {states}"
    if text.startswith("Invalid enum value"):
        kind = _bare(hint_at(root, path))
        if typing.get_origin(kind) is Literal:
            choices = ", ".join(str(choice) for choice in typing.get_args(kind))
            return path, f"{text[0].lower()}{text[1:]}; expected one of {choices}"
    problem = text[0].lower() + text[1:]
    for json_word, yaml_word in (("`object`", "a mapping"), ("`array`", "a list")):
        problem = problem.replace(json_word, yaml_word)
    if found:
        shown = _SHORT.repr(value)
        problem += f" ({shown})" if ", got" in problem else f", got {shown}"
    return path, problem


def _resolve_mapping_step(where: str, raw: Any, root: Any) -> tuple[str, str] | None:
    """(path, problem) of the first entry of the mapping at the first ``[...]`` that fails."""
    location = where.removeprefix("key` in `")
    prefix = location[: location.index("[...]")]
    found, node = lookup(raw, prefix)
    kind = _bare(hint_at(root, prefix))
    if not found or not isinstance(node, dict) or typing.get_origin(kind) is not dict:
        return None
    value_hint = typing.get_args(kind)[1]
    for key, value in node.items():
        try:
            msgspec.convert(value, value_hint)
        except msgspec.ValidationError as exc:
            sub_path, problem = describe_validation_error(str(exc), value, value_hint)
            return prefix + segment(key) + sub_path.removeprefix("$"), problem
    return None


def _key_problem(raw: Any, root: Any, path: str) -> str:
    found, node = lookup(raw, path)
    kind = _bare(hint_at(root, path))
    if typing.get_origin(kind) is dict and typing.get_args(kind)[0] is int:
        keys = [k for k in node if not isinstance(k, int) or isinstance(k, bool)] if found else []
        shown = f", got {_SHORT.repr(keys[0])}" if keys else ""
        return f"expected whole numbers as keys{shown}"
    keys = [key for key in node if not isinstance(key, str)] if found else []
    shown = f", got {_SHORT.repr(keys[0])}" if keys else ""
    if typing.get_origin(kind) is dict:
        return f"expected text as keys{shown}"
    return f"expected field names (text) as keys{shown}"


def lookup(raw: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a msgspec-style path (``$.a.b[2]``) of decoded data."""
    node = raw
    for name, bracket in _PATH_TOKEN.findall(path.removeprefix("$")):
        part = name or bracket
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif (isinstance(node, dict) and part.isdigit() and int(part) in node) or (
            isinstance(node, list) and part.isdigit() and int(part) < len(node)
        ):
            node = node[int(part)]
        else:
            return False, None
    return True, node


# --- keys no schema field declares -----------------------------------------------------------
def collect_unknown_keys(raw: Any, hint: Any, path: str) -> dict[str, Any]:
    """Keys of `raw` that the schema `hint` does not declare, by field path.

    Descends into declared structs, mappings of structs and lists of structs.
    """
    kind = _bare(hint)
    extras: dict[str, Any] = {}
    if _is_struct(kind) and isinstance(raw, dict):
        hints = _struct_hints(kind)
        for key, value in raw.items():
            child = path + segment(key)
            field_hint = hints.get(key) if isinstance(key, str) else None
            if field_hint is None or key == "extras":
                extras[child] = with_text_keys(value)
            else:
                extras.update(collect_unknown_keys(value, field_hint, child))
    elif typing.get_origin(kind) is dict and isinstance(raw, dict):
        item_hint = typing.get_args(kind)[1]
        for key, value in raw.items():
            extras.update(collect_unknown_keys(value, item_hint, path + segment(key)))
    elif typing.get_origin(kind) is list and isinstance(raw, list):
        item_hint = typing.get_args(kind)[0]
        for index, value in enumerate(raw):
            extras.update(collect_unknown_keys(value, item_hint, f"{path}[{index}]"))
    return extras


def with_text_keys(value: Any) -> Any:
    """`value` with every mapping key made text (``50: 0.1`` -> ``"50": 0.1``).

    Unknown blocks are kept in the manifest, whose JSON has text keys only; a date or null
    key would otherwise make the run's manifest unwritable.
    """
    if isinstance(value, dict):
        return {
            key if isinstance(key, str) else str(key): with_text_keys(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [with_text_keys(item) for item in value]
    return value
