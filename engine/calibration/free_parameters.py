"""The parameters a calibration may move: parse them, read them, set them and re-validate.

A free parameter is a dotted path into a time-based protocol's parameter files, its first
segment the `TimeBasedParameters` field (``vision.vision_ceilings.baseline_ceiling_factor``,
``treatment_effect.treatment_multipliers.ACTIVE.multipliers.STABLE``,
``mortality.mortality_rates.male.70``). Its bounds are the schema's plausible `Range`, so the
optimiser searches only where the loader accepts values. An off-diagonal fortnightly transition
probability moves mass to or from its row's diagonal, so the row keeps summing to 1; its upper
bound is the value plus the diagonal at the starting protocol.

`with_values` rebuilds the protocol through the loader's embedded-``parameters:`` path, so a
candidate meets every range and cross-field check a file would; a combination the loader
refuses raises `ProtocolError` (the fit counts it as a failed candidate).

Does not cover: the optimiser (`engine.calibration.fit`), the figures compared with targets
(`engine.calibration.figures`), writing fitted files.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any

import msgspec

from engine.errors import ParameterError
from engine.model.v2.loader import load_time_based
from engine.model.v2.parameter_schema import TimeBasedParameters
from engine.model.v2.schema import TimeBasedProtocol
from engine.model.validation import hint_at, list_keys, range_at

__all__ = ["FreeParameter", "describe", "get_value", "parse_free", "with_values"]

_TRANSITIONS = ("disease_transitions", "fortnightly_transitions")
_MULTIPLIERS = ("treatment_effect", "treatment_multipliers")
_SEPARATOR = re.compile(r"\s*,\s*")
_BOUNDED = re.compile(r"^(?P<path>[^\[\]]+)\[(?P<low>[^:\]]*):(?P<high>[^:\]]*)\]$")


class FreeParameter(msgspec.Struct, frozen=True):
    """One parameter the fit may move, with the bounds it searches between.

    Parameters
    ----------
    path
        Dotted path from a `TimeBasedParameters` field to a number
        (``vision.vision_ceilings.baseline_ceiling_factor``).
    lower, upper
        Bounds, in the field's unit: the schema's plausible `Range`; for an off-diagonal
        transition probability 0 and the value plus its row's diagonal at the start.
    integer
        Whether the field holds whole numbers (days, injections); values are rounded.
    """

    path: str
    lower: float
    upper: float
    integer: bool = False


def parse_free(text: str, protocol: TimeBasedProtocol | None = None) -> list[FreeParameter]:
    """The free parameters named in `text` (``"a.b.c, d.e.f"``), checked against the schema.

    `protocol` (the starting protocol) checks keys of tables (age bands, ages, population
    types) against what it holds, and gives an off-diagonal transition probability its upper
    bound; without it table keys are checked when a value is read, and that bound is 1.
    Raises `ParameterError` (one line naming the bad segment and what is allowed there) for an
    unknown segment, a path that does not end at a number, a diagonal transition probability,
    a parameter with no room to move, or a parameter named twice.
    """
    names = [name for name in _SEPARATOR.split(text.strip()) if name]
    if not names:
        raise ParameterError(
            "no free parameter given; name at least one, e.g. "
            "vision.vision_ceilings.baseline_ceiling_factor"
        )
    parameters: list[FreeParameter] = []
    for name in names:
        parameter = _parse_one(name, protocol)
        if any(p.path == parameter.path for p in parameters):
            raise ParameterError(f"free parameter {parameter.path} is named twice; name it once")
        parameters.append(parameter)
    return parameters


def get_value(protocol: TimeBasedProtocol, parameter: FreeParameter) -> float:
    """The value of `parameter` in `protocol` (a float, whole for integer fields)."""
    node: Any = _parameters_of(protocol)
    for index, key in enumerate(_segments(parameter.path)):
        node = _child(node, key, parameter.path, index)
    return float(node)


def with_values(
    protocol: TimeBasedProtocol,
    parameters: Sequence[FreeParameter],
    values: Sequence[float],
) -> TimeBasedProtocol:
    """`protocol` with each parameter set to its value, validated as a new protocol would be.

    Integer fields are rounded. An off-diagonal transition probability's row gets the diagonal
    ``1 - sum(others)``. Unused keys (`extras`) are dropped. Raises `ProtocolError` naming the
    field path (``$.parameters.vision...``) when the loader refuses the result.
    """
    if len(values) != len(parameters):
        raise ValueError(f"{len(values)} values for {len(parameters)} free parameters")
    _parameters_of(protocol)
    raw: dict[str, Any] = msgspec.to_builtins(protocol)
    raw.pop("extras", None)
    rows: set[str] = set()
    for parameter, value in zip(parameters, values, strict=True):
        keys = _segments(parameter.path)
        node: Any = raw["parameters"]
        for index, key in enumerate(keys[:-1]):
            node = node[_actual_key(node, key, parameter.path, index)]
            if node is None:
                raise _not_set(parameter.path, keys, index, protocol)
        leaf = _actual_key(node, keys[-1], parameter.path, len(keys) - 1)
        node[leaf] = round(float(value)) if parameter.integer else float(value)
        if _is_off_diagonal(keys):
            rows.add(keys[2])
    matrix = raw["parameters"]["disease_transitions"]["fortnightly_transitions"]
    for row in rows:
        others = sum(p for state, p in matrix[row].items() if state != row)
        diagonal = 1.0 - others
        # Rounding of a sum that is exactly 1 must not fail the range check on the diagonal.
        matrix[row][row] = 0.0 if -1e-12 < diagonal < 0.0 else diagonal
    return load_time_based(raw, f"{protocol.name} (candidate values)", None)


def describe(parameter: FreeParameter) -> str:
    """A short label for tables: ``P(STABLE->ACTIVE)``, ``vision_ceilings.baseline_ceiling_factor``."""
    keys = _segments(parameter.path)
    if _is_off_diagonal(keys):
        return f"P({keys[2]}->{keys[3]})"
    if tuple(keys[:2]) == _MULTIPLIERS and len(keys) == 5:
        return f"multiplier {keys[2]}->{keys[4]}"
    return ".".join(keys[1:])


# --- parsing ---------------------------------------------------------------------------------
def _parse_one(name: str, protocol: TimeBasedProtocol | None) -> FreeParameter:
    """One parameter; ``path[lo:hi]`` narrows the schema's bounds (either end may be left out)."""
    match = _BOUNDED.match(name.strip())
    if match is None:
        return _parse_path(name, protocol)
    parameter = _parse_path(match["path"], protocol)
    lower, upper = parameter.lower, parameter.upper
    try:
        low = float(match["low"]) if match["low"].strip() else lower
        high = float(match["high"]) if match["high"].strip() else upper
    except ValueError:
        raise ParameterError(
            f"free parameter {name}: bounds must be numbers, as in {parameter.path}[0.1:0.9]"
        ) from None
    if not (lower <= low < high <= upper):
        raise ParameterError(
            f"free parameter {name}: bounds must satisfy {lower:g} <= low < high <= {upper:g} "
            "(the schema's range)"
        )
    return FreeParameter(parameter.path, low, high, integer=parameter.integer)


