"""The A/B test report: ``abtest.json`` for machines and ``abtest.html`` (Jinja2 template, matplotlib
plots inlined as PNG) for people: cumulative lift with its interval, per-variant outcome
distributions, the sample-ratio check, guardrails, the decision and its reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlship.experiments.data import ExperimentData
from mlship.experiments.results import AbTestResult
from mlship.stats.plots import figure_uri
from mlship.stats.reports import render_page

FORMAT = "mlship-abtest/1"
TEMPLATES = Path(__file__).resolve().parent / "templates"
COLORS = {"control": "#4c78a8", "treatment": "#f58518"}


def report_document(result: AbTestResult) -> dict[str, Any]:
    """The JSON document of an analysis."""
    return {"format": FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"), **result.to_dict()}


def write_report(result: AbTestResult, data: ExperimentData, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``abtest.json`` and ``abtest.html`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = report_document(result)
    json_path, html_path = out / "abtest.json", out / "abtest.html"
    json_path.write_text(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n", "utf-8")
    html_path.write_text(render_html(doc, data), "utf-8")
    return json_path, html_path


def render_html(doc: dict[str, Any], data: ExperimentData) -> str:
    """The report page (autoescaped template; plots as data URIs)."""
    pct = {"pct": lambda v: "–" if v is None else f"{v:+.2%}"}
    return render_page(TEMPLATES, "abtest.html.j2", pct, report=doc, figures=figures(doc, data))


def figures(doc: dict[str, Any], data: ExperimentData) -> list[dict[str, str]]:
    """Title, caption and PNG data URI of each plot."""
    import matplotlib

    matplotlib.use("Agg")
    interval = "always-valid confidence sequence" if doc["sequential"] else "fixed-horizon confidence interval"
    alpha = doc["settings"]["alpha"]
    figs = []
    if doc["timeline"]:
        power = doc.get("power")
        planned = power["required_control"] + power["required_treatment"] if power else None
        figs.append({"title": "Cumulative relative lift", "uri": _lift_plot(doc["timeline"], planned),
                     "caption": f"Lift of the treatment over the control after each number of units (arrival "
                                f"order), with its {1 - alpha:.0%} {interval}; the dashed line is the sample the MDE "
                                "needs. Reading a fixed-horizon interval at every look inflates false positives; the "
                                "sequential one may be read at any look."})
    figs.append({"title": "Outcome per variant", "uri": _distributions(doc, data),
                 "caption": "Rate with its 95% interval per variant (binary metric) or the outcome's histogram "
                            "per variant (continuous metric)."})
    figs.append({"title": "Sample ratio", "uri": _srm_plot(doc["srm"]),
                 "caption": "Units per variant against the design's split; a χ² p-value below "
                            f"{doc['srm']['threshold']} blocks any decision."})
    return figs


def _lift_plot(points: list[dict[str, Any]], planned: int | None) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6))
    units = [p["units"] for p in points]
    ax.fill_between(units, [p["low"] for p in points], [p["high"] for p in points], color="#f58518", alpha=0.25,
                    label="interval")
    ax.plot(units, [p["relative_lift"] for p in points], color="#f58518", label="relative lift")
    ax.axhline(0, color="#444", lw=0.8)
    if planned and planned <= 2 * units[-1]:
        ax.axvline(planned, color="#888", ls="--", lw=1, label=f"planned sample ({planned})")
    # the first looks' intervals are very wide: scale to the last 90 % so the later ones stay readable
    tail = points[len(points) // 10:] or points
    lo, hi = min(min(p["low"] for p in tail), 0.0), max(max(p["high"] for p in tail), 0.0)
    pad = 0.1 * (hi - lo or 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    ax.yaxis.set_major_formatter(matplotlib_percent())
    ax.set(xlabel="units (both variants)", ylabel="relative lift")
    ax.legend(fontsize=8, loc="upper right")
    return figure_uri(fig)


def matplotlib_percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0)


def _distributions(doc: dict[str, Any], data: ExperimentData) -> str:
    import matplotlib.pyplot as plt

    arms = (("control", data.control.outcome), ("treatment", data.treatment.outcome))
    fig, ax = plt.subplots(figsize=(6, 3.4))
    if doc["metric"] == "binary":
        rates = [float(v.mean()) for _, v in arms]
        errs = [1.96 * np.sqrt(r * (1 - r) / max(v.size, 1)) for r, (_, v) in zip(rates, arms, strict=True)]
        names = [doc[role]["name"] for role, _ in arms]
        ax.bar(names, rates, yerr=errs, color=[COLORS[r] for r, _ in arms], capsize=6)
        ax.set(ylabel="rate")
    else:
        both = np.concatenate([v for _, v in arms])
        edges = np.histogram_bin_edges(both, bins=40)
        for role, values in arms:
            ax.hist(values, bins=edges, alpha=0.5, color=COLORS[role], label=doc[role]["name"], density=True)
        ax.set(xlabel="outcome per unit", ylabel="density")
        ax.legend(fontsize=8)
    return figure_uri(fig)


def _srm_plot(srm: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    names = list(srm["observed"])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(x - 0.2, [srm["observed"][n] for n in names], 0.4, label="observed", color="#4c78a8")
    ax.bar(x + 0.2, [srm["expected"][n] for n in names], 0.4, label="expected", color="#bbbbbb")
    ax.set_xticks(x, names)
    ax.set(ylabel="units")
    ax.legend(fontsize=8)
    return figure_uri(fig)
