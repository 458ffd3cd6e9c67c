"""Browser fixtures: Debian's Chromium through Playwright, a dashboard per module, and the
screenshots directory (test artifacts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.viz.dashboard_server import (
    CHROMIUM_ARGS,
    chromium_path,
    running_dashboard,
    wait_for_run_processes,
)

ARTIFACTS = Path(os.environ.get("AMDSIM_TEST_ARTIFACTS", "test-artifacts")).resolve()
LOCAL = (
    "http://127.0.0.1",
    "http://localhost",
    "ws://127.0.0.1",
    "ws://localhost",
    "data:",
    "blob:",
    "about:",
    "file:",
)


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium here (apt-get install chromium, or set AMDSIM_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dashboard")
    with running_dashboard(folder / "runs", folder / "dashboard.log") as server:
        yield server


@pytest.fixture
def screenshots():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class Watched:
    """A page with every console error, page error and non-local request recorded."""

    def __init__(self, page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.external: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on(
            "request", lambda r: None if r.url.startswith(LOCAL) else self.external.append(r.url)
        )


@pytest.fixture
def open_page(browser, dashboard):
    contexts = []

    def open_one() -> Watched:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        watched = Watched(page)
        page.goto(dashboard.url)
        page.get_by_text("New run").wait_for()
        return watched

    yield open_one
    for context in contexts:
        context.close()
    wait_for_run_processes(dashboard)  # runs it started: gone before the leak check