def _parse_path(name: str, protocol: TimeBasedProtocol | None) -> FreeParameter:
    keys = _segments(name)
    path = ".".join(keys)
    node: Any = _parameters_of(protocol) if protocol is not None else None
    schema_path = "$"
    for index, key in enumerate(keys):
        hint = hint_at(TimeBasedParameters, schema_path)
        if _is_number_hint(hint):
            raise ParameterError(
                f"free parameter {path}: {'.'.join(keys[:index])} is a number; end the path "
                f"there (drop {'.'.join(keys[index:])})"
            )
        allowed = _allowed_keys(hint, node)
        if allowed is not None and key not in allowed:
            where = _where(keys, index)
            raise ParameterError(
                f"free parameter {path}: no {key!r} {where}; expected one of: {list_keys(allowed)}"
            )
        if node is not None:
            node = _child(node, key, path, index)
            if node is None:
                raise _not_set(path, keys, index, protocol)
        schema_path += f".{key}"
    expected = range_at(TimeBasedParameters, schema_path)
    if expected is None or not _is_number_hint(hint_at(TimeBasedParameters, schema_path)):
        onward = _continuations(hint_at(TimeBasedParameters, schema_path), node)
        advice = (
            f"continue the path to a number, one of: {onward}"
            if onward
            else ("free a numeric field instead")
        )
        raise ParameterError(f"free parameter {path}: {path} is not a number; {advice}")
    lower, upper = float(expected.low), float(expected.high)
    if tuple(keys[:2]) == _TRANSITIONS and len(keys) == 4:
        if keys[2] == keys[3]:
            raise ParameterError(
                f"free parameter {path}: the diagonal of a transition row takes what the row's "
                f"other probabilities leave; free an off-diagonal one "
                f"(disease_transitions.fortnightly_transitions.{keys[2]}.<another state>)"
            )
        if protocol is not None:
            matrix = _parameters_of(protocol).disease_transitions.fortnightly_transitions
            row = getattr(matrix, keys[2])
            upper = min(upper, getattr(row, keys[3]) + getattr(row, keys[2]))
    if not upper > lower:
        raise ParameterError(
            f"free parameter {path}: no room to move (bounds {lower:g} to {upper:g}); free "
            "another parameter"
        )
    return FreeParameter(path, lower, upper, integer=expected.integer)


