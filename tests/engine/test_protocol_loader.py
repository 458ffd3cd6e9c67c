"""Protocol files: bundled ones load, bad ones fail with one line naming file, path, problem."""

from __future__ import annotations

import copy
import datetime
import math
import re
import time
import warnings
from importlib import resources
from pathlib import Path

import msgspec
import numpy as np
import pytest
import yaml

from engine import run_simulation
from engine.errors import ProtocolError
from engine.model.protocol_loader import (
    DEFAULT_PROTOCOL,
    UnknownProtocolKeysWarning,
    bundled_protocol_names,
    load_protocol,
    load_protocol_text,
    validate_protocol,
)
from engine.model.v1.protocol import ranged_fields
from tests.helpers import V1_PROTOCOL, default_protocol_dict, protocol_yaml

STATE_CHOICES = "expected one of NAIVE, STABLE, ACTIVE, HIGHLY_ACTIVE"


def _without(dotted: str) -> str:
    data = copy.deepcopy(default_protocol_dict())
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    del node[leaf]
    return yaml.safe_dump(data, sort_keys=False)


def _renamed(dotted: str, new_name: str) -> str:
    data = copy.deepcopy(default_protocol_dict())
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    renamed = {(new_name if key == leaf else key): value for key, value in node.items()}
    node.clear()
    node.update(renamed)
    return yaml.safe_dump(data, sort_keys=False)


def test_every_bundled_protocol_loads_and_the_default_is_among_them():
    names = bundled_protocol_names()
    assert DEFAULT_PROTOCOL in names
    types = {load_protocol(name).protocol_type for name in names}
    assert types == {"treat_and_extend", "treat_and_treat", "fixed", "prn"}


def test_the_v1_protocol_has_the_specified_treat_and_extend_parameters():
    protocol = load_protocol(V1_PROTOCOL)
    assert protocol.protocol_type == "treat_and_extend"
    assert (protocol.min_interval_days, protocol.max_interval_days) == (28, 112)
    assert (protocol.extension_days, protocol.shortening_days) == (14, 14)
    rows = protocol.disease_transitions
    assert (rows.NAIVE.STABLE, rows.NAIVE.ACTIVE, rows.NAIVE.HIGHLY_ACTIVE) == (0.3, 0.6, 0.1)
    assert (rows.STABLE.STABLE, rows.STABLE.ACTIVE) == (0.85, 0.15)
    assert (rows.ACTIVE.STABLE, rows.ACTIVE.ACTIVE, rows.ACTIVE.HIGHLY_ACTIVE) == (0.2, 0.7, 0.1)
    assert (rows.HIGHLY_ACTIVE.STABLE, rows.HIGHLY_ACTIVE.HIGHLY_ACTIVE) == (0.05, 0.8)
    baseline = protocol.baseline_vision
    assert (baseline.mean, baseline.std, baseline.min, baseline.max) == (70, 10, 20, 90)


