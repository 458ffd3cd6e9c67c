"""Read typed fields out of decoded YAML, each failure one error naming its field path.

The cost and utility files are small and their two layouts are loose (the origin app's files
carry keys of their own), so they are read field by field rather than through one strict
schema: every read names the field path (``$.visit_types.injection.total``) and says what
was expected and what was found. `FieldReader` is bound to one error class and one file.

Does not cover: what the fields mean (`engine.economics.costs`, `engine.economics.utilities`).
"""

from __future__ import annotations

import math
from typing import Any

from engine.errors import TargetsError
from engine.model.validation import segment, short_repr

__all__ = ["FieldReader", "child"]


def child(path: str, key: Any) -> str:
    """The field path of `key` under `path` (``$.a`` + ``b`` -> ``$.a.b``, ints as ``[i]``)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return path + segment(key)


class FieldReader:
    """Typed reads from one decoded file; every failure raises `error(source, path, problem)`."""

    def __init__(self, source: str, error: type[TargetsError]) -> None:
        self.source = source
        self.error = error

    def fail(self, path: str | None, problem: str) -> TargetsError:
        """The error to raise for `problem` at `path` (returned, so callers write ``raise``)."""
        return self.error(self.source, path, problem)

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        """`value` as a mapping with text keys."""
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping, got {short_repr(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(path, f"keys must be text, got {short_repr(key)}")
        return value

    def sequence(self, value: Any, path: str) -> list[Any]:
        """`value` as a list."""
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, got {short_repr(value)}")
        return value

    def text(self, value: Any, path: str) -> str:
        """`value` as text; numbers and dates are accepted and written as text."""
        if isinstance(value, str):
            return value
        if value is None or isinstance(value, bool | dict | list):
            raise self.fail(path, f"must be text, got {short_repr(value)}")
        return str(value)

    def number(self, value: Any, path: str, low: float = 0.0, high: float = math.inf) -> float:
        """`value` as a finite float in [low, high] (booleans are not numbers)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"must be {_describe(low, high)}, got {short_repr(value)}")
        number = float(value)
        if not math.isfinite(number) or not low <= number <= high:
            raise self.fail(path, f"must be {_describe(low, high)}, got {short_repr(value)}")
        return number

    def whole_number(self, value: Any, path: str, low: int, high: int) -> int:
        """`value` as an int in [low, high]."""
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(
                path, f"must be a whole number from {low} to {high}, got {short_repr(value)}"
            )
        return value

    def unknown_keys(self, raw: dict[str, Any], known: tuple[str, ...], path: str) -> None:
        """Refuse keys of `raw` outside `known` (a typo would otherwise silently cost 0)."""
        for key in raw:
            if key not in known:
                raise self.fail(
                    child(path, key), f"unknown field; expected one of {', '.join(known)}"
                )

    def required(self, raw: dict[str, Any], key: str, path: str) -> Any:
        """``raw[key]``; an error naming the missing field if absent."""
        if key not in raw:
            raise self.fail(child(path, key), "required field is missing")
        return raw[key]


def _describe(low: float, high: float) -> str:
    if math.isinf(high):
        return f"a number >= {low:g}"
    return f"a number from {low:g} to {high:g}"
