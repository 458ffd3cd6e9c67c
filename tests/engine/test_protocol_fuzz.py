"""Fuzzing the protocol loader: whatever a file holds, it runs or gets one clear ProtocolError.

Hypothesis mutates every bundled protocol (NaN, infinities, huge and negative numbers, wrong
types, missing, extra and renamed keys) and feeds the loader random bytes, deep nesting, YAML
anchors and aliases (alias bombs included) and oversized files. The oracle is `amdsim
validate`'s contract: a valid protocol runs (a tiny in-memory run whose manifest form
round-trips), an invalid one raises `ProtocolError` with a field path or a file-level
problem, and nothing else ever escapes. Examples are derandomized so CI is reproducible.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import msgspec
import msgspec.yaml
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import run_simulation
from engine.errors import ProtocolError
from engine.model.protocol_loader import (
    bundled_protocol_names,
    load_protocol_text,
    resolve_protocol_path,
)
from engine.model.protocol_yaml import MAX_DEPTH, MAX_PROTOCOL_BYTES, MAX_VALUES
from engine.model.v1.protocol import Protocol, ranged_fields

SOURCE = "fuzz.yaml"
# Problems that concern the whole file, when there is no field path to give.
FILE_LEVEL_PROBLEMS = (
    "is not valid YAML: ",
    "file is empty;",
    "file is larger than",
    "nests deeper than",
    "holds more than",
    "repeats the key",
)
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BUNDLED = {name: resolve_protocol_path(name).read_bytes() for name in bundled_protocol_names()}


def _raw(name: str) -> dict[str, Any]:
    return msgspec.yaml.decode(BUNDLED[name])


def check_loader_contract(data: bytes | str) -> Protocol | None:
    """Load `data`; a valid protocol must run, an invalid one must fail as `validate` does."""
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            protocol = load_protocol_text(data, source=SOURCE)
    except ProtocolError as exc:
        message = str(exc)
        assert message.startswith(f"{SOURCE}: "), message
        assert "\n" not in message, message
        if exc.path is None:
            assert exc.problem.startswith(FILE_LEVEL_PROBLEMS), message
        else:
            assert exc.path.startswith("$"), message
        assert time.perf_counter() - started < 5.0, f"slow refusal: {message[:200]}"
        return None
    _assert_runs(protocol)
    return protocol


def _assert_runs(protocol: Protocol) -> None:
    """A tiny run gives sane rows, and the protocol survives the manifest's JSON."""
    stored = msgspec.json.decode(msgspec.json.encode(protocol), type=Protocol)
    assert stored.name == protocol.name
    results = run_simulation(protocol, n_patients=20, years=1, seed=1, in_memory=True)
    assert results.patient_count == 20
    assert results.visit_count >= 20  # everyone has the enrollment visit
    visits = results.to_dataframe()
    assert visits["vision"].between(0, 100).all()
    stats = results.summary_stats()
    assert 0 <= stats.mean_final_vision <= 100
    assert math.isfinite(stats.injections_per_patient_year)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into `node` (mappings and lists), parents before children."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.append((*prefix, index))
            out.extend(_paths(value, (*prefix, index)))
    return out


def _parent(document: dict[str, Any], path: tuple[Any, ...]) -> Any:
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    return node


ABSURD_NUMBERS = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e308, -1e308, 10**30, -(10**30), -1, -0.5, 0, 5e-324]
)
VALUES = st.one_of(
    ABSURD_NUMBERS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.dates(),
    st.binary(max_size=6),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.floats(allow_nan=True), max_size=3),
    st.just([[[[{}]]]]),
)
KEYS = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["NAIVE", "STABLE", "ACTIV", "mean", "std", "extras", "name", "min"]),
    st.integers(-3, 3),
    st.none(),
    st.booleans(),
)


@st.composite
def mutated_protocols(draw: st.DrawFn) -> str:
    """A bundled protocol with one to four random mutations, as YAML text."""
    document = _raw(draw(st.sampled_from(sorted(BUNDLED))))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        parent = _parent(document, path)
        action = draw(st.sampled_from(["set", "set", "set", "delete", "add", "rename"]))
        if action == "set":
            parent[path[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(KEYS)] = parent.pop(path[-1])
        if not document:
            break
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=draw(st.booleans()))


@st.composite
def plausible_protocols(draw: st.DrawFn) -> str:
    """A bundled protocol with up to eight numbers set anywhere inside their ranges.

    Rows of the transition matrix are renormalised afterwards (when they can be), so most of
    these are valid and exercise the kernel at the edges of what the schema allows.
    """
    document = _raw(draw(st.sampled_from(sorted(BUNDLED))))
    fields = list(ranged_fields())
    for path, expected in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=8)):
        low, high = expected.low, expected.high
        value = draw(st.integers(int(low), int(high)) if expected.integer else st.floats(low, high))
        node = document
        *parents, leaf = path.split(".")[1:]
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    for row in document["disease_transitions"].values():
        total = sum(row.values())
        if total > 0:
            row.update({state: value / total for state, value in row.items()})
    return yaml.safe_dump(document, sort_keys=False)


