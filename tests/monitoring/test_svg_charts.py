"""The inline SVG bar charts of the drift report (``mlship.stats.svg``): geometry for any input."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from mlship.stats.svg import grouped_bars, nice_ticks

_shares = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=60)
_labels = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(top=st.floats(0.0, 1e12, allow_nan=False))
def test_nice_ticks_start_at_zero_reach_the_top_and_are_evenly_spaced(top: float) -> None:
    ticks = nice_ticks(top)
    assert ticks[0] == 0.0 and ticks[-1] >= top and len(ticks) <= 7
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1 or math.isclose(min(steps), max(steps), rel_tol=1e-9)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), edges=st.booleans())
def test_bars_and_ticks_stay_inside_the_drawing(data: st.DataObject, edges: bool) -> None:
    ref = data.draw(_shares)
    cur = data.draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=len(ref), max_size=len(ref)))
    labels = data.draw(st.lists(_labels, min_size=len(ref) + edges, max_size=len(ref) + edges))
    chart = grouped_bars({"reference": ref, "current": cur}, {"reference": "#111", "current": "#222"}, title="t",
                         x_labels=labels, x_title="x", y_title="share of rows", edges=edges)
    assert 0 < chart.left < chart.right <= chart.width and chart.top < chart.bottom < chart.height
    for bar in chart.bars:
        assert chart.left <= bar.x and bar.x + bar.width <= chart.right + 1e-9
        assert chart.top - 1e-9 <= bar.y and bar.y + bar.height <= chart.bottom + 1e-9
    assert all(chart.left - 1e-9 <= t.x <= chart.right + 1e-9 for t in chart.x_ticks)
    assert [t.y for t in chart.y_ticks] == sorted((t.y for t in chart.y_ticks), reverse=True)
    tallest = max(max(ref), max(cur))
    assert min(bar.y for bar in chart.bars) >= chart.top - 1e-9 and (tallest == 0 or chart.y_ticks[-1].y <= min(
        bar.y for bar in chart.bars) + 1e-9)


_values = st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), runs=st.integers(1, 60), threshold=st.one_of(st.none(), st.floats(-10, 10)))
def test_lines_stay_inside_the_drawing(data: st.DataObject, runs: int, threshold: float | None) -> None:
    from mlship.stats.svg import line_chart

    series = {f"s{k}": data.draw(st.lists(_values, min_size=runs, max_size=runs)) for k in range(2)}
    labels = data.draw(st.lists(_labels, min_size=runs, max_size=runs))
    chart = line_chart(series, {"s0": "#111", "s1": "#222"}, labels, x_title="run", threshold=threshold)
    assert 0 < chart.left < chart.right <= chart.width and chart.top < chart.bottom < chart.height
    for line in chart.lines:
        for x, y, _tip in line.points:
            assert chart.left <= x <= chart.right and chart.top - 1e-6 <= y <= chart.bottom + 1e-6
        assert sum(len(seg) for seg in line.segments) == len(line.points)
    if threshold is not None:
        assert chart.top - 1e-6 <= chart.threshold <= chart.bottom + 1e-6
    assert len(chart.x_ticks) <= 8 and all(item.x >= 0 for item in chart.legend)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), rows=st.integers(1, 25))
def test_horizontal_bars_stay_inside_the_drawing(data: st.DataObject, rows: int) -> None:
    from mlship.stats.svg import horizontal_bars

    values = st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=rows, max_size=rows)
    chart = horizontal_bars({"holdout": data.draw(values), "window": data.draw(values)},
                            {"holdout": "#111", "window": "#222"}, data.draw(st.lists(_labels, min_size=rows,
                                                                                      max_size=rows)),
                            x_title="mean |contribution|")
    for bar in chart.bars:
        assert chart.left <= bar.x and bar.x + bar.width <= chart.right + 1e-6
        assert chart.top <= bar.y and bar.y + bar.height <= chart.bottom + 1e-6
    assert chart.bottom < chart.height and chart.x_ticks[0].label == "0"
