"""Time-based protocols: the file and its parameter files load, or fail with one clear line.

Fixtures are built in tmp_path from the bundled time-based protocol (our own files), changed
one field at a time; the origin's reference files, when present beside the repository, are a
second, outside check (skipped otherwise).
"""

from __future__ import annotations

import configparser
import copy
import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import msgspec.yaml
import pytest
import yaml

from engine.errors import ProtocolError
from engine.model.protocol_loader import (
    UnknownProtocolKeysWarning,
    bundled_protocol_names,
    load_protocol,
    load_protocol_text,
    resolve_protocol_path,
    validate_protocol,
)
from engine.model.v2.checks import parse_band
from engine.model.v2.population_tables import band_bounds
from engine.model.v2.schema import TimeBasedProtocol

ROOT = Path(__file__).resolve().parents[2]
# The origin's files beside the repository; AMDSIM_REFERENCE_FORMATS points elsewhere (a
# worktree whose parent has no shared/ folder).
REFERENCE = (
    Path(os.environ.get("AMDSIM_REFERENCE_FORMATS", ROOT / ".." / "shared" / "reference-formats"))
    / "time-based"
)
BUNDLED = "time_based_uncalibrated_treat_and_extend"
PROTOCOL_FILE = "protocol.yaml"
# Role -> file name in the bundled parameter folder (the mortality table by convention).
FILES = {
    "disease_transitions": "disease_transitions.yaml",
    "treatment_effect": "treatment_effect.yaml",
    "vision": "vision.yaml",
    "discontinuation": "discontinuation.yaml",
    "demographics": "demographics.yaml",
    "mortality": "uk_mortality_wet_amd.yaml",
}
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason="../shared/reference-formats is not beside the repository"
)


def _bundled_folder() -> Path:
    return resolve_protocol_path(BUNDLED).parent


def _decode(path: Path) -> dict[str, Any]:
    return msgspec.yaml.decode(path.read_bytes())


def _set(document: dict[str, Any], dotted: str, value: Any) -> None:
    """Set (or, with value ``...``, delete) the key at a dotted path (list items by index).

    A key that reads as a whole number is taken as one when the mapping has int keys.
    """
    node = document
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[_key(node, key)]
    if value is ...:
        del node[_key(node, leaf)]
    else:
        node[_key(node, leaf)] = value


def _key(node: Any, key: str) -> Any:
    if isinstance(node, list):
        return int(key)
    if key.isdigit() and (not node or any(isinstance(k, int) for k in node)):
        return int(key)
    return key


def write_protocol(
    folder: Path,
    protocol: dict[str, Any] | None = None,
    files: dict[str, dict[str, Any]] | None = None,
    skip: tuple[str, ...] = (),
) -> Path:
    """The bundled time-based protocol in `folder`, with changes by dotted path.

    `protocol` changes the protocol file, `files[role]` a parameter file; a role in `skip`
    is not written. Returns the protocol's path.
    """
    source = _bundled_folder()
    document = _decode(source / f"{BUNDLED}.yaml")
    for dotted, value in (protocol or {}).items():
        _set(document, dotted, value)
    (folder / "time_based_parameters").mkdir(parents=True, exist_ok=True)
    for role, name in FILES.items():
        if role in skip:
            continue
        data = _decode(source / "time_based_parameters" / name)
        for dotted, value in (files or {}).get(role, {}).items():
            _set(data, dotted, value)
        text = yaml.safe_dump(data, sort_keys=False)
        (folder / "time_based_parameters" / name).write_text(text)
    path = folder / PROTOCOL_FILE
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def load_quietly(path: Path | str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownProtocolKeysWarning)
        return load_protocol(path)


def refused(path: Path) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        load_protocol(path)
    message = str(caught.value)
    assert "\n" not in message
    return caught.value


