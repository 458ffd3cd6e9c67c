"""The Compare page's section for finished runs that were not simulated together: choose two
or more, and see them side by side (`viz.unpaired_tables`), clearly labelled unpaired."""

from __future__ import annotations

import panel as pn

from engine.errors import AmdsimError
from engine.results import ResultsFactory
from engine.stats.run_stats import RunStatistics
from viz.context import ServerContext
from viz.safe_text import plain
from viz.unpaired_tables import unpaired_figures, unpaired_table_html

__all__ = ["MAX_RUNS", "RunsComparison"]

MAX_RUNS = 6  # more lines than this on one chart are not read


class RunsComparison:
    """Widgets and behaviour of the unpaired section for one session."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.choice = pn.widgets.MultiChoice(
            name="Finished runs (the first is the reference)",
            options={},
            max_items=MAX_RUNS,
            width=640,
            css_classes=["unpaired-choice"],
        )
        self.button = pn.widgets.Button(label="Compare runs", color="primary", align="end")
        self.button.on_click(lambda _: self.compare())
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, disable_math=True)
        self.table = pn.pane.HTML(
            "", disable_math=True, sizing_mode="stretch_width", css_classes=["unpaired-pane"]
        )
        self.vision = pn.pane.Bokeh(None, sizing_mode="stretch_width")
        self.workload = pn.pane.Bokeh(None, sizing_mode="stretch_width")
        self.charts = pn.Row(self.vision, self.workload, sizing_mode="stretch_width", visible=False)
        self.layout = pn.Column(
            "### Compare finished runs (unpaired)",
            pn.Row(self.choice, self.button),
            self.message,
            self.table,
            self.charts,
            sizing_mode="stretch_width",
        )

    def refresh_choices(self) -> None:
        """Completed runs with rows, newest first, named as the Runs page names them."""
        entries = [
            e
            for e in self.context.registry().list()
            if e.status == "completed" and e.patients > 0 and e.saved
        ]
        options = {(f"{e.name} ({e.run_id})" if e.name else e.run_id): e.run_id for e in entries}
        if options != self.choice.options:
            kept = [v for v in self.choice.value if v in options.values()]
            self.choice.param.update(options=options, value=kept)

    def compare(self) -> bool:
        """Show the chosen runs side by side; a message if fewer than two or one cannot open."""
        chosen = list(self.choice.value)
        if len(chosen) < 2:
            return self._say("choose at least two finished runs")
        labels = {run_id: label for label, run_id in self.choice.options.items()}
        runs: list[tuple[str, RunStatistics]] = []
        for run_id in chosen:
            try:
                with ResultsFactory.open(self.context.results_location(run_id)) as results:
                    runs.append((labels.get(run_id, run_id), results.statistics()))
            except (AmdsimError, OSError) as exc:
                return self._say(f"cannot open {run_id}: {exc}")
        with self.context.timings.measure("compare runs"):
            self.table.object = unpaired_table_html(runs)
            self.vision.object, self.workload.object = unpaired_figures(runs)
        self.charts.visible = True
        self.message.visible = False
        return True

    def _say(self, text: str) -> bool:
        self.message.object = plain(text)
        self.message.visible = True
        return False