BAD_PROTOCOLS = [
    pytest.param(_without("name"), "$.name: required field is missing", id="missing-field"),
    pytest.param(
        _without("baseline_vision.std"),
        "$.baseline_vision.std: required field is missing",
        id="missing-nested-field",
    ),
    pytest.param(
        protocol_yaml(min_interval_days="four"),
        "$.min_interval_days: expected a whole number between 7 and 365 days, got 'four'",
        id="wrong-type",
    ),
    pytest.param(
        protocol_yaml(loading_doses=True),
        "$.loading_doses: expected a whole number between 0 and 12 injections, got True",
        id="bool-for-int",
    ),
    pytest.param(
        protocol_yaml(disease_transitions=[1, 2]),
        "$.disease_transitions: expected a mapping, got a list ([1, 2])",
        id="list-for-mapping",
    ),
    pytest.param(
        protocol_yaml(disease_transitions__STABLE__STABLE=0.80),
        "$.disease_transitions.STABLE: sums to 0.95; each row must sum to 1 +/- 0.001",
        id="row-not-summing-to-one",
    ),
    pytest.param(
        protocol_yaml(vision_change_model__stable_treated__std=-1),
        "$.vision_change_model.stable_treated.std: expected a finite number between 0 and 30 "
        "letters, got -1",
        id="negative-std",
    ),
    pytest.param(
        protocol_yaml(discontinuation_rules__poor_vision_probability=1.5),
        "$.discontinuation_rules.poor_vision_probability: expected a finite number between 0 "
        "and 1, got 1.5",
        id="probability-above-one",
    ),
    pytest.param(
        protocol_yaml(min_interval_days=120),
        "$.max_interval_days: is 112, below min_interval_days 120; it must be >= min_interval_days",
        id="min-interval-above-max",
    ),
    pytest.param(
        protocol_yaml(baseline_vision__min=90, baseline_vision__max=20),
        "$.baseline_vision.max: is 20, not above min 90; the range needs min < max",
        id="baseline-min-above-max",
    ),
    pytest.param(
        _renamed("disease_transitions.STABLE", "STABEL"),
        f"$.disease_transitions.STABEL: unknown state `STABEL`; {STATE_CHOICES}",
        id="unknown-state-row",
    ),
    pytest.param(
        _renamed("disease_transitions.STABLE.ACTIVE", "ACTIV"),
        f"$.disease_transitions.STABLE.ACTIV: unknown state `ACTIV`; {STATE_CHOICES}",
        id="unknown-state-column",
    ),
    pytest.param(
        protocol_yaml(treatment_effect_on_transitions__ACTIVE__multipliers__STABLEE=2.0),
        "$.treatment_effect_on_transitions.ACTIVE.multipliers.STABLEE: unknown state `STABLEE`; "
        + STATE_CHOICES,
        id="unknown-state-multiplier",
    ),
    pytest.param(
        protocol_yaml(protocol_type="weekly"),
        "$.protocol_type: invalid enum value 'weekly'; expected one of treat_and_extend, fixed, prn",
        id="unknown-protocol-type",
    ),
    pytest.param(
        protocol_yaml(
            treatment_effect_on_transitions__STABLE__multipliers={"STABLE": 0, "ACTIVE": 0}
        ),
        "$.treatment_effect_on_transitions.STABLE.multipliers: gives every transition from STABLE "
        "probability 0; at least one reachable state needs a multiplier above 0",
        id="multipliers-zero-a-row",
    ),
    pytest.param(
        "name: x\nbaseline: [1, 2\n",
        "is not valid YAML: did not find expected ',' or ']' (line 3, column 1)",
        id="not-yaml",
    ),
    pytest.param(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "is not valid YAML: the file is not text (it contains bytes that are not UTF-8 characters)",
        id="binary-file",
    ),
    pytest.param(
        "just a sentence of prose",
        "$: expected a YAML mapping of protocol fields, got a str",
        id="plain-text",
    ),
    pytest.param(
        "- 1\n- 2\n", "$: expected a YAML mapping of protocol fields, got a list", id="list"
    ),
    pytest.param("", "file is empty; expected a YAML mapping of protocol fields", id="empty-file"),
    pytest.param(
        "# only a comment\n",
        "file is empty; expected a YAML mapping of protocol fields",
        id="comment-only",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_PROTOCOLS)
def test_bad_protocol_gives_one_line_with_file_path_and_problem(text, expected):
    with pytest.raises(ProtocolError) as caught:
        load_protocol_text(text, source="bad.yaml")
    message = str(caught.value)
    assert message == f"bad.yaml: {expected}"
    assert "\n" not in message


def test_bad_protocol_file_is_named_by_its_file_name(tmp_path):
    path = tmp_path / "clinic.yaml"
    path.write_text(protocol_yaml(disease_transitions__ACTIVE__ACTIVE=0.5))
    with pytest.raises(
        ProtocolError, match=r"^clinic\.yaml: \$\.disease_transitions\.ACTIVE: sums to 0\.8;"
    ):
        load_protocol(path)


def test_missing_protocol_names_the_bundled_alternatives():
    with pytest.raises(ProtocolError) as caught:
        load_protocol("no_such_protocol")
    assert str(caught.value).startswith("no_such_protocol: no such file, and no bundled protocol")
    assert DEFAULT_PROTOCOL in str(caught.value)


def test_a_folder_given_as_protocol_is_named_as_a_folder(tmp_path):
    with pytest.raises(ProtocolError, match=r"is a directory; expected a protocol YAML file$"):
        load_protocol(tmp_path)


def test_unknown_keys_are_kept_and_reported_in_one_warning():
    text = protocol_yaml(mortality={"enabled": True}, baseline_vision__distribution="normal")
    with pytest.warns(UnknownProtocolKeysWarning) as caught:
        protocol = load_protocol_text(text, source="extra.yaml")
    assert len(caught) == 1
    assert str(caught[0].message) == (
        "extra.yaml: unknown keys kept but not used: $.baseline_vision.distribution, $.mortality"
    )
    assert protocol.extras == {
        "$.baseline_vision.distribution": "normal",
        "$.mortality": {"enabled": True},
    }


def test_known_file_loads_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        protocol = load_protocol(V1_PROTOCOL)
    assert protocol.extras == {}


def test_a_literal_extras_key_is_reported_not_taken_as_ours():
    with pytest.warns(UnknownProtocolKeysWarning, match=r"\$\.extras"):
        protocol = load_protocol_text(protocol_yaml(extras={"sneaky": 1}), source="x.yaml")
    assert protocol.extras == {"$.extras": {"sneaky": 1}}


def test_explorer_style_metadata_loads_unchanged():
    """Numeric versions and unquoted dates, as other explorers write them, are accepted."""
    text = protocol_yaml(
        version=1.0, author="Clinical Team", created_date=datetime.date(2024, 1, 15)
    )
    protocol = load_protocol_text(text, source="explorer.yaml")
    assert (protocol.version, protocol.author, protocol.created_date) == (
        "1.0",
        "Clinical Team",
        "2024-01-15",
    )


def test_missing_multipliers_default_to_no_effect():
    text = protocol_yaml(
        treatment_effect_on_transitions={"ACTIVE": {"multipliers": {"STABLE": 2.0}}}
    )
    protocol = load_protocol_text(text, source="x.yaml")
    effects = protocol.treatment_effect_on_transitions
    assert effects.ACTIVE.multipliers.STABLE == 2.0
    assert effects.ACTIVE.multipliers.ACTIVE == 1.0
    assert effects.STABLE.multipliers.STABLE == 1.0


def test_rows_within_tolerance_are_accepted():
    text = protocol_yaml(disease_transitions__STABLE__STABLE=0.8495)
    assert load_protocol_text(text, source="x.yaml").disease_transitions.STABLE.STABLE == 0.8495


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ProtocolError, match=r"^huge\.yaml: file is larger than"):
        load_protocol(path)


