"""The shared report style and pages without a browser: compact number labels (fuzzed), autoescaping,
and the monitoring page without matplotlib."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlship.stats.plots import compact
from mlship.stats.reports import number

SUFFIX = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


@given(st.floats(min_value=-1e14, max_value=1e14, allow_nan=False, allow_infinity=False))
def test_compact_labels_are_short_and_read_back_to_the_value(value: float) -> None:
    label = compact(value)
    assert len(label) <= 10, label
    if abs(value) >= 1:
        assert "e" not in label, label  # the exponent form is what made the old drift labels unreadable
        found = re.fullmatch(r"(-?[0-9.]+)([kMGT]?)", label)
        assert found, label
        back = float(found.group(1)) * SUFFIX[found.group(2)]
        assert math.isclose(back, value, rel_tol=5e-3), (value, label)


def test_compact_and_number_on_the_edges() -> None:
    assert [compact(v) for v in (7340.0, 0.0, -0.0, 0.05, 999.96, 1.2e6, math.inf)] == \
        ["7.34k", "0", "0", "0.05", "1k", "1.2M", "∞"]
    assert [number(v) for v in (None, True, 0.123456, 65080.3, 12)] == ["–", "yes", "0.1235", "65.08k", "12"]


def _drift_report(churn_bundle: Path, name: str = "churn <b>") -> dict[str, Any]:
    from mlship.local.datasets import make_churn
    from mlship.runtime.sources import open_bundle
    from mlship.stats.drift import DriftAccumulator

    acc = DriftAccumulator(open_bundle(churn_bundle).profile)
    frame = make_churn(800, seed=3, shift=1.0).drop(columns=["churned"])
    acc.update({c: frame[c].to_numpy() for c in frame.columns})
    return {"model": {"name": name, "version": "1"}, "drift": acc.result({}).to_dict(),
            "alerts": [{"type": "DriftDetected", "message": "<script>alert(1)</script>"}]}


def test_the_monitoring_page_escapes_and_draws_every_chart_without_matplotlib(
        churn_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlship.monitoring import html as html_report

    report = _drift_report(churn_bundle)
    page = html_report.render(report)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "churn &lt;b&gt;" in page and page.count('<svg class="chart"') >= 9
    text = re.sub(r'src="data:[^"]*"', "", page)
    assert "e+0" not in text  # no exponent labels in the tables nor the charts (compact labels)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in the monitor Lambda, which does not ship it
    assert html_report.render(report) == page  # every chart is inline SVG: nothing is left out
