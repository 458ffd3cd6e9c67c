"""`amdsim report`: a run's Results page as one self-contained HTML file that opens offline.

BokehJS and the data are inlined; no script, style sheet or font is fetched from anywhere.
"""

from __future__ import annotations

from pathlib import Path

from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import Div
from bokeh.resources import INLINE

from engine.results import ResultsFactory
from engine.results.base import SimulationResults
from viz.outcome_table import outcome_table_html
from viz.results_page import ResultsCharts, badge_html
from viz.safe_text import html_text

__all__ = ["report_html", "write_report"]


def write_report(run_path: Path, out: Path) -> Path:
    """Write the report of the run (or saved results) at `run_path` to `out`."""
    with ResultsFactory.open(run_path) as results:
        document = report_html(results)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    temporary.write_text(document, encoding="utf-8")
    temporary.replace(out)
    return out


def report_html(results: SimulationResults) -> str:
    """The report of `results` as one self-contained HTML page (scripts inline: offline)."""
    charts = ResultsCharts()
    statistics = results.statistics()
    charts.update(statistics)
    stats = results.summary_stats()
    name = html_text(results.protocol.name)
    rows = [
        ("Patients", f"{stats.patients:,}"),
        ("Visits", f"{stats.visits:,}"),
        ("Injections per patient-year", f"{stats.injections_per_patient_year:.2f}"),
        (
            "Mean VA baseline / final",
            f"{stats.mean_baseline_vision:.1f} / {stats.mean_final_vision:.1f}",
        ),
        ("Discontinued", f"{100 * stats.discontinuation_rate:.1f} %"),
    ]
    if results.storage == "parquet":
        manifest = results.manifest
        rows += [
            ("Run", html_text(manifest.run_id)),
            ("Bytes on disk", f"{manifest.bytes_on_disk / 2**20:,.1f} MiB"),
            ("Compression ratio", f"{manifest.compression_ratio:.1f}x"),
        ]
    params = results.parameters
    table = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    header = Div(
        text=f"<h1>amdsim results: {name}</h1>{badge_html(results.storage)}"
        f"<p>{params.n_patients:,} patients, {params.years:g} years, seed {params.seed}</p>"
        f"<table>{table}</table>{outcome_table_html(statistics.outcome_table())}",
        sizing_mode="stretch_width",
    )
    c = charts
    layout = column(
        header,
        row(c.vision.figure, c.states.figure, sizing_mode="stretch_width"),
        row(c.final_va.figure, c.va_change.figure, sizing_mode="stretch_width"),
        row(c.injections.figure, c.discontinuations.figure, sizing_mode="stretch_width"),
        c.workload.figure,
        sizing_mode="stretch_width",
    )
    return file_html(layout, INLINE, title=f"amdsim report: {results.protocol.name}")