def _text_with(old: str, new: str) -> str:
    """The v1 protocol's own text with `old` (runs of spaces match any) replaced by `new`.

    Editing the text, not the data, keeps YAML literals such as ``.nan`` as a user writes them.
    """
    text = (resources.files("engine") / "protocols" / f"{V1_PROTOCOL}.yaml").read_text()
    pattern = r"\s+".join(re.escape(word) for word in old.split())
    changed, count = re.subn(pattern, lambda _: new, text, count=1)
    assert count == 1, old
    return changed


NON_FINITE_OR_ABSURD = [
    pytest.param(
        _text_with("stable_treated:           {mean: 0.5", "stable_treated: {mean: .nan"),
        "$.vision_change_model.stable_treated.mean: expected a finite number between -30 and 30 "
        "letters, got nan",
        id="nan-mean",
    ),
    pytest.param(
        _text_with("long_treatment_months: 48", "long_treatment_months: .inf"),
        "$.discontinuation_rules.long_treatment_months: expected a finite number between 0 and "
        "1,200 months, got inf",
        id="inf-months",
    ),
    pytest.param(
        _text_with("baseline_vision: {mean: 70, std: 10", "baseline_vision: {mean: 70, std: -.inf"),
        "$.baseline_vision.std: expected a finite number between 0 and 50 letters, got -inf",
        id="minus-inf-std",
    ),
    pytest.param(
        _text_with("STABLE:        {NAIVE: 0.0,", "STABLE:        {NAIVE: .NaN,"),
        "$.disease_transitions.STABLE.NAIVE: expected a finite number between 0 and 1, got nan",
        id="nan-probability",
    ),
    pytest.param(
        _text_with("multipliers: {STABLE: 1.15", "multipliers: {STABLE: 1.0e+308"),
        "$.treatment_effect_on_transitions.STABLE.multipliers.STABLE: expected a finite number "
        "between 0 and 100 (a factor), got 1e+308",
        id="huge-multiplier",
    ),
    pytest.param(
        _text_with("naive_treated:           {mean: 2.0", "naive_treated: {mean: 1.0e+308"),
        "$.vision_change_model.naive_treated.mean: expected a finite number between -30 and 30 "
        "letters, got 1e+308",
        id="huge-mean",
    ),
    pytest.param(
        _text_with("high_injection_count: 24", "high_injection_count: 1.0e+308"),
        "$.discontinuation_rules.high_injection_count: expected a whole number between 0 and "
        "10,000 injections, got 1e+308",
        id="huge-float-for-int",
    ),
    pytest.param(
        _text_with("high_injection_count: 24", "high_injection_count: 99999999999999999999999"),
        "$.discontinuation_rules.high_injection_count: expected a whole number between 0 and "
        "10,000 injections, got 99999999999999999999999",
        id="huge-int",
    ),
    pytest.param(
        _text_with("min_interval_days: 28", "min_interval_days: 1"),
        "$.min_interval_days: expected a whole number between 7 and 365 days, got 1",
        id="daily-visits",
    ),
    pytest.param(
        _text_with("loading_doses: 0", "loading_doses: 50"),
        "$.loading_doses: expected a whole number between 0 and 12 injections, got 50",
        id="fifty-loading-doses",
    ),
    pytest.param(
        _text_with("loading_doses: 0", "loading_doses: 0\nmortality: {rate: .nan}"),
        "$.mortality.rate: expected a finite number, got nan",
        id="nan-in-unknown-key",
    ),
]


