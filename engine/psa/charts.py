"""PSA charts as standalone SVG text: the cost-effectiveness plane and acceptability curves.

Written without a plotting library, as `engine.calibration.svg` is, so the charts are
reproducible byte for byte and open anywhere. The plane draws one ``<circle class="draw">`` per
draw, the mean as ``<rect class="mean">`` and a dashed line through the origin per threshold;
the curves one ``<polyline class="curve">`` per arm. Legends sit right of the plot area.

Does not cover: the numbers (`engine.psa.summary`), writing files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
import numpy.typing as npt

__all__ = ["ce_plane_svg", "ceac_svg"]

WIDTH, HEIGHT = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 90, 230, 50, 60
_TITLE_CHARS = 80  # about what fits across the chart at the title's size
_LEGEND_CHARS = 28  # about what fits in the legend column
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def ce_plane_svg(
    delta_costs: npt.ArrayLike,
    delta_qalys: npt.ArrayLike,
    thresholds: Sequence[float],
    currency_symbol: str,
    title: str,
) -> str:
    """Incremental QALYs (x) against incremental cost (y), one point per draw.

    Axes pass through 0; each threshold is a dashed willingness-to-pay line ``cost = t * QALYs``;
    the mean of the draws is a black square.
    """
    dc = np.asarray(delta_costs, dtype=np.float64).ravel()
    dq = np.asarray(delta_qalys, dtype=np.float64).ravel()
    if dc.shape != dq.shape:
        raise ValueError(f"{dc.size} incremental costs for {dq.size} incremental QALYs")
    keep = np.isfinite(dc) & np.isfinite(dq)
    xs, ys = dq[keep], dc[keep]
    x_ticks = _ticks(*_span(xs))
    y_ticks = _ticks(*_span(ys))
    scale = _Scale(x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1])
    parts = _open(title)
    parts += _grid(scale, x_ticks, y_ticks, y_money=currency_symbol)
    parts.append(
        f'<line class="axis" x1="{scale.x(0):.1f}" y1="{TOP}" x2="{scale.x(0):.1f}" '
        f'y2="{HEIGHT - BOTTOM}" stroke="#333"/>'
    )
    parts.append(
        f'<line class="axis" x1="{LEFT}" y1="{scale.y(0):.1f}" x2="{WIDTH - RIGHT}" '
        f'y2="{scale.y(0):.1f}" stroke="#333"/>'
    )
    legend: list[tuple[str, str]] = []
    for index, threshold in enumerate(thresholds):
        colour = COLOURS[(index + 1) % len(COLOURS)]
        segment = _clip_line(scale, float(threshold))
        if segment is not None:
            (x1, y1), (x2, y2) = segment
            parts.append(
                f'<line class="threshold" x1="{scale.x(x1):.1f}" y1="{scale.y(y1):.1f}" '
                f'x2="{scale.x(x2):.1f}" y2="{scale.y(y2):.1f}" stroke="{colour}" '
                f'stroke-width="1.5" stroke-dasharray="6 4"/>'
            )
        legend.append((colour, f"{_money(currency_symbol, threshold)} per QALY"))
    for x, y in zip(xs, ys, strict=True):
        parts.append(
            f'<circle class="draw" cx="{scale.x(x):.1f}" cy="{scale.y(y):.1f}" r="2.5" '
            f'fill="{COLOURS[0]}" fill-opacity="0.45"/>'
        )
    if xs.size:
        mx, my = scale.x(float(xs.mean())), scale.y(float(ys.mean()))
        parts.append(
            f'<rect class="mean" x="{mx - 4:.1f}" y="{my - 4:.1f}" width="8" height="8" '
            f'fill="black"><title>mean: {xs.mean():.4g} QALYs, '
            f"{escape(_money(currency_symbol, ys.mean()))}</title></rect>"
        )
    parts += _axis_titles(
        "Incremental QALYs per patient",
        f"Incremental cost per patient ({currency_symbol})",
    )
    parts += _legend(
        [(COLOURS[0], f"draw ({xs.size})", "point"), ("black", "mean of draws", "square")]
        + [(colour, label, "dashed") for colour, label in legend]
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def ceac_svg(
    thresholds: npt.ArrayLike,
    probabilities: npt.ArrayLike,
    arm_names: Sequence[str],
    currency_symbol: str,
) -> str:
    """Cost-effectiveness acceptability curves: one line per arm over the thresholds."""
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape != (t.size, len(arm_names)):
        raise ValueError(
            f"probabilities must be (thresholds, arms) = ({t.size}, {len(arm_names)}), "
            f"got {p.shape}"
        )
    x_ticks = _ticks(*_span(t, include_zero=False))
    y_ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    scale = _Scale(x_ticks[0], x_ticks[-1], 0.0, 1.0)
    parts = _open("Cost-effectiveness acceptability curves")
    parts += _grid(scale, x_ticks, y_ticks, money=currency_symbol)
    parts.append(
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" '
        f'stroke="#333"/>'
    )
    parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>')
    legend = []
    for arm, name in enumerate(arm_names):
        colour = COLOURS[arm % len(COLOURS)]
        points = " ".join(
            f"{scale.x(x):.1f},{scale.y(y):.1f}"
            for x, y in zip(t, p[:, arm], strict=True)
            if math.isfinite(y)
        )
        parts.append(
            f'<polyline class="curve" points="{points}" fill="none" stroke="{colour}" '
            f'stroke-width="2"><title>{escape(name)}</title></polyline>'
        )
        legend.append((colour, name, "line"))
    parts += _axis_titles(
        f"Willingness to pay ({currency_symbol} per QALY)", "Probability cost-effective"
    )
    parts += _legend(legend)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class _Scale:
    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, value: float) -> float:
        return LEFT + (value - self.x0) / ((self.x1 - self.x0) or 1.0) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return HEIGHT - BOTTOM - (value - self.y0) / span * (HEIGHT - TOP - BOTTOM)


def _span(values: npt.NDArray[np.float64], include_zero: bool = True) -> tuple[float, float]:
    low = float(values.min()) if values.size else 0.0
    high = float(values.max()) if values.size else 1.0
    if include_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    return low, high


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < high - 1e-9 * step:
        ticks.append(ticks[-1] + step)
    return [round(tick / step) * step for tick in ticks]


def _clip_line(scale: _Scale, slope: float) -> tuple[tuple[float, float], ...] | None:
    """The part of ``y = slope * x`` inside the plot box, or None if it misses it."""
    points = []
    for x in (scale.x0, scale.x1):
        y = slope * x
        if scale.y0 <= y <= scale.y1:
            points.append((x, y))
    if slope != 0:
        for y in (scale.y0, scale.y1):
            x = y / slope
            if scale.x0 <= x <= scale.x1:
                points.append((x, y))
    points = sorted(set(points))
    if len(points) < 2:
        return None
    return points[0], points[-1]


def _open(title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        *(
            f'<text x="{LEFT}" y="{20 + 17 * i}" font-size="14" font-weight="bold">'
            f"{escape(line)}</text>"
            for i, line in enumerate(_wrap(title, _TITLE_CHARS)[:2])
        ),
    ]


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most about `width` characters, broken at spaces (SVG text does not wrap)."""
    lines: list[str] = []
    words = [
        word[i : i + width] for word in text.split() for i in range(0, len(word), width)
    ]  # a word longer than a line (a file name) is cut into pieces
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _grid(
    scale: _Scale,
    x_ticks: list[float],
    y_ticks: list[float],
    money: str | None = None,
    y_money: str | None = None,
) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = []
    for tick in y_ticks:
        y = scale.y(tick)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        label = escape(_money(y_money, tick)) if y_money is not None else _number(tick)
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for tick in x_ticks:
        x = scale.x(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}" stroke="#e4e4e4"/>')
        label = escape(_money(money, tick)) if money is not None else _number(tick)
        parts.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{label}</text>')
    return parts


