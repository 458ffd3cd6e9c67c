"""`amdsim calibrate`: a fitted parameter set round-trips through validate and run; bad input
is one line and exit 2; the report names what was fitted and how well."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from engine.cli import main
from engine.model.protocol_loader import load_protocol

PROTOCOLS = Path(__file__).resolve().parents[2] / "engine" / "protocols"
FREE = (
    "vision.vision_improvement.improvement_rate.STABLE.mean[0:5],"
    "disease_transitions.fortnightly_transitions.STABLE.ACTIVE"
)


def workspace(tmp_path: Path) -> Path:
    """A copy of the bundled aflibercept protocols, their parameter set and a small targets
    file (VIEW week 52 and ALTAIR week 52), so the test can write into it."""
    root = tmp_path / "work"
    shutil.copytree(PROTOCOLS / "aflibercept_2mg", root / "aflibercept_2mg")
    for name in ("aflibercept_2q8_view", "aflibercept_treat_and_extend_altair"):
        shutil.copy(PROTOCOLS / f"{name}.yaml", root / f"{name}.yaml")
    bundled = yaml.safe_load((PROTOCOLS / "targets" / "aflibercept_2mg.yaml").read_text())
    keep = {"view_w52_injections", "view_w52_va_change", "altair_w52_injections",
            "altair_w52_va_change"}  # fmt: skip
    targets = [t for t in bundled["targets"] if t["id"] in keep]
    for target in targets:
        target["protocol"] = target["protocol"].removeprefix("../")
    (root / "targets.yaml").write_text(
        yaml.safe_dump({"name": "small", "patients": 500, "seed": 4, "targets": targets})
    )
    return root


def test_a_fitted_set_round_trips_through_validate_and_run(tmp_path: Path, capsys) -> None:
    root = workspace(tmp_path)
    out = tmp_path / "fitted"
    code = main(["calibrate", str(root / "targets.yaml"), "--free", FREE,
                 "--max-evaluations", "6", "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for heading in ("Fitted parameters", "Targets at the start and fitted", "Sensitivity",
                    "Condition number", "evaluations/s"):  # fmt: skip
        assert heading in captured.out, heading
    assert "error" in captured.err and "(best)" in captured.err
    record = json.loads((out / "calibration.json").read_text())
    assert record["patients"] == 500 and record["seed"] == 4
    assert [p["path"] for p in record["parameters"]] == [
        "vision.vision_improvement.improvement_rate.STABLE.mean",
        "disease_transitions.fortnightly_transitions.STABLE.ACTIVE",
    ]
    assert len(record["covariance"]) == 2 and len(record["jacobian"]) == 4
    fitted_rate, fitted_transition = (p["fitted"] for p in record["parameters"])
    vision = (out / "vision.yaml").read_text()
    assert vision.startswith("# --- fitted by amdsim calibrate")
    assert record["targets_sha256"][:16] in vision
    # Comments of lines the fit did not touch are kept.
    original = (root / "aflibercept_2mg" / "vision.yaml").read_text()
    untouched = [
        line
        for line in original.splitlines()
        if "letters lost, uniform between min and max" in line
    ]
    assert untouched and untouched[0] in vision
    written = {p.name for p in out.iterdir()}
    assert written == {p.name for p in (root / "aflibercept_2mg").iterdir()} | {"calibration.json"}
    # A protocol pointed at the fitted files validates, runs, and reads the fitted values.
    text = (root / "aflibercept_treat_and_extend_altair.yaml").read_text()
    protocol_path = tmp_path / "fitted_altair.yaml"
    protocol_path.write_text(text.replace("aflibercept_2mg/", "fitted/"))
    assert main(["validate", str(protocol_path)]) == 0
    protocol = load_protocol(protocol_path)
    rate = protocol.parameters.vision.vision_improvement.improvement_rate.STABLE.mean
    row = protocol.parameters.disease_transitions.fortnightly_transitions.STABLE
    assert rate == float(f"{fitted_rate:.4g}")
    assert float(f"{fitted_transition:.4g}") == row.ACTIVE
    assert abs(row.NAIVE + row.STABLE + row.ACTIVE + row.HIGHLY_ACTIVE - 1) < 1e-9
    capsys.readouterr()
    assert main(["run", "--protocol", str(protocol_path), "--patients", "200", "--years", "1",
                 "--out", str(tmp_path / "run")]) == 0  # fmt: skip


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    root = workspace(tmp_path)
    targets = str(root / "targets.yaml")
    out = str(tmp_path / "out")
    assert main(["calibrate", targets, "--free", "vision.nope", "--out", out]) == 2
    assert "no 'nope'" in one_error_line(capsys)
    assert main(["calibrate", targets, "--free", f"{FREE.split(',', maxsplit=1)[0][:-5]}[9:10]",
                 "--out", out]) == 2  # fmt: skip
    assert "outside its bounds" in one_error_line(capsys)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    assert main(["calibrate", targets, "--free", FREE, "--out", str(tmp_path / "full")]) == 2
    assert "--overwrite" in one_error_line(capsys)
    # Two protocols on different parameter sets cannot be fitted jointly.
    other = root / "other_2mg"
    shutil.copytree(root / "aflibercept_2mg", other)
    vision = other / "vision.yaml"
    vision.write_text(
        vision.read_text().replace("measurement_noise_std: ", "measurement_noise_std: 1", 1)
    )
    view = root / "aflibercept_2q8_view.yaml"
    view.write_text(view.read_text().replace("aflibercept_2mg/", "other_2mg/"))
    assert main(["calibrate", targets, "--free", FREE, "--out", out]) == 2
    assert "different parameters" in one_error_line(capsys)
