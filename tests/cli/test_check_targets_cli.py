"""`amdsim check-targets`: tables, JSON, --strict, the protocol filter and the charts."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

from engine.cli import main

PROTOCOL = (
    Path(__file__).resolve().parents[2]
    / "engine"
    / "protocols"
    / "time_based_uncalibrated_treat_and_extend.yaml"
)
# The uncalibrated protocol gives about 7.2 injections in year 1 and loses vision: the first
# target passes, the second (a gain of 9 letters) fails, the validation one fails.
BODY = f"""
name: test targets
patients: 2000
seed: 3
targets:
  - {{id: inj, role: calibration, protocol: {PROTOCOL}, figure: injections, from_day: 0,
      to_day: 364, value: 7.2, ci: [6.0, 8.4], source: test}}
  - {{id: va, role: calibration, protocol: {PROTOCOL}, figure: va_change, day: 364, value: 9.0,
      ci: [7.0, 11.0], source: test}}
  - {{id: later, role: validation, protocol: {PROTOCOL}, figure: gained_15, day: 672,
      value: 25, ci: [20, 30], source: test}}
"""


def write_targets(tmp_path: Path) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(BODY, encoding="utf-8")
    return path


def test_tables_keep_calibration_and_validation_apart_and_strict_fails_on_a_miss(
    tmp_path: Path, capsys
) -> None:
    path = write_targets(tmp_path)
    assert main(["check-targets", "--targets", str(path)]) == 0
    out = capsys.readouterr().out
    calibration, validation = out.split("Validation targets (not fitted)")
    assert "Calibration targets (fitted)" in calibration
    assert "inj" in calibration and "pass" in calibration and "FAIL" in calibration
    assert "later" in validation and "later" not in calibration
    assert "1 of 2 calibration targets inside" in calibration
    assert main(["check-targets", "--targets", str(path), "--strict"]) == 1


def test_json_has_every_target_with_simulated_value_se_and_verdict(tmp_path: Path, capsys) -> None:
    path = write_targets(tmp_path)
    assert main(["check-targets", "--targets", str(path), "--json", "--patients", "1000"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["patients"] == 1000 and document["seed"] == 3
    checks = {item["id"]: item for item in document["checks"]}
    assert set(checks) == {"inj", "va", "later"}
    assert checks["inj"]["passed"] is True and checks["va"]["passed"] is False
    low, high = checks["inj"]["ci"]
    margin = min(checks["inj"]["simulated"] - low, high - checks["inj"]["simulated"])
    assert checks["inj"]["margin_se"] == margin / checks["inj"]["se"]
    assert checks["va"]["margin_se"] < 0


def test_a_protocol_no_target_names_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    path = write_targets(tmp_path)
    code = main(["check-targets", "--targets", str(path), "aflibercept_treat_and_extend"])
    err = capsys.readouterr().err
    assert code == 2 and "no target names the protocol" in err and "Traceback" not in err
    assert main(["check-targets", "--targets", str(path), str(PROTOCOL), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["checks"]) == 3


def test_charts_are_svg_with_one_marker_per_target_drawn(tmp_path: Path, capsys) -> None:
    path = write_targets(tmp_path)
    charts = tmp_path / "charts"
    assert main(["check-targets", "--targets", str(path), "--charts", str(charts)]) == 0
    names = sorted(p.name for p in charts.iterdir())
    stem = PROTOCOL.stem
    assert names == [f"{stem}_injections.svg", f"{stem}_va.svg"]
    svg = "{http://www.w3.org/2000/svg}"
    va = ElementTree.parse(charts / f"{stem}_va.svg").getroot()
    assert len(va.findall(f"{svg}circle")) == 1 + 1  # the "va" target and the legend's dot
    assert len(va.findall(f"{svg}polyline")) == 2  # LOCF and observed
    injections = ElementTree.parse(charts / f"{stem}_injections.svg").getroot()
    assert len(injections.findall(f"{svg}circle")) == 1 + 1