def _axis_titles(x_title: str, y_title: str) -> list[str]:
    middle_x = (LEFT + WIDTH - RIGHT) / 2
    middle_y = (TOP + HEIGHT - BOTTOM) / 2
    return [
        f'<text x="{middle_x:.1f}" y="{HEIGHT - 16}" text-anchor="middle">{escape(x_title)}</text>',
        f'<text x="20" y="{middle_y:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 20 {middle_y:.1f})">{escape(y_title)}</text>',
    ]


def _legend(entries: list[tuple[str, str, str]]) -> list[str]:
    x, y = WIDTH - RIGHT + 18, TOP + 10
    parts = []
    for colour, label, kind in entries:
        if kind == "point":
            parts.append(f'<circle cx="{x + 12}" cy="{y}" r="3" fill="{colour}"/>')
        elif kind == "square":
            parts.append(f'<rect x="{x + 8}" y="{y - 4}" width="8" height="8" fill="{colour}"/>')
        else:
            dash = ' stroke-dasharray="6 4"' if kind == "dashed" else ""
            parts.append(
                f'<line x1="{x}" y1="{y}" x2="{x + 24}" y2="{y}" stroke="{colour}" '
                f'stroke-width="2"{dash}/>'
            )
        for line in _wrap(label, _LEGEND_CHARS):
            parts.append(f'<text x="{x + 30}" y="{y + 4}">{escape(line)}</text>')
            y += 15
        y += 5
    return parts


def _number(value: float) -> str:
    if abs(value) >= 1_000:
        return f"{value:,.0f}"
    return f"{value:.6g}"


def _money(symbol: str | None, value: float) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{symbol or ''}{_number(abs(value))}"
