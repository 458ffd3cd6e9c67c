"""In a real browser: the URL keeps the view (reload, shared link), and Delete asks first,
after which a session that had the run open says it was deleted.

Screenshots go to test-artifacts/ (AMDSIM_TEST_ARTIFACTS), as in `test_browser`.
"""

from __future__ import annotations

import time

from tests.viz.pages import finished_run, open_results, tab
from tests.viz.test_browser import clean, progress_value, retry_until, set_number, start_run


def wait_for_url(page, part: str, timeout_s: float = 10) -> str:
    """The page's URL once it contains `part` (the session writes it within a refresh)."""
    page.wait_for_function(
        "part => window.location.href.includes(part)", arg=part, timeout=1000 * timeout_s
    )
    return page.evaluate("window.location.href")


def show_patient(page, patient: int) -> None:
    set_number(page, "patient-input", str(patient))
    retry_until(
        page,
        lambda: page.get_by_role("button", name="Show patient").click(),
        page.get_by_text(f"Patient {patient}:").first,
    )


def test_reloading_during_a_run_keeps_following_it(open_page, dashboard, screenshots):
    """Issue case 2: a reload mid-run shows the run, not "No run yet."; it can be cancelled."""
    watched = open_page()
    page = watched.page
    start_run(page, 2_000_000, 5)
    while progress_value(page) == 0:
        time.sleep(0.2)
    (run_dir,) = dashboard.running_runs()
    run_id = run_dir.name
    wait_for_url(page, f"?page=run&run={run_id}")
    page.reload()
    page.get_by_text("New run").wait_for()
    status = page.locator(".run-status").first
    status.filter(has_text=run_id).wait_for(timeout=20_000)
    deadline = time.monotonic() + 20
    while progress_value(page) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert progress_value(page) > 0 and "No run yet." not in status.inner_text()
    page.screenshot(path=screenshots / "run-page-after-reload.png", full_page=True)
    page.get_by_role("button", name="Cancel").click()  # the reloaded page still controls it
    page.get_by_text("cancelled").first.wait_for(timeout=30_000)
    clean(watched)


def test_a_shared_results_link_and_a_confirmed_delete(open_page, dashboard, screenshots):
    """Issue cases 2 and 3: a link restores the open run and patient; Delete asks, naming
    the run and what is lost; the session showing the run then says it was deleted."""
    run_id = finished_run(dashboard.runs_root, 20_000, 2, seed=11)
    first = open_page()
    open_results(first.page, run_id)
    show_patient(first.page, 5)
    link = wait_for_url(first.page, f"?page=results&run={run_id}&patient=5")

    shared = open_page()
    shared.page.goto(link)
    shared.page.get_by_text("On disk").first.wait_for()
    shared.page.get_by_text("Patient 5:").first.wait_for()
    shared.page.screenshot(path=screenshots / "results-page-from-link.png", full_page=True)

    deleting = open_page()
    page = deleting.page
    tab(page, "Runs")
    row = page.locator(".runs-table .tabulator-row", has_text=run_id).first
    box = page.locator(".confirm-box")
    retry_until(
        page,
        lambda: (row.click(), page.get_by_role("button", name="Delete").click()),
        box.get_by_text(f"Delete run {run_id}"),
    )
    question = box.locator("p").first.inner_text()  # the pane's text is in its shadow DOM
    assert f"Delete run {run_id}: its 20,000 patients and " in question
    assert "of results are removed; this cannot be undone." in question
    page.screenshot(path=screenshots / "runs-page-confirm-delete.png", full_page=True)
    box.get_by_role("button", name="Cancel").click()
    page.get_by_text(f"nothing was done to {run_id}").first.wait_for()
    assert (dashboard.runs_root / run_id).is_dir()

    retry_until(
        page,
        lambda: page.get_by_role("button", name="Delete").click(),
        box.get_by_text(f"Delete run {run_id}"),
    )
    box.get_by_role("button", name="Confirm").click()
    row.wait_for(state="detached")
    assert not (dashboard.runs_root / run_id).exists()

    deleted = f"run {run_id} was deleted: its results are no longer available"
    shared.page.get_by_text(deleted).first.wait_for(timeout=10_000)
    set_number(shared.page, "patient-input", "19999")
    shared.page.get_by_role("button", name="Show patient").click()
    shared.page.get_by_text("Patient 19999:").first.wait_for()
    text = shared.page.locator("body").inner_text()
    assert "Errno" not in text and str(dashboard.runs_root) not in text
    shared.page.screenshot(path=screenshots / "results-page-run-deleted.png", full_page=True)
    for watched in (first, shared, deleting):
        clean(watched)
