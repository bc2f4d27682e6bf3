"""The human report of a monitor run (or ``mlship drift``): one self-contained HTML page from
``templates/monitoring.html.j2``: per-feature reference vs current histograms as inline SVG (laid
out by ``mlship.stats.svg``, drawn by the shared ``charts.html.j2``: no matplotlib, milliseconds
per chart), and matplotlib figures in the shared report style (``mlship.stats.plots``) for drift
over time and attribution drift (holdout vs window mean |contribution| per field), then the
performance and fairness tables. Where matplotlib is not installed (a slim monitor Lambda) the
page keeps every table and histogram and says that the other figures were left out."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mlship.stats.drift import effect_size
from mlship.stats.plots import BAD, CURRENT, PALETTE, REFERENCE, compact, compact_axis, figure_uri
from mlship.stats.reports import render_page
from mlship.stats.svg import BarChart, bin_edge_labels, grouped_bars

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_LABEL = 14
FEATURE_COLUMNS = ["feature", "type", "drifted", "method", "score", "threshold", "KS D", "KS p",
                   "Wasserstein (norm.)", "PSI", "JS distance", "chi² p", "Δ null rate", "reason"]
ATTRIBUTION_COLUMNS = ["field", "holdout mean |contribution|", "window mean |contribution|", "Δ", "relative Δ",
                       "holdout share", "window share", "share shift"]
ATTRIBUTION_KEYS = ["baseline", "window", "abs_change", "rel_change", "baseline_share", "window_share", "share_shift"]
MAX_ATTRIBUTION_BARS = 20
# histograms drawn per report: the drifted features first, then the largest effect sizes (a page of
# hundreds of charts is hard to read; every feature's statistics are in the table whatever the count)
MAX_HISTOGRAMS = 12
FEATURE_KEYS = ["type", "drifted", "method", "score", "threshold", "ks_statistic", "ks_pvalue", "wasserstein_norm",
                "psi", "jensenshannon", "chi2_pvalue", "null_rate_change", "reason"]


def figures_available() -> bool:
    """Whether matplotlib is importable (the report's figures need it; its tables do not)."""
    return importlib.util.find_spec("matplotlib") is not None


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def histogram_chart(histogram: dict[str, Any], title: str) -> BarChart:
    """Reference vs current share of rows per bin (numeric: the bin edges as compact tick labels,
    the bins drawn equally wide since each holds an equal share of the reference) or per category."""
    series = {"reference": list(histogram["reference"]), "current": list(histogram["current"])}
    colors = {"reference": REFERENCE, "current": CURRENT}
    if "categories" in histogram:
        labels = [_short(str(c)) for c in histogram["categories"]]
        return grouped_bars(series, colors, title=title, x_labels=labels, x_title="category",
                            y_title="share of rows", edges=False, tooltips=[str(c) for c in histogram["categories"]])
    lower, upper = histogram.get("lower") or [], histogram.get("upper") or []
    tips = [f"{compact(lo, 6)} to {compact(hi, 6)}" for lo, hi in zip(lower, upper, strict=True)]
    return grouped_bars(series, colors, title=title, x_labels=bin_edge_labels(lower, upper),
                        x_title=f"{title} (bins of equal reference share)", y_title="share of rows", edges=True,
                        tooltips=tips)


def line_figure(series: dict[str, list[float | None]], x_labels: list[str], threshold: float | None = None,
                title: str = "") -> str:
    """Lines over the past runs (e.g. drift share per run), with an optional dashed threshold."""
    from mlship.stats.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3))
    for k, (name, vals) in enumerate(series.items()):
        pts = [(i, v) for i, v in enumerate(vals) if v is not None]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o", ms=3, lw=2, color=PALETTE[(k + 1) % len(PALETTE)], label=name)
    if threshold is not None:
        ax.axhline(threshold, color=BAD, ls="--", lw=1, label="threshold")
    n = len(x_labels)
    ticks = list(range(0, n, max(1, n // 6))) if n else []
    ax.set_xticks(ticks, [_time_label(x_labels[i]) for i in ticks])
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    compact_axis(ax.yaxis)
    ax.set(title=title, xlabel="run (UTC)")
    ax.legend(loc="upper left", ncols=3)
    return figure_uri(fig)


def attribution_figure(fields: list[str], baseline: list[float], window: list[float], title: str = "") -> str:
    """Holdout vs window mean |contribution| per field: grouped horizontal bars, largest on top."""
    from mlship.stats.plots import pyplot

    plt = pyplot()
    n = len(fields)
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * n + 1.1))
    y = list(range(n))
    ax.barh([i - 0.2 for i in y], baseline, 0.4, color=REFERENCE, label="holdout")
    ax.barh([i + 0.2 for i in y], window, 0.4, color=CURRENT, label="window")
    ax.set_yticks(y, [f if len(f) <= 2 * MAX_LABEL else f[: 2 * MAX_LABEL - 1] + "…" for f in fields])
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    compact_axis(ax.xaxis)
    ax.set(xlabel="mean |contribution|", title=title)
    ax.legend(loc="lower right", ncols=2)
    return figure_uri(fig)


def _time_label(iso: str) -> str:
    """``2026-11-23T10:00:00+00:00`` -> ``11-23 10:00`` (the year and seconds add nothing to a tick)."""
    return iso[5:16].replace("T", " ") if len(iso) >= 16 else iso


def render(report: dict[str, Any], history: list[dict[str, Any]] | None = None) -> str:
    """The HTML page of a monitor (or ``mlship drift``) report."""
    drift = report.get("drift") or {}
    model = report.get("model") or {}
    title = (f"mlship drift: {model.get('name', '')}" if model.get("version") == "dataset"
             else f"mlship monitoring: {model.get('name', '')} v{model.get('version', '')}".strip())
    plots = figures_available()
    features = drift.get("features") or {}
    return render_page(
        TEMPLATES, "monitoring.html.j2", title=title, report=report, drift=drift,
        window=report.get("window") or {}, alerts=report.get("alerts") or [],
        threshold_share=(drift.get("thresholds") or {}).get("share", 0.5), figures_available=plots,
        history_figures=_history_figures(history or [], drift, report.get("attribution_drift")) if plots else [],
        feature_header=FEATURE_COLUMNS,
        feature_rows=[[name, *[f.get(k) for k in FEATURE_KEYS]] for name, f in features.items()],
        feature_classes=["drifted" if f.get("drifted") else "" for f in features.values()],
        histograms=_feature_figures(drift),
        histograms_left_out=max(0, sum(1 for f in features.values() if f.get("histogram")) - MAX_HISTOGRAMS),
        attribution=_attribution(report.get("attribution_drift"), plots),
        performance=_performance(report.get("performance")), fairness=_fairness(report.get("fairness")))


def _history_figures(history: list[dict[str, Any]], drift: dict[str, Any],
                     attribution: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Drift share, prediction drift and (when known) attribution shift and model quality over the past runs."""
    if not history:
        return []
    labels = [str(h.get("time", "")) for h in history]
    figs = [{"title": "Drift over time",
             "uri": line_figure({"drift share": [h.get("share") for h in history],
                                 "prediction drift score": [h.get("prediction_score") for h in history]},
                                labels, threshold=(drift.get("thresholds") or {}).get("share")),
             "caption": "Share of drifted features and the prediction drift score per monitor run."}]
    if any(h.get("attribution_shift") is not None for h in history):
        figs.append({"title": "Attribution drift over time",
                     "uri": line_figure({"attribution shift": [h.get("attribution_shift") for h in history]}, labels,
                                        threshold=(attribution or {}).get("threshold")),
                     "caption": "Total variation between the holdout's and each run's attribution shares."})
    if any(h.get("quality") is not None for h in history):
        figs.append({"title": "Model quality over time",
                     "uri": line_figure({"model quality": [h.get("quality") for h in history]}, labels),
                     "caption": "The primary metric on late labels per run."})
    return figs


def _feature_figures(drift: dict[str, Any]) -> list[dict[str, Any]]:
    """Histogram cards: every prediction output, then up to :data:`MAX_HISTOGRAMS` features, the
    drifted ones first and then by effect size."""
    predictions = {f"prediction {k}": v for k, v in (drift.get("predictions") or {}).items() if v.get("histogram")}
    features = {k: v for k, v in (drift.get("features") or {}).items() if v.get("histogram")}
    shown = sorted(features, key=lambda n: (not features[n].get("drifted"), -(effect_size(features[n]) or 0.0)))
    chosen = {**predictions, **{name: features[name] for name in shown[:MAX_HISTOGRAMS]}}
    return [{"title": name, "drifted": bool(f.get("drifted")), "chart": histogram_chart(f["histogram"], name)}
            for name, f in chosen.items()]


def _attribution(section: dict[str, Any] | None, plots: bool) -> dict[str, Any] | None:
    """The attribution drift section: its verdict, one table per target (fields by holdout
    importance; a row is marked when that field alone moved by the threshold) and one figure each."""
    if not section:
        return None
    fields = section.get("fields") or {}
    targets = section.get("targets") or []
    threshold = section.get("threshold") or 0.0
    tables = []
    for k, target in enumerate(targets):
        names = sorted(fields, key=lambda name: -fields[name]["baseline"][k])
        rows = [[name, *[fields[name][key][k] for key in ATTRIBUTION_KEYS]] for name in names]
        classes = ["drifted" if abs(fields[name]["share_shift"][k]) >= threshold else "" for name in names]
        shown = names[:MAX_ATTRIBUTION_BARS]
        label = f"target {target}" if len(targets) > 1 else ""
        uri = attribution_figure(shown, [fields[f]["baseline"][k] for f in shown],
                                 [fields[f]["window"][k] for f in shown], label) if plots and shown else None
        tables.append({"label": label, "rows": rows, "classes": classes, "uri": uri,
                       "cut": max(0, len(names) - len(shown))})
    return {**section, "header": ATTRIBUTION_COLUMNS, "tables": tables}


def _performance(perf: dict[str, Any] | None) -> dict[str, Any] | None:
    """Model quality on the late labels against the holdout: the summary and a metric table."""
    if not perf:
        return None
    cur, hold = perf.get("current") or {}, perf.get("holdout") or {}
    return {**perf, "table_rows": [[k, hold.get(k), cur.get(k)] for k in hold if k in cur and k != "rows"]}


def _fairness(fair: dict[str, Any] | None) -> dict[str, Any] | None:
    """Fairness gaps and per-group rates, on the predictions and on the labelled rows."""
    if not fair:
        return None
    blocks = []
    for label, block in (("window (predictions)", fair.get("window")), ("labelled window", fair.get("labelled"))):
        if block:
            groups = block.get("groups") or {}
            blocks.append({"label": label, "dpd": block.get("demographic_parity_difference"),
                           "eod": block.get("equalized_odds_difference"),
                           "rows": [[g, v.get("count"), v.get("selection_rate"), v.get("tpr"), v.get("fpr")]
                                    for g, v in groups.items()]})
    return {"attribute": fair.get("attribute"), "blocks": blocks}
