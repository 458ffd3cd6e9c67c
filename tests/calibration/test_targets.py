"""Targets files: a good one loads; every kind of bad one is one clear line (exit 2 in the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.calibration.targets import load_targets, target_protocol_path
from engine.cli import main
from engine.errors import TargetsError

PROTOCOL = (
    Path(__file__).resolve().parents[2]
    / "engine"
    / "protocols"
    / "time_based_uncalibrated_treat_and_extend.yaml"
)
GOOD_TARGET = (
    "  - {id: inj, role: calibration, protocol: PROTO, figure: injections, from_day: 0, "
    "to_day: 364, value: 7.2, ci: [6.8, 7.6], source: ALTAIR}\n"
)


def write(tmp_path: Path, body: str, name: str = "targets.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body.replace("PROTO", str(PROTOCOL)), encoding="utf-8")
    return path


def test_a_good_file_loads_with_its_defaults_and_resolves_protocols_relative_to_itself(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.yaml").write_text("x: 1\n")
    body = "targets:\n" + GOOD_TARGET.replace("PROTO", "sub/p.yaml")
    loaded = load_targets(write(tmp_path, body))
    assert (loaded.patients, loaded.seed) == (20_000, 1)
    target = loaded.targets[0]
    assert target.view == "locf" and target.ci == (6.8, 7.6)
    assert target_protocol_path(tmp_path / "targets.yaml", target) == tmp_path / "sub" / "p.yaml"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", "file is empty"),
        ("targets: [\n", "is not valid YAML"),
        ("targets: []\n", "$.targets: is empty"),
        ("patients: 50\ntargets:\n" + GOOD_TARGET, "$.patients"),
        ("colour: red\ntargets:\n" + GOOD_TARGET, "colour"),
        ("targets:\n" + GOOD_TARGET.replace("injections", "happiness"), "$.targets[0].figure"),
        ("targets:\n" + GOOD_TARGET.replace("to_day: 364, ", ""), "needs from_day and to_day"),
        ("targets:\n" + GOOD_TARGET.replace("to_day: 364", "to_day: 0"), "must be after from_day"),
        ("targets:\n" + GOOD_TARGET.replace("[6.8, 7.6]", "[7.3, 7.6]"), "does not contain"),
        ("targets:\n" + GOOD_TARGET.replace("[6.8, 7.6]", "[7.2, 7.2]"), "zero width"),
        ("targets:\n" + GOOD_TARGET.replace("value: 7.2", "value: .nan"), "$.targets[0].value"),
        ("targets:\n" + GOOD_TARGET + GOOD_TARGET, "'inj' is used twice"),
        (
            "targets:\n"
            + GOOD_TARGET.replace(
                "figure: injections, from_day: 0, to_day: 364",
                "figure: va_change, day: 9, view: entered",
            ),
            "is for injections targets",
        ),
        ("targets:\n" + GOOD_TARGET.replace("id: inj", "id: Inj!"), "must be 1-64"),
        ("targets:\n" + GOOD_TARGET.replace("PROTO", "nowhere.yaml"), "is not a file"),
        (
            "targets:\n"
            + GOOD_TARGET.replace(
                "figure: injections, from_day: 0, to_day: 364", "figure: va_change"
            ),
            "needs `day`",
        ),
        (
            "targets:\n"
            + GOOD_TARGET.replace(
                "figure: injections, from_day: 0, to_day: 364", "figure: gained_15, day: 364"
            ).replace("value: 7.2, ci: [6.8, 7.6]", "value: 99, ci: [90, 120]"),
            "between 0 and 100",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_the_field(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(TargetsError) as caught:
        load_targets(write(tmp_path, body))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("targets.yaml")
    assert expected in message


def test_a_missing_targets_file_is_exit_2_with_one_line(tmp_path: Path, capsys) -> None:
    code = main(["check-targets", "--targets", str(tmp_path / "none.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no such file" in lines[0] and "Traceback" not in err
