"""The dashboard in a real browser (Debian's Chromium through Playwright).

Every test checks that the page logged no JavaScript error and fetched nothing from outside
this machine, and saves a screenshot under test-artifacts/ (AMDSIM_TEST_ARTIFACTS).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from engine.manifest import read_manifest
from tests.viz.conftest import ARTIFACTS, Watched
from tests.viz.pages import AMDSIM, open_results, tab
from tests.viz.pages import finished_run as make_finished_run

BAD_PROTOCOL = Path(__file__).parent / "bad_protocol.yaml"


def progress_value(page) -> int:
    value = page.locator(".run-progress progress").first.get_attribute("value")
    return int(float(value or 0))


def set_number(page, css_class: str, value: str) -> None:
    field = page.locator(f".{css_class} input").first
    field.fill(value)
    field.press("Enter")


def start_run(page, patients: int, years: float) -> None:
    set_number(page, "patients-input", str(patients))
    set_number(page, "years-input", str(years))
    page.get_by_role("button", name="Start").click()


def watch_progress(page, until: int = 100, timeout_s: float = 120) -> list[int]:
    values = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        values.append(progress_value(page))
        if values[-1] >= until:
            return values
        time.sleep(0.25)
    page.screenshot(path=ARTIFACTS / "failure-progress.png", full_page=True)
    raise AssertionError(f"progress stopped at {values[-5:]}")


def retry_until(page, action, locator, attempts: int = 5, state: str = "visible") -> None:
    """Do `action` until `locator` shows (a click can land while a widget is re-rendering)."""
    for _ in range(attempts):
        action()
        try:
            locator.wait_for(timeout=5_000, state=state)
            return
        except Exception:  # Playwright's TimeoutError: try again
            continue
    page.screenshot(path=ARTIFACTS / "failure-retry.png", full_page=True)
    locator.wait_for(timeout=1_000, state=state)


def clean(watched) -> None:
    assert not watched.errors, f"JavaScript errors: {watched.errors[:5]}"
    assert not watched.external, f"fetched from outside: {watched.external[:5]}"


@pytest.fixture(scope="module")
def finished_run(dashboard):
    return make_finished_run(dashboard.runs_root, 20_000, 4, seed=5)


def test_start_a_run_from_the_form_and_watch_progress_reach_100(open_page, screenshots):
    watched = open_page()
    page = watched.page
    page.screenshot(path=screenshots / "run-page-empty.png", full_page=True)
    progress_top = page.locator(".run-progress").first.bounding_box()["y"]
    start_run(page, 1_000_000, 5)
    values = watch_progress(page)
    assert any(0 < v < 100 for v in values), f"never saw the run in progress: {values}"
    assert values == sorted(values), f"progress went backwards: {values}"
    page.get_by_text("final statistics: 1,000,000 patients").first.wait_for()
    page.get_by_role("button", name="Open results").first.wait_for()
    page.screenshot(path=screenshots / "run-page-completed.png", full_page=True)
    # The message and Open results appeared above the progress bar; it did not move.
    assert page.locator(".run-progress").first.bounding_box()["y"] == progress_top
    page.get_by_role("button", name="Open results").first.click()  # one click to the results
    page.get_by_text("On disk").first.wait_for()
    page.locator(".downloads a", has_text="visits.parquet").first.wait_for()
    clean(watched)


def test_cancel_a_run_and_see_cancelled(open_page, dashboard, screenshots):
    watched = open_page()
    page = watched.page
    start_run(page, 5_000_000, 10)
    while progress_value(page) == 0:
        time.sleep(0.2)
    page.get_by_text("live statistics:").first.wait_for(timeout=30_000)  # the chart is fed
    page.screenshot(path=screenshots / "run-page-running.png", full_page=True)
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("cancelled").first.wait_for(timeout=30_000)
    deadline = time.monotonic() + 10  # the sample says cancelled just before the manifest
    while dashboard.running_runs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not dashboard.running_runs()
    statuses = [read_manifest(m).status for m in dashboard.runs_root.glob("*/manifest.json")]
    assert "cancelled" in statuses
    clean(watched)


@pytest.mark.timeout(600)
def test_a_run_started_from_the_cli_appears_live(open_page, dashboard, screenshots):
    """A CLI run shows in the Runs table while it runs (with its live progress), then ends.

    600,000 patients x 5 years: long enough (tens of seconds) for a 2-second refresh to see it
    running on a fast machine, with generous waits for a machine shared with other jobs (a
    loaded CI machine once needed 200 s for 1.5 million patients).
    """
    watched = open_page()
    page = watched.page
    tab(page, "Runs")
    before = {m.parent.name for m in dashboard.runs_root.glob("*/manifest.json")}
    cli = subprocess.Popen(
        [AMDSIM, "run", "--patients", "600000", "--years", "5",
         "--runs-dir", str(dashboard.runs_root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        new: set[str] = set()
        while not new and time.monotonic() < deadline:
            new = {m.parent.name for m in dashboard.runs_root.glob("*/manifest.json")} - before
            time.sleep(0.1)
        (run_id,) = new
        row = page.locator(".runs-table .tabulator-row", has_text=run_id)
        row.filter(has_text="running").wait_for(timeout=30_000)
        row.filter(has_text="/ 600,000 (").wait_for(timeout=30_000)  # live progress
        page.screenshot(path=screenshots / "runs-page-cli-run-live.png", full_page=True)
        row.filter(has_text="completed").wait_for(timeout=300_000)
    finally:
        try:
            cli.wait(300)
        except subprocess.TimeoutExpired:
            cli.kill()  # never leave the run behind a failed test
            cli.wait(10)
    clean(watched)


def test_open_a_finished_run_and_find_every_chart_rendered(open_page, finished_run, screenshots):
    watched = open_page()
    page = watched.page
    open_results(page, finished_run)
    page.get_by_text("Compression ratio").first.wait_for()
    deadline = time.monotonic() + 30
    while page.locator("canvas").count() < 8 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert page.locator("canvas").count() >= 8, "fewer Bokeh canvases than charts"
    page.screenshot(path=screenshots / "results-page.png", full_page=True)
    with page.expect_download() as download:  # served by the dashboard, streamed
        page.get_by_role("link", name="outcomes.csv").click()
    assert download.value.suggested_filename == f"amdsim-{finished_run}-outcomes.csv"
    assert Path(download.value.path()).read_text().startswith("month,view,patients")

    set_number(page, "patient-input", "5")
    retry_until(
        page,
        lambda: page.get_by_role("button", name="Show patient").click(),
        page.get_by_text("Patient 5").first,
    )
    page.get_by_text("injections, VA").first.wait_for()
    page.screenshot(path=screenshots / "results-page-patient.png", full_page=True)
    clean(watched)


def test_an_invalid_uploaded_protocol_shows_its_message(open_page, screenshots):
    watched = open_page()
    page = watched.page
    page.locator("input[type=file]").first.set_input_files(BAD_PROTOCOL)
    message = page.get_by_text("$.disease_transitions.STABLE")
    message.first.wait_for()
    assert "bad_protocol.yaml" in message.first.inner_text()
    page.screenshot(path=screenshots / "run-page-invalid-upload.png", full_page=True)
    clean(watched)


def test_numbers_out_of_range_are_refused_with_a_message_not_clamped(
    open_page, dashboard, finished_run, screenshots
):
    """Years below the form's minimum start nothing; a patient id past the run reads nothing.
    The browser must send what was typed (no widget bounds) for the page to say so."""
    watched = open_page()
    page = watched.page
    before = sorted(dashboard.runs_root.glob("*/manifest.json"))
    start_run(page, 10_000, 0.05)
    page.get_by_text("years must be at least 0.1, got 0.05").first.wait_for()
    page.screenshot(path=screenshots / "run-page-years-refused.png", full_page=True)
    assert sorted(dashboard.runs_root.glob("*/manifest.json")) == before
    assert not dashboard.running_runs()

    open_results(page, finished_run)
    set_number(page, "patient-input", "20000")
    retry_until(
        page,
        lambda: page.get_by_role("button", name="Show patient").click(),
        page.get_by_text("no such patient; ids run from 0 to 19,999").first,
    )
    page.screenshot(path=screenshots / "results-page-patient-refused.png", full_page=True)
    clean(watched)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_pages_watch_one_run(open_page, dashboard, screenshots):
    first, second = open_page(), open_page()
    # Long enough to watch from a second session: the default (time-based) protocol does
    # 2M x 5 years in about a minute here (5M took over two under CI load).
    start_run(first.page, 2_000_000, 5)
    while progress_value(first.page) == 0:
        time.sleep(0.2)
    (run_dir,) = dashboard.running_runs()
    tab(second.page, "Runs")
    search = second.page.locator(".bk-input[placeholder='id, name or protocol']").first
    search.fill(run_dir.name)  # one row left: nothing else to click on by mistake
    row = second.page.locator(".runs-table .tabulator-row", has_text=run_dir.name).first
    second.page.locator(".runs-table .tabulator-row").nth(1).wait_for(state="detached")

    def watch() -> None:
        if "tabulator-selected" not in (row.get_attribute("class") or ""):
            row.click()  # a click on a selected row would unselect it
        second.page.get_by_role("button", name="Watch").click()

    watching = second.page.get_by_text(f"watching {run_dir.name}").first
    retry_until(second.page, watch, watching, attempts=8, state="attached")
    # A 2M-patient run took 143 s in one CI run (14k patients/s with Chromium and the server
    # sharing 2 CPUs): wait for its end by progress, not by a clock sized for a quiet machine.
    second_values = watch_progress(second.page, timeout_s=400)
    first_values = watch_progress(first.page, timeout_s=60)
    assert second_values[-1] == first_values[-1] == 100
    second.page.screenshot(path=screenshots / "run-page-second-session.png", full_page=True)
    clean(first)
    clean(second)


def test_system_page_shows_memory_timings_and_releases(open_page, finished_run, screenshots):
    watched = open_page()
    page = watched.page
    open_results(page, finished_run)
    tab(page, "System")
    page.get_by_text("Dashboard process").first.wait_for()
    page.get_by_text("open results", exact=True).first.wait_for(timeout=10_000)
    page.screenshot(path=screenshots / "system-page.png", full_page=True)
    page.get_by_role("button", name="Release held results").click()
    page.locator(".held-table .tabulator-row", has_text=finished_run).first.wait_for(
        state="detached"
    )
    clean(watched)


def test_closing_the_page_does_not_disturb_its_run(open_page, dashboard):
    watched = open_page()
    start_run(watched.page, 1_000_000, 5)
    while progress_value(watched.page) == 0:
        time.sleep(0.2)
    (run_dir,) = dashboard.running_runs()
    watched.page.context.close()  # the session ends; the run is its own process
    deadline = time.monotonic() + 120
    while dashboard.running_runs() and time.monotonic() < deadline:
        time.sleep(0.5)
    manifest = read_manifest(run_dir / "manifest.json")
    assert manifest.status == "completed" and manifest.totals.patients == 1_000_000


def test_the_report_opens_offline_with_every_chart(
    browser, finished_run, dashboard, tmp_path, screenshots
):
    out = tmp_path / "report.html"
    subprocess.run(
        [AMDSIM, "report", finished_run, "--runs-dir", str(dashboard.runs_root), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    try:
        page = context.new_page()
        blocked = []

        def refuse(route) -> None:
            blocked.append(route.request.url)
            route.abort()

        page.route("http*://**/*", refuse)  # nothing may come from a network
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        deadline = time.monotonic() + 30
        while page.locator("canvas").count() < 7 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert page.locator("canvas").count() >= 7
        page.get_by_text("amdsim results").first.wait_for()
        page.screenshot(path=screenshots / "report-offline.png", full_page=True)
        assert not blocked and not errors, (blocked, errors)
    finally:
        context.close()


XSS_FILE_NAME = "<img src=x onerror=window.__xss=1>.yaml"


def test_dashboard_upload_messages_do_not_render_html(open_page, dashboard, screenshots):
    """Case 10: an uploaded file's name and a protocol's name are shown as text, never run."""
    protocol = dashboard.runs_root.parent / "xss-protocol.yaml"
    good = Path(__file__).parents[2] / "engine" / "protocols" / "aflibercept_fixed_8_weekly.yaml"
    evil_name = "<img src=y onerror=window.__xss=2> **bold**"
    protocol.write_text(
        good.read_text().replace("name: ", f"name: '{evil_name}' #", 1), encoding="utf-8"
    )
    command = [AMDSIM, "run", "--protocol", str(protocol), "--patients", "2000", "--years", "1"]
    command += ["--runs-dir", str(dashboard.runs_root), "--json"]
    subprocess.run(command, check=True, capture_output=True)

    watched = open_page()
    page = watched.page
    page.locator("input[type=file]").first.set_input_files(
        {"name": XSS_FILE_NAME, "mimeType": "text/yaml", "buffer": BAD_PROTOCOL.read_bytes()}
    )
    message = page.get_by_text("$.disease_transitions.STABLE").first  # the message's <p>
    message.wait_for()
    assert message.inner_text().startswith(XSS_FILE_NAME + ": $.disease_transitions.STABLE")
    markup = message.evaluate("element => element.innerHTML")
    assert "&lt;img src=x" in markup and "<img" not in markup
    page.screenshot(path=screenshots / "run-page-html-file-name.png", full_page=True)

    tab(page, "Runs")
    row = page.locator(".runs-table .tabulator-row", has_text=evil_name).first
    row.wait_for()
    markup = row.evaluate("element => element.innerHTML")
    assert "&lt;img src=y" in markup and "<img" not in markup and "<strong" not in markup
    page.screenshot(path=screenshots / "runs-page-html-protocol-name.png", full_page=True)
    page.wait_for_timeout(500)  # an injected <img src=x> would have fired onerror by now
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("img[src=x], img[src=y]").count() == 0
    clean(watched)


def test_exposed_dashboard_asks_for_the_password_in_the_browser(browser, tmp_path, screenshots):
    """Case 16: on 0.0.0.0 a browser gets the login page first, then the dashboard."""
    from tests.viz.dashboard_server import running_dashboard

    password = "a long test password"
    with running_dashboard(
        tmp_path / "runs",
        tmp_path / "dashboard.log",
        arguments=lambda port: ["--address", "0.0.0.0", "--allow-origin", f"127.0.0.1:{port}"],
        env={"AMDSIM_DASHBOARD_PASSWORD": password},
    ) as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            watched = Watched(page)
            page.goto(server.url)
            page.get_by_role("button", name="Log in").wait_for()
            page.screenshot(path=screenshots / "login-page.png", full_page=True)
            page.fill("input[name=password]", "wrong password")
            page.get_by_role("button", name="Log in").click()
            page.get_by_text("Invalid username or password").wait_for()
            page.fill("input[name=password]", password)
            page.get_by_role("button", name="Log in").click()
            page.get_by_text("New run").wait_for(timeout=60_000)
            page.screenshot(path=screenshots / "run-page-after-login.png", full_page=True)
            clean(watched)
        finally:
            context.close()
