"""Every HTML report mlship writes, produced by its real code path on small real data, opened in
headless Chromium: no script or console error, no request leaving the page, every figure decoded
and laid out inside the window, no horizontal overflow; a screenshot lands under ``tmp_path``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reports.browser import Rendered, available, render

pytestmark = pytest.mark.skipif(not available(), reason="/usr/bin/chromium is not installed (Debian package "
                                "chromium; make setup installs it): the HTML reports cannot be opened in a browser")


@pytest.fixture(scope="module")
def challenger(tmp_path_factory: pytest.TempPathFactory, churn_split: tuple[Any, Any]) -> Path:
    """A logistic-regression bundle of the churn data with 3-fold cross-validation (its model card
    has every section)."""
    from mlship.evaluation.export import export_bundle
    from mlship.local.train import train_pipeline

    train, holdout = churn_split
    out = tmp_path_factory.mktemp("bundles") / "churn-2"
    return export_bundle(train_pipeline(train, "logreg"), holdout, "churned", out, name="churn", version="2",
                         train=train.head(1500), cv=3, sensitive="gender", description="challenger <logreg>",
                         tarball=False)


def _model_card(out: Path, ctx: dict[str, Any]) -> Path:
    page = ctx["challenger"] / "model_card.html"
    assert "challenger &lt;logreg&gt;" in page.read_text(encoding="utf-8")  # the description, autoescaped
    return page


def _evaluation(out: Path, ctx: dict[str, Any]) -> Path:
    from mlship.evaluation.evaluate import evaluate, write_report

    ev = evaluate(ctx["churn_bundle"], ctx["holdout"], "churned", slices=["contract", "tenure_months"],
                  sensitive="gender", bootstrap=20, latency_rows=20)
    return write_report(ev, out)[1]


def _gate(out: Path, ctx: dict[str, Any]) -> Path:
    from mlship.evaluation.gate import parse_thresholds, run_gate, write_gate_report

    limits = parse_thresholds({"metrics": {"roc_auc": {"min": 0.7, "min_improvement": 0.0}, "log_loss": {"max": 0.6}},
                               "fairness": {"attribute": "gender", "demographic_parity_difference": 0.2},
                               "slices": ["contract"], "bootstrap": 20})
    result = run_gate(ctx["challenger"], ctx["churn_bundle"], ctx["holdout"], "churned", limits)
    return write_gate_report(result, out)[1]


def _drift(out: Path, ctx: dict[str, Any]) -> Path:
    """Three monitor windows of growing shift: the last one's report with the history of all three
    (as ``mlship.monitoring.run`` renders it)."""
    from mlship.local.datasets import make_churn
    from mlship.monitoring import html as html_report
    from mlship.runtime.sources import open_bundle
    from mlship.stats.drift import DriftAccumulator

    profile = open_bundle(ctx["churn_bundle"]).profile
    history, report = [], {}
    start = datetime(2026, 11, 23, 10, tzinfo=UTC)
    for k, shift in enumerate((0.0, 0.5, 1.0)):
        frame = make_churn(1500, seed=20 + k, shift=shift).drop(columns=["churned"])
        acc = DriftAccumulator(profile)
        acc.update({c: frame[c].to_numpy() for c in frame.columns})
        drift = acc.result({})
        now = start + timedelta(hours=k)
        history.append({"time": now.isoformat(), "share": drift.share, "dataset_drift": drift.dataset_drift,
                        "prediction_score": None, "quality": 0.8 - 0.05 * k, "rows": len(frame)})
        report = {"format": "mlship-monitor-report/1", "generated_at": now.isoformat(),
                  "model": {"name": "churn", "version": "1"},
                  "window": {"start": (now - timedelta(hours=1)).isoformat(), "end": now.isoformat()},
                  "drift": drift.to_dict(), "alerts": [{"type": "DriftDetected", "message": drift.summary()}]}
    out.mkdir(parents=True, exist_ok=True)
    page = out / "report.html"
    page.write_text(html_report.render(report, history), encoding="utf-8")
    return page


def _shadow(out: Path, ctx: dict[str, Any]) -> Path:
    """Capture records of the champion and its shadow (both models' real predictions), joined."""
    from mlship.monitoring.shadow_report import ShadowSpec, build_report, write_report
    from mlship.runtime.predictor import Predictor

    rows = ctx["holdout"].drop(columns=["churned"]).head(200).to_dict(orient="records")
    sides = [(Predictor.load(ctx["churn_bundle"]), None), (Predictor.load(ctx["challenger"]), "shadow")]
    records, labels = [], {}
    for predictor, role in sides:
        pred = predictor.predict(rows)
        for i, row in enumerate(rows):
            rec = {"request_id": f"r{i // 4}", "row": i % 4, "time": "2026-12-01T10:00:00.000Z", "source": "lambda",
                   "model": {"name": "churn", "version": predictor.model_version}, "inputs": row,
                   "outputs": {"prediction": pred.labels[i].item(), "probabilities": pred.probabilities[i].tolist()}}
            if role:
                rec.update(role=role, shadow_error=None, shadow_latency_ms=2.0 + i % 5, primary_latency_ms=1.0)
            records.append(rec)
    for i, y in enumerate(ctx["holdout"]["churned"].head(200)):
        labels[(f"r{i // 4}", i % 4)] = int(y)
    report = build_report(records, ShadowSpec(slices=["contract"]), labels=labels, source="test records")
    return write_report(report, out)[1]


def _abtest(out: Path, ctx: dict[str, Any]) -> Path:
    import pandas as pd

    from mlship.experiments.analysis import analyze
    from mlship.experiments.config import AbTestConfig
    from mlship.experiments.data import from_frame
    from mlship.experiments.report import write_report

    rng = np.random.default_rng(0)
    n = 6000
    arm = np.where(rng.random(n) < 0.5, "challenger", "champion")
    frame = pd.DataFrame({"arm": arm, "converted": (rng.random(n) < np.where(arm == "challenger", 0.13, 0.10))
                          .astype(int), "latency": rng.gamma(2.0, 15.0, n)})
    data = from_frame(frame, variant_column="arm", outcome_column="converted", control="champion",
                      treatment="challenger", metric="binary", latency_column="latency")
    return write_report(analyze(data, AbTestConfig(mde=0.2, sequential=True)), data, out)[1]


class _Answer(BaseHTTPRequestHandler):
    """A scoring server's answer to every POST (what ``mlship serve`` returns, without the model)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"predictions": [0]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def http_target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/invocations"
    server.shutdown()
    server.server_close()


def _loadtest(out: Path, ctx: dict[str, Any]) -> Path:
    from mlship.loadtest.bodies import from_bundle
    from mlship.loadtest.plan import Plan
    from mlship.loadtest.run import loadtest
    from mlship.loadtest.summary import Slo

    plan = Plan(slo=Slo(p99_ms=500, error_rate=0.0), rates=[20.0, 40.0], step_duration=1.0, warmup=0.5,
                stress=False)
    loadtest(ctx["http_target"], from_bundle(str(ctx["churn_bundle"]), count=20), plan, out)
    return out / "loadtest.html"


# kind -> (builder, fixtures it needs, at least this many figures, a heading the page must show)
REPORTS: dict[str, tuple[Callable[[Path, dict[str, Any]], Path], tuple[str, ...], int, str]] = {
    "model-card": (_model_card, ("challenger",), 3, "Cross-validation"),
    "evaluation": (_evaluation, ("churn_bundle", "holdout"), 5, "Slices by contract"),
    "gate": (_gate, ("churn_bundle", "challenger", "holdout"), 5, "Checks"),
    "drift": (_drift, ("churn_bundle",), 11, "Features"),
    "shadow": (_shadow, ("churn_bundle", "challenger", "holdout"), 3, "Agreement"),
    "abtest": (_abtest, (), 3, "Guardrails"),
    "loadtest": (_loadtest, ("churn_bundle", "http_target"), 3, "Phases"),
}


@pytest.fixture
def holdout(churn_split: tuple[Any, Any]) -> Any:
    return churn_split[1]


def _blank(png: Path) -> bool:
    from PIL import Image

    with Image.open(png) as img:
        low, high = img.convert("L").getextrema()
    return low == high


@pytest.mark.parametrize("kind", list(REPORTS))
def test_the_report_renders_cleanly_in_chromium(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    build, needs, min_figures, heading = REPORTS[kind]
    page = build(tmp_path / kind, {name: request.getfixturevalue(name) for name in needs})
    shown: Rendered = render(page, tmp_path / f"{kind}.png")
    assert shown.problems() == [], shown.problems()
    assert len(shown.images) + len(shown.charts) >= min_figures, (shown.images, shown.charts)
    assert heading in shown.headings, shown.headings
    assert shown.tables >= 1 and shown.title.strip()
    assert shown.screenshot.is_file() and not _blank(shown.screenshot)


def test_the_probe_sees_a_broken_page(tmp_path: Path) -> None:
    """The checks are not vacuous: a page with a broken image, a script error, an outside request
    and a too-wide element is reported on each count."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><title>broken</title></head><body><h1>x</h1>"
                    "<img alt='bad' src='data:image/png;base64,AAAA'><img alt='far' src='http://127.0.0.1:9/x.png'>"
                    "<svg class='chart' aria-label='cut' width='100' height='50' viewBox='0 0 100 50'>"
                    "<text x='90' y='20'>far too long a label</text><g class='x-ticks'><text x='10' y='40'>1000</text>"
                    "<text x='14' y='40'>2000</text></g></svg>"
                    "<div style='width:3000px'>wide</div><script>console.error('boom'); undefinedCall();</script>"
                    "</body></html>", encoding="utf-8")
    problems = " | ".join(render(page, tmp_path / "broken.png").problems())
    for expected in ("image 'bad' did not decode", "undefinedCall", "console error: boom", 'browser console: "boom"',
                     "network request: http://127.0.0.1:9/x.png", "horizontal overflow",
                     "chart 'cut': label 'far too long a label' is cut", "chart 'cut': tick labels 1000/2000 overlap"):
        assert expected in problems, problems


