"""The Run page: choose a protocol and parameters, start, watch, cancel.

`show_sample` turns one `MetricsSample` into widget values, so component tests can feed
recorded samples without a server. Small runs (up to 1,000 patients) run in this process
and are held in the session's `StateManager` ("In memory"); larger ones are launched as
their own process and followed through the metrics stream ("On disk").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import panel as pn

from engine.errors import AmdsimError, ParameterError
from engine.memory.estimate import check_run_fits, estimate_run
from engine.model.any_protocol import AnyProtocol
from engine.model.parameters import RunParameters, validate_parameters
from engine.model.v1.protocol import Protocol
from engine.pipeline.options import PipelineOptions, default_workers, resolve_options
from engine.results.factory import MEMORY_THRESHOLD_PATIENTS
from engine.run_labels import check_name, check_notes
from engine.state_manager import StateManager
from engine.stats.live import read_live_statistics
from ipc.messages import MetricsSample
from viz.charts import VisionProgressionChart
from viz.cluster_note import cluster_note
from viz.context import ServerContext
from viz.launcher import request_cancel
from viz.live import RunWatch
from viz.memory_bar import MemoryBar
from viz.protocol_choice import ProtocolChoice
from viz.protocol_editor import ProtocolEditor
from viz.recruitment_form import RecruitmentFields
from viz.run_gone import deleted_text, run_deleted
from viz.safe_text import plain
from viz.small_run import SmallRun

__all__ = ["RunPage"]

log = logging.getLogger(__name__)

# The form's floor for years: the engine takes any horizon of a day or more, but a run this
# short has too few visits to chart. Checked here, in Python: widget bounds (`start`) would
# make the browser replace a value below them without a word.
MIN_YEARS = 0.1


def form_number(label: str, value: object, minimum: float, *, whole: bool) -> int | float:
    """A number field's value, or `ParameterError` saying what is wrong with it."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterError(f"{label}: enter a number")
    if whole and value != int(value):
        raise ParameterError(f"{label} must be a whole number, got {value:g}")
    if value < minimum:
        raise ParameterError(f"{label} must be at least {minimum:g}, got {value:g}")
    return int(value) if whole else float(value)


