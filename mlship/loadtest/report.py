"""The load-test report: one JSON document and a self-contained HTML page (Jinja2 template,
matplotlib plots inlined as PNG): latency over time, latency percentiles and throughput vs the
offered rate."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlship.loadtest.engine import PhaseRun
from mlship.loadtest.plan import Plan, phase_samples
from mlship.loadtest.summary import timeline
from mlship.stats.plots import figure_uri
from mlship.stats.reports import render_page

FORMAT = "mlship-loadtest/1"
TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_POINTS = 20_000  # latency-over-time scatter: enough to see stalls, small enough to stay a light page


def build_report(result: dict[str, Any], plan: Plan, *, target: str, bodies: dict[str, Any],
                 cost: dict[str, Any] | None, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-ready report of one run (without the raw samples)."""
    runs: list[tuple[PhaseRun, dict[str, Any]]] = result["runs"]
    knee = result.get("knee")
    line = [b for offset, run in phase_samples(runs) for b in timeline(run, offset)]
    plan_doc = {k: v for k, v in asdict(plan).items() if k != "slo"}
    return {"format": FORMAT, "id": uuid.uuid4().hex[:12],
            "created": datetime.now(UTC).isoformat(timespec="seconds"), "target": target, "model": model,
            "bodies": bodies, "slo": asdict(plan.slo), "plan": plan_doc, "mode": result["mode"],
            "max_rps_meeting_slo": knee["achieved_rps"] if knee else None,
            "knee_target_rps": knee["target_rps"] if knee else None, "knee": knee,
            "warmup": next((s for r, s in runs if r.name == "warm-up"), None),
            "steps": result["steps"], "first_failing_rps": result.get("first_failing_rps"),
            "stress": result.get("stress"), "recovery": result.get("recovery"),
            "closed_loop": result.get("closed_loop"), "stopped_by": result.get("stopped_by"),
            "cost": cost, "timeline": line}


def write_report(report: dict[str, Any], runs: list[tuple[PhaseRun, dict[str, Any]]],
                 out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``loadtest.json`` and ``loadtest.html`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "loadtest.json", out / "loadtest.html"
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False, default=str) + "\n", "utf-8")
    html_path.write_text(render_html(report, runs), "utf-8")
    return json_path, html_path


def render_html(report: dict[str, Any], runs: list[tuple[PhaseRun, dict[str, Any]]]) -> str:
    """The report page (autoescaped template; plots as data URIs)."""
    phases = [s for r, s in runs]
    return render_page(TEMPLATES, "report.html.j2", {"num": _num}, report=report, phases=phases,
                       figures=figures(report, runs))


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def figures(report: dict[str, Any], runs: list[tuple[PhaseRun, dict[str, Any]]]) -> list[dict[str, str]]:
    """Title, caption and PNG data URI of each plot."""
    import matplotlib

    matplotlib.use("Agg")
    figs = [{"title": "Latency over time", "uri": _latency_over_time(runs, report["slo"]["p99_ms"]),
             "caption": "Every request at its intended send time; latency from that time to the end of the "
                        "answer (log scale). Failed requests in red. Stalls show as vertical ridges."}]
    steps = [s for s in report["steps"] if s] + [s for s in (report.get("stress"),) if s]
    if steps:
        figs.append({"title": "Latency percentiles vs offered rate", "uri": _percentiles(steps, report["slo"]),
                     "caption": "Each stairs step and the stress step; the dashed line is the p99 SLO."})
        figs.append({"title": "Throughput vs offered rate", "uri": _throughput(steps),
                     "caption": "Answers per second against the rate offered; the diagonal is a target that "
                                "keeps up."})
    return figs


def _latency_over_time(runs: list[tuple[PhaseRun, dict[str, Any]]], slo_ms: float) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6))
    placed = phase_samples(runs)
    total = sum(len(r.samples) for _o, r in placed) or 1
    stride = max(1, total // MAX_POINTS)
    palette = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#72b7b2", "#eeca3b", "#ff9da6"]
    for n, (offset, run) in enumerate(placed):
        ok = [(offset + s.intended, max(s.latency, 1e-5) * 1000) for s in run.samples[::stride] if s.outcome == "ok"]
        bad = [(offset + s.intended, max(s.latency, 1e-5) * 1000) for s in run.samples[::stride]
               if s.outcome != "ok"]
        if ok:
            ax.scatter(*zip(*ok, strict=True), s=3, label=run.name, color=palette[n % len(palette)])
        if bad:
            ax.scatter(*zip(*bad, strict=True), s=5, color="#d62728", marker="x")
        ax.axvline(offset, color="#bbb", lw=0.6)
    ax.axhline(slo_ms, color="#d62728", ls="--", lw=1)
    ax.set(yscale="log", xlabel="seconds since start (intended send time)", ylabel="latency (ms)")
    ax.legend(fontsize=7, markerscale=3, loc="upper left")
    return figure_uri(fig)


def _percentiles(steps: list[dict[str, Any]], slo: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    rates = [s["target_rps"] for s in steps]
    for key, label in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99_9", "p99.9")):
        ax.plot(rates, [s["latency_ms"][key] or float("nan") for s in steps], marker="o", label=label)
    ax.axhline(slo["p99_ms"], color="#d62728", ls="--", lw=1, label="p99 SLO")
    ax.set(yscale="log", xlabel="offered rate (requests/s)", ylabel="latency (ms)")
    ax.legend(fontsize=8)
    return figure_uri(fig)


def _throughput(steps: list[dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    rates = [s["target_rps"] for s in steps]
    ax.plot(rates, rates, color="#999", ls=":", label="offered")
    ax.plot(rates, [s["achieved_rps"] for s in steps], marker="o", label="answered")
    ax.plot(rates, [s["ok"] / s["elapsed_s"] for s in steps], marker="s", label="answered ok")
    ax.set(xlabel="offered rate (requests/s)", ylabel="requests/s")
    ax.legend(fontsize=8)
    return figure_uri(fig)