# --- the bundled protocol ---------------------------------------------------------------------
def test_the_bundled_time_based_protocol_loads_with_every_file_recorded():
    protocol = load_quietly(BUNDLED)
    assert isinstance(protocol, TimeBasedProtocol)
    assert "UNCALIBRATED" in protocol.name
    assert protocol.protocol_type == "treat_and_extend"
    assert protocol.parameters is not None and protocol.extras == {}
    assert [s.role for s in protocol.files] == list(FILES)
    folder = _bundled_folder()
    for record in protocol.files:
        data = (folder / record.path).read_bytes()
        assert record.sha256 == hashlib.sha256(data).hexdigest()
        assert record.text == data.decode()
    mortality = protocol.files[-1]
    assert mortality.path == "time_based_parameters/uk_mortality_wet_amd.yaml"
    assert protocol.mortality_parameters_file == mortality.path
    assert protocol.parameters.mortality.mortality_rates.male[70] == 0.0186
    assert protocol.parameters.mortality.hazard_ratios.primary == 1.36


def test_bundled_names_list_protocols_and_not_their_parameter_files():
    names = bundled_protocol_names()
    assert BUNDLED in names
    assert not any(name in names for name in ("vision", "demographics", "uk_mortality_wet_amd"))


def test_setup_cfg_ships_every_bundled_protocol_and_parameter_file():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = config["options.package_data"]["engine"].split()
    engine = Path(str(resources.files("engine")))
    shipped = [p.relative_to(engine).as_posix() for p in (engine / "protocols").rglob("*.yaml")]
    assert len(shipped) >= 10
    for name in shipped:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


@needs_reference
def test_the_bundled_parameters_are_the_origins_values_for_every_key_read():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownProtocolKeysWarning)
        origin = load_protocol(REFERENCE / "eylea_time_based.yaml")
    ours = load_quietly(BUNDLED)
    assert ours.parameters == origin.parameters
    assert ours.baseline_vision_distribution == origin.baseline_vision_distribution
    for field in ("loading_dose_injections", "min_interval_days", "max_interval_days"):
        assert getattr(ours, field) == getattr(origin, field)
    for ours_file, origin_file in zip(ours.files, origin.files, strict=True):
        assert ours_file.text != origin_file.text  # written fresh, not copied


# --- the origin's reference files -------------------------------------------------------------
@needs_reference
def test_eylea_time_based_loads_with_one_warning_listing_its_placeholders():
    with pytest.warns(UnknownProtocolKeysWarning) as caught:
        protocol = load_protocol(REFERENCE / "eylea_time_based.yaml")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("eylea_time_based.yaml: keys not used")
    for key in ("disease_transitions", "vision_change_model", "treatment_effect_on_transitions"):
        assert f"$.{key}" in message
    assert "parameters/vision.yaml: $.vision_floor_discontinuation" in message
    assert "$.discontinuation_parameters.death" in message
    assert "parameters/uk_mortality_wet_amd.yaml: $.metadata" in message
    assert "$.wet_amd_mortality_rates" in message
    assert "$.disease_transitions" in protocol.extras
    assert "parameters/vision.yaml: $.misc_parameters.fortnights_per_day" in protocol.extras
    assert protocol.parameters.demographics.age_distribution_weights["95+"] == 0.01
    assert protocol.files[-1].path == "parameters/uk_mortality_wet_amd.yaml"


@needs_reference
def test_the_origins_treat_and_treat_file_is_refused_for_clinical_improvements():
    error = refused(REFERENCE / "aflibercept_treat_and_treat_time_based.yaml")
    assert error.source == "aflibercept_treat_and_treat_time_based.yaml"
    assert error.path == "$.clinical_improvements.enabled"
    assert "set enabled: false or remove the block" in error.problem
    assert "time-based engine never reads it" in error.problem


@needs_reference
def test_the_treat_and_treat_file_with_improvements_disabled_loads(tmp_path):
    text = (REFERENCE / "aflibercept_treat_and_treat_time_based.yaml").read_text()
    assert text.count("enabled: true") == 1
    (tmp_path / "tt.yaml").write_text(text.replace("enabled: true", "enabled: false"))
    shutil.copytree(REFERENCE / "parameters", tmp_path / "parameters")
    with pytest.warns(UnknownProtocolKeysWarning, match=r"\$\.clinical_improvements"):
        protocol = load_protocol(tmp_path / "tt.yaml")
    assert protocol.protocol_type == "fixed"
    assert protocol.baseline_vision_distribution.type == "beta_with_threshold"
    assert protocol.loading_dose_injections == 3