class RunPage:
    """Widgets and behaviour of the Run page for one session."""

    def __init__(
        self,
        context: ServerContext,
        state: StateManager,
        on_finished: Callable[[str], None] | None = None,
        on_open: Callable[[str], None] | None = None,
    ) -> None:
        self.context = context
        self.state = state
        self.on_finished = on_finished
        self.on_open = on_open  # opens a run's results (the session's Results page)
        self.watch: RunWatch | None = None
        self.run_id: str | None = None
        self._reported_end = False
        self._last_live_stats = 0.0
        self._cluster_known = False
        self._small: SmallRun | None = None  # an in-memory run going in a server thread

        self.choice = ProtocolChoice(context, self.show_message)
        self.protocol, self.upload = self.choice.select, self.choice.upload
        self.editor = ProtocolEditor(context, self.choice, self.show_message)
        # No `start`/`end` on number fields: `RunPage.start` checks them, with a message.
        self.patients = pn.widgets.IntInput(
            label="Patients", value=10_000, width=165, css_classes=["patients-input"]
        )
        self.years = pn.widgets.FloatInput(
            label="Years", value=5.0, step=0.5, width=165, css_classes=["years-input"]
        )
        self.seed = pn.widgets.IntInput(label="Seed", value=0, width=165)
        self.run_name = pn.widgets.TextInput(
            label="Name (optional)",
            placeholder="e.g. ALTAIR, 2-week steps",
            width=340,
            css_classes=["run-name-input"],
        )
        self.run_notes = pn.widgets.TextAreaInput(
            label="Notes (optional)",
            placeholder="what the run is for",
            height=70,
            width=340,
            css_classes=["run-notes-input"],
        )
        self.run_label = ""  # the followed run's name ("" if it has none)
        self.workers = pn.widgets.IntInput(label="Workers", value=default_workers(), width=165)
        self.recruitment = RecruitmentFields()
        self.compression = pn.widgets.Select(
            label="Compression", options=["zstd", "snappy", "gzip", "none"], value="zstd", width=340
        )
        self.start_button = pn.widgets.Button(label="Start", color="primary")
        self.cancel_button = pn.widgets.Button(label="Cancel", color="danger", disabled=True)
        self.open_results_button = pn.widgets.Button(
            label="Open results", color="success", visible=False, css_classes=["open-results"]
        )
        self.message = pn.pane.Alert("", alert_type="info", visible=False, disable_math=True)
        self.status = pn.pane.Markdown("No run yet.", css_classes=["run-status"], disable_math=True)
        self.cluster = pn.pane.HTML("", css_classes=["run-cluster"], visible=False)
        self.progress = pn.indicators.Progress(
            label="Progress",
            value=0,
            max=100,
            sizing_mode="stretch_width",
            bar_color="primary",
            css_classes=["run-progress"],
        )
        self.counts = pn.pane.Markdown("")
        self.memory = MemoryBar()  # one total against the real limit; processes: System page
        self._chart: VisionProgressionChart | None = None  # built with its first figures
        self.chart_slot = pn.Column(sizing_mode="stretch_width")
        self.chart_source = pn.pane.Markdown("", css_classes=["chart-source"])

        self.start_button.on_click(lambda _: self.start())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.open_results_button.on_click(lambda _: self.open_results())

        form = pn.Column(
            "### New run",
            self.protocol,
            self.upload,
            self.choice.about,
            self.editor.layout,
            pn.Row(self.patients, self.years),
            self.run_name,
            self.run_notes,
            pn.Row(self.seed, self.workers),
            self.recruitment.layout,
            self.compression,
            pn.Row(self.start_button, self.cancel_button),
            width=380,
        )
        # Messages and Open results appear and go: room kept for them, so the page below
        # them does not jump as they do.
        notices = pn.Column(
            self.message, self.open_results_button, min_height=130, sizing_mode="stretch_width"
        )
        live = pn.Column(
            notices,
            self.status,
            self.cluster,
            self.progress,
            self.counts,
            self.memory.layout,
            self.chart_source,
            self.chart_slot,
            sizing_mode="stretch_width",
        )
        self.layout = pn.Row(form, live, sizing_mode="stretch_width")

    @property
    def chart(self) -> VisionProgressionChart:
        """The vision chart, put on the page with the first statistics it draws: before any
        run it would be an empty frame, and its ~50 models slowed the first load."""
        if self._chart is None:
            self._chart = VisionProgressionChart()
            pane = pn.pane.Bokeh(self._chart.figure, sizing_mode="stretch_width")
            self.chart_slot.objects = [pane]
        return self._chart

    def receive_upload(self, data: bytes | None, filename: str | None) -> bool:
        """Validate an uploaded protocol; on success it becomes the selected protocol."""
        return self.choice.receive_upload(data, filename)

    def _selected_protocol(self) -> tuple[AnyProtocol, Path]:
        return self.choice.selected()

    # -- starting and stopping ----------------------------------------------------------

    def start(self) -> str | None:
        """Validate the form, check the estimate, and start the run; its id, or None."""
        if self._small is not None or (self.watch is not None and not self.watch.ended):
            self.show_message("a run is already going; cancel it or wait for it", "warning")
            return None
        try:
            protocol, path = self._selected_protocol()
            params = validate_parameters(
                RunParameters(
                    n_patients=form_number("patients", self.patients.value, 1, whole=True),
                    years=form_number("years", self.years.value, MIN_YEARS, whole=False),
                    seed=form_number("seed", self.seed.value, 0, whole=True),
                    recruitment=self.recruitment.value(),
                )
            )
            workers = form_number("workers", self.workers.value, 1, whole=True)
            name = check_name(self.run_name.value_input or self.run_name.value or "")
            notes = check_notes(self.run_notes.value_input or self.run_notes.value or "")
        except AmdsimError as exc:
            self.show_message(str(exc), "danger")
            return None
        self.state.before_run()
        if params.n_patients <= MEMORY_THRESHOLD_PATIENTS:
            return self._run_in_memory(protocol, params, name, notes)
        options = resolve_options(
            PipelineOptions(workers=workers, compression=self.compression.value), params
        )
        try:
            estimate = estimate_run(protocol, params, options)
            check_run_fits(estimate, self.context.monitor, self.context.runs_root)
        except AmdsimError as exc:
            self.show_message(f"not started: {exc}", "warning")
            return None
        launched = self.context.launcher.start(
            path,
            params.n_patients,
            params.years,
            params.seed,
            workers,
            self.compression.value,
            params.recruitment,
            name=name,
            notes=notes,
        )
        self._follow(launched.run_id, launched.run_dir, name)
        self.show_message(f"started run {launched.run_id} ({estimate.describe()})", "info")
        return launched.run_id

    def follow_existing(self, run_dir: Path) -> None:
        """Watch a run started elsewhere (resumed from the Runs page, or from the CLI)."""
        self._follow(run_dir.name, run_dir)

    def show_deleted(self, run_id: str) -> None:
        """Say that `run_id` was deleted (elsewhere, or before a reload) and stop following it."""
        self.watch = None
        self.run_id = run_id
        self.status.object = f"{self._title(run_id)}: {plain(deleted_text(run_id))}"
        self._set_running(False)

    def _title(self, run_id: str) -> str:
        """The followed run as the status line names it: its name, then its id."""
        if self.run_label and run_id == self.run_id:
            return f"**{plain(self.run_label)}** ({plain(run_id)})"
        return f"**{plain(run_id)}**"

    def _registry_name(self, run_id: str) -> str:
        try:
            return self.context.registry().get(run_id).name
        except AmdsimError:  # not listed (yet): a run just launched elsewhere
            return ""

    def _follow(self, run_id: str, run_dir: Path, name: str | None = None) -> None:
        self.run_id = run_id
        self.run_label = self._registry_name(run_id) if name is None else name
        self.watch = self.context.live.watch(run_dir)
        self._reported_end = False
        self.show_message("", "info")  # what was said about an earlier process of the run
        self.progress.value = 0
        self.memory.reset()
        self.cluster.object, self.cluster.visible = "", False
        self._cluster_known = False
        self.status.object = f"{self._title(run_id)}: starting"
        self._set_running(True)

    def _run_in_memory(
        self, protocol: Protocol, params: RunParameters, name: str, notes: str
    ) -> str:
        """Start a small run in the server's small-run threads; `refresh` shows its end."""
        self._small = SmallRun(self.context, protocol, params, name, notes)
        self.watch = None
        self.run_id = self._small.key
        self.run_label = name
        self.progress.value = 0
        self.counts.object = ""
        self.status.object = f"{self._title(self._small.key)}: running in memory"
        self._set_running(True)
        self.cancel_button.disabled = True  # it lasts about a second: nothing to cancel
        return self._small.key

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the small run this page started, and show it (for scripts and tests)."""
        if self._small is not None:
            self._small.future.exception(timeout_s)  # waits; raises only on a timeout
            self._finish_in_memory()

    def _finish_in_memory(self) -> None:
        small, self._small = self._small, None
        try:
            results = small.results()
        except Exception as exc:
            self.status.object = f"{self._title(small.key)}: failed"
            self.show_message(f"the in-memory run failed: {exc}", "danger")
            self._set_running(False)
            return
        key = small.key
        self.state.put(key, results)
        self.context.memory_results[key] = results  # a reload or another session opens it
        self.state.run_completed()
        self.progress.value = 100
        stats = results.summary_stats()
        self.status.object = f"{self._title(key)}: completed in memory in {small.seconds():.2f} s"
        self.counts.object = f"{stats.patients:,} patients, {stats.visits:,} visits"
        self.chart.update(results.statistics())
        self._set_running(False, finished=True)
        if self.on_finished is not None:
            self.on_finished(key)

    def cancel(self) -> bool:
        """Ask the followed run to cancel; False if there is none running."""
        if self.watch is None or self.watch.ended:
            return False
        asked = request_cancel(self.watch.paths.root)
        self.show_message("cancel requested" if asked else "the run is not running", "info")
        return asked

    # -- display ------------------------------------------------------------------------

    def show_message(self, text: str, kind: str) -> None:
        """Show `text` (plain text, shown verbatim: it may hold file names and errors)."""
        self.message.object = plain(text)
        self.message.alert_type = kind
        self.message.visible = bool(text)

    def refresh(self) -> None:
        """Periodic: show the followed run's latest sample, live statistics and its end."""
        if self._small is not None and self._small.done:
            self._finish_in_memory()
        watch = self.watch
        if watch is None:
            return
        if watch.ended and self._cluster_known and run_deleted(watch.paths.root):
            self.show_deleted(watch.run_id)  # its manifest was read before: it was deleted
            return
        current = self.context.live.get(watch.run_id)
        if current is not None and current is not watch:  # a new process: resumed, restarted
            self._follow(watch.run_id, watch.paths.root, self.run_label)
            watch = self.watch
        if watch.latest is not None and not self._reported_end:  # after the end it is stale
            self.show_sample(watch.latest)
        if not self._cluster_known:
            manifest = watch.manifest()  # read until it exists: a cluster run says where
            if manifest is not None:
                self._cluster_known = True
                self.cluster.object = cluster_note(manifest)
                self.cluster.visible = bool(self.cluster.object)
        now = time.monotonic()
        if now - self._last_live_stats >= 1.0:
            self._last_live_stats = now
            live = read_live_statistics(watch.paths)
            if live is not None:
                self.chart.update(live)
                patients = live.totals().patients
                self.chart_source.object = f"live statistics: {patients:,} patients so far"
        if watch.ended and not self._reported_end:
            self._show_end(watch)

    def show_sample(self, sample: MetricsSample) -> None:
        """Widget values from one metrics sample."""
        thresholds = self.context.monitor.thresholds
        self.progress.value = round(100 * sample.fraction_done)
        stopped = sample.status != "running"  # a final sample may still carry an ETA
        eta = "-" if sample.eta_s is None or stopped else f"{sample.eta_s:,.0f} s"
        paused = " (paused: memory is high)" if sample.paused else ""
        self.status.object = (
            f"{self._title(sample.run_id)}: {plain(sample.status)}{paused}; elapsed {sample.elapsed_s:,.1f} s, "
            f"ETA {eta}"
        )
        self.counts.object = (
            f"patients {sample.patients_done:,} / {sample.patients_total:,} · "
            f"{sample.patients_per_s:,.0f} patients/s · {sample.visits_per_s:,.0f} visits/s · "
            f"{sample.visits_written:,} visits written"
        )
        limit = sample.memory_limit_bytes or self.context.monitor.limit.bytes
        self.memory.show(sample.rss_total_bytes, limit, sample.elapsed_s, thresholds)

    def _set_running(self, running: bool, finished: bool = False) -> None:
        """Start is off while the run this page follows goes (one at a time from a page),
        Cancel only then; Open results once it has completed."""
        self.start_button.disabled = running
        self.cancel_button.disabled = not running
        self.open_results_button.visible = finished

    def open_results(self) -> bool:
        """Open the completed run this page shows on the Results page."""
        if self.run_id is None or self.on_open is None:
            return False
        self.on_open(self.run_id)
        return True

    def _show_end(self, watch: RunWatch) -> None:
        if watch.error:  # no stream from this process: say why, never an earlier process's end
            self._reported_end = True
            self._set_running(False)
            self.status.object = f"{self._title(watch.run_id)}: {plain(watch.error)}"
            self.show_message(watch.error, "danger")
            return
        manifest = watch.manifest()
        if manifest is None or manifest.status == "running":
            return
        self._reported_end = True
        self._set_running(False, finished=manifest.status == "completed")
        if manifest.status == "completed":
            self.progress.value = 100
        error = f": {manifest.error}" if manifest.error else ""
        self.status.object = f"{self._title(manifest.run_id)}: {plain(manifest.status + error)}"
        self.show_message(
            f"run {manifest.run_id} {manifest.status}{error}",
            "success" if manifest.status == "completed" else "warning",
        )
        self.state.run_completed()
        if manifest.status == "completed":
            from engine.results import ResultsFactory  # noqa: PLC0415

            with ResultsFactory.open(watch.paths.root) as results:
                self.chart.update(results.statistics())
                self.chart_source.object = f"final statistics: {results.patient_count:,} patients"
            if self.on_finished is not None:
                self.on_finished(manifest.run_id)
