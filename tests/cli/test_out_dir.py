"""`amdsim run --out DIR`: a non-empty DIR is refused unless --overwrite, which replaces it
whole (issue 10, case 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine.durable
from engine.cli.out_dir import save_replacing
from engine.manifest import read_manifest
from engine.results import InMemoryResults
from tests.cli.in_process import run_cli

SMALL = ("run", "--patients", "200", "--years", "1")
STREAMING = ("run", "--patients", "3000", "--years", "1", "--shard-size", "1000", "--workers", "1")


@pytest.fixture
def amdsim(capsys):
    return lambda *args: run_cli(capsys, *args)


def leftovers(folder: Path) -> list[str]:
    """Hidden staging or old directories left beside the results."""
    return [path.name for path in folder.iterdir() if path.name.startswith(".")]


def seed_of_saved(out: Path) -> int:
    return json.loads((out / "results.json").read_bytes())["parameters"]["seed"]


def test_run_out_refuses_a_non_empty_directory_without_overwrite(tmp_path, amdsim):
    out = tmp_path / "results"
    assert amdsim(*SMALL, "--seed", "1", "--out", str(out)).returncode == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    result = amdsim(*SMALL, "--seed", "2", "--format", "arrow", "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: --out {out} is not empty; pass --overwrite to replace the results in it, or "
        "choose another directory"
    )
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_run_out_overwrite_replaces_the_results_whole(tmp_path, amdsim):
    out = tmp_path / "results"
    assert amdsim(*SMALL, "--seed", "1", "--out", str(out)).returncode == 0
    result = amdsim(*SMALL, "--seed", "2", "--format", "arrow", "--out", str(out), "--overwrite")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.iterdir()) == [
        "patients.arrow",
        "results.json",
        "visits.arrow",
    ], "no stale patients.parquet beside the new files"
    assert seed_of_saved(out) == 2
    assert InMemoryResults.load(out).patient_count == 200
    assert leftovers(tmp_path) == []


def test_run_out_overwrite_refuses_a_directory_without_results(tmp_path, amdsim):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    result = amdsim(*SMALL, "--out", str(out), "--overwrite")
    assert result.returncode == 2
    assert "holds no amdsim results; refusing to overwrite it" in result.stderr
    assert (out / "notes.txt").read_text() == "precious"


def test_run_overwrite_without_out_is_an_error(amdsim):
    result = amdsim(*SMALL, "--overwrite")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --overwrite replaces the results in --out; give --out DIR"
    )


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_save_replacing_keeps_the_old_results_when_saving_fails(tmp_path, monkeypatch, exchange):
    """The swap happens only once the new results are complete; either swap leaves no
    temporary directory behind."""
    from engine import run_simulation

    out = tmp_path / "results"
    results = run_simulation(n_patients=50, years=1, seed=1)
    results.save(out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    if not exchange:
        monkeypatch.setattr(engine.durable, "_exchange", lambda first, second: False)
    real_save = InMemoryResults.save

    def failing_save(self, directory, table_format="parquet"):
        real_save(self, directory, table_format)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(InMemoryResults, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        save_replacing(results, out, "arrow")
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    monkeypatch.setattr(InMemoryResults, "save", real_save)
    save_replacing(results, out, "arrow")
    assert sorted(path.name for path in out.iterdir()) == [
        "patients.arrow",
        "results.json",
        "visits.arrow",
    ]
    assert leftovers(tmp_path) == []


def test_streaming_run_out_is_refused_unless_overwrite_then_replaced_whole(tmp_path, amdsim):
    out = tmp_path / "big"
    assert amdsim(*STREAMING, "--seed", "1", "--out", str(out)).returncode == 0
    result = amdsim(*STREAMING, "--seed", "2", "--out", str(out))
    assert result.returncode == 2
    assert "is not empty; pass --overwrite" in result.stderr
    assert read_manifest(out / "manifest.json").parameters.seed == 1
    result = amdsim(*STREAMING, "--seed", "2", "--out", str(out), "--overwrite")
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out / "manifest.json")
    assert (manifest.parameters.seed, manifest.status, manifest.run_id) == (2, "completed", "big")
    assert amdsim("verify", str(out)).returncode == 0
    assert leftovers(tmp_path) == []


def test_run_out_refuses_a_symbolic_link_even_with_overwrite(tmp_path, amdsim):
    """Replacing a linked --out would swap the link, not the results it points to."""
    real = tmp_path / "real"
    assert amdsim(*SMALL, "--seed", "1", "--out", str(real)).returncode == 0
    before = {path.name: path.read_bytes() for path in real.iterdir()}
    link = tmp_path / "link"
    link.symlink_to(real)
    for extra in ((), ("--overwrite",)):
        result = amdsim(*SMALL, "--seed", "2", "--out", str(link), *extra)
        assert result.returncode == 2 and "is a symbolic link" in result.stderr
    assert link.is_symlink()
    assert {path.name: path.read_bytes() for path in real.iterdir()} == before