# --- the protocol file ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "distribution",
    [
        {"type": "normal", "mean": 60, "std": 12, "min": 10, "max": 95},
        {"mean": 60, "std": 12, "min": 10, "max": 95},  # no type: normal
        {"type": "uniform", "min": 30, "max": 80},
        {"type": "beta", "alpha": 3.5, "beta": 2.0, "min": 5, "max": 98},
        {
            "type": "beta_with_threshold",
            "alpha": 3.5,
            "beta": 2.0,
            "min": 5,
            "max": 98,
            "threshold": 70,
            "threshold_reduction": 0.6,
        },
    ],
)
def test_every_baseline_distribution_type_loads(tmp_path, distribution):
    path = write_protocol(tmp_path, {"baseline_vision_distribution": distribution})
    loaded = load_quietly(path).baseline_vision_distribution
    assert loaded.type == distribution.get("type", "normal")
    assert (loaded.min, loaded.max) == (distribution["min"], distribution["max"])


@pytest.mark.parametrize(
    ("distribution", "path", "problem"),
    [
        ({"type": "normal", "mean": 60, "min": 10, "max": 95}, "std", "required for type normal"),
        ({"type": "beta", "alpha": 2, "min": 5, "max": 98}, "beta", "required for type beta"),
        (
            {"type": "beta_with_threshold", "alpha": 2, "beta": 2, "threshold": 70},
            "threshold_reduction",
            "required for type beta_with_threshold",
        ),
        ({"type": "uniform", "min": 80, "max": 30}, "max", "the range needs min < max"),
        ({"type": "gamma", "min": 0, "max": 100}, "type", "expected one of normal, uniform"),
        ({"type": "beta", "alpha": 0.5, "beta": 2}, "alpha", "between 1 and 100"),
    ],
)
def test_an_incomplete_baseline_distribution_is_refused_with_its_path(
    tmp_path, distribution, path, problem
):
    error = refused(write_protocol(tmp_path, {"baseline_vision_distribution": distribution}))
    assert (error.source, error.path) == (PROTOCOL_FILE, f"$.baseline_vision_distribution.{path}")
    assert problem in error.problem


@pytest.mark.parametrize(
    "kind", ["treat_and_extend", "treat_and_treat", "fixed", "fixed_interval", "prn"]
)
def test_every_protocol_type_loads(tmp_path, kind):
    changes = {"protocol_type": kind, "max_days_between_injections": 84}
    assert load_quietly(write_protocol(tmp_path, changes)).protocol_type == kind


def test_phases_and_the_injection_rule_load(tmp_path):
    phases = [
        {
            "start_day": 0,
            "protocol_type": "fixed",
            "min_interval_days": 56,
            "max_interval_days": 56,
        },
        {
            "start_day": 364,
            "protocol_type": "prn",
            "min_interval_days": 28,
            "max_interval_days": 28,
            "max_days_between_injections": 84,
        },
    ]
    path = write_protocol(tmp_path, {"phases": phases, "injection_rule": "when_active"})
    protocol = load_quietly(path)
    assert [p.start_day for p in protocol.phases] == [0, 364]
    assert protocol.phases[1].max_days_between_injections == 84
    assert protocol.injection_rule == "when_active"


@pytest.mark.parametrize(
    ("phase_changes", "path", "problem"),
    [
        ({"1.start_day": 0}, "$.phases[1].start_day", "list phases in order of start_day"),
        ({"1.min_interval_days": 60}, "$.phases[1].max_interval_days", "below min_interval_days"),
        ({"0.protocol_type": "weekly"}, "$.phases[0].protocol_type", "expected one of"),
        ({"0.start_day": -1}, "$.phases[0].start_day", "between 0 and 3,650 days"),
    ],
)
def test_bad_phases_are_refused_with_their_path(tmp_path, phase_changes, path, problem):
    document: dict[str, Any] = {
        "phases": [
            {
                "start_day": 0,
                "protocol_type": "fixed",
                "min_interval_days": 56,
                "max_interval_days": 56,
            },
            {
                "start_day": 364,
                "protocol_type": "prn",
                "min_interval_days": 28,
                "max_interval_days": 28,
            },
        ]
    }
    for dotted, value in phase_changes.items():
        _set(document, f"phases.{dotted}", value)
    error = refused(write_protocol(tmp_path, document))
    assert (error.source, error.path) == (PROTOCOL_FILE, path)
    assert problem in error.problem


