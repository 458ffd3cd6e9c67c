"""The Results page: one run's summary and charts from its stored aggregates, and a patient
lookup. Also the body of `amdsim report` (see `viz.report`)."""

from __future__ import annotations

from pathlib import Path

import panel as pn

from engine.errors import AmdsimError, RunNotFoundError
from engine.results import ResultsFactory
from engine.results.base import SimulationResults
from engine.small_runs import entry_location
from engine.state_manager import StateManager
from engine.stats.run_stats import RunStatistics
from viz.charts import (
    DiscontinuationChart,
    DistributionChart,
    InjectionsChart,
    PatientTimelineChart,
    StatesChart,
    VisionProgressionChart,
    WorkloadChart,
)
from viz.context import ServerContext
from viz.outcome_table import outcome_table_html
from viz.safe_text import plain

__all__ = ["ResultsCharts", "ResultsPage", "summary_markdown"]


class ResultsCharts:
    """Every aggregate chart of a run, built once and updated together."""

    def __init__(self) -> None:
        self.vision = VisionProgressionChart()
        self.final_va = DistributionChart("Final VA", "VA (letters)", "final_va")
        self.va_change = DistributionChart("VA change", "letters", "va_change", offset=-100)
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


def badge_html(storage: str) -> str:
    text, colour = ("On disk", "#1565c0") if storage == "parquet" else ("In memory", "#2e7d32")
    return (
        f'<span class="data-source-badge" style="background:{colour};color:white;'
        f'padding:3px 10px;border-radius:10px;font-weight:600">{text}</span>'
    )


class ResultsPage:
    """Widgets and behaviour of the Results page for one session."""

    def __init__(self, context: ServerContext, state: StateManager) -> None:
        self.context = context
        self.state = state
        self.key: str | None = None
        self.charts = ResultsCharts()
        self.timeline = PatientTimelineChart()
        self.run_select = pn.widgets.Select(label="Run", options=[])
        self.open_button = pn.widgets.Button(label="Open", color="primary")
        self.badge = pn.pane.HTML("", css_classes=["badge-pane"])
        self.summary = pn.pane.Markdown("Choose a run.")
        self.outcomes = pn.pane.HTML("", css_classes=["outcome-table-pane"])
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, disable_math=True)
        self.patient_id = pn.widgets.IntInput(
            label="Patient id", value=0, start=0, width=160, css_classes=["patient-input"]
        )
        self.lookup_button = pn.widgets.Button(label="Show patient")
        self.patient_summary = pn.pane.Markdown(
            "", css_classes=["patient-summary"], disable_math=True
        )
        self.open_button.on_click(lambda _: self.open(self.run_select.value))
        self.lookup_button.on_click(lambda _: self.lookup(int(self.patient_id.value)))
        c = self.charts

        def pane(chart: object) -> pn.pane.Bokeh:
            return pn.pane.Bokeh(chart.figure, sizing_mode="stretch_width")

        self.layout = pn.Column(
            pn.Row(self.run_select, self.open_button, self.badge),
            self.message,
            self.summary,
            self.outcomes,
            pn.Row(pane(c.vision), pane(c.states), sizing_mode="stretch_width"),
            pn.Row(pane(c.final_va), pane(c.va_change), sizing_mode="stretch_width"),
            pn.Row(pane(c.injections), pane(c.discontinuations), sizing_mode="stretch_width"),
            pane(c.workload),
            "### Patient lookup",
            pn.Row(self.patient_id, self.lookup_button),
            self.patient_summary,
            pane(self.timeline),
            sizing_mode="stretch_width",
        )

    def refresh_choices(self) -> None:
        """Runs to choose from: the session's in-memory results and the registry's runs."""
        held = [h.key for h in self.state.held() if h.results.storage == "memory"]
        finished = [
            e.run_id
            for e in self.context.registry().list()
            if e.status in ("completed", "cancelled") and e.patients > 0 and e.saved
        ]
        options = held + finished
        if options != self.run_select.options:
            current = self.run_select.value
            value = current if current in options else (options[0] if options else None)
            self.run_select.param.update(options=options, value=value)

    def open(self, key: str | None) -> bool:
        """Show the run `key` (a run id, or a session's in-memory results key)."""
        if not key:
            return False
        results = self.state.get(key)
        try:
            if results is None:
                with self.context.timings.measure("open results"):
                    results = ResultsFactory.open(self._location(key))
                self.state.put(key, results)
            with self.context.timings.measure("read statistics"):
                stats = results.statistics()
            with self.context.timings.measure("update charts"):
                self.charts.update(stats)
        except (AmdsimError, OSError) as exc:
            self.message.object = plain(f"cannot open {key}: {exc}")
            self.message.visible = True
            return False
        self.message.visible = False
        self.key = key
        options = list(self.run_select.options)
        if key not in options:
            options.append(key)
        self.run_select.param.update(options=options, value=key)  # one change: never blank
        self.badge.object = badge_html(results.storage)
        self.summary.object = summary_markdown(results)
        self.outcomes.object = outcome_table_html(stats.outcome_table())
        self.patient_id.end = max(0, results.patient_count - 1)
        self.timeline.clear()
        self.patient_summary.object = ""
        return True

    def _location(self, key: str) -> Path:
        """A run's results: its run directory, or the folder a small run was saved to."""
        registry = self.context.registry()
        try:
            entry = registry.get(key)
        except RunNotFoundError:  # not listed (yet): its directory, if there is one
            return self.context.runs_root / key
        return entry_location(registry, entry)  # says why a small run has no results

    def lookup(self, patient_id: int) -> bool:
        """Show one patient's row and timeline."""
        results = self.state.get(self.key) if self.key else None
        if results is None:
            self.patient_summary.object = "Open a run first."
            return False
        try:
            with self.context.timings.measure("patient lookup"):
                record = results.get_patient(patient_id)
        except (AmdsimError, IndexError, KeyError, ValueError) as exc:
            self.patient_summary.object = f"**Patient {patient_id}**: {plain(exc)}"
            return False
        visits = record.visits.to_pydict()
        patient = record.patient
        self.timeline.update(visits, int(patient["enrollment_day"]))
        reason = patient.get("discontinuation_reason") or "-"
        self.patient_summary.object = (
            f"**Patient {patient_id}**: {patient['visits']} visits, {patient['injections']} "
            f"injections, VA {patient['baseline_vision']} → {patient['final_vision']}, final "
            f"state {plain(patient['final_state'])}, discontinued: "
            f"{'yes (' + plain(reason) + ')' if patient['discontinued'] else 'no'}"
        )
        return True
