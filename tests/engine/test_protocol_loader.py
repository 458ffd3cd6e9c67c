"""Protocol files: bundled ones load, bad ones fail with one line naming file, path, problem."""

from __future__ import annotations

import copy
import datetime
import warnings

import pytest
import yaml

from engine.errors import ProtocolError
from engine.protocol_loader import (
    DEFAULT_PROTOCOL,
    UnknownProtocolKeysWarning,
    bundled_protocol_names,
    load_protocol,
    load_protocol_text,
)
from tests.helpers import default_protocol_dict, protocol_yaml

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
    assert types == {"treat_and_extend", "fixed", "prn"}


def test_default_protocol_has_the_specified_treat_and_extend_parameters():
    protocol = load_protocol()
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
        "$.min_interval_days: expected `int`, got `str` ('four')",
        id="wrong-type",
    ),
    pytest.param(
        protocol_yaml(loading_doses=True),
        "$.loading_doses: expected `int`, got `bool` (True)",
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
        "$.vision_change_model.stable_treated.std: expected `float` >= 0.0, got -1",
        id="negative-std",
    ),
    pytest.param(
        protocol_yaml(discontinuation_rules__poor_vision_probability=1.5),
        "$.discontinuation_rules.poor_vision_probability: expected `float` <= 1.0, got 1.5",
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
        protocol = load_protocol()
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
