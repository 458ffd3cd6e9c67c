"""Read a user's input file (costs, utilities, uncertainty, calibration) or say why not.

One place for the first step every loader of a user-supplied file takes: the bytes, or one
error naming the file and the reason ("no such file", "permission denied"); and, for the YAML
ones, the bounded decode to a mapping. The error class is the loader's (`CostFileError`,
`UtilityFileError`, `UncertaintyError`), so the CLI maps each to exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import ProtocolError, TargetsError
from engine.model.protocol_yaml import decode_protocol_yaml

__all__ = ["read_input", "read_yaml_mapping"]


def read_input(path: Path, error: type[TargetsError]) -> bytes:
    """The bytes of the file at `path`; `error(path, None, "cannot be read (...)")` if none."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror
        problem = f"cannot be read ({reason or type(exc).__name__})"
        raise error(str(path), None, problem) from exc


def read_yaml_mapping(path: Path, error: type[TargetsError], contents: str) -> dict[str, Any]:
    """The YAML mapping in the file at `path`; `error` if it is missing, unreadable or not one.

    Decoding is bounded in size, depth and alias expansion (`decode_protocol_yaml`).
    """
    source = str(path)
    data = read_input(path, error)
    try:
        return decode_protocol_yaml(data, source, contents)
    except ProtocolError as exc:
        raise error(source, exc.path, exc.problem) from exc
