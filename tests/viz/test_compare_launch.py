"""Starting and cancelling a comparison from the Compare page: the CLI's own process, no orphans."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest

from viz.compare_page import ComparePage
from viz.context import ServerContext

FIRST, SECOND = "aflibercept_2q8_view", "aflibercept_2q8_then_capped_prn_view"


@pytest.fixture
def page(tmp_path) -> ComparePage:
    compare = ComparePage(
        ServerContext(runs_root=tmp_path / "runs", comparisons_root=tmp_path / "comparisons")
    )
    compare.refresh()
    return compare


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _session_of(page: ComparePage, name: str) -> int:
    """The comparison's session id: its CLI process leads a session of its own."""
    return page.context.comparison_launcher.process_id(name)


def _alive_in_session(session: int) -> set[int]:
    """Live processes of `session`: the CLI and its workers, orphaned or not.

    Only the processes this test started are looked at: the session-long browser of the
    dashboard tests spawns renderers at any moment, and other amdsim runs may share the machine.
    """
    members = set()
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(process.pid) == session:
                members.add(process.pid)
        except (OSError, psutil.Error):
            continue  # exited while we looked
    return members


def _nothing_started(page: ComparePage) -> bool:
    return not page.context.comparison_launcher.names()


def test_the_form_offers_time_based_protocols_only(page) -> None:
    options = page.form.protocols.options
    assert FIRST in options and SECOND in options
    assert "aflibercept_treat_and_extend" not in options  # the visit-based v1 protocol
    assert page.form.protocols.value == [FIRST, SECOND]


def test_a_comparison_started_from_the_form_completes_and_opens(page, tmp_path) -> None:
    page.form.patients.value, page.form.years.value = 2000, 1.0
    page.form.name.value = "from-the-page"
    assert page.form.start() == "from-the-page"
    assert page.select.value == "from-the-page"
    session = _session_of(page, "from-the-page")
    folder = tmp_path / "comparisons" / "from-the-page"
    assert _wait((folder / "comparison.json").is_file, 120)
    assert _wait(lambda: not page.context.comparison_launcher.running("from-the-page"), 30)
    page.refresh()
    assert page.shown is not None and page.shown.complete
    assert "Paired differences" in page.pairs.object
    assert not page.cancel_button.visible
    assert _wait(lambda: not _alive_in_session(session), 5)  # the CLI and its workers are gone


def test_cancel_interrupts_within_seconds_and_leaves_no_process(page, tmp_path) -> None:
    page.form.patients.value, page.form.years.value = 400_000, 10.0
    page.form.name.value = "big"
    assert page.form.start() == "big"
    session = _session_of(page, "big")
    folder = tmp_path / "comparisons" / "big"
    assert _wait((folder / "spec.json").is_file, 60)
    page.refresh()
    assert page.cancel_button.visible
    started = time.monotonic()
    page.cancel()
    assert time.monotonic() - started < 6
    assert _wait(lambda: not _alive_in_session(session), 5), "no process left behind"
    status = json.loads((folder / "status.json").read_text())["status"]
    assert status == "interrupted"
    assert not (folder / "comparison.json").exists()
    assert "interrupted" in page.status.object


@pytest.mark.parametrize(
    ("protocols", "patients", "name", "message"),
    [
        ([FIRST], 1000, "", "two or more protocols"),
        ([FIRST, SECOND], 0, "", "patients"),
        ([FIRST, SECOND], 1000, "../escape", "name"),
    ],
)
def test_bad_requests_are_one_line_and_start_nothing(
    page, tmp_path, protocols, patients, name, message
) -> None:
    page.form.protocols.value = protocols
    page.form.patients.value = patients
    page.form.name.value = name
    assert page.form.start() is None
    assert message in page.form.message.object
    assert _nothing_started(page)
    assert not (tmp_path / "comparisons").exists() or not any(
        Path(tmp_path / "comparisons").iterdir()
    )


def test_an_existing_name_is_refused(page, tmp_path) -> None:
    (tmp_path / "comparisons" / "taken").mkdir(parents=True)
    page.form.name.value = "taken"
    assert page.form.start() is None
    assert "exists already" in page.form.message.object