@settings(FUZZ, max_examples=200)
@given(mutated_protocols())
def test_mutated_bundled_protocols_run_or_fail_with_a_field_path(text):
    check_loader_contract(text)


@FUZZ
@given(plausible_protocols())
def test_numbers_anywhere_inside_their_ranges_run_or_fail_a_cross_field_check(text):
    check_loader_contract(text)


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(sorted(BUNDLED)), st.integers(0, 3000))
def test_random_bytes_alone_or_spliced_into_a_protocol_fail_cleanly(junk, name, at):
    check_loader_contract(junk)
    original = BUNDLED[name]
    check_loader_contract(original[:at] + junk + original[at:])


def _nested(depth: int, flow: bool) -> str:
    if flow:
        return "[" * depth + "1" + "]" * depth
    return "".join(f"\n{'  ' * (level + 1)}k{level}:" for level in range(depth)) + " 1"


@FUZZ
@given(st.integers(1, 3 * MAX_DEPTH), st.booleans(), st.sampled_from(sorted(BUNDLED)))
def test_deep_nesting_is_kept_within_bounds(depth, flow, name):
    text = BUNDLED[name].decode() + f"\nnested: {_nested(depth, flow)}\n"
    protocol = check_loader_contract(text)
    assert (protocol is not None) == (depth < MAX_DEPTH)


def _alias_ladder(width: int, rungs: int) -> str:
    """`rungs` anchors, each a list of `width` aliases to the one before: width**rungs values."""
    lines = [f"  r0: &r0 [{', '.join(['lol'] * width)}]"]
    for rung in range(1, rungs):
        aliases = ", ".join([f"*r{rung - 1}"] * width)
        lines.append(f"  r{rung}: &r{rung} [{aliases}]")
    return "ladder:\n" + "\n".join(lines) + "\n"


@FUZZ
@given(st.integers(1, 12), st.integers(1, 12), st.sampled_from(sorted(BUNDLED)))
def test_aliases_expand_within_bounds_and_bombs_are_refused_quickly(width, rungs, name):
    text = BUNDLED[name].decode() + "\n" + _alias_ladder(width, rungs)
    expanded = sum(width**rung for rung in range(1, rungs + 1))  # the last rung dominates
    protocol = check_loader_contract(text)
    if expanded < MAX_VALUES // 2:  # a protocol is a few hundred values besides the ladder
        assert protocol is not None
    elif expanded > MAX_VALUES:
        assert protocol is None


def test_a_billion_laughs_is_refused_in_well_under_a_second():
    text = BUNDLED[sorted(BUNDLED)[0]].decode() + "\n" + _alias_ladder(10, 9)
    started = time.perf_counter()
    assert check_loader_contract(text) is None
    assert time.perf_counter() - started < 1.0


@FUZZ
@given(st.integers(0, 3 * MAX_PROTOCOL_BYTES), st.sampled_from(["comment", "unknown key"]))
def test_huge_files_are_refused_by_size(size, where):
    base = BUNDLED[sorted(BUNDLED)[0]].decode()
    if where == "comment":
        text = base + "\n#" + "x" * size + "\n"
    else:
        text = base + f"\nnotes: {'y' * size}\n"
    protocol = check_loader_contract(text)
    assert (protocol is not None) == (len(text.encode()) <= MAX_PROTOCOL_BYTES)


def test_every_bundled_protocol_passes_the_contract_unchanged():
    for text in BUNDLED.values():
        assert check_loader_contract(text) is not None


# The same contract through the installed console script: exit 2, one line, no traceback.
AMDSIM = shutil.which("amdsim", path=str(Path(sys.executable).parent)) or shutil.which("amdsim")


@pytest.mark.parametrize(
    ("command", "content", "expected"),
    [
        (
            "validate",
            BUNDLED["aflibercept_treat_and_extend"].replace(b"{mean: 0.5,", b"{mean: .nan,"),
            "error: fuzz.yaml: $.vision_change_model.stable_treated.mean: expected a finite "
            "number between -30 and 30 letters, got nan",
        ),
        (
            "run",
            BUNDLED["aflibercept_treat_and_extend"] + b"\n" + _alias_ladder(10, 9).encode(),
            "error: fuzz.yaml: holds more than 20,000 values once its aliases are expanded; "
            "a protocol has a few hundred (is an alias repeating an alias?)",
        ),
    ],
)
def test_the_cli_refuses_a_fuzzed_protocol_with_exit_2_and_no_traceback(
    tmp_path, command, content, expected
):
    path = tmp_path / SOURCE
    path.write_bytes(content)
    flag = ["--protocol"] if command == "run" else []
    assert AMDSIM is not None, "the amdsim console script is not installed (pip install -e .)"
    result = subprocess.run(
        [AMDSIM, command, *flag, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200", "AMDSIM_RUNS_DIR": str(tmp_path / "runs")},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == expected
    assert len(result.stderr.splitlines()) == 1
