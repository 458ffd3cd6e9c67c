"""Load protocol YAML files into protocol structs, with one clear message per bad file.

Covers: reading (file, bundled name or text) and dispatching on the layout: a file with
`model_type` is a time-based protocol (`engine.model.v2.loader` reads it and its parameter
files), any other the visit-based v1 `Protocol`. The v1 validation runs in this order: no NaN
or infinity anywhere, types, each number's plausible `Range`, cross-field checks; then
collecting unknown keys (the shared machinery is `engine.model.validation`). Every failure
becomes a `ProtocolError` naming the file, the field path and the problem.
Does not cover: decoding YAML within bounds (`engine.model.protocol_yaml`), what the fields mean
(`engine.model.v1.protocol`, `engine.model.v2.schema`).
"""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from engine.errors import ProtocolError
from engine.model.protocol_yaml import MAX_PROTOCOL_BYTES, decode_protocol_yaml
from engine.model.transition_checks import check_row_sums, check_treated_rows
from engine.model.v1.layout_checks import check_raw_layout, finish_layout, never_firing_rules
from engine.model.v1.protocol import Protocol
from engine.model.v2.loader import is_time_based, load_time_based, unused_keys_message
from engine.model.v2.schema import TimeBasedProtocol
from engine.model.validation import (
    UnknownProtocolKeysWarning,
    check_finite,
    check_ranges,
    collect_unknown_keys,
    convert,
    list_keys,
    normalise_scalars,
)

__all__ = [
    "DEFAULT_PROTOCOL",
    "UnknownProtocolKeysWarning",
    "bundled_protocol_names",
    "load_protocol",
    "load_protocol_text",
    "resolve_protocol_path",
    "validate_protocol",
]

DEFAULT_PROTOCOL = "aflibercept_treat_and_extend_altair"


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
    if path.is_dir() and name not in bundled_protocol_names():
        raise ProtocolError(name, None, "is a directory; expected a protocol YAML file")
    if name in bundled_protocol_names():
        return Path(str(resources.files("engine") / "protocols" / f"{name}.yaml"))
    bundled = ", ".join(bundled_protocol_names())
    raise ProtocolError(
        str(reference), None, f"no such file, and no bundled protocol of that name ({bundled})"
    )


def load_protocol(reference: str | Path = DEFAULT_PROTOCOL) -> Protocol | TimeBasedProtocol:
    """Load and validate a protocol from a file path or a bundled protocol name.

    A file with `model_type` is a time-based protocol: its parameter files are read relative
    to it (`engine.model.v2.loader`). Raises `ProtocolError` for a missing, unreadable,
    oversized or invalid file (a parameter file too); warns with `UnknownProtocolKeysWarning`
    (one line listing every unknown key, by file and field path) when keys are not used.
    """
    path = resolve_protocol_path(reference)
    try:
        if path.stat().st_size > MAX_PROTOCOL_BYTES:
            raise ProtocolError(path.name, None, f"file is larger than {MAX_PROTOCOL_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise ProtocolError(path.name, None, f"cannot be read ({exc.strerror})") from exc
    return _load(data, path.name, path.parent)


def load_protocol_text(
    data: bytes | str, source: str = "<protocol>"
) -> Protocol | TimeBasedProtocol:
    """Validate protocol YAML given as text; `source` names it in messages.

    A time-based protocol given as text must embed its parameters (`parameters:`): with no
    file there is no folder to find its parameter files in.
    """
    return _load(data, source, None)


def _load(data: bytes | str, source: str, folder: Path | None) -> Protocol | TimeBasedProtocol:
    """Decode, dispatch on the layout, validate; one warning for every key not used."""
    raw = decode_protocol_yaml(data, source)
    if is_time_based(raw):
        protocol: Protocol | TimeBasedProtocol = load_time_based(raw, source, folder)
        message = unused_keys_message(source, protocol.extras) if protocol.extras else ""
    else:
        protocol = _validate(raw, source)
        extras = collect_unknown_keys(raw, Protocol, "$")
        extras.update(never_firing_rules(raw))
        message = ""
        if extras:
            message = f"{source}: unknown keys kept but not used: {list_keys(list(extras))}"
            protocol = msgspec.structs.replace(protocol, extras=extras)
    if message:
        warnings.warn(UnknownProtocolKeysWarning(message), stacklevel=3)
    return protocol


def validate_protocol(
    protocol: Protocol | TimeBasedProtocol, source: str = "<protocol>"
) -> Protocol | TimeBasedProtocol:
    """Check a protocol built in Python as a file would be checked; returns it unchanged.

    Struct constructors do not validate, so this is what stands between ``Protocol(...)``
    with a NaN in it and the kernel. `extras` are the caller's and are not checked. A
    `TimeBasedProtocol` needs its `parameters` filled (no files are read).
    """
    try:
        raw = msgspec.to_builtins(
            msgspec.structs.replace(protocol, extras={}), enc_hook=_python_number
        )
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise ProtocolError(source, "$", f"holds a value that is not plain data ({exc})") from exc
    raw.pop("extras", None)
    if isinstance(protocol, TimeBasedProtocol):
        load_time_based(raw, source, None)
    else:
        _validate(raw, source)
    return protocol


def _python_number(value: Any) -> Any:
    """numpy scalars (``np.float64(0.5)``) as the Python numbers they stand for."""
    if hasattr(value, "item") and hasattr(value, "dtype"):
        return value.item()
    raise NotImplementedError(f"values of type {type(value).__name__} are not supported")


def _validate(raw: dict[str, Any], source: str) -> Protocol:
    """The checks of the module docstring, in its order; the first failure is raised."""
    check_finite(raw, Protocol, "$", source)
    raw = check_raw_layout(raw, source)
    protocol = convert(normalise_scalars(raw), Protocol, source)
    check_ranges(protocol, Protocol, "$", source)
    protocol = finish_layout(protocol, raw, source)
    _check_cross_fields(protocol, source)
    return protocol


def _check_cross_fields(protocol: Protocol, source: str) -> None:
    """Checks no single field can express; the first failure is raised."""
    check_row_sums(protocol.disease_transitions, source, "$.disease_transitions")
    check_treated_rows(
        protocol.disease_transitions,
        protocol.treatment_effect_on_transitions,
        source,
        "$.treatment_effect_on_transitions",
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
