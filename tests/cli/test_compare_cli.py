"""`amdsim compare`: paired comparisons end to end, resume, worker counts and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.in_process import run_cli

ALTAIR = "aflibercept_treat_and_extend_altair"
VIEW_2Q8 = "aflibercept_2q8_view"
SMALL = ("--patients", "3000", "--years", "2", "--seed", "5")


def _document(directory: Path) -> dict:
    return json.loads((directory / "comparison.json").read_text())


def test_compare_writes_a_directory_per_arm_and_the_comparison(capsys, tmp_path) -> None:
    out = tmp_path / "cmp"
    result = run_cli(capsys, "compare", VIEW_2Q8, ALTAIR, *SMALL, "--out", str(out))
    assert result.returncode == 0, result.stderr
    document = _document(out)
    assert [arm["name"] for arm in document["arms"]] == [VIEW_2Q8, ALTAIR]
    for arm in document["arms"]:
        assert (out / arm["name"] / "summary.json").is_file()
        assert (out / arm["name"] / "counts.msgpack").is_file()
        assert arm["patients"] == 3000
        assert arm["outcome_table"] is not None
        years = {row["period"]: row for row in arm["outcome_table"]["years"]}
        assert 3 < years["year 2"]["injections_per_year"] < 10
        # The horizon (730.5 days) leaves "later years" (from day 728) 2.5 days: no rate.
        assert years["later years"]["injections_per_year"] is None
        per_patient = arm["per_patient"]
        assert per_patient["injections"]["mean"] > 5
        assert per_patient["cost"]["mean"] < per_patient["cost_undiscounted"]["mean"]
        assert per_patient["qalys"]["mean"] < per_patient["qalys_undiscounted"]["mean"]
    pair = document["pairs"][0]
    assert (pair["first"], pair["second"]) == (VIEW_2Q8, ALTAIR)
    for key in ("va_change_m12", "va_change_m24", "injections", "visits", "cost", "qalys"):
        value = pair["differences"][key]
        assert value["low"] <= value["mean"] <= value["high"], key
    assert pair["differences"]["va_change_m60"]["mean"] is None  # a 2-year horizon
    assert "minus" in result.stdout and "ICER" in result.stdout
    assert json.loads((out / "status.json").read_text())["status"] == "completed"


def test_a_protocol_against_itself_has_zero_differences_and_no_icer(capsys, tmp_path) -> None:
    out = tmp_path / "same"
    result = run_cli(capsys, "compare", ALTAIR, ALTAIR, *SMALL, "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    pair = _document(out)["pairs"][0]
    assert pair["second"] == f"{ALTAIR}#2"
    for key, value in pair["differences"].items():
        if value["mean"] is not None:
            assert value["mean"] == 0.0 and value["sd"] == 0.0, key
    assert pair["icer"] is None


def test_worker_counts_and_resume_give_identical_documents(capsys, tmp_path) -> None:
    args = ("compare", VIEW_2Q8, ALTAIR, "--patients", "40000", "--years", "1.5", "--seed", "9")
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_cli(capsys, *args, "--workers", "1", "--out", str(one)).returncode == 0
    assert run_cli(capsys, *args, "--workers", "2", "--out", str(two)).returncode == 0
    first, second = _document(one), _document(two)
    first["run"].pop("id"), second["run"].pop("id")
    assert first == second
    # Lose two blocks and resume: the same numbers.
    blocks = sorted((two / "blocks").iterdir())
    assert len(blocks) == 3
    for path in blocks[1:]:
        path.unlink()
    (two / "comparison.json").unlink()
    assert run_cli(capsys, "compare", "--resume", str(two)).returncode == 0
    resumed = _document(two)
    resumed["run"].pop("id")
    assert resumed == first


@pytest.mark.skipif(sys.platform != "linux", reason="process groups and signals as on Linux")
def test_a_killed_comparison_resumes_to_the_identical_result(tmp_path) -> None:
    args = [
        sys.executable,
        "-m",
        "engine.cli",
        "compare",
        VIEW_2Q8,
        ALTAIR,
        "--patients",
        "100000",
        "--years",
        "3",
        "--seed",
        "3",
        "--workers",
        "2",
    ]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    process = subprocess.Popen(
        [*args, "--out", str(killed)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(list((killed / "blocks").glob("*.msgpack"))) >= 2:
            break
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list((killed / "blocks").glob("*.msgpack")))
    assert 2 <= done < 7, "killed part way"
    assert not (killed / "comparison.json").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "engine.cli", "compare", "--resume", str(killed)],
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
    a, b = _document(killed), _document(clean)
    a["run"].pop("id"), b["run"].pop("id")
    assert a == b


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((ALTAIR,), "two or more protocols"),
        ((ALTAIR, "no_such_protocol"), "no_such_protocol"),
        ((ALTAIR, "ranibizumab_prn_monthly"), "time-based"),
        ((ALTAIR, VIEW_2Q8, "--discount-costs", "1.5"), "--discount-costs"),
        ((ALTAIR, VIEW_2Q8, "--threshold", "-1"), "--threshold"),
        ((ALTAIR, VIEW_2Q8, "--drug", "nonsense"), "DRUG=KEY"),
        ((ALTAIR, VIEW_2Q8, "--patients", "0"), "patients"),
        ((ALTAIR, VIEW_2Q8, "--costs", "/no/such/costs.yaml"), "costs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, args, message) -> None:
    result = run_cli(capsys, "compare", *args, "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x" / "blocks").exists()


def test_a_non_empty_out_directory_is_refused(capsys, tmp_path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "something").write_text("mine")
    result = run_cli(capsys, "compare", ALTAIR, VIEW_2Q8, *SMALL, "--out", str(out))
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (out / "something").read_text() == "mine"
