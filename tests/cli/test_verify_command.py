"""`amdsim verify RUN` and `amdsim resume RUN` on damaged runs: one line per damaged file,
exit 1, no traceback (issue 10, case 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from engine.manifest import read_manifest, write_manifest
from tests.cli.in_process import run_cli
from tests.engine.test_integrity import a_patient_in, corrupt_row_group, streamed_run


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    """Finished streaming runs (3000 patients, six part files per table), never modified."""
    return {
        compression: streamed_run(
            tmp_path_factory.mktemp(compression) / "20261202-101010-abcd", compression
        )
        for compression in ("none", "zstd")
    }


@pytest.fixture
def amdsim(capsys):
    return lambda *args: run_cli(capsys, *args)


def copy_of(originals: dict[str, Path], tmp_path: Path, compression: str = "zstd") -> Path:
    return Path(shutil.copytree(originals[compression], tmp_path / "20261202-101010-abcd"))


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_verify_reports_a_corrupted_part_file(tmp_path, originals, amdsim, compression):
    run_dir = copy_of(originals, tmp_path, compression)
    intact = amdsim("verify", str(run_dir))
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.strip() == "run 20261202-101010-abcd (completed): 6 part files intact"

    corrupt_row_group(run_dir / "visits" / "part-00001.parquet", 0)
    damaged = amdsim("verify", str(run_dir))
    assert damaged.returncode == 1
    lines = damaged.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("damaged: visits/part-00001.parquet: row group 0 is damaged")
    assert damaged.stderr.strip() == (
        "error: run 20261202-101010-abcd: 1 of 6 part files damaged; restore them or run it "
        "again ('amdsim run --restart 20261202-101010-abcd')"
    )

    resumed = amdsim("resume", run_dir.name, "--runs-dir", str(run_dir.parent))
    assert resumed.returncode == 1
    assert "Traceback" not in resumed.stderr
    assert resumed.stderr.startswith(
        "error: run 20261202-101010-abcd has 1 damaged file: visits/part-00001.parquet: row group 0"
    )

    patient = amdsim("patient", str(run_dir), str(a_patient_in(run_dir, 1, 0)))
    assert patient.returncode == 1
    assert "Traceback" not in patient.stderr
    assert "part-00001.parquet: row group 0 cannot be read" in patient.stderr


def test_verify_of_a_completed_run_without_checkpoint_rebuilds_its_index(
    tmp_path, originals, amdsim
):
    run_dir = copy_of(originals, tmp_path)
    (run_dir / "checkpoint.json").unlink()
    result = amdsim("verify", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert "6 part files intact (checkpoint.json is missing: indexed from the part files)" in (
        result.stdout
    )
    shown = amdsim("patient", str(run_dir), "2999")
    assert shown.returncode == 0, shown.stderr


def test_resume_of_an_interrupted_run_with_a_missing_part_file_is_refused(
    tmp_path, originals, amdsim
):
    run_dir = copy_of(originals, tmp_path)
    manifest = read_manifest(run_dir / "manifest.json")
    write_manifest(run_dir / "manifest.json", msgspec.structs.replace(manifest, status="cancelled"))
    Path(run_dir / "patients" / "part-00002.parquet").unlink()
    result = amdsim("resume", run_dir.name, "--runs-dir", str(run_dir.parent))
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: run 20261202-101010-abcd has 1 damaged file: patients/part-00002.parquet: missing"
    )