@pytest.mark.parametrize(
    ("changes", "path", "problem"),
    [
        ({"update_interval_days": 7}, "$.update_interval_days", "every 14 days"),
        ({"transition_model": "monthly"}, "$.transition_model", "only fortnightly"),
        ({"model_type": "visit_based"}, "$.model_type", "the only model_type amdsim runs"),
        (
            {"clinical_improvements": {"enabled": True, "response_types": {}}},
            "$.clinical_improvements.enabled",
            "set enabled: false or remove the block",
        ),
        (
            {"clinical_improvements": {"enabled": "yes please"}},
            "$.clinical_improvements.enabled",
            "expected true or false",
        ),
        ({"min_interval_days": 120}, "$.max_interval_days", "below min_interval_days"),
        ({"population_type": "martians"}, "$.population_type", "clinical_trial, real_world"),
        ({"loading_dose_injections": 13}, "$.loading_dose_injections", "between 0 and 12"),
        ({"name": ...}, "$.name", "required field is missing"),
        ({"vision_parameters_file": " "}, "$.vision_parameters_file", "expected a file path"),
    ],
)
def test_refusals_in_the_protocol_name_their_path(tmp_path, changes, path, problem):
    error = refused(write_protocol(tmp_path, changes))
    assert (error.source, error.path) == (PROTOCOL_FILE, path)
    assert problem in error.problem


def test_clinical_improvements_disabled_is_reported_as_not_used(tmp_path):
    path = write_protocol(tmp_path, {"clinical_improvements": {"enabled": False, "x": 1}})
    with pytest.warns(UnknownProtocolKeysWarning) as caught:
        protocol = load_protocol(path)
    assert len(caught) == 1
    assert "$.clinical_improvements" in protocol.extras


def test_population_type_must_be_real_world_when_the_file_has_no_types(tmp_path):
    files = {"demographics": {"population_type_adjustments": ...}}
    assert load_quietly(write_protocol(tmp_path / "a", files=files)).population_type == "real_world"
    error = refused(write_protocol(tmp_path / "b", {"population_type": "clinical_trial"}, files))
    assert error.path == "$.population_type"
    assert "has no population_type_adjustments" in error.problem


# --- parameter files --------------------------------------------------------------------------
def test_a_missing_parameter_file_names_the_file_and_the_key(tmp_path):
    error = refused(write_protocol(tmp_path, skip=("vision",)))
    assert (error.source, error.path) == (PROTOCOL_FILE, "$.vision_parameters_file")
    assert "time_based_parameters/vision.yaml" in error.problem
    assert "no such file" in error.problem


def test_a_missing_mortality_file_names_the_convention(tmp_path):
    error = refused(write_protocol(tmp_path, skip=("mortality",)))
    assert (error.source, error.path) == (PROTOCOL_FILE, "$.mortality_parameters_file")
    assert "time_based_parameters/uk_mortality_wet_amd.yaml" in error.problem
    assert "folder of demographics_parameters_file" in error.problem


def test_a_named_mortality_file_is_read_relative_to_the_protocol(tmp_path):
    path = write_protocol(tmp_path, {"mortality_parameters_file": "life.yaml"})
    shutil.move(tmp_path / "time_based_parameters" / FILES["mortality"], tmp_path / "life.yaml")
    protocol = load_quietly(path)
    assert protocol.files[-1].path == "life.yaml"
    assert protocol.mortality_parameters_file == "life.yaml"


def test_parameter_files_are_found_relative_to_the_protocol_not_the_working_dir(
    tmp_path, monkeypatch
):
    write_protocol(tmp_path / "deep" / "er")
    monkeypatch.chdir(tmp_path)
    assert load_quietly(Path("deep/er") / PROTOCOL_FILE).parameters is not None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_parameter_file_that_is_a_pipe_or_device_is_refused_without_reading_it(tmp_path):
    """Reading a pipe would block and a device like /dev/zero would never end."""
    os.mkfifo(tmp_path / "pipe.yaml")
    path = write_protocol(tmp_path, {"vision_parameters_file": "pipe.yaml"})
    error = refused(path)
    assert error.path == "$.vision_parameters_file"
    assert "not a regular file" in error.problem


