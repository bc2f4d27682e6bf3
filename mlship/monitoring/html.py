"""The human report of a monitor run (or ``mlship drift``): one self-contained HTML page from
``templates/monitoring.html.j2`` whose charts are inline SVG, laid out by ``mlship.stats.svg`` and
drawn by the shared ``charts.html.j2`` (no matplotlib: the monitor Lambda, which does not ship it,
writes every chart, and each costs milliseconds): per-feature reference vs current histograms,
drift over time, attribution drift (holdout vs window mean |contribution| per field), then the
performance and fairness tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlship.stats.drift import effect_size
from mlship.stats.plots import CURRENT, PALETTE, REFERENCE, compact
from mlship.stats.reports import render_page
from mlship.stats.svg import BarChart, LineChart, bin_edge_labels, grouped_bars, horizontal_bars, line_chart

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


def _short(label: str, limit: int = MAX_LABEL) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


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


def _time_label(iso: str) -> str:
    """``2026-11-23T10:00:00+00:00`` -> ``11-23 10:00`` (the year and seconds add nothing to a tick)."""
    return iso[5:16].replace("T", " ") if len(iso) >= 16 else iso


def render(report: dict[str, Any], history: list[dict[str, Any]] | None = None) -> str:
    """The HTML page of a monitor (or ``mlship drift``) report."""
    drift = report.get("drift") or {}
    model = report.get("model") or {}
    title = (f"mlship drift: {model.get('name', '')}" if model.get("version") == "dataset"
             else f"mlship monitoring: {model.get('name', '')} v{model.get('version', '')}".strip())
    features = drift.get("features") or {}
    return render_page(
        TEMPLATES, "monitoring.html.j2", title=title, report=report, drift=drift,
        window=report.get("window") or {}, alerts=report.get("alerts") or [],
        threshold_share=(drift.get("thresholds") or {}).get("share", 0.5),
        history_figures=_history_figures(history or [], drift, report.get("attribution_drift")),
        feature_header=FEATURE_COLUMNS,
        feature_rows=[[name, *[f.get(k) for k in FEATURE_KEYS]] for name, f in features.items()],
        feature_classes=["drifted" if f.get("drifted") else "" for f in features.values()],
        histograms=_feature_figures(drift),
        histograms_left_out=max(0, sum(1 for f in features.values() if f.get("histogram")) - MAX_HISTOGRAMS),
        attribution=_attribution(report.get("attribution_drift")),
        performance=_performance(report.get("performance")), fairness=_fairness(report.get("fairness")))


def _history_figures(history: list[dict[str, Any]], drift: dict[str, Any],
                     attribution: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Drift share, prediction drift and (when known) attribution shift and model quality over the past runs."""
    if not history:
        return []
    labels = [_time_label(str(h.get("time", ""))) for h in history]

    def chart(series: dict[str, list[Any]], threshold: float | None = None) -> LineChart:
        colors = {name: PALETTE[(k + 1) % len(PALETTE)] for k, name in enumerate(series)}
        return line_chart(series, colors, labels, x_title="run (UTC)", threshold=threshold)

    figs = [{"title": "Drift over time",
             "chart": chart({"drift share": [h.get("share") for h in history],
                             "prediction drift score": [h.get("prediction_score") for h in history]},
                            (drift.get("thresholds") or {}).get("share")),
             "caption": "Share of drifted features and the prediction drift score per monitor run "
                        "(dashed: the dataset drift threshold)."}]
    if any(h.get("attribution_shift") is not None for h in history):
        figs.append({"title": "Attribution drift over time",
                     "chart": chart({"attribution shift": [h.get("attribution_shift") for h in history]},
                                    (attribution or {}).get("threshold")),
                     "caption": "Total variation between the holdout's and each run's attribution shares."})
    if any(h.get("quality") is not None for h in history):
        figs.append({"title": "Model quality over time",
                     "chart": chart({"model quality": [h.get("quality") for h in history]}),
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


def _attribution(section: dict[str, Any] | None) -> dict[str, Any] | None:
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
        bars = {"holdout": [fields[f]["baseline"][k] for f in shown], "window": [fields[f]["window"][k] for f in shown]}
        chart = horizontal_bars(bars, {"holdout": REFERENCE, "window": CURRENT},
                                [_short(f, 2 * MAX_LABEL) for f in shown],
                                title=label, x_title="mean |contribution|") if shown else None
        tables.append({"label": label, "rows": rows, "classes": classes, "chart": chart,
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
