"""Soak the dashboard: one browser session for N minutes (refreshing every 500 ms, results
open, reloaded every minute); prints the dashboard server's RSS over time and its growth
after warm-up (target <= 5 %).

    python perf/soak_dashboard.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.viz

from playwright.sync_api import sync_playwright

from tests.viz.dashboard_server import CHROMIUM_ARGS, chromium_path, running_dashboard
from tests.viz.pages import finished_run
from tests.viz.soak import soak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_dashboard(Path(tmp) / "runs", Path(tmp) / "dashboard.log") as server,
    ):
        run_id = finished_run(server.runs_root, 20_000, 3)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_path(), args=CHROMIUM_ARGS
            )
            page = browser.new_page()
            page.set_default_timeout(60_000)

            def report(elapsed: float, rss: int) -> None:
                if int(elapsed) % 60 < 5:
                    print(f"  {elapsed:6.0f} s  dashboard RSS {rss / 2**20:6.1f} MiB", flush=True)

            result = soak(
                page, server.url, server.process.pid, run_id, args.minutes * 60, on_sample=report
            )
            browser.close()
    print(f"soak_dashboard: {result.describe()}")


if __name__ == "__main__":
    main()
