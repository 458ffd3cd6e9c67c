"""Write fitted parameter files: the originals with the fitted numbers replaced, comments kept.

A parameter file is documentation as much as data (every number says its unit and source), so
the fit edits numbers in the text instead of dumping YAML: each fitted leaf is found by its key
path, block mappings by indentation and flow mappings (``{mean: -0.2, std: 0.1}``) by key, and
its number replaced. The edited text is parsed again and must equal the fitted parameters
exactly, every other value unchanged; if it does not (an unusual layout), the file is written
as plain YAML of the fitted values instead, and the header says the comments were lost.

Each edited file starts with a header between `HEADER_START` and `HEADER_END` saying what was
fitted, to which targets file (SHA-256), with which seed and cohort, and the final error; a
later calibration replaces the header rather than stacking another.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import yaml

__all__ = ["HEADER_END", "HEADER_START", "edited_text", "format_number", "with_header"]

HEADER_START = "# --- fitted by amdsim calibrate"
HEADER_END = "# --- end of calibration header ---"
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[^\s#:][^:#]*?)\s*:(?P<rest>.*)$")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def format_number(value: float, integer: bool = False) -> str:
    """A fitted number as written in a file: integers plain, others to 4 significant digits."""
    if integer:
        return str(round(value))
    text = f"{value:.4g}"
    return text if any(c in text for c in ".en") else text + ".0"


def edited_text(text: str, changes: Mapping[tuple[str, ...], str]) -> str | None:
    """`text` with each key path's number replaced; None if the edit cannot be made exactly.

    `changes` maps a key path inside the file (``("vision_ceilings",
    "baseline_ceiling_factor")``) to the new number as text. The edited text must parse to the
    original's data with exactly those leaves changed, or None is returned.
    """
    expected = yaml.safe_load(text)
    for path, number in changes.items():
        node = expected
        try:
            for key in path[:-1]:
                node = node[_key_in(node, key)]
            node[_key_in(node, path[-1])] = float(number)
        except (KeyError, TypeError):
            return None
    lines = text.splitlines(keepends=True)
    for path, number in changes.items():
        if not _replace(lines, path, number):
            return None
    result = "".join(lines)
    try:
        parsed = yaml.safe_load(result)
    except yaml.YAMLError:
        return None
    return result if _same(parsed, expected) else None


def with_header(text: str, header_lines: Sequence[str]) -> str:
    """`text` with the calibration header first (an earlier one is replaced)."""
    if text.startswith(HEADER_START):
        end = text.find(HEADER_END)
        if end >= 0:
            text = text[end + len(HEADER_END) :].lstrip("\n")
    block = [HEADER_START + " ---", *(f"# {line}".rstrip() for line in header_lines), HEADER_END]
    return "\n".join(block) + "\n" + text


def _replace(lines: list[str], path: tuple[str, ...], number: str) -> bool:
    """Replace the number at `path` in place; False if the path is not laid out as expected."""
    start, stop, depth_indent = 0, len(lines), -1
    for depth, key in enumerate(path):
        found = _find_key(lines, start, stop, key, depth_indent)
        if found is None:
            return False
        index, indent, rest = found
        remaining = path[depth + 1 :]
        stripped = rest.split("#", 1)[0].strip()
        if stripped.startswith("{"):
            return _replace_in_flow(lines, index, remaining, number)
        if not remaining:
            match = re.match(rf"^(\s*{_NUMBER})", rest)
            if match is None:
                return False
            content = lines[index].rstrip("\n")
            head = content[: len(content) - len(rest)]
            new_rest = re.sub(rf"^(\s*){_NUMBER}", rf"\g<1>{number}", rest, count=1)
            lines[index] = head + new_rest + lines[index][len(content) :]
            return True
        start, stop, depth_indent = index + 1, _block_end(lines, index + 1, indent), indent
    return False


def _find_key(
    lines: list[str], start: int, stop: int, key: str, parent_indent: int
) -> tuple[int, int, str] | None:
    """The first line in [start, stop) holding `key` at the block's own indentation."""
    own_indent = None
    for index in range(start, stop):
        match = _KEY.match(lines[index].rstrip("\n"))
        if match is None or lines[index].lstrip().startswith("#"):
            continue
        indent = len(match["indent"])
        if indent <= parent_indent:
            return None
        own_indent = indent if own_indent is None else own_indent
        if indent == own_indent and _unquote(match["key"]) == key:
            return index, indent, match["rest"]
    return None


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The first line after `start` back at `indent` or less (comments and blanks skipped)."""
    for index in range(start, len(lines)):
        content = lines[index].strip()
        if not content or content.startswith("#"):
            continue
        if len(lines[index]) - len(lines[index].lstrip()) <= indent:
            return index
    return len(lines)


def _replace_in_flow(lines: list[str], index: int, path: tuple[str, ...], number: str) -> bool:
    """Replace `path` inside a one-line flow mapping (``{STABLE: {mean: 0.5, std: 0.2}}``)."""
    line = lines[index]
    position = line.index("{")
    for key in path:
        match = re.compile(rf"[{{,]\s*{re.escape(key)}\s*:\s*").search(line, position)
        if match is None:
            return False
        position = match.end()
    value = re.compile(_NUMBER).match(line, position)
    if value is None:
        return False
    lines[index] = line[: value.start()] + number + line[value.end() :]
    return True


def _key_in(node: dict[Any, Any], key: str) -> Any:
    """The key of `node` written as `key` (YAML may have read ``70`` as an integer)."""
    for candidate in node:
        if str(candidate) == key:
            return candidate
    raise KeyError(key)


def _unquote(key: str) -> str:
    key = key.strip()
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
        return key[1:-1]
    return key


def _same(parsed: Any, expected: Any) -> bool:
    """Equal as data: keys compared as text, numbers as floats."""
    return _normal(parsed) == _normal(expected)


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return msgspec.to_builtins(value)
