"""Validation charts per protocol: VA change over time and injections by week, with targets.

For each protocol the targets name, two SVG files in the chosen folder:
``<protocol>_va.svg``: mean VA change from baseline by week, LOCF (every patient) and observed
(alive and under treatment), with each VA-change target as a point and its 95 % CI;
``<protocol>_injections.svg``: cumulative injections per patient by week (its slope is the
injection rate, and year-by-year counts are read as differences), with each injections target
placed at the end of its window (a window not starting at day 0 is added to the simulated
count at its start, so the point shows where the published count would put the curve).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.calibration.check import TargetCheck, load_target_protocols
from engine.calibration.figures import CohortFollowUp, horizon_days, simulate_cohort
from engine.calibration.svg import LineChart, Marker, Series
from engine.durable import rename_durably

__all__ = ["injections_chart", "va_chart", "write_charts"]

WEEK = 7
MIN_CHART_DAYS = 2 * 364  # at least two years of follow-up on every chart


def write_charts(
    targets_path: Path,
    checks: Sequence[TargetCheck],
    folder: Path,
    *,
    patients: int,
    seed: int,
) -> list[Path]:
    """Write both charts for every protocol the checks name; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    targets = [check.target for check in checks]
    protocols = load_target_protocols(targets_path, targets)
    written = []
    for name, protocol in protocols.items():
        own = [t for t in targets if t.protocol == name]
        days = max(horizon_days(own), MIN_CHART_DAYS)
        cohort = simulate_cohort(protocol, patients, seed, days)
        stem = Path(name).stem
        title = protocol.name
        for suffix, chart in (
            ("va", va_chart(title, cohort, days, own)),
            ("injections", injections_chart(title, cohort, days, own)),
        ):
            path = folder / f"{stem}_{suffix}.svg"
            _write(path, chart.svg())
            written.append(path)
    return written


def va_chart(title: str, cohort: CohortFollowUp, days: int, targets: Sequence) -> LineChart:
    """Mean VA change by week, both views, with the VA-change targets."""
    weeks = np.arange(0, days // WEEK + 1)
    locf, observed = [], []
    for week in weeks:
        change = cohort.va_change_at(int(week * WEEK))
        locf.append(float(np.mean(change)))
        alive = cohort.under_treatment(int(week * WEEK))
        observed.append(float(np.mean(change[alive])) if alive.any() else math.nan)
    chart = LineChart(title, "weeks since the first injection", "mean VA change, letters")
    chart.series.append(Series("simulated, LOCF", weeks.tolist(), locf))
    chart.series.append(Series("simulated, observed", weeks.tolist(), observed, dashed=True))
    for target in targets:
        if target.figure == "va_change" and target.day is not None:
            chart.markers.append(Marker(target.id, target.day / WEEK, target.value, *target.ci))
    return chart


def injections_chart(title: str, cohort: CohortFollowUp, days: int, targets: Sequence) -> LineChart:
    """Cumulative injections per patient by week, with the injections targets."""
    weeks = np.arange(0, days // WEEK + 1)
    cumulative = [float(np.mean(cohort.injections_between(0, int(w * WEEK) + 1))) for w in weeks]
    chart = LineChart(
        title, "weeks since the first injection", "injections per patient (cumulative)"
    )
    chart.series.append(Series("simulated", weeks.tolist(), cumulative))
    for target in targets:
        if target.figure != "injections" or target.view != "locf":
            continue
        start = (
            float(np.mean(cohort.injections_between(0, target.from_day)))
            if target.from_day
            else 0.0
        )
        low, high = target.ci
        chart.markers.append(
            Marker(target.id, target.to_day / WEEK, start + target.value, start + low, start + high)
        )
    return chart


def _write(path: Path, text: str) -> None:
    """Write through a temporary name, so a chart is never half written."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    rename_durably(temporary, path)