def test_a_parameter_file_that_is_a_folder_or_not_yaml_fails_cleanly(tmp_path):
    path = write_protocol(tmp_path / "a", {"vision_parameters_file": "time_based_parameters"})
    assert refused(path).path == "$.vision_parameters_file"
    path = write_protocol(tmp_path / "b")
    (tmp_path / "b" / "time_based_parameters" / "vision.yaml").write_text("[unclosed")
    error = refused(path)
    assert error.source == "time_based_parameters/vision.yaml"
    assert error.problem.startswith("is not valid YAML")
    (tmp_path / "b" / "time_based_parameters" / "vision.yaml").write_text("- 1\n- 2\n")
    error = refused(path)
    assert (error.path, error.problem) == (
        "$",
        "expected a YAML mapping of vision parameters, got a list",
    )


@pytest.mark.parametrize(
    ("role", "changes", "path", "problem"),
    [
        (
            "demographics",
            {"age_distribution_weights.50-54": -1},
            "$.age_distribution_weights.50-54",
            "between 0 and 1e+06",
        ),
        (
            "demographics",
            {"age_distribution_weights.50-54": "many"},
            "$.age_distribution_weights.50-54",
            "got 'many'",
        ),
        (
            "demographics",
            {"gender_distribution_by_age.95+": 1.2},
            "$.gender_distribution_by_age.95+",
            "between 0 and 1",
        ),
        (
            "demographics",
            {"survival_bias_factors.80-84": float("nan")},
            "$.survival_bias_factors.80-84",
            "got nan",
        ),
        (
            "demographics",
            {"population_type_adjustments.real_world.mortality_risk_multiplier": 1000},
            "$.population_type_adjustments.real_world.mortality_risk_multiplier",
            "between 0 and 100",
        ),
        (
            "mortality",
            {"mortality_rates.male.70": 1.5},
            "$.mortality_rates.male[70]",
            "between 0 and 1",
        ),
        (
            "mortality",
            {"mortality_rates.female.80": None},
            "$.mortality_rates.female[80]",
            "got None",
        ),
        (
            "mortality",
            {"hazard_ratios.primary": 50},
            "$.hazard_ratios.primary",
            "between 0.1 and 10",
        ),
        (
            "discontinuation",
            {"discontinuation_priority.7": "poor_vision"},
            "$.discontinuation_priority[7]",
            "lists poor_vision a second time",
        ),
        (
            "discontinuation",
            {"discontinuation_priority.500": "xyz"},
            "$.discontinuation_priority[500]",
            "expected one of death",
        ),
        (
            "discontinuation",
            {"discontinuation_priority.500": "poor_vision", "discontinuation_priority.2": ...},
            "$.discontinuation_priority[500]",
            "outside 0-100",
        ),
        (
            "discontinuation",
            {"discontinuation_parameters.attrition.time_adjustment.months_0_12": 101},
            "$.discontinuation_parameters.attrition.time_adjustment.months_0_12",
            "between 0 and 100",
        ),
        (
            "vision",
            {"vision_ceilings.high_baseline_threshold": 40},
            "$.vision_ceilings.high_baseline_threshold",
            "below low_baseline_threshold",
        ),
        (
            "vision",
            {"treatment_effect_decay.gradual_decline_end_days": 200},
            "$.treatment_effect_decay.faster_decline_end_days",
            "below gradual_decline_end_days",
        ),
        (
            "vision",
            {"hemorrhage_risk.hemorrhage_loss_min": 40},
            "$.hemorrhage_risk.hemorrhage_loss_max",
            "below hemorrhage_loss_min",
        ),
        (
            "vision",
            {"vision_decline_fortnightly.ACTIVE.treated.std": -1},
            "$.vision_decline_fortnightly.ACTIVE.treated.std",
            "between 0 and 30",
        ),
        (
            "vision",
            {"vision_decline_fortnightly.ACTIV": {}},
            "$.vision_decline_fortnightly.ACTIV",
            "unknown state",
        ),
        (
            "disease_transitions",
            {"fortnightly_transitions.STABLE.ACTIVE": 0.5},
            "$.fortnightly_transitions.STABLE",
            "must sum to 1 +/- 0.001",
        ),
        (
            "treatment_effect",
            {"treatment_multipliers.STABLE.multipliers": {"STABLE": 0, "ACTIVE": 0}},
            "$.treatment_multipliers.STABLE.multipliers",
            "probability 0 at full effect",
        ),
        (
            "treatment_effect",
            {"treatment_decay.half_life_days": 0},
            "$.treatment_decay.half_life_days",
            "between 1 and 3,650",
        ),
    ],
)
def test_bad_values_in_parameter_files_name_the_file_and_path(
    tmp_path, role, changes, path, problem
):
    error = refused(write_protocol(tmp_path, files={role: changes}))
    assert error.source == f"time_based_parameters/{FILES[role]}"
    assert error.path == path
    assert problem in error.problem
    assert str(error).startswith(f"time_based_parameters/{FILES[role]}: {path}: ")


