"""A load test of a real ``mlship serve`` process, with bodies generated from the bundle; the HTML
report it writes is checked as a page (balanced markup, every plot a decodable PNG, text escaped)."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from realtime.helpers import ServeProcess

from mlship.loadtest.bodies import from_bundle
from mlship.loadtest.plan import Plan
from mlship.loadtest.run import CostBasis, loadtest
from mlship.loadtest.summary import Slo

VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Checker(HTMLParser):
    """Fails on a closing tag that does not match the open one (html.parser alone accepts anything)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def check_page(text: str) -> _Checker:
    """Parse the page strictly; every image must be an inline PNG."""
    assert text.startswith("<!DOCTYPE html>")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == [], f"unclosed: {checker.stack}"
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    return checker


@pytest.fixture(scope="module")
def serve(churn_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> ServeProcess:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with ServeProcess(churn_bundle, workers=1, log_path=log) as proc:
        yield proc


def test_below_the_knee_the_achieved_rate_is_the_target(serve: ServeProcess, churn_bundle: Path,
                                                        tmp_path: Path) -> None:
    bodies = from_bundle(str(churn_bundle), count=50)
    plan = Plan(slo=Slo(p99_ms=1000, error_rate=0.0), rate=100.0, step_duration=3.0, warmup=1.0)
    outcome = loadtest(serve.url, bodies, plan, tmp_path, cost=CostBasis(instance_type="ml.m5.large"),
                       model={"uri": str(churn_bundle)})
    step = outcome.report["steps"][0]
    assert step["requests"] == 300 and step["errors"] == {}  # every generated body is a valid request
    assert abs(step["achieved_rps"] - 100.0) / 100.0 <= 0.05, step
    assert outcome.met_slo and outcome.report["knee"] == step
    cost = outcome.report["cost"]
    assert cost["basis"] == "instance" and cost["prices_as_of"] and cost["usd_per_million"] > 0
    saved = json.loads((tmp_path / "loadtest.json").read_text())
    assert saved["target"] == f"{serve.url}/invocations" and saved["bodies"]["count"] == 50
    page = (tmp_path / "loadtest.html").read_text()
    checker = check_page(page)
    assert len(checker.images) == 3  # latency over time, percentiles and throughput vs offered rate
    assert "Highest rate meeting the SLO" in page


def test_the_page_escapes_what_it_shows(tmp_path: Path) -> None:
    from mlship.loadtest.engine import PhaseRun, Sample
    from mlship.loadtest.report import build_report, render_html
    from mlship.loadtest.summary import summarize

    run = PhaseRun("step <b>1</b>/s", 10.0, 1.0, 1.0, [Sample(i / 10, i / 10, i / 10 + 0.002, "ok")
                                                      for i in range(10)], 1)
    plan = Plan(slo=Slo(p99_ms=10), rates=[10.0])
    summary = summarize(run, plan.slo)
    result = {"mode": "stairs", "steps": [summary], "knee": summary, "runs": [(run, summary)]}
    report = build_report(result, plan, target="http://127.0.0.1:1/<script>", bodies={
        "source": "a&b", "count": 1, "content_type": "application/json"}, cost=None)
    page = render_html(report, result["runs"])
    check_page(page)
    assert "<script>" not in page and "&lt;script&gt;" in page and "step &lt;b&gt;1&lt;/b&gt;/s" in page
    assert re.search(r"a&amp;b", page)
