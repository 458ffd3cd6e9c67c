"""One dashboard session: the five pages in tabs, their periodic refreshes, and cleanup.

Periodic callbacks are registered per session and stopped when the session closes, and the
session's held results are released then, so a closed tab leaves nothing running and a long
session reuses its figures instead of growing. The open page and what it shows live in the
URL (`viz.url_state`): a session starts from its request's query and writes its view back.
"""

from __future__ import annotations

import contextlib
import gc
import logging

import panel as pn

from engine.errors import RunNotFoundError
from engine.state_manager import StateManager
from viz.compare_page import ComparePage
from viz.context import ServerContext
from viz.deferred_tabs import DeferredTabs
from viz.results_page import ResultsPage
from viz.run_gone import run_deleted
from viz.run_page import RunPage
from viz.runs_page import RunsPage
from viz.system_page import SystemPage
from viz.url_state import PAGES, UrlWriter, View

__all__ = ["DashboardSession"]

log = logging.getLogger(__name__)


def collect_young_garbage() -> None:
    """The dashboard's collection around runs: the young generations only.

    A full `gc.collect()` of a server holding every session's Bokeh and param objects took
    ~0.2 s here, twice per run, on the event loop every session shares. Results free their
    arrays by reference counting when closed; Python's own full collections still run.
    """
    gc.collect(1)


TAB_NAMES = ("Run", "Runs", "Results", "Compare", "System")
RUN, RUNS, RESULTS, COMPARE, SYSTEM = range(len(TAB_NAMES))
SHOWN_ONLY = (RUNS, COMPARE, SYSTEM)  # refreshed only while open (`_showing`)
PAGE_REFRESH = ("refresh", "refresh", "refresh_choices", "refresh", "refresh")  # by page


class DashboardSession:
    """The pages of one browser session and the callbacks that keep them current."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.state = StateManager(monitor=context.monitor, collect=collect_young_garbage)
        self.pages = DeferredTabs(
            [
                ("Run", self._make_run_page),
                (
                    "Runs",
                    lambda: RunsPage(context, on_open=self.show_results, on_follow=self.follow),
                ),
                ("Results", lambda: ResultsPage(context, self.state, on_follow=self.follow)),
                ("Compare", lambda: ComparePage(context)),
                ("System", lambda: SystemPage(context, self.state)),
            ],
            on_built=self._page_built,
        )
        self.tabs = self.pages.tabs
        header = pn.pane.Markdown(
            "## amdsim: anti-VEGF treatment simulation", sizing_mode="stretch_width"
        )
        self.layout = pn.Column(header, self.tabs, sizing_mode="stretch_width")
        self._callbacks: list = []
        self.closed = False
        self.url = UrlWriter(None)
        self._restoring = False  # a link names what to show: do not open another run instead
        self.tabs.param.watch(lambda _: self._tab_changed(), "active")

    # -- the pages, built when first needed (`viz.deferred_tabs`) -------------------------

    def _make_run_page(self) -> RunPage:
        return RunPage(
            self.context, self.state, on_finished=self._run_finished, on_open=self.show_results
        )

    @property
    def run_page(self) -> RunPage:
        return self.pages.page(RUN)

    @property
    def runs_page(self) -> RunsPage:
        return self.pages.page(RUNS)

    @property
    def results_page(self) -> ResultsPage:
        return self.pages.page(RESULTS)

    @property
    def compare_page(self) -> ComparePage:
        return self.pages.page(COMPARE)

    @property
    def system_page(self) -> SystemPage:
        return self.pages.page(SYSTEM)

    def _page_built(self, index: int) -> None:
        """A page just built is brought up to date as its periodic refresh would."""
        self._refresh_page(index)

    def _refresh_page(self, index: int) -> None:
        self._guarded(getattr(self.pages.page(index), PAGE_REFRESH[index]))

    # -- navigation between pages ---------------------------------------------------------

    def show_results(self, key: str) -> None:
        self.results_page.refresh_choices()
        if self.results_page.open(key):
            self.tabs.active = TAB_NAMES.index("Results")

    def _tab_changed(self) -> None:
        if self.tabs.active in SHOWN_ONLY:  # not refreshed while hidden: bring it up to date
            self._refresh_page(self.tabs.active)
        if TAB_NAMES[self.tabs.active] == "Results" and not self._restoring:
            self._guarded(self.results_page.open_newest)  # never a page of empty charts
        self.write_url()

    def follow(self, run_id: str) -> None:
        self.run_page.follow_existing(self.context.runs_root / run_id)
        self.tabs.active = TAB_NAMES.index("Run")

    def _run_finished(self, key: str) -> None:
        if self.pages.built(RESULTS):  # else it lists the run when it is built
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
        if self.pages.built(RUN):
            self._guarded(self.run_page.refresh)
        if self._showing(RUNS):
            self._guarded(self.runs_page.refresh)
        self._guarded(self.write_url)  # a run started, a run or patient opened

    def refresh_slow(self) -> None:
        """Every 2 s: choices of results and comparisons, the System page, memory pressure."""
        if self.pages.built(RESULTS):
            self._guarded(self.results_page.refresh_choices)
        if self._showing(COMPARE):
            self._guarded(self.compare_page.refresh)
        if self._showing(SYSTEM):
            self._guarded(self.system_page.refresh)
        self._guarded(self.state.check_memory)

    def _showing(self, index: int) -> bool:
        """Page `index` is built and open. The Runs, Compare and System pages are refreshed
        only then (and when opened): every session re-listing the registry and re-sending
        tables nobody sees cost the server's event loop, shared by all sessions."""
        return self.tabs.active == index and self.pages.built(index)

    def start(self) -> None:
        """Register the periodic callbacks of this session (call inside a served session)."""
        self.context.sessions += 1
        location = pn.state.location
        if location is not None:
            self.url = UrlWriter(location)
            self._guarded(lambda: self.restore(View.from_search(location.search or "")))
        self.pages.fill_open()  # the other pages follow once the browser has drawn this one
        pn.state.onload(lambda: self._guarded(self.pages.fill_in_turns))
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