@pytest.mark.parametrize(
    ("table", "bands", "path", "problem"),
    [
        ("age_distribution_weights", {"50-5x": 1}, ".50-5x", "is not an age band"),
        ("age_distribution_weights", {"60-50": 1}, ".60-50", "is not an age band"),
        (
            "age_distribution_weights",
            {"50-59": 1, "55-64": 1},
            ".55-64",
            "overlaps the band '50-59'",
        ),
        ("age_distribution_weights", {"90+": 1, "92-99": 1}, ".92-99", "overlaps the band '90+'"),
        ("age_distribution_weights", {"50-59": 0}, "", "no weight above 0"),
        ("age_distribution_weights", {}, "", "has no age band"),
        ("gender_distribution_by_age", {"50-59": 0.5, "65-69": 0.5}, "", "no band for ages 60-64"),
        ("survival_bias_factors", {"120+": 0.9}, ".120+", "is not an age band"),
    ],
)
def test_bad_age_bands_are_refused(tmp_path, table, bands, path, problem):
    error = refused(write_protocol(tmp_path, files={"demographics": {table: bands}}))
    assert error.source == "time_based_parameters/demographics.yaml"
    assert error.path == f"$.{table}{path}"
    assert problem in error.problem


def test_band_keys_parse_to_half_open_age_ranges():
    assert parse_band("50-59") == (50, 60)
    assert parse_band("95+") == (95, 100)
    # An open band is five years wide wherever it starts (docs/model.md 2), as sampled.
    assert parse_band("85+") == (85, 90) == band_bounds("85+")
    assert parse_band(" 60 - 64 ") == (60, 65)
    assert parse_band("64-60") is None and parse_band("100+") is None and parse_band("x") is None


@pytest.mark.parametrize(
    ("changes", "path", "problem"),
    [
        ({"mortality_rates.male.73": ...}, "$.mortality_rates.male", "without 73"),
        ({"mortality_rates.female": {}}, "$.mortality_rates.female", "is empty"),
        ({"mortality_rates.female.130": 0.9}, "$.mortality_rates.female[130]", "outside 0-120"),
        (
            {"mortality_rates.male": {"fifty": 0.1}},
            "$.mortality_rates.male",
            "expected whole numbers as keys",
        ),
    ],
)
def test_life_tables_must_be_contiguous_for_each_sex(tmp_path, changes, path, problem):
    error = refused(write_protocol(tmp_path, files={"mortality": changes}))
    assert (error.source, error.path) == ("time_based_parameters/uk_mortality_wet_amd.yaml", path)
    assert problem in error.problem


