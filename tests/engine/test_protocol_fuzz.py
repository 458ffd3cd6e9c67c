"""Fuzzing the protocol loader: whatever a file holds, it runs or gets one clear ProtocolError.

Hypothesis mutates every bundled visit-based protocol (NaN, infinities, huge and negative
numbers, wrong types, missing, extra and renamed keys) and feeds the loader random bytes, deep
nesting, YAML anchors and aliases (alias bombs included) and oversized files. The bundled
time-based protocol is fuzzed as a folder: the protocol and its six parameter files, any of
them mutated, spliced with junk or set anywhere inside its ranges. The oracle is `amdsim
validate`'s contract: a valid protocol runs (a tiny in-memory run whose manifest form
round-trips; for a time-based one, until its kernel lands, the manifest round trip and
`validate_protocol`), an invalid one raises `ProtocolError` with a field path or a file-level
problem, naming the file at fault, and nothing else ever escapes. Examples are derandomized so
CI is reproducible.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import subprocess
import sys
import tempfile
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
    load_protocol,
    load_protocol_text,
    resolve_protocol_path,
    validate_protocol,
)
from engine.model.protocol_yaml import MAX_DEPTH, MAX_PROTOCOL_BYTES, MAX_VALUES
from engine.model.v1.fields import Range
from engine.model.v1.protocol import Protocol, ranged_fields
from engine.model.v2.schema import (
    DemographicsFile,
    DiscontinuationFile,
    DiseaseTransitionsFile,
    MortalityFile,
    TimeBasedProtocol,
    TreatmentEffectFile,
    VisionFile,
)
from engine.model.validation import range_at

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
# The visit-based (v1) bundled protocols: their text alone is a whole protocol. The time-based
# one reads parameter files beside it and is fuzzed as a folder (the end of this file).
BUNDLED = {
    name: resolve_protocol_path(name).read_bytes()
    for name in bundled_protocol_names()
    if "model_type" not in msgspec.yaml.decode(resolve_protocol_path(name).read_bytes())
}


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


def set_ranged_numbers(
    draw: st.DrawFn,
    document: dict[str, Any],
    fields: list[tuple[str, Range]],
    min_size: int,
    max_size: int,
) -> None:
    """Set between `min_size` and `max_size` of `fields` (path ``$.a.b`` -> its `Range`) in
    `document` to numbers drawn inside their ranges, creating missing parents."""
    for path, expected in draw(
        st.lists(st.sampled_from(fields), min_size=min_size, max_size=max_size)
    ):
        low, high = expected.low, expected.high
        value = draw(st.integers(int(low), int(high)) if expected.integer else st.floats(low, high))
        node = document
        *parents, leaf = path.split(".")[1:]
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value


@st.composite
def plausible_protocols(draw: st.DrawFn) -> str:
    """A bundled protocol with up to eight numbers set anywhere inside their ranges.

    Rows of the transition matrix are renormalised afterwards (when they can be), so most of
    these are valid and exercise the kernel at the edges of what the schema allows.
    """
    document = _raw(draw(st.sampled_from(sorted(BUNDLED))))
    set_ranged_numbers(draw, document, list(ranged_fields()), min_size=1, max_size=8)
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


# --- the time-based layout: a protocol and the parameter files beside it ---------------------
TIME_BASED = "time_based_uncalibrated_treat_and_extend"
TB_PROTOCOL = resolve_protocol_path(TIME_BASED)
TB_FILES = {
    "protocol.yaml": TB_PROTOCOL.read_bytes(),
    **{
        f"time_based_parameters/{path.name}": path.read_bytes()
        for path in sorted((TB_PROTOCOL.parent / "time_based_parameters").glob("*.yaml"))
    },
}
TB_SCHEMAS: dict[str, Any] = {
    "protocol.yaml": TimeBasedProtocol,
    "time_based_parameters/disease_transitions.yaml": DiseaseTransitionsFile,
    "time_based_parameters/treatment_effect.yaml": TreatmentEffectFile,
    "time_based_parameters/vision.yaml": VisionFile,
    "time_based_parameters/discontinuation.yaml": DiscontinuationFile,
    "time_based_parameters/demographics.yaml": DemographicsFile,
    "time_based_parameters/uk_mortality_wet_amd.yaml": MortalityFile,
}
FOLDER_PROBLEMS = (*FILE_LEVEL_PROBLEMS, "cannot be read")


def check_folder_contract(files: dict[str, bytes | str]) -> TimeBasedProtocol | None:
    """Write the folder, load its protocol; valid -> survives the manifest, else one line."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "time_based_parameters").mkdir()
        for name, content in files.items():
            data = (
                content.encode("utf-8", errors="surrogateescape")
                if isinstance(content, str)
                else content
            )
            (root / name).write_bytes(data)
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                protocol = load_protocol(root / "protocol.yaml")
        except ProtocolError as exc:
            message = str(exc)
            assert exc.source in TB_FILES, message
            assert message.startswith(f"{exc.source}: "), message
            assert "\n" not in message, message
            if exc.path is None:
                assert exc.problem.startswith(FOLDER_PROBLEMS), message
            else:
                assert exc.path.startswith("$"), message
            assert time.perf_counter() - started < 5.0, f"slow refusal: {message[:200]}"
            return None
    assert isinstance(protocol, TimeBasedProtocol)
    stored = msgspec.json.decode(msgspec.json.encode(protocol), type=TimeBasedProtocol)
    assert stored.parameters == protocol.parameters
    assert validate_protocol(stored) is stored
    return protocol