def _segments(path: str) -> list[str]:
    keys = [key.strip() for key in path.strip().split(".")]
    if not keys or any(not key for key in keys):
        raise ParameterError(
            f"free parameter {path!r} has an empty segment; write dotted paths such as "
            "vision.vision_ceilings.baseline_ceiling_factor"
        )
    return keys


def _where(keys: list[str], index: int) -> str:
    return f"under {'.'.join(keys[:index])}" if index else "at the top (a parameter file)"


def _allowed_keys(hint: Any, node: Any) -> list[str] | None:
    """Keys allowed below a schema node: a struct's fields, a table's keys (None: any key)."""
    if node is not None and isinstance(node, dict):
        return [str(key) for key in node]
    kind = _bare(hint)
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return list(kind.__struct_fields__)
    if node is None and _is_mapping(kind):
        return None
    return []


def _continuations(hint: Any, node: Any) -> str:
    allowed = _allowed_keys(hint, node)
    return list_keys(allowed) if allowed else ""


def _not_set(
    path: str, keys: list[str], index: int, protocol: TimeBasedProtocol | None
) -> ParameterError:
    return ParameterError(
        f"free parameter {path}: {'.'.join(keys[: index + 1])} is not set in "
        f"{protocol.name if protocol else 'the protocol'}; add it to the parameter "
        "file before fitting it"
    )


def _child(node: Any, key: str, path: str, index: int) -> Any:
    if node is None:
        raise ParameterError(f"free parameter {path}: segment {key!r} is under a block not set")
    if isinstance(node, msgspec.Struct):
        if key not in node.__struct_fields__:
            raise ParameterError(
                f"free parameter {path}: no {key!r} at segment {index + 1}; expected one of: "
                f"{list_keys(list(node.__struct_fields__))}"
            )
        return getattr(node, key)
    if isinstance(node, dict):
        return node[_actual_key(node, key, path, index)]
    raise ParameterError(f"free parameter {path}: segment {key!r} goes past a number")


def _actual_key(table: dict[Any, Any], key: str, path: str, index: int) -> Any:
    """The key of `table` written `key` (ages of a life table are integers)."""
    for actual in table:
        if str(actual) == key:
            return actual
    raise ParameterError(
        f"free parameter {path}: no {key!r} at segment {index + 1}; expected one of: "
        f"{list_keys([str(k) for k in table])}"
    )


def _parameters_of(protocol: TimeBasedProtocol) -> TimeBasedParameters:
    if protocol.parameters is None:
        raise ParameterError(
            f"protocol {protocol.name!r} has no parameters loaded; load it from its file "
            "(load_protocol) before fitting"
        )
    return protocol.parameters


def _is_off_diagonal(keys: Sequence[str]) -> bool:
    return tuple(keys[:2]) == _TRANSITIONS and len(keys) == 4 and keys[2] != keys[3]


def _bare(hint: Any) -> Any:
    """The type under ``Annotated`` and ``| None``."""
    while True:
        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            hint = typing.get_args(hint)[0]
        elif origin in (typing.Union, types.UnionType):
            arms = [arm for arm in typing.get_args(hint) if arm is not type(None)]
            if len(arms) != 1:
                return hint
            hint = arms[0]
        else:
            return hint


def _is_mapping(kind: Any) -> bool:
    return typing.get_origin(kind) is dict


def _is_number_hint(hint: Any) -> bool:
    kind = _bare(hint)
    return kind in (int, float)
