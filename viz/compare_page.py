"""The Compare page: a finished `amdsim compare` shown in clinical terms, arm beside arm.

Lists the comparison directories under the server's comparisons root, most recent first, and
shows the chosen one: what was compared, the paired differences (VA, injections, visits,
cost, QALYs, ICER or dominance in words, net monetary benefit), mean VA change, injections
per year and clinic visits per week per arm, the per-arm costs and QALYs and, with a PSA,
the cost-effectiveness plane and acceptability curves. A comparison still running,
interrupted or failed shows its status and what to do, never an error. A comparison is
started here with the "New comparison" form (viz.compare_form, the CLI's own command in its
own process) or from the command line, and cancelled here if this server started it.

Also the body of `amdsim report DIR` for a comparison (see `viz.compare_report`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import panel as pn

from viz.compare_charts import comparison_figures
from viz.compare_data import Comparison, list_comparisons, read_comparison
from viz.compare_form import CompareForm
from viz.compare_tables import (
    TABLE_STYLE,
    arms_table_html,
    header_html,
    pairs_table_html,
    psa_table_html,
)
from viz.context import ServerContext
from viz.safe_text import html_text
from viz.unpaired_section import RunsComparison

__all__ = ["CompareContent", "ComparePage", "compare_content", "status_html"]

_STATUS_COLOURS = {
    "completed": ("#e8f5e9", "#1b5e20"),
    "running": ("#e3f2fd", "#0d47a1"),
    "interrupted": ("#fff8e1", "#8a4b00"),
    "cancelled": ("#fff8e1", "#8a4b00"),
}


def status_html(comparison: Comparison) -> str:
    """The comparison's status as a coloured line (and a damaged file's problem)."""
    background, colour = _STATUS_COLOURS.get(comparison.status, ("#ffebee", "#b71c1c"))
    text = f"Status: {comparison.status_text()}"
    if comparison.problem:
        text += f". {comparison.problem}"
    return (
        f"<div class='compare-status compare-status-{html_text(comparison.status)}' "
        f"style='background:{background};color:{colour};padding:8px 12px;border-radius:6px'>"
        f"{html_text(text)}</div>"
    )


@dataclass
class CompareContent:
    """A comparison as HTML fragments and Bokeh figures, in the order a reader wants them."""

    status: str
    header: str = ""
    pairs: str = ""
    arms: str = ""
    psa: str = ""
    figures: Any = None  # viz.compare_charts.ComparisonFigures, None until finished


def compare_content(comparison: Comparison) -> CompareContent:
    """Everything shown about `comparison`; only the status while it has no comparison.json."""
    content = CompareContent(status=status_html(comparison))
    document = comparison.document
    if document is None:
        return content
    content.header = header_html(document)
    content.pairs = (
        f"{TABLE_STYLE}<h3>Paired differences</h3>"
        "<p class='cmp-note'>Each patient simulated under both protocols (common random "
        "numbers): the differences are per patient, second arm minus first.</p>"
        f"{pairs_table_html(document)}"
    )
    content.arms = f"{TABLE_STYLE}<h3>Costs and QALYs per arm</h3>{arms_table_html(document)}"
    if "psa" in document:
        content.psa = f"{TABLE_STYLE}<h3>Uncertainty</h3>{psa_table_html(document)}"
    content.figures = comparison_figures(document, comparison.draws)
    return content


class ComparePage:
    """Widgets and behaviour of the Compare page for one session."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.shown: Comparison | None = None
        self._stamp: tuple[float, ...] = ()
        root = context.comparisons_root
        self.select = pn.widgets.Select(
            label="Comparison", options=[], css_classes=["comparison-select"], width=360
        )
        self.reload_button = pn.widgets.Button(label="Reload", width=90, align="end")
        self.cancel_button = pn.widgets.Button(
            label="Cancel comparison", color="warning", width=160, align="end",
            visible=False, css_classes=["compare-cancel"],
        )  # fmt: skip
        self.cancel_button.on_click(lambda _: self.cancel())
        self.form = CompareForm(context, on_started=self.show_new)
        self.note = pn.pane.HTML(
            f"<p class='cmp-note'>Comparisons in <code>{html_text(root)}</code>, from the form "
            "above or the command line: <code>amdsim compare A.yaml B.yaml --out "
            f"{html_text(root)}/NAME [--psa K]</code> (costs, utilities and PSA options are "
            "there).</p>",
            disable_math=True,
            sizing_mode="stretch_width",
        )
        self.status = pn.pane.HTML(
            "", disable_math=True, sizing_mode="stretch_width", css_classes=["compare-status-pane"]
        )
        self.header = pn.pane.HTML("", disable_math=True, sizing_mode="stretch_width")
        self.pairs = pn.pane.HTML(
            "", disable_math=True, sizing_mode="stretch_width", css_classes=["pairs-pane"]
        )
        self.arms = pn.pane.HTML("", disable_math=True, sizing_mode="stretch_width")
        self.psa = pn.pane.HTML("", disable_math=True, sizing_mode="stretch_width")
        self.va_change = pn.pane.Bokeh(None, sizing_mode="stretch_width")
        self.injections = pn.pane.Bokeh(None, sizing_mode="stretch_width")
        self.workload = pn.pane.Bokeh(None, sizing_mode="stretch_width")
        self.ce_plane = pn.pane.Bokeh(None, sizing_mode="stretch_width")
        self.ceac = pn.pane.Bokeh(None, sizing_mode="stretch_width")
        self.charts = pn.Column(
            pn.Row(self.va_change, self.injections, sizing_mode="stretch_width"),
            self.workload,
            sizing_mode="stretch_width",
            visible=False,
        )
        self.psa_charts = pn.Row(
            self.ce_plane, self.ceac, sizing_mode="stretch_width", visible=False
        )
        self.unpaired = RunsComparison(context)  # any finished runs, not simulated together
        self.select.param.watch(lambda event: self.open(event.new), "value")
        self.reload_button.on_click(lambda _: self.open(self.select.value))
        self.layout = pn.Column(
            self.form.layout,
            self.note,
            pn.Row(self.select, self.reload_button, self.cancel_button),
            self.status,
            self.header,
            self.pairs,
            self.charts,
            self.arms,
            self.psa,
            self.psa_charts,
            self.unpaired.layout,
            sizing_mode="stretch_width",
        )

    def refresh(self) -> None:
        """List the comparisons again, and reload the one shown if its files changed."""
        options = list_comparisons(self.context.comparisons_root)
        if options != self.select.options:
            current = self.select.value
            value = current if current in options else (options[0] if options else None)
            self.select.param.update(options=options, value=value)  # a new value opens it
        if self.shown is not None and _stamp(self.shown.path) != self._stamp:
            self.open(self.shown.name)
        self.unpaired.refresh_choices()
        launcher = self.context.comparison_launcher
        self.cancel_button.visible = self.shown is not None and launcher.running(self.shown.name)

    def show_new(self, name: str) -> None:
        """Open a comparison just started (its directory appears once the CLI writes it)."""
        self.refresh()
        options = list(self.select.options)
        if name not in options:
            self.select.param.update(options=[name, *options], value=name)
        else:
            self.select.value = name
        self.open(name)
        self.cancel_button.visible = True

    def cancel(self) -> None:
        """Interrupt the comparison shown (it can be resumed with `amdsim compare --resume`)."""
        if self.shown is not None:
            self.context.comparison_launcher.cancel(self.shown.name)
            self.cancel_button.visible = False
            self.open(self.shown.name)

    def open(self, name: str | None) -> bool:
        """Show the comparison `name` (a directory under the comparisons root)."""
        root = self.context.comparisons_root
        if not name or root is None:
            return False
        path = Path(root) / name
        with self.context.timings.measure("open comparison"):
            self._stamp = _stamp(path)
            comparison = read_comparison(path)
            content = compare_content(comparison)
        self.shown = comparison
        self.status.object = content.status
        self.header.object = content.header
        self.pairs.object = content.pairs
        self.arms.object = content.arms
        self.psa.object = content.psa
        figures = content.figures
        self.charts.visible = figures is not None
        self.psa_charts.visible = figures is not None and figures.ce_plane is not None
        if figures is not None:
            self.va_change.object = figures.va_change
            self.injections.object = figures.injections
            self.workload.object = figures.workload
            self.ce_plane.object = figures.ce_plane
            self.ceac.object = figures.ceac
        return comparison.complete


def _stamp(path: Path) -> tuple[float, ...]:
    """Modification times of the files that change as a comparison progresses."""
    times = []
    for name in ("status.json", "comparison.json"):
        try:
            times.append((path / name).stat().st_mtime)
        except OSError:
            times.append(0.0)
    return tuple(times)
