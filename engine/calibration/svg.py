"""A small line chart as standalone SVG text: lines, points with 95 % CI whiskers, a legend.

Written here rather than with a plotting library so the validation charts are reproducible
byte for byte, need no display and no extra dependency, and open in any browser or document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = ["LineChart", "Marker", "Series"]

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 200, 50, 60
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


@dataclass(frozen=True)
class Series:
    """One line: its legend label and points."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    dashed: bool = False


@dataclass(frozen=True)
class Marker:
    """A published figure: value and 95 % CI, drawn as a point with a whisker."""

    label: str
    x: float
    y: float
    low: float
    high: float


@dataclass
class LineChart:
    """A chart with titled axes; `svg()` renders it."""

    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)

    def svg(self) -> str:
        """The chart as an SVG document."""
        xs = [x for s in self.series for x in s.x] + [m.x for m in self.markers]
        ys = [y for s in self.series for y in s.y if math.isfinite(y)]
        ys += [v for m in self.markers for v in (m.low, m.high)]
        x_ticks = _ticks(min(xs, default=0.0), max(xs, default=1.0))
        y_ticks = _ticks(min(ys, default=0.0), max(ys, default=1.0))
        scale = _Scale(x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1])
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
            f'<text x="{LEFT}" y="24" font-size="15" font-weight="bold">'
            f"{escape(self.title)}</text>",
        ]
        parts += _axes(scale, x_ticks, y_ticks, self.x_label, self.y_label)
        for index, series in enumerate(self.series):
            parts.append(_polyline(scale, series, COLOURS[index % len(COLOURS)]))
        for marker in self.markers:
            parts += _marker(scale, marker)
        parts += _legend(self.series, bool(self.markers))
        parts.append("</svg>")
        return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class _Scale:
    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return LEFT + (value - self.x0) / span * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return HEIGHT - BOTTOM - (value - self.y0) / span * (HEIGHT - TOP - BOTTOM)


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - 1e-9:
        ticks.append(ticks[-1] + step)
    return ticks


def _axes(
    scale: _Scale, x_ticks: list[float], y_ticks: list[float], x_label: str, y_label: str
) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = []
    for tick in y_ticks:
        y = scale.y(tick)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in x_ticks:
        x = scale.x(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="#333"/>'
        )
        parts.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{tick:g}</text>')
    parts.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>')
    parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#333"/>')
    parts.append(
        f'<text x="{(LEFT + right) / 2:.1f}" y="{HEIGHT - 18}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    middle = (TOP + bottom) / 2
    parts.append(
        f'<text x="18" y="{middle:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 18 {middle:.1f})">{escape(y_label)}</text>'
    )
    return parts


def _polyline(scale: _Scale, series: Series, colour: str) -> str:
    points = " ".join(
        f"{scale.x(x):.1f},{scale.y(y):.1f}"
        for x, y in zip(series.x, series.y, strict=True)
        if math.isfinite(y)
    )
    dash = ' stroke-dasharray="6 4"' if series.dashed else ""
    return f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'


def _marker(scale: _Scale, marker: Marker) -> list[str]:
    x, y = scale.x(marker.x), scale.y(marker.y)
    low, high = scale.y(marker.low), scale.y(marker.high)
    return [
        f'<line x1="{x:.1f}" y1="{low:.1f}" x2="{x:.1f}" y2="{high:.1f}" stroke="black"/>',
        f'<line x1="{x - 4:.1f}" y1="{low:.1f}" x2="{x + 4:.1f}" y2="{low:.1f}" stroke="black"/>',
        f'<line x1="{x - 4:.1f}" y1="{high:.1f}" x2="{x + 4:.1f}" y2="{high:.1f}" stroke="black"/>',
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="black"><title>{escape(marker.label)}: '
        f"{marker.y:g} ({marker.low:g} to {marker.high:g})</title></circle>",
        f'<text x="{x + 7:.1f}" y="{y - 6:.1f}" font-size="10" fill="#333">'
        f"{escape(marker.label)}</text>",
    ]


def _legend(series: list[Series], markers: bool) -> list[str]:
    x = WIDTH - RIGHT + 15
    parts = []
    y = TOP + 10
    for index, line in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        parts.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 24}" y2="{y}" stroke="{colour}" '
            f'stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{x + 30}" y="{y + 4}">{escape(line.label)}</text>')
        y += 20
    if markers:
        parts.append(f'<circle cx="{x + 12}" cy="{y}" r="4" fill="black"/>')
        parts.append(f'<text x="{x + 30}" y="{y + 4}">published, 95% CI</text>')
    return parts
