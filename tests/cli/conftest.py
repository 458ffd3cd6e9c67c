"""CLI tests run the real console script; its run directories go to the test's temp dir."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def runs_dir_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("AMDSIM_RUNS_DIR", str(tmp_path / "runs"))