@st.composite
def mutated_time_based(draw: st.DrawFn) -> dict[str, bytes | str]:
    """The bundled time-based folder with one to four mutations in one to three files."""
    files: dict[str, bytes | str] = dict(TB_FILES)
    for name in draw(st.lists(st.sampled_from(sorted(TB_FILES)), min_size=1, max_size=3)):
        document = msgspec.yaml.decode(TB_FILES[name])
        for _ in range(draw(st.integers(1, 4))):
            paths = _paths(document)
            if not paths:
                break
            path = draw(st.sampled_from(paths))
            parent = _parent(document, path)
            action = draw(st.sampled_from(["set", "set", "set", "delete", "add", "rename"]))
            if action == "set":
                parent[path[-1]] = copy.deepcopy(draw(VALUES))
            elif action == "delete":
                del parent[path[-1]]
            elif action == "add" and isinstance(parent, dict):
                parent[draw(KEYS)] = copy.deepcopy(draw(VALUES))
            elif action == "rename" and isinstance(parent, dict):
                parent[draw(KEYS)] = parent.pop(path[-1])
        files[name] = yaml.safe_dump(document, sort_keys=False, allow_unicode=draw(st.booleans()))
    return files


def _ranged_leaves(node: Any, schema: Any, path: str = "$") -> list[tuple[tuple[Any, ...], Any]]:
    """(key path, Range) of every number in `node` that has a range in `schema`."""
    out = []
    for keys in _paths(node):
        value = _parent(node, keys)[keys[-1]]
        if isinstance(value, int | float) and not isinstance(value, bool):
            dotted = path + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys)
            found = range_at(schema, dotted)
            if found is not None:
                out.append((keys, found))
    return out


@st.composite
def plausible_time_based(draw: st.DrawFn) -> dict[str, bytes | str]:
    """The bundled folder with up to eight numbers of one file set inside their ranges."""
    files: dict[str, bytes | str] = dict(TB_FILES)
    name = draw(st.sampled_from(sorted(TB_FILES)))
    document = msgspec.yaml.decode(TB_FILES[name])
    leaves = _ranged_leaves(document, TB_SCHEMAS[name])
    for keys, expected in draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=8)):
        low, high = expected.low, expected.high
        value = draw(st.integers(int(low), int(high)) if expected.integer else st.floats(low, high))
        _parent(document, keys)[keys[-1]] = value
    for row in document.get("fortnightly_transitions", {}).values():
        total = sum(row.values())
        if total > 0:
            row.update({state: value / total for state, value in row.items()})
    files[name] = yaml.safe_dump(document, sort_keys=False)
    return files


@settings(FUZZ, max_examples=150)
@given(mutated_time_based())
def test_mutated_time_based_folders_load_or_fail_naming_file_and_path(files):
    check_folder_contract(files)


@FUZZ
@given(plausible_time_based())
def test_time_based_numbers_inside_their_ranges_load_or_fail_a_cross_field_check(files):
    check_folder_contract(files)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(sorted(TB_FILES)), st.integers(0, 3000))
def test_junk_spliced_into_any_time_based_file_fails_cleanly(junk, name, at):
    original = TB_FILES[name]
    check_folder_contract({**TB_FILES, name: original[:at] + junk + original[at:]})


@FUZZ
@given(st.sampled_from(sorted(TB_FILES)[1:]))
def test_a_missing_time_based_parameter_file_is_an_error_naming_it(name):
    files = {key: value for key, value in TB_FILES.items() if key != name}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "time_based_parameters").mkdir()
        for key, content in files.items():
            (root / key).write_bytes(content)
        with pytest.raises(ProtocolError) as caught:
            load_protocol(root / "protocol.yaml")
    assert caught.value.source == "protocol.yaml"
    assert name in caught.value.problem


def test_the_bundled_time_based_folder_passes_the_contract_unchanged():
    protocol = check_folder_contract(TB_FILES)
    assert protocol is not None and protocol.extras == {}