def _awkward_histograms() -> dict[str, dict[str, Any]]:
    """Histograms whose labels are hard to fit: large and tiny magnitudes, negative values, many
    bins, long and many category names (the issue's ``7.34e+03..1.`` labels came from such columns)."""
    rng = np.random.default_rng(4)

    def numeric(edges: np.ndarray) -> dict[str, Any]:
        ref = rng.dirichlet(np.ones(len(edges) - 1))
        return {"lower": edges[:-1].tolist(), "upper": edges[1:].tolist(), "reference": ref.tolist(),
                "current": rng.dirichlet(np.ones(len(edges) - 1)).tolist()}

    def categorical(names: list[str]) -> dict[str, Any]:
        return {"categories": names, "reference": rng.dirichlet(np.ones(len(names))).tolist(),
                "current": rng.dirichlet(np.ones(len(names))).tolist()}

    return {
        "amount in cents": numeric(np.linspace(7340.25, 1.2e9, 11)),
        "tiny rates": numeric(np.linspace(-3.2e-7, 9.9e-6, 11)),
        "thirty bins": numeric(np.sort(rng.normal(-5e4, 2e4, 31))),
        "long names": categorical([f"a rather long category name {i}" for i in range(6)]),
        "many categories": categorical([f"region-{i:02d}" for i in range(40)]),
        "one category": categorical(["only"]),
    }


def test_histogram_axis_labels_are_inside_their_charts_and_apart_in_chromium(tmp_path: Path) -> None:
    """Issue 20 item 4: every label of every drift histogram is drawn inside its chart, tick labels
    do not overlap, and none is written with an exponent."""
    from mlship.monitoring import html as html_report

    features = {name: {"type": "numeric" if "lower" in h else "categorical", "drifted": False, "histogram": h}
                for name, h in _awkward_histograms().items()}
    page = tmp_path / "awkward.html"
    page.write_text(html_report.render({"model": {"name": "awkward", "version": "1"},
                                        "drift": {"features": features}}), encoding="utf-8")
    shown = render(page, tmp_path / "awkward.png")
    assert shown.problems() == [], shown.problems()
    assert len(shown.charts) == len(features)
    assert "e+" not in page.read_text(encoding="utf-8").split("<h2>Features</h2>", 1)[1]
