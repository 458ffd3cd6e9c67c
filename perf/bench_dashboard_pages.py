"""How fast the dashboard feels in Chromium: first load and tab switches, and whether the server
answers other sessions while one runs a small run in memory.

    python perf/bench_dashboard_pages.py [--repeats 7]

Prints medians (and the slowest) with the machine's load average. Targets (issue 15's quality
bar): first load <= 1.5 s, tab switch <= 0.3 s. "First load" is from navigation to the Run
page's form being visible; a "tab switch" is from the click to a marker of the new page being
visible (so it includes the server's round trip), once all pages have reached the browser
(they follow the first draw, `viz.deferred_tabs`; "all pages in" says when, plus 0.5 s).
The round trip of a second session while the first starts a 1,000-patient in-memory run measures the small-run threads (`viz.small_run`):
the event loop must keep answering.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.viz

from playwright.sync_api import sync_playwright

from tests.viz.dashboard_server import CHROMIUM_ARGS, chromium_path, running_dashboard
from tests.viz.pages import finished_run

TABS = {
    "Runs": ".runs-table",
    "Results": "text=Patient lookup",
    "System": ".system-memory",
    "Run": ".run-status",
}


def _median_line(name: str, seconds: list[float], target_s: float) -> str:
    median = statistics.median(seconds)
    verdict = "ok" if median <= target_s else "OVER TARGET"
    target = f"target {1000 * target_s:.0f} ms: {verdict}, " if target_s < float("inf") else ""
    return (
        f"{name:<28} median {1000 * median:7.0f} ms  slowest {1000 * max(seconds):7.0f} ms  "
        f"({target}n={len(seconds)})"
    )


def _round_trip(page) -> float:
    """Seconds for a widget change to come back from the server (typing into the search box
    of the Runs page and seeing the table filter)."""
    started = time.perf_counter()
    page.locator(".runs-empty").first.wait_for(state="attached")
    box = page.get_by_placeholder("id, name or protocol")
    box.fill(f"no-such-run-{time.perf_counter_ns()}")
    page.get_by_text("No runs match").first.wait_for()
    elapsed = time.perf_counter() - started
    box.fill("")
    return elapsed


def _settled(page) -> None:
    """Wait for every page to have reached the browser and been drawn."""
    page.locator(".system-memory").first.wait_for(state="attached", timeout=60_000)
    page.wait_for_timeout(500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_dashboard(Path(tmp) / "runs", Path(tmp) / "dashboard.log") as server,
    ):
        finished_run(server.runs_root, 20_000, 3)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_path(), args=CHROMIUM_ARGS
            )
            loads, ready, switches = [], [], []
            for _ in range(args.repeats):
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                page = context.new_page()
                started = time.perf_counter()
                page.goto(server.url)
                page.get_by_text("New run").wait_for(timeout=60_000)
                loads.append(time.perf_counter() - started)
                _settled(page)  # the other pages arrive after the first draw
                ready.append(time.perf_counter() - started)
                for name, marker in TABS.items():
                    started = time.perf_counter()
                    page.locator(".bk-tab", has_text=name).first.click()
                    page.locator(marker).first.wait_for(state="visible", timeout=60_000)
                    switches.append(time.perf_counter() - started)
                context.close()
            print(_median_line("first load", loads, 1.5))
            print(_median_line("all pages in (+0.5 s)", ready, float("inf")))
            print(_median_line("tab switch", switches, 0.3))

            quiet, busy = [], []
            watcher = browser.new_context().new_page()
            watcher.goto(server.url)
            _settled(watcher)
            watcher.locator(".bk-tab", has_text="Runs").first.click()
            for _ in range(args.repeats):
                quiet.append(_round_trip(watcher))
            runner = browser.new_context().new_page()
            runner.goto(server.url)
            _settled(runner)
            for _ in range(args.repeats):
                field = runner.locator(".patients-input input").first
                field.fill("1000")
                field.press("Tab")
                runner.get_by_role("button", name="Start").click()
                busy.append(_round_trip(watcher))
                runner.get_by_text("completed in memory").first.wait_for(timeout=60_000)
            print(_median_line("round trip, idle server", quiet, 0.3))
            print(_median_line("round trip, small run going", busy, 0.3))
            browser.close()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
