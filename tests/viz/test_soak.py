"""Ten minutes of a dashboard session (slow; CI runs it): no RSS growth beyond 5 % after
warm-up. AMDSIM_SOAK_SECONDS shortens it for a quick look."""

from __future__ import annotations

import os

import pytest

from tests.viz.pages import finished_run
from tests.viz.soak import soak

pytestmark = pytest.mark.slow
DURATION_S = float(os.environ.get("AMDSIM_SOAK_SECONDS", "600"))


@pytest.mark.timeout(DURATION_S + 300)  # longer than the suite's 300 s per test
def test_a_long_session_does_not_grow_the_dashboard(browser, dashboard, screenshots):
    run_id = finished_run(dashboard.runs_root, 20_000, 3)
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
