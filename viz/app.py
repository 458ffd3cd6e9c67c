"""One dashboard session: the five pages in tabs, their periodic refreshes, and cleanup.

Periodic callbacks are registered per session and stopped when the session closes, and the
session's held results are released then, so a closed tab leaves nothing running and a long
session reuses its figures instead of growing. The open page and what it shows live in the
URL (`viz.url_state`): a session starts from its request's query and writes its view back.
"""

from __future__ import annotations

import contextlib
import logging

import panel as pn

from engine.errors import RunNotFoundError
from engine.state_manager import StateManager
from viz.compare_page import ComparePage
from viz.context import ServerContext
from viz.results_page import ResultsPage
from viz.run_gone import run_deleted
from viz.run_page import RunPage
from viz.runs_page import RunsPage
from viz.system_page import SystemPage
from viz.url_state import PAGES, UrlWriter, View

__all__ = ["DashboardSession"]

log = logging.getLogger(__name__)
TAB_NAMES = ("Run", "Runs", "Results", "Compare", "System")


class DashboardSession:
    """The pages of one browser session and the callbacks that keep them current."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.state = StateManager(monitor=context.monitor)
        self.run_page = RunPage(
            context, self.state, on_finished=self._run_finished, on_open=self.show_results
        )
        self.runs_page = RunsPage(context, on_open=self.show_results, on_follow=self.follow)
        self.results_page = ResultsPage(context, self.state, on_follow=self.follow)
        self.compare_page = ComparePage(context)
        self.system_page = SystemPage(context, self.state)
        self.tabs = pn.Tabs(
            ("Run", self.run_page.layout),
            ("Runs", self.runs_page.layout),
            ("Results", self.results_page.layout),
            ("Compare", self.compare_page.layout),
            ("System", self.system_page.layout),
            dynamic=False,
            sizing_mode="stretch_width",
        )
        header = pn.pane.Markdown(
            "## amdsim: anti-VEGF treatment simulation", sizing_mode="stretch_width"
        )
        self.layout = pn.Column(header, self.tabs, sizing_mode="stretch_width")
        self._callbacks: list = []
        self.closed = False
        self.url = UrlWriter(None)
        self._restoring = False  # a link names what to show: do not open another run instead
        self.tabs.param.watch(lambda _: self._tab_changed(), "active")

    # -- navigation between pages ---------------------------------------------------------

    def show_results(self, key: str) -> None:
        self.results_page.refresh_choices()
        if self.results_page.open(key):
            self.tabs.active = TAB_NAMES.index("Results")

    def _tab_changed(self) -> None:
        if TAB_NAMES[self.tabs.active] == "Results" and not self._restoring:
            self._guarded(self.results_page.open_newest)  # never a page of empty charts
        self.write_url()

    def follow(self, run_id: str) -> None:
        self.run_page.follow_existing(self.context.runs_root / run_id)
        self.tabs.active = TAB_NAMES.index("Run")

    def _run_finished(self, key: str) -> None:
        self.results_page.refresh_choices()

    # -- the view in the URL ----------------------------------------------------------------

    def view(self) -> View:
        """What this session shows now: the open page, its run, the looked-up patient."""
        page = PAGES[self.tabs.active]
        if page == "run":
            return View(page=page, run=self.run_page.run_id)
        if page == "results":
            return View(page=page, run=self.results_page.key, patient=self.results_page.patient)
        return View(page=page)

    def write_url(self) -> None:
        """Put the view into the browser's URL if it changed (see `viz.url_state`)."""
        self.url.write(self.view())

    def restore(self, view: View) -> None:
        """Show `view` (from a reloaded, bookmarked or shared URL); problems become messages."""
        if view.run is not None and view.page == "run":
            self._restore_followed(view.run)
        elif view.run is not None and view.page == "results":
            results = self.results_page
            results.refresh_choices()
            if results.open(view.run) and view.patient is not None:
                results.patient_id.value = view.patient  # the field has no bounds: lookup checks
                results.lookup(view.patient)  # says so if there is no such patient
        if view.problems:
            self.run_page.show_message("; ".join(view.problems), "warning")
        self._restoring = view.run is not None
        try:
            self.tabs.active = PAGES.index(view.page)
        finally:
            self._restoring = False
        self.url.last = view.search()  # the URL already says so

    def _restore_followed(self, run_id: str) -> None:
        registry = self.context.registry()
        run_dir = self.context.runs_root / run_id
        try:
            entry = registry.get(run_id)
        except RunNotFoundError:
            entry = None
        if entry is not None and entry.storage == "memory":
            self.run_page.show_message(
                f"run {run_id} ran in memory in another session; open it on the Results page "
                "if it was saved",
                "info",
            )
        elif entry is None and run_id in self.context.deleted_runs:
            self.run_page.show_deleted(run_id)
        elif entry is None and run_deleted(run_dir):
            self.run_page.show_message(
                f"run {run_id} is not here (deleted, or never run here)", "warning"
            )
        else:
            self.follow(run_id)

    # -- lifecycle ----------------------------------------------------------------------

    def refresh_fast(self) -> None:
        """Every `refresh_ms`: the live run and the registry table."""
        self._guarded(self.run_page.refresh)
        self._guarded(self.runs_page.refresh)
        self._guarded(self.write_url)  # a run started, a run or patient opened

    def refresh_slow(self) -> None:
        """Every 2 s: choices of results and comparisons, the System page, memory pressure."""
        self._guarded(self.results_page.refresh_choices)
        self._guarded(self.compare_page.refresh)
        self._guarded(self.system_page.refresh)
        self._guarded(self.state.check_memory)

    def start(self) -> None:
        """Register the periodic callbacks of this session (call inside a served session)."""
        self.context.sessions += 1
        location = pn.state.location
        if location is not None:
            self.url = UrlWriter(location)
            self._guarded(lambda: self.restore(View.from_search(location.search or "")))
        self.refresh_fast()
        self.refresh_slow()
        self._callbacks = [
            pn.state.add_periodic_callback(self.refresh_fast, period=self.context.refresh_ms),
            pn.state.add_periodic_callback(self.refresh_slow, period=2000),
        ]
        pn.state.on_session_destroyed(lambda _context: self.close())

    def close(self) -> None:
        """Stop this session's callbacks and release what it holds; runs are untouched."""
        if self.closed:
            return
        self.closed = True
        self.context.sessions -= 1
        for callback in self._callbacks:
            with contextlib.suppress(Exception):
                callback.stop()
        self._callbacks = []
        self.state.cleanup()

    @staticmethod
    def _guarded(function) -> None:
        try:
            function()
        except Exception:  # a refresh must never kill the session's callbacks
            log.exception("dashboard refresh failed")
