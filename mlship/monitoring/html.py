"""The human report: one self-contained HTML page with inline SVG plots (no plotting library,
so the monitor Lambda stays small): per-feature reference vs current histograms, drift over time,
performance and fairness tables."""

from __future__ import annotations

import html
from typing import Any

REF_COLOR, CUR_COLOR, BAD_COLOR = "#4c78a8", "#f58518", "#d62728"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return _e(value)


def histogram_svg(labels: list[str], reference: list[float], current: list[float], width: int = 420,
                  height: int = 160) -> str:
    """Grouped bars: reference vs current proportion per bin or category."""
    n = max(len(reference), 1)
    top = max([*reference, *current, 1e-9])
    pad_l, pad_b, pad_t = 34, 30, 8
    plot_w, plot_h = width - pad_l - 6, height - pad_b - pad_t
    slot = plot_w / n
    bar = max(slot * 0.4, 0.8)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 6}" y2="{pad_t + plot_h}" stroke="#999"/>',
             f'<text x="2" y="{pad_t + 8}" font-size="9">{top:.0%}</text>']
    for i, (r, c) in enumerate(zip(reference, current, strict=False)):
        x = pad_l + i * slot + slot * 0.1
        for j, (val, color) in enumerate(((r, REF_COLOR), (c, CUR_COLOR))):
            h = plot_h * val / top
            parts.append(f'<rect x="{x + j * bar:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>{_e(labels[i])}: '
                         f'{"reference" if j == 0 else "current"} {val:.2%}</title></rect>')
    step = max(1, n // 6)
    for i in range(0, n, step):
        x = pad_l + i * slot + slot / 2
        parts.append(f'<text x="{x:.1f}" y="{height - 16}" font-size="9" text-anchor="middle">'
                     f'{_e(labels[i][:12])}</text>')
    parts.append(f'<rect x="{pad_l}" y="{height - 10}" width="8" height="8" fill="{REF_COLOR}"/>'
                 f'<text x="{pad_l + 11}" y="{height - 3}" font-size="9">reference</text>'
                 f'<rect x="{pad_l + 70}" y="{height - 10}" width="8" height="8" fill="{CUR_COLOR}"/>'
                 f'<text x="{pad_l + 81}" y="{height - 3}" font-size="9">current</text></svg>')
    return "".join(parts)


def line_svg(series: dict[str, list[float | None]], x_labels: list[str], threshold: float | None = None,
             width: int = 720, height: int = 200) -> str:
    """Lines over time (e.g. drift share per run), with an optional threshold line."""
    values = [v for vals in series.values() for v in vals if v is not None]
    top = max([*values, threshold or 0, 1e-9]) * 1.1
    n = max(len(x_labels), 1)
    pad_l, pad_b, pad_t = 40, 34, 10
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad_l + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)
        return x, pad_t + plot_h - plot_h * v / top

    palette = [CUR_COLOR, REF_COLOR, "#54a24b", "#b279a2", "#9d755d", "#e45756"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 10}" y2="{pad_t + plot_h}" stroke="#999"/>',
             f'<text x="2" y="{pad_t + 8}" font-size="9">{top:.2g}</text>']
    if threshold is not None:
        _, y = xy(0, threshold)
        parts.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="{BAD_COLOR}" '
                     f'stroke-dasharray="4 3"/><text x="{width - 60}" y="{y - 3:.1f}" font-size="9" '
                     f'fill="{BAD_COLOR}">threshold</text>')
    for k, (name, vals) in enumerate(series.items()):
        color = palette[k % len(palette)]
        pts = [xy(i, v) for i, v in enumerate(vals) if v is not None]
        if pts:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                         + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in pts]
        parts.append(f'<text x="{pad_l + 10 + 110 * k}" y="{height - 4}" font-size="10" fill="{color}">'
                     f'{_e(name)}</text>')
    for i in range(0, n, max(1, n // 6)):
        x, _ = xy(i, 0)
        parts.append(f'<text x="{x:.1f}" y="{height - 20}" font-size="9" text-anchor="middle">'
                     f'{_e(x_labels[i][5:16])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _hist_of(feature: dict[str, Any]) -> str:
    hist = feature.get("histogram")
    if not hist:
        return ""
    if "categories" in hist:
        labels = [str(c) for c in hist["categories"]]
    else:
        labels = [f"{lo:.3g}..{hi:.3g}" for lo, hi in zip(hist["lower"], hist["upper"], strict=True)]
    return histogram_svg(labels, hist["reference"], hist["current"])


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(report: dict[str, Any], history: list[dict[str, Any]] | None = None) -> str:
    """The HTML page of a monitor (or ``mlship drift``) report."""
    drift = report.get("drift") or {}
    out = _summary(report, drift)
    if history:
        out += _history_section(history, drift)
    out += _features_section(drift)
    perf = report.get("performance")
    if perf:
        out += _performance_section(perf)
    fair = report.get("fairness")
    if fair:
        out += _fairness_section(fair)
    out.append("</body></html>")
    return "".join(out)


def _summary(report: dict[str, Any], drift: dict[str, Any]) -> list[str]:
    """The page head, the window, the dataset drift verdict and the alerts."""
    model = report.get("model") or {}
    title = f"mlship monitoring: {model.get('name', '')} v{model.get('version', '')}".strip()
    verdict = "DRIFT DETECTED" if drift.get("dataset_drift") else "no dataset drift"
    color = BAD_COLOR if drift.get("dataset_drift") else "#2ca02c"
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>"
           "body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse;"
           "margin:8px 0 16px}td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:left}"
           ".drifted{background:#fde0dc}.grid{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #eee;"
           "padding:6px}h3{margin:4px 0;font-size:14px}</style></head><body>",
           f"<h1>{_e(title)}</h1>"]
    window = report.get("window") or {}
    out.append(f"<p>Window {_e(window.get('start', ''))} → {_e(window.get('end', ''))}; "
               f"{_e(drift.get('rows', 0))} rows vs {_e(drift.get('reference_rows', 0))} reference rows. "
               f"Generated {_e(report.get('generated_at', ''))}.</p>")
    out.append(f"<h2 style='color:{color}'>{verdict}: {len(drift.get('drifted_features', []))} of "
               f"{len(drift.get('features', {}))} features drifted ({(drift.get('share') or 0):.0%}; dataset "
               f"threshold {(drift.get('thresholds') or {}).get('share', 0.5):.0%})</h2>")
    alerts = report.get("alerts") or []
    if alerts:
        out.append("<ul>" + "".join(f"<li><b>{_e(a['type'])}</b>: {_e(a['message'])}</li>" for a in alerts)
                   + "</ul>")
    return out


def _history_section(history: list[dict[str, Any]], drift: dict[str, Any]) -> list[str]:
    """Drift share, prediction drift and (when known) model quality over the past runs."""
    labels = [h.get("time", "") for h in history]
    out = ["<h2>Drift over time</h2>",
           line_svg({"drift share": [h.get("share") for h in history],
                     "prediction drift score": [h.get("prediction_score") for h in history]},
                    labels, threshold=(drift.get("thresholds") or {}).get("share"))]
    if any(h.get("quality") is not None for h in history):
        out.append(line_svg({"model quality": [h.get("quality") for h in history]}, labels))
    return out


def _features_section(drift: dict[str, Any]) -> list[str]:
    """The per-feature drift table (drifted rows highlighted) and a histogram card per feature and prediction."""
    rows = []
    for name, f in (drift.get("features") or {}).items():
        rows.append([name, f.get("type"), f.get("drifted"), f.get("method"), f.get("score"), f.get("threshold"),
                     f.get("ks_statistic"), f.get("ks_pvalue"), f.get("wasserstein_norm"), f.get("psi"),
                     f.get("jensenshannon"), f.get("chi2_pvalue"), f.get("null_rate_change"), f.get("reason")])
    out = ["<h2>Features</h2>"]
    table = _table(rows, ["feature", "type", "drifted", "method", "score", "threshold", "KS D", "KS p",
                          "Wasserstein (norm.)", "PSI", "JS distance", "chi² p", "Δ null rate", "reason"])
    for name, f in (drift.get("features") or {}).items():
        if f.get("drifted"):
            table = table.replace(f"<tr><td>{_e(name)}</td>", f"<tr class='drifted'><td>{_e(name)}</td>", 1)
    out.append(table)
    out.append("<div class='grid'>")
    for name, f in {**(drift.get("features") or {}),
                    **{f"prediction {k}": v for k, v in (drift.get("predictions") or {}).items()}}.items():
        svg = _hist_of(f)
        if svg:
            mark = " <span style='color:#d62728'>(drifted)</span>" if f.get("drifted") else ""
            out.append(f"<div class='card'><h3>{_e(name)}{mark}</h3>{svg}</div>")
    out.append("</div>")
    return out


def _performance_section(perf: dict[str, Any]) -> list[str]:
    """Model quality on the late labels against the holdout."""
    out = ["<h2>Performance (late labels)</h2>",
           f"<p>{_e(perf.get('labelled_rows'))} labelled rows; status <b>{_e(perf.get('status'))}</b>; "
           f"primary metric {_e(perf.get('primary_metric'))}: {_fmt(perf.get('value'))} "
           f"(holdout {_fmt(perf.get('reference'))}, tolerance {_fmt(perf.get('tolerance'))}).</p>"]
    cur = perf.get("current") or {}
    hold = perf.get("holdout") or {}
    names = [k for k in hold if k in cur and k != "rows"]
    out.append(_table([[k, hold.get(k), cur.get(k)] for k in names], ["metric", "holdout", "window"]))
    return out


def _fairness_section(fair: dict[str, Any]) -> list[str]:
    """Fairness gaps and per-group rates, on the predictions and on the labelled rows."""
    out = [f"<h2>Fairness by {_e(fair.get('attribute'))}</h2>"]
    for label, block in (("window (predictions)", fair.get("window")), ("labelled window", fair.get("labelled"))):
        if not block:
            continue
        out.append(f"<h3>{_e(label)}: demographic parity difference "
                   f"{_fmt(block.get('demographic_parity_difference'))}, equalized odds difference "
                   f"{_fmt(block.get('equalized_odds_difference'))}</h3>")
        groups = block.get("groups") or {}
        out.append(_table([[g, v.get("count"), v.get("selection_rate"), v.get("tpr"), v.get("fpr")]
                           for g, v in groups.items()], ["group", "rows", "selection rate", "TPR", "FPR"]))
    return out
