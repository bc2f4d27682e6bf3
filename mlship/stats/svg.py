"""Charts drawn as inline SVG by the shared template ``templates/charts.html.j2``: grouped bars
(histograms), lines over time and horizontal grouped bars (one row per field).

This module lays a chart out (rectangles, points, ticks, labels, margins measured from the labels
so that none is cut); the template writes the markup. A page of histograms costs milliseconds this
way, where matplotlib costs ~0.35 s to import and ~0.1 s per PNG. The palette and the number
format are the ones of every report (:mod:`mlship.stats.plots`, numpy-free and matplotlib-free).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mlship.stats.plots import compact

CHAR_WIDTH = 5.6  # px per character of the 10 px tick font (a conservative average for sans-serif digits)
TICK_FONT = 10
ROTATION = 40  # degrees, for x labels that would overlap side by side
_NICE_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Bar:
    """One rectangle, with the tooltip the page shows on hover."""

    x: float
    y: float
    width: float
    height: float
    color: str
    tooltip: str


@dataclass(frozen=True)
class Tick:
    """A tick at (x, y) of the drawing and its label."""

    x: float
    y: float
    label: str


@dataclass(frozen=True)
class LegendItem:
    """A swatch at (x, y) and its name to the right of it."""

    name: str
    color: str
    x: float


def legend(entries: dict[str, str], right: float) -> list[LegendItem]:
    """Legend items in one row ending at ``right``, each as wide as its name needs."""
    widths = [14 + _text_width(name) + 14 for name in entries]
    x = right - sum(widths) + 14
    items = []
    for (name, color), width in zip(entries.items(), widths, strict=True):
        items.append(LegendItem(name, color, x))
        x += width
    return items


@dataclass(kw_only=True)
class Frame:
    """What every laid-out chart has, in pixels: the drawing, the plot area inside it, the ticks,
    the titles and the legend."""

    width: float
    height: float
    left: float
    top: float
    right: float
    bottom: float
    title: str
    x_title: str
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    legend: list[LegendItem] = field(default_factory=list)


@dataclass(kw_only=True)
class BarChart(Frame):
    """A laid-out grouped bar chart (vertical, or horizontal with one row per label)."""

    y_title: str
    rotate: bool
    bars: list[Bar] = field(default_factory=list)


def nice_ticks(top: float, most: int = 5) -> list[float]:
    """0 and equally spaced round values (1, 2, 2.5 or 5 times a power of ten) up to at least ``top``."""
    return nice_range(0.0, top, most)


def nice_range(low: float, high: float, most: int = 5) -> list[float]:
    """Equally spaced round values (1, 2, 2.5 or 5 times a power of ten) from at most ``low`` to at
    least ``high`` (``low`` itself when it is 0), at most ``most + 2`` of them."""
    span = high - low
    if not (math.isfinite(low) and math.isfinite(high)) or span < 1e-300 * max(1.0, abs(high)):
        base = low if math.isfinite(low) else 0.0  # nothing to scale: one unit above the value
        return [base, base + (abs(base) or 1.0)]
    raw = span / most
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(s * power for s in _NICE_STEPS if s * power >= raw * (1 - 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [float(f"{k * step:.12g}") for k in range(first, last + 1)]  # 0.30000000000000004 -> 0.3


def percent(value: float, step: float) -> str:
    """A share as a percentage with as many decimals as the tick step needs (``5%``, ``2.5%``)."""
    decimals = 0 if step >= 0.01 else 1 if step >= 0.001 else 2
    return f"{value * 100:.{decimals}f}%"


def _text_width(label: str) -> float:
    return len(label) * CHAR_WIDTH


def grouped_bars(series: dict[str, list[float]], colors: dict[str, str], *, title: str,
                 x_labels: list[str], x_title: str, y_title: str, edges: bool,
                 tooltips: list[str] | None = None, width: float = 460, plot_height: float = 150) -> BarChart:
    """Bars of every series side by side per slot, shares (0..1) on the y axis. ``edges``: the
    ``len(slots) + 1`` labels mark slot boundaries (a histogram's bin edges), else one per slot."""
    slots = len(next(iter(series.values()), []))
    top_value = max((v for values in series.values() for v in values if math.isfinite(v)), default=0.0)
    y_values = nice_ticks(max(top_value, 0.01))  # a scale of at least 1%: smaller shares are not bars
    y_labels = [percent(v, y_values[1] - y_values[0]) for v in y_values]
    left = 26 + max(map(_text_width, y_labels))  # y title, then the widest tick label
    slot_width = (width - left - 12) / max(slots, 1)
    shown = _thinned(x_labels, slot_width)
    rotate = any(_text_width(label) + 4 > slot_width * _stride(x_labels, shown) for label in shown if label)
    longest = max((_text_width(label) for label in shown), default=0.0)
    right = 12.0
    if rotate:  # a rotated first label reaches left of its tick by its width times cos(ROTATION)
        left = max(left, longest * math.cos(math.radians(ROTATION)) + 6)
    elif edges and shown and shown[-1]:  # the last edge's label is centred on the right end of the axis
        right = max(right, _text_width(shown[-1]) / 2 + 4)
    slot_width = (width - left - right) / max(slots, 1)
    drop = longest * math.sin(math.radians(ROTATION)) + TICK_FONT if rotate else TICK_FONT
    top, bottom = 28.0, 18 + drop + 16  # legend above; tick labels and the x title below
    chart = BarChart(width=width, height=top + plot_height + bottom, left=left, top=top, right=width - right,
                     bottom=top + plot_height, title=title, x_title=x_title, y_title=y_title, rotate=rotate,
                     legend=legend({name: colors[name] for name in series}, width - right))
    scale = plot_height / y_values[-1]
    group = slot_width * 0.8 / max(len(series), 1)
    for k, (name, values) in enumerate(series.items()):
        for i, value in enumerate(values):
            height = max(0.0, value) * scale if math.isfinite(value) else 0.0
            tip = f"{name}: {percent(value, 0.001)}" + (f" ({tooltips[i]})" if tooltips else "")
            chart.bars.append(Bar(x=left + i * slot_width + slot_width * 0.1 + k * group, y=chart.bottom - height,
                                  width=group, height=height, color=colors[name], tooltip=tip))
    chart.y_ticks = [Tick(x=left, y=chart.bottom - v * scale, label=label)
                     for v, label in zip(y_values, y_labels, strict=True)]
    offset = 0.0 if edges else 0.5
    chart.x_ticks = [Tick(x=left + (i + offset) * slot_width, y=chart.bottom, label=label)
                     for i, label in enumerate(shown) if label]
    return chart


def _thinned(labels: list[str], slot_width: float) -> list[str]:
    """Every label, or every second (third, ...) one with the rest blank, so rotated labels do not
    overlap: parallel labels at ROTATION degrees stand ``spacing * sin(ROTATION)`` apart, which
    must exceed a line of text."""
    room = (TICK_FONT + 2) / math.sin(math.radians(ROTATION))
    stride = max(1, math.ceil(room / max(slot_width, 1.0)))
    return [label if i % stride == 0 else "" for i, label in enumerate(labels)]


def _stride(labels: list[str], shown: list[str]) -> int:
    """The spacing (in slots) between the labels left in ``shown``."""
    kept = sum(1 for label in shown if label)
    return max(1, len(labels) // max(kept, 1))


def bin_edge_labels(lower: list[float], upper: list[float]) -> list[str]:
    """The ``len(lower) + 1`` edges of a histogram as compact labels (``7.34k``, ``0.05``)."""
    return [compact(v) for v in [*lower, upper[-1]]] if lower else []


@dataclass
class Line:
    """One series of a line chart: its points (None where the run had no value) and colour."""

    name: str
    color: str
    segments: list[list[tuple[float, float]]]  # runs of consecutive known points, in pixels
    points: list[tuple[float, float, str]]  # x, y and the tooltip of every known point


@dataclass(kw_only=True)
class LineChart(Frame):
    """A laid-out chart of lines over equally spaced runs, with an optional threshold."""

    lines: list[Line] = field(default_factory=list)
    threshold: float | None = None  # its y in pixels


def line_chart(series: dict[str, list[float | None]], colors: dict[str, str], x_labels: list[str], *,
               title: str = "", x_title: str, threshold: float | None = None, width: float = 880,
               plot_height: float = 190) -> LineChart:
    """Lines of every series over the runs ``x_labels`` (at most ~7 of them labelled, rotated)."""
    known = [v for values in series.values() for v in values if v is not None and math.isfinite(v)]
    known += [threshold] if threshold is not None else []
    y_values = nice_range(min([0.0, *known]), max(known, default=1.0))
    y_labels = [compact(v) for v in y_values]
    stride = max(1, math.ceil(len(x_labels) / 7))
    shown = [label for i, label in enumerate(x_labels) if i % stride == 0]
    longest = max((_text_width(label) for label in shown), default=0.0)
    # the y tick labels, and the first x label, rotated 30 degrees, reaching left of its tick
    left = max(14 + max(map(_text_width, y_labels)), longest * math.cos(math.radians(30)) - 4)
    drop = longest * math.sin(math.radians(30)) + TICK_FONT
    top, bottom = 28.0, 22 + drop + 16
    chart = LineChart(width=width, height=top + plot_height + bottom, left=left, top=top, right=width - 12,
                      bottom=top + plot_height, title=title, x_title=x_title,
                      legend=legend({name: colors[name] for name in series}, width - 12))
    low, high = y_values[0], y_values[-1]

    def y_of(value: float) -> float:
        return chart.bottom - (value - low) / (high - low) * plot_height

    def x_of(i: int) -> float:
        return chart.left + 8 + (i / max(len(x_labels) - 1, 1)) * (chart.right - chart.left - 16)

    for name, values in series.items():
        line = Line(name=name, color=colors[name], segments=[], points=[])
        run: list[tuple[float, float]] = []
        for i, value in enumerate(values):
            if value is None or not math.isfinite(value):
                run = []
                continue
            if not run:
                line.segments.append(run)
            run.append((x_of(i), y_of(value)))
            line.points.append((x_of(i), y_of(value), f"{name}: {compact(value, 4)} ({x_labels[i]})"))
        chart.lines.append(line)
    chart.y_ticks = [Tick(x=left, y=y_of(v), label=label) for v, label in zip(y_values, y_labels, strict=True)]
    chart.x_ticks = [Tick(x=x_of(i), y=chart.bottom, label=label) for i, label in enumerate(x_labels)
                     if i % stride == 0]
    chart.threshold = y_of(threshold) if threshold is not None else None
    return chart


def horizontal_bars(series: dict[str, list[float]], colors: dict[str, str], y_labels: list[str], *,
                    title: str = "", x_title: str, width: float = 640, row_height: float = 22) -> BarChart:
    """One row per label, the series' bars side by side in it, values on a compact x axis."""
    rows = len(y_labels)
    top_value = max((v for values in series.values() for v in values if math.isfinite(v)), default=0.0)
    x_values = nice_ticks(top_value if top_value > 0 else 1.0)
    left = 10 + max((_text_width(label) for label in y_labels), default=0.0)
    right = width - 8 - _text_width(compact(x_values[-1])) / 2
    top = 28.0
    bottom = top + rows * row_height
    chart = BarChart(width=width, height=bottom + 44, left=left, top=top, right=right, bottom=bottom, title=title,
                     x_title=x_title, y_title="", rotate=False,
                     legend=legend({name: colors[name] for name in series}, right))
    scale = (right - left) / x_values[-1]
    group = row_height * 0.8 / max(len(series), 1)
    for k, (name, values) in enumerate(series.items()):
        for i, value in enumerate(values):
            length = max(0.0, value) * scale if math.isfinite(value) else 0.0
            chart.bars.append(Bar(x=left, y=top + i * row_height + row_height * 0.1 + k * group, width=length,
                                  height=group, color=colors[name],
                                  tooltip=f"{y_labels[i]}, {name}: {compact(value, 4)}"))
    chart.x_ticks = [Tick(x=left + v * scale, y=bottom, label=compact(v)) for v in x_values]
    chart.y_ticks = [Tick(x=left, y=top + (i + 0.5) * row_height, label=label) for i, label in enumerate(y_labels)]
    return chart
