"""The Results page: one run's summary and charts from its stored aggregates, and a patient
lookup. A run that did not complete says so, with how many patients it holds and a Resume
button. Also the body of `amdsim report` (see `viz.report`)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import panel as pn

from engine.errors import AmdsimError, RunNotFoundError, RunStateError
from engine.results import ResultsFactory
from engine.results.base import SimulationResults
from engine.run_liveness import live_status
from engine.state_manager import StateManager
from engine.stats.run_stats import RunStatistics
from viz.charts import (
    DiscontinuationChart,
    DistributionChart,
    InjectionsChart,
    StatesChart,
    VisionProgressionChart,
    WorkloadChart,
)
from viz.context import ServerContext
from viz.download_links import download_links_html
from viz.outcome_table import outcome_table_html
from viz.protocol_card import protocol_card_html
from viz.run_gone import deleted_text, gone_reason, run_deleted
from viz.safe_text import plain
from viz.timeline_chart import PatientTimelineChart

__all__ = ["ResultsCharts", "ResultsPage", "partial_note", "summary_markdown"]

RESUMABLE = ("interrupted", "cancelled", "failed")  # as the Runs page's Resume allows


class ResultsCharts:
    """Every aggregate chart of a run, built once and updated together."""

    def __init__(self) -> None:
        self.vision = VisionProgressionChart()
        self.final_va = DistributionChart(
            "Vision at the end of follow-up", "visual acuity (ETDRS letters)", "final_va"
        )
        self.va_change = DistributionChart(
            "Change in vision from baseline", "change (ETDRS letters)", "va_change", offset=-100
        )
        self.injections = InjectionsChart()
        self.states = StatesChart()
        self.discontinuations = DiscontinuationChart()
        self.workload = WorkloadChart()

    @property
    def all(self) -> list:
        return [
            self.vision,
            self.final_va,
            self.va_change,
            self.injections,
            self.states,
            self.discontinuations,
            self.workload,
        ]

    def update(self, stats: RunStatistics) -> None:
        for chart in self.all:
            chart.update(stats)


def summary_markdown(results: SimulationResults) -> str:
    """Patients, visits, storage and headline outcomes as Markdown."""
    stats = results.summary_stats()
    on_disk = results.storage == "parquet"
    lines = [
        f"**Patients** {stats.patients:,} · **Visits** {stats.visits:,} · "
        f"**Injections per patient-year** {stats.injections_per_patient_year:.2f}",
        f"**Mean VA** baseline {stats.mean_baseline_vision:.1f} → final "
        f"{stats.mean_final_vision:.1f} letters",
    ]
    if on_disk:
        manifest = getattr(results, "manifest", None)
        if manifest is not None:
            lines.append(
                f"**Bytes on disk** {manifest.bytes_on_disk / 2**20:,.1f} MiB · "
                f"**Compression ratio** {manifest.compression_ratio:.1f}x ({plain(manifest.compression)})"
            )
    else:
        lines.append(f"**Memory** {results.memory_usage_mb:,.1f} MiB")
    return "\n\n".join(lines)


def partial_note(results: SimulationResults) -> tuple[str, str] | None:
    """(status, text) of a run on disk that did not complete, e.g. ("cancelled",
    "cancelled: partial: 643,072 of 2,000,000 patients"); None for a complete run."""
    manifest = getattr(results, "manifest", None)
    if manifest is None:
        return None  # in memory: a small run is complete or was never listed
    status = live_status(manifest.status, manifest.supervisor_pid, manifest.supervisor_started)
    if status == "completed":
        return None
    error = f" ({manifest.error})" if manifest.error else ""
    text = (
        f"{status}{error}: partial: {results.patient_count:,} of "
        f"{manifest.parameters.n_patients:,} patients"
    )
    return status, text


def badge_html(storage: str) -> str:
    text, colour = ("On disk", "#1565c0") if storage == "parquet" else ("In memory", "#2e7d32")
    return (
        f'<span class="data-source-badge" style="background:{colour};color:white;'
        f'padding:3px 10px;border-radius:10px;font-weight:600">{text}</span>'
    )


class ResultsPage:
    """Widgets and behaviour of the Results page for one session."""

    def __init__(
        self,
        context: ServerContext,
        state: StateManager,
        on_follow: Callable[[str], None] | None = None,
    ) -> None:
        self.context = context
        self.state = state
        self.on_follow = on_follow  # called with a run id once Resume has started it
        self.key: str | None = None
        self.patient: int | None = None  # the patient shown, for the page's URL
        self.gone = ""  # why the run last open was let go (deleted, restarted), in Markdown
        self.charts = ResultsCharts()
        self.timeline = PatientTimelineChart()
        self.run_select = pn.widgets.Select(label="Run", options={}, width=420)
        self._names: dict[str, str] = {}  # run id -> name, from the registry's last listing
        self.open_button = pn.widgets.Button(label="Open", color="primary")
        self.badge = pn.pane.HTML("", css_classes=["badge-pane"])
        self.summary = pn.pane.Markdown(
            "No run is open: choose one above, or start one on the Run page."
        )
        self.outcomes = pn.pane.HTML("", css_classes=["outcome-table-pane"])
        self.downloads = pn.pane.HTML("", css_classes=["downloads"])
        self.protocol_card = pn.pane.HTML("", css_classes=["protocol-card-pane"])
        self.protocol_about = pn.Card(  # what the run ran, from its manifest
            self.protocol_card,
            title="Protocol",
            collapsed=True,
            visible=False,
            sizing_mode="stretch_width",
            css_classes=["protocol-about"],
        )
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, disable_math=True)
        self.partial = pn.pane.Alert(
            "",
            alert_type="warning",
            visible=False,
            disable_math=True,
            css_classes=["partial-run"],
            sizing_mode="stretch_width",
        )
        self.resume_button = pn.widgets.Button(label="Resume", color="primary", visible=False)
        # No `start`/`end`: the browser would clamp an id out of range without a word.
        self.patient_id = pn.widgets.IntInput(
            label="Patient id", value=0, width=160, css_classes=["patient-input"]
        )
        self.lookup_button = pn.widgets.Button(label="Show patient")
        self.patient_summary = pn.pane.Markdown(
            "", css_classes=["patient-summary"], disable_math=True
        )
        self.open_button.on_click(lambda _: self.open(self.run_select.value))
        self.lookup_button.on_click(lambda _: self.lookup(self.patient_id.value))
        self.resume_button.on_click(lambda _: self.resume())
        c = self.charts

        def pane(chart: object) -> pn.pane.Bokeh:
            return pn.pane.Bokeh(chart.figure, sizing_mode="stretch_width")

        # Shown once a patient is: an empty timeline says nothing. (A Column, because a Bokeh
        # pane's own `visible` does not hide its figure in the browser.)
        self.timeline_pane = pn.Column(
            pn.pane.Bokeh(self.timeline.figure, sizing_mode="stretch_width"),
            visible=False,
            sizing_mode="stretch_width",
        )
        self.chart_area = pn.Column(  # hidden until a run is open, and when it was deleted
            pn.Row(pane(c.vision), pane(c.states), sizing_mode="stretch_width"),
            pn.Row(pane(c.final_va), pane(c.va_change), sizing_mode="stretch_width"),
            pn.Row(pane(c.injections), pane(c.discontinuations), sizing_mode="stretch_width"),
            pane(c.workload),
            sizing_mode="stretch_width",
            visible=False,
        )
        self.layout = pn.Column(
            pn.Row(self.run_select, self.open_button, self.badge),
            self.message,
            pn.Row(self.partial, self.resume_button, sizing_mode="stretch_width"),
            self.summary,
            self.downloads,
            self.protocol_about,
            self.outcomes,
            self.chart_area,
            "### Patient lookup",
            pn.Row(self.patient_id, self.lookup_button),
            self.patient_summary,
            self.timeline_pane,
            sizing_mode="stretch_width",
        )

    def refresh_choices(self) -> None:
        """Runs to choose from: the session's in-memory results and the registry's runs."""
        held = [h.key for h in self.state.held() if h.results.storage == "memory"]
        held += self.context.memory_results.keys()  # the server's recent in-memory runs
        entries = self.context.registry().list()
        self._names = {e.run_id: e.name for e in entries if e.name}
        finished = [
            e.run_id
            for e in entries
            if e.status in ("completed", *RESUMABLE) and e.patients > 0 and e.saved
        ]
        created = {e.run_id: e.created.timestamp() for e in entries}
        # Newest first; results this session holds that no registry lists yet come first.
        keys = sorted(
            set(held + finished), key=lambda k: (created.get(k, math.inf), k), reverse=True
        )
        options = {self._label(key): key for key in keys}
        if options != self.run_select.options:
            current = self.run_select.value
            value = current if current in keys else (keys[0] if keys else None)
            self.run_select.param.update(options=options, value=value)
        self.check_gone()

    def open_newest(self) -> bool:
        """Open the newest run there is if none is open (the page never shows empty charts)."""
        self.refresh_choices()
        if self.key is not None or not self.run_select.options:
            return False
        return self.open(self.run_select.values[0])

    def _label(self, key: str) -> str:
        """A run as the choice names it: "name (id)", or the id of a run with no name."""
        name = self._names.get(key)
        return f"{name} ({key})" if name else key

    def open(self, key: str | None) -> bool:
        """Show the run `key` (a run id, or a session's in-memory results key)."""
        if not key:
            return False
        results = self.state.get(key)
        if results is not None and partial_note(results) is not None:
            self.state.release(key)  # a partial run may have moved on: read it again
            results = None
        if results is None and key in self.context.memory_results:  # made in another session
            results = self.context.memory_results[key]
            self.state.put(key, results)
        try:
            if results is None:
                with self.context.timings.measure("open results"):
                    results = ResultsFactory.open(self.context.results_location(key))
                self.state.put(key, results)
            if results.patient_count == 0:  # stopped before its first rows: nothing to chart
                self.key = key  # what Resume acts on
                self._show_partial(results)
                raise RunStateError("no patients on disk yet")
            with self.context.timings.measure("read statistics"):
                stats = results.statistics()
            with self.context.timings.measure("update charts"):
                self.charts.update(stats)
        except (AmdsimError, OSError) as exc:
            self.message.object = plain(self._cannot_open(key, exc))
            self.message.visible = True
            return False
        self.message.visible = False
        self.key = key
        options = dict(self.run_select.options)
        if key not in options.values():
            options[self._label(key)] = key
        self.run_select.param.update(options=options, value=key)  # one change: never blank
        self.badge.object = badge_html(results.storage)
        self.summary.object = summary_markdown(results)
        self.outcomes.object = outcome_table_html(stats.outcome_table())
        if results.storage == "memory":  # the download route finds it while a session holds it
            self.context.memory_results[key] = results
        self.downloads.object = download_links_html(key)
        self.protocol_card.object = protocol_card_html(results.protocol)
        self.protocol_about.title = f"Protocol: {results.protocol.name}"
        self.protocol_about.visible = True
        self._show_partial(results)
        self.timeline.clear()
        self.timeline_pane.visible = False
        self.patient_summary.object = ""
        self.patient = None
        self.gone = ""
        self.chart_area.visible = True
        return True

    def _show_partial(self, results: SimulationResults) -> None:
        note = partial_note(results)
        status, text = note if note is not None else ("", "")
        self.partial.object = plain(text)
        self.partial.visible = bool(text)
        self.resume_button.visible = status in RESUMABLE

    def resume(self) -> bool:
        """Resume the open run (as the Runs page's Resume does) and follow it."""
        key = self.key
        try:
            if key is None:
                raise RunStateError("open a run first")
            entry = self.context.registry().get(key)
            if entry.status not in RESUMABLE:
                raise RunStateError(f"cannot resume {key}: it is {entry.status}")
            self.context.launcher.resume(key)
        except AmdsimError as exc:
            self.message.object = plain(str(exc))
            self.message.visible = True
            return False
        self.message.visible = False
        self.resume_button.visible = False
        self.partial.object = plain(
            f"resuming: {entry.patients:,} of {entry.n_patients:,} patients so far"
        )
        self.state.release(key)  # reopened from disk once it has moved on
        if self.on_follow is not None:
            self.on_follow(key)
        return True

    def check_gone(self) -> bool:
        """If the open run was deleted or restarted elsewhere, say so and let its files go."""
        results = self.state.get(self.key) if self.key else None
        reason = gone_reason(self.key, results) if results is not None else None
        if reason is None:
            return False
        self.state.release(self.key)
        self.key = self.patient = None
        self.message.object = self.gone = plain(reason)
        self.message.visible = True
        self.badge.object = self.summary.object = self.outcomes.object = ""
        self.downloads.object = ""
        self.protocol_about.visible = False
        self.chart_area.visible = False  # its charts would pass for the run now selected
        self.timeline.clear()
        self.timeline_pane.visible = False
        self.patient_summary.object = ""
        return True

    def _cannot_open(self, key: str, exc: Exception) -> str:
        """Why `key` does not open; a run that is gone is said so without a path."""
        try:
            self.context.registry().get(key)
        except RunNotFoundError:
            if run_deleted(self.context.runs_root / key):
                if key in self.context.deleted_runs:
                    return deleted_text(key)
                return f"cannot open {key}: no run of that id is here (deleted, or never run here)"
        return f"cannot open {key}: {exc}"

    def lookup(self, patient_id: object) -> bool:
        """Show one patient's row and timeline; an id that is not in the run is refused
        with the run's range of ids, and nothing is read."""
        self.check_gone()  # a deleted run is said so, never with the file system's words
        key = self.key
        results = self.state.get(key) if key else None
        if results is None:
            self.patient_summary.object = (
                f"**Patient {patient_id}**: {self.gone}" if self.gone else "Open a run first."
            )
            return False
        last = results.parameters.n_patients - 1
        if not isinstance(patient_id, numbers.Integral) or isinstance(patient_id, bool):
            self.patient_summary.object = f"Enter a patient id from 0 to {last:,}."
            return False
        if not 0 <= patient_id <= last:
            self.patient_summary.object = (
                f"**Patient {patient_id}**: no such patient; ids run from 0 to {last:,}"
            )
            return False
        try:
            with self.context.timings.measure("patient lookup"):
                record = results.get_patient(patient_id)
        except (AmdsimError, OSError, IndexError, KeyError, ValueError) as exc:
            gone = gone_reason(key, results)
            reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # unquoted
            self.patient_summary.object = f"**Patient {patient_id}**: {plain(gone or reason)}"
            return False
        visits = record.visits.to_pydict()
        patient = record.patient
        self.timeline.update(visits, int(patient["enrollment_day"]))
        self.timeline_pane.visible = True
        reason = patient.get("discontinuation_reason") or "-"
        self.patient_summary.object = (
            f"**Patient {patient_id}**: {patient['visits']} visits, {patient['injections']} "
            f"injections, VA {patient['baseline_vision']} → {patient['final_vision']}, final "
            f"state {plain(patient['final_state'])}, discontinued: "
            f"{'yes (' + plain(reason) + ')' if patient['discontinued'] else 'no'}"
        )
        self.patient = patient_id
        return True
