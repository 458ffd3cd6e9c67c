"""Driving the dashboard in a browser: the steps the browser tests and the soak share."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["AMDSIM", "finished_run", "open_results", "tab"]

AMDSIM = str(Path(sys.executable).with_name("amdsim"))


def finished_run(runs_root: Path, patients: int, years: float, seed: int = 0) -> str:
    """Run `amdsim run` to completion under `runs_root`; the run's id."""
    command = [AMDSIM, "run", "--patients", str(patients), "--years", str(years)]
    command += ["--seed", str(seed), "--json", "--runs-dir", str(runs_root)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)["run_id"]


def tab(page, name: str) -> None:
    page.locator(".bk-tab", has_text=name).first.click()


def open_results(page, run_id: str) -> None:
    """From any page: select `run_id` on the Runs page and open its results."""
    tab(page, "Runs")
    page.locator(".runs-table .tabulator-row", has_text=run_id).first.click()
    page.get_by_role("button", name="Open results").click()
    page.get_by_text("On disk").first.wait_for()