@pytest.mark.parametrize(("text", "expected"), NON_FINITE_OR_ABSURD)
def test_nan_inf_and_absurd_magnitudes_are_refused_with_the_field_path(text, expected):
    with pytest.raises(ProtocolError) as caught:
        load_protocol_text(text, source="clinic.yaml")
    assert str(caught.value) == f"clinic.yaml: {expected}"


def test_every_number_in_the_schema_has_a_finite_range_documented_in_the_readme():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Protocol format", 1)[1].split("\n## ", 1)[0]
    fields = list(ranged_fields())
    # intervals and steps, transitions, multipliers, vision changes, baseline, rules
    assert len(fields) == 5 + 16 + 16 + 16 + 4 + 6
    for path, expected in fields:
        assert math.isfinite(expected.low) and math.isfinite(expected.high), path
        assert f"{expected.low:,g} to {expected.high:,g}" in section, path


def test_a_protocol_built_in_python_with_nan_is_refused_before_running():
    good = load_protocol(V1_PROTOCOL)
    bad = msgspec.structs.replace(
        good, baseline_vision=msgspec.structs.replace(good.baseline_vision, mean=math.nan)
    )
    with pytest.raises(ProtocolError, match=r"\$\.baseline_vision\.mean: expected a finite"):
        run_simulation(bad, n_patients=10, years=1)


def test_an_alias_bomb_is_refused_quickly_without_expanding():
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefghi", "bcdefghij", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    text = _text_with("loading_doses: 0", "loading_doses: 0\n" + "\n".join(lines))
    started = time.perf_counter()
    with pytest.raises(ProtocolError) as caught:
        load_protocol_text(text, source="bomb.yaml")
    assert time.perf_counter() - started < 1.0
    assert str(caught.value).startswith(
        "bomb.yaml: holds more than 20,000 values once its aliases are expanded"
    )


def test_deep_nesting_is_refused():
    text = _text_with("loading_doses: 0", "loading_doses: 0\nx: " + "[" * 500 + "]" * 500)
    with pytest.raises(ProtocolError, match=r"^deep\.yaml: nests deeper than 40 levels"):
        load_protocol_text(text, source="deep.yaml")


def test_anchors_and_aliases_within_bounds_are_accepted():
    text = _text_with("stable_treated: {mean: 0.5", "stable_treated: &same {mean: 0.5")
    text = re.sub(r"stable_untreated: +\{[^}]*\}", "stable_untreated: *same", text)
    protocol = load_protocol_text(text, source="aliases.yaml")
    assert protocol.vision_change_model.stable_untreated.mean == 0.5


def test_an_oversized_text_is_refused_like_an_oversized_file():
    with pytest.raises(ProtocolError, match=r"^upload\.yaml: file is larger than"):
        load_protocol_text("#" * (2 << 20), source="upload.yaml")


def test_a_key_written_twice_is_refused_not_silently_overridden():
    text = _text_with("min_interval_days: 28", "min_interval_days: 28\nmin_interval_days: 7")
    with pytest.raises(ProtocolError) as caught:
        load_protocol_text(text, source="twice.yaml")
    assert str(caught.value) == (
        "twice.yaml: repeats the key `min_interval_days` in one mapping (line 9); YAML would "
        "silently keep only the last value, so write it once"
    )


def test_a_protocol_built_in_python_with_numpy_numbers_is_checked_like_a_file():
    good = load_protocol(V1_PROTOCOL)
    baseline = msgspec.structs.replace(good.baseline_vision, mean=np.float64(60.0))
    assert validate_protocol(msgspec.structs.replace(good, baseline_vision=baseline)).name
    odd = msgspec.structs.replace(
        good, baseline_vision=msgspec.structs.replace(baseline, std=object())
    )
    with pytest.raises(ProtocolError, match=r"^<protocol>: \$: holds a value that is not plain"):
        validate_protocol(odd)