def test_unknown_keys_of_every_file_make_one_warning_naming_file_and_path(tmp_path):
    path = write_protocol(
        tmp_path,
        {"monitoring": {"oct": "quarterly"}},
        {
            "vision": {"misc_parameters.fortnights_per_day": 0.0714},
            "demographics": {"population_type_adjustments.real_world.note": "x"},
        },
    )
    with pytest.warns(UnknownProtocolKeysWarning) as caught:
        protocol = load_protocol(path)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        "protocol.yaml: keys not used (kept, read by nothing): $.monitoring; "
        "time_based_parameters/vision.yaml: $.misc_parameters.fortnights_per_day; "
        "time_based_parameters/demographics.yaml: "
        "$.population_type_adjustments.real_world.note"
    )
    assert protocol.extras["$.monitoring"] == {"oct": "quarterly"}
    assert (
        protocol.extras["time_based_parameters/vision.yaml: $.misc_parameters.fortnights_per_day"]
        == 0.0714
    )


# --- text, manifests, validate_protocol ---------------------------------------------------------
def test_text_without_embedded_parameters_is_refused():
    text = (_bundled_folder() / f"{BUNDLED}.yaml").read_bytes()
    with pytest.raises(
        ProtocolError, match="found relative to the protocol file; load it from a file"
    ):
        load_protocol_text(text, source="upload.yaml")


def test_a_loaded_protocol_survives_the_manifest_and_reloads_from_text_alone():
    protocol = load_quietly(BUNDLED)
    stored = msgspec.json.decode(msgspec.json.encode(protocol), type=TimeBasedProtocol)
    assert stored == protocol
    document = msgspec.to_builtins(protocol)
    del document["extras"]  # ours, not the file's: a literal `extras` key is reported
    text = yaml.safe_dump(document, sort_keys=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownProtocolKeysWarning)
        again = load_protocol_text(text, source="manifest")
    assert again.parameters == protocol.parameters
    assert again.files == protocol.files
    assert validate_protocol(protocol) is protocol


def test_validate_protocol_checks_embedded_parameters():
    protocol = load_quietly(BUNDLED)
    vision = protocol.parameters.vision
    bad_ceilings = msgspec.structs.replace(
        vision.vision_ceilings, low_baseline_threshold=float("nan")
    )
    bad = msgspec.structs.replace(
        protocol,
        parameters=msgspec.structs.replace(
            protocol.parameters,
            vision=msgspec.structs.replace(vision, vision_ceilings=bad_ceilings),
        ),
    )
    with pytest.raises(ProtocolError) as caught:
        validate_protocol(bad, source="built")
    assert caught.value.path == "$.parameters.vision.vision_ceilings.low_baseline_threshold"
    with pytest.raises(ProtocolError, match="found relative to the protocol file"):
        validate_protocol(msgspec.structs.replace(protocol, parameters=None))


def test_embedded_parameters_get_the_cross_file_checks_under_their_path():
    protocol = load_quietly(BUNDLED)
    document = msgspec.to_builtins(protocol)
    document["parameters"]["disease_transitions"]["fortnightly_transitions"]["ACTIVE"]["STABLE"] = (
        0.5
    )
    with pytest.raises(ProtocolError) as caught:
        load_protocol_text(yaml.safe_dump(document), source="manifest")
    assert caught.value.path == "$.parameters.disease_transitions.fortnightly_transitions.ACTIVE"


def test_the_protocol_is_not_changed_by_loading_twice():
    first, second = load_quietly(BUNDLED), load_quietly(BUNDLED)
    assert first == second
    assert copy.deepcopy(first) == first


# --- the command line -------------------------------------------------------------------------
AMDSIM = shutil.which("amdsim", path=str(Path(sys.executable).parent)) or shutil.which("amdsim")


def _amdsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert AMDSIM is not None, "the amdsim console script is not installed (pip install -e .)"
    return subprocess.run(
        [AMDSIM, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "300"},
    )


def test_amdsim_validate_accepts_the_bundled_time_based_protocol_and_refuses_one_line(tmp_path):
    done = _amdsim("validate", BUNDLED, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "valid - Time-based T&E (UNCALIBRATED" in done.stdout
    assert "time-based treat_and_extend, 28-112 days, 3 loading doses" in done.stdout
    assert done.stderr == ""
    path = write_protocol(tmp_path, {"update_interval_days": 28})
    done = _amdsim("validate", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: protocol.yaml: $.update_interval_days: is 28;")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
