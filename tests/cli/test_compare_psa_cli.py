"""`amdsim compare --psa K`: reproducible by seed, resumable after a kill, clear on bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.compare.setup import DEFAULT_COSTS, DEFAULT_UTILITIES
from tests.cli.in_process import run_cli

ROOT = Path(__file__).resolve().parents[2]
ECONOMIC = ROOT / "engine" / "psa" / "examples" / "economic_uncertainty.yaml"
FULL = ROOT / "engine" / "psa" / "examples" / "aflibercept_uncertainty.yaml"
VIEW_2Q8 = "aflibercept_2q8_view"
VIEW_PRN = "aflibercept_2q8_then_capped_prn_view"
SMALL = ("--patients", "2000", "--years", "2", "--seed", "5")


def _table(directory: Path) -> dict:
    return pq.read_table(directory / "psa" / "draws.parquet").to_pydict()


def test_an_economic_psa_is_reproducible_by_seed_and_needs_no_simulation(capsys, tmp_path) -> None:
    args = (
        "compare",
        VIEW_2Q8,
        VIEW_PRN,
        *SMALL,
        "--psa",
        "40",
        "--uncertainty",
        str(ECONOMIC),
        "--calibration",
        "none",
    )
    one, two, other = tmp_path / "one", tmp_path / "two", tmp_path / "other"
    result = run_cli(capsys, *args, "--out", str(one))
    assert result.returncode == 0, result.stderr
    assert "40 draws (40 priced without re-simulating)" in " ".join(result.stdout.split())
    assert run_cli(capsys, *args, "--out", str(two)).returncode == 0
    assert run_cli(capsys, *args, "--psa-seed", "6", "--out", str(other)).returncode == 0
    assert _table(one) == _table(two)
    assert (
        _table(one)["parameter[costs.drug_costs.aflibercept_2mg]"]
        != _table(other)["parameter[costs.drug_costs.aflibercept_2mg]"]
    )
    summary = json.loads((one / "psa" / "summary.json").read_text())
    assert summary["served_without_resimulation"] == 40 and summary["resimulated_draws"] == 0
    document = json.loads((one / "comparison.json").read_text())
    assert document["psa"]["draws"] == 40
    # The same protocol family in both arms: the draws share the base simulation, so each
    # draw's incremental QALYs differ from the base case only through the utilities drawn.
    curve = summary["acceptability"]
    assert len(curve["thresholds"]) == len(curve["probability_best"])
    for probabilities in curve["probability_best"]:
        assert sum(probabilities) == pytest.approx(1.0)
    for name in ("ceac.svg", "ce_plane_1.svg"):
        assert (one / "psa" / name).read_text().startswith("<svg")


@pytest.mark.skipif(sys.platform != "linux", reason="process groups and signals as on Linux")
def test_a_killed_psa_resumes_to_the_identical_result(tmp_path) -> None:
    args = [
        sys.executable,
        "-m",
        "engine.cli",
        "compare",
        VIEW_2Q8,
        VIEW_PRN,
        "--patients",
        "3000",
        "--years",
        "2",
        "--seed",
        "8",
        "--workers",
        "2",
        "--psa",
        "8",
        "--uncertainty",
        str(FULL),
        "--json",
    ]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    process = subprocess.Popen(
        [*args, "--out", str(killed)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(list((killed / "psa").glob("draw-*.json"))) >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list((killed / "psa").glob("draw-*.json")))
    assert 2 <= done < 8, "killed part way through the draws"
    assert not (killed / "psa" / "draws.parquet").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "engine.cli", "compare", "--resume", str(killed), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    full = subprocess.run(
        [*args, "--out", str(clean)], capture_output=True, text=True, timeout=600, check=False
    )
    assert full.returncode == 0, full.stderr
    assert _table(killed) == _table(clean)
    a = json.loads((killed / "comparison.json").read_text())
    b = json.loads((clean / "comparison.json").read_text())
    a["run"].pop("id"), b["run"].pop("id")
    assert a == b
    assert a["psa"]["resimulated_draws"] == 8  # calibrated parameters change the model


def test_changed_uncertainty_file_is_refused_on_resume(capsys, tmp_path) -> None:
    mine = tmp_path / "uncertainty.yaml"
    mine.write_text(ECONOMIC.read_text())
    out = tmp_path / "cmp"
    args = (
        "compare",
        VIEW_2Q8,
        VIEW_PRN,
        *SMALL,
        "--psa",
        "3",
        "--uncertainty",
        str(mine),
        "--calibration",
        "none",
        "--out",
        str(out),
    )
    assert run_cli(capsys, *args).returncode == 0
    mine.write_text(ECONOMIC.read_text() + "\n# edited\n")
    result = run_cli(capsys, "compare", "--resume", str(out))
    assert result.returncode == 2 and "changed since the comparison started" in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--uncertainty", str(ECONOMIC)), "--psa"),
        (("--psa", "0", "--uncertainty", str(ECONOMIC)), "--psa"),
        (("--psa", "3", "--calibration", "none"), "needs something uncertain"),
        (
            ("--psa", "3", "--uncertainty", "/no/such/file.yaml", "--calibration", "none"),
            "file.yaml",
        ),
        (("--psa", "3", "--calibration", "/no/such/calibration.json"), "calibration.json"),
    ],
)
def test_bad_psa_input_is_one_line_and_exit_2(capsys, tmp_path, extra, message) -> None:
    result = run_cli(
        capsys, "compare", VIEW_2Q8, VIEW_PRN, *SMALL, *extra, "--out", str(tmp_path / "x")
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x" / "blocks").exists()  # refused before simulating anything


def test_a_bad_uncertainty_entry_names_its_field(capsys, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "uncertainty:\n  - parameter: costs.drug_costs.aflibercept_2mg\n"
        "    distribution: beta\n    mean: 816\n    sd: 10\n"
    )
    result = run_cli(
        capsys,
        "compare",
        VIEW_2Q8,
        VIEW_PRN,
        *SMALL,
        "--psa",
        "3",
        "--uncertainty",
        str(bad),
        "--calibration",
        "none",
        "--out",
        str(tmp_path / "x"),
    )
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr and "uncertainty[0]" in result.stderr
    assert not (tmp_path / "x" / "blocks").exists()
    assert DEFAULT_COSTS.is_file() and DEFAULT_UTILITIES.is_file()
