"""Ten minutes of a dashboard session (slow; CI runs it): no RSS growth beyond 5 % after
warm-up. AMDSIM_SOAK_SECONDS shortens it for a quick look."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.viz.soak import soak
from tests.viz.test_browser import AMDSIM

pytestmark = pytest.mark.slow
DURATION_S = float(os.environ.get("AMDSIM_SOAK_SECONDS", "600"))


@pytest.mark.timeout(DURATION_S + 300)  # longer than the suite's 300 s per test
def test_a_long_session_does_not_grow_the_dashboard(browser, dashboard, screenshots):
    run = subprocess.run(
        [
            AMDSIM,
            "run",
            "--patients",
            "20000",
            "--years",
            "3",
            "--json",
            "--runs-dir",
            str(dashboard.runs_root),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    run_id = json.loads(run.stdout)["run_id"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        result = soak(page, dashboard.url, dashboard.process.pid, run_id, DURATION_S)
        page.screenshot(path=screenshots / "soak-end.png", full_page=True)
    finally:
        context.close()
    print(result.describe())
    assert result.growth() <= 0.05, result.describe()
