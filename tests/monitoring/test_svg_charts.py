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
