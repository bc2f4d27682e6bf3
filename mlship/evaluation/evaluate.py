"""Evaluate a bundle on labelled data through :class:`mlship.runtime.predictor.Predictor` (onnxruntime,
what will actually serve): holdout metrics with bootstrap confidence intervals, metrics per
slice, fairness by a sensitive attribute, and single-row / batch latency.

Example::

    from mlship.evaluation.evaluate import evaluate, write_report
    ev = evaluate("mlship://churn@champion", frame, label="churned", slices=["plan"], sensitive="gender")
    ev.metrics["roc_auc"], ev.intervals["roc_auc"], ev.fairness["demographic_parity_difference"]
    write_report(ev, "reports/churn-2")      # evaluation.json + evaluation.html (plots)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlship.errors import MlshipError
from mlship.evaluation.attributions import (
    DEFAULT_ROWS,
    DEFAULT_SECONDS,
    PRIMARY_METRIC,
    GlobalExplanation,
    explain_globally,
)
from mlship.evaluation.lineage import dataframe_sha256
from mlship.runtime.jsonutil import jsonable, python_values
from mlship.stats.metrics import classification_metrics, regression_metrics
from mlship.stats.plots import BAD, CURRENT, GOOD, NEUTRAL, REFERENCE, figure_uri, pyplot
from mlship.stats.reports import render_page

HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "r2"}
LOWER_IS_BETTER = {"log_loss", "mae", "mse", "rmse"}
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss")
REGRESSION_METRICS = ("mae", "mse", "rmse", "r2")
MAX_SLICE_VALUES = 20
NUMERIC_SLICE_BINS = 4
TEMPLATES = Path(__file__).resolve().parent / "templates"


class EvaluationError(MlshipError):
    """An evaluation cannot run (missing label or slice column, no valid rows, bad data)."""

    kind = "evaluation"


@dataclass
class Evaluation:
    """The outcome of :func:`evaluate`; ``to_dict()`` is the JSON report. The raw arrays stay in
    memory (not in the JSON) so the gate can compute paired comparisons on the same rows."""

    model: dict[str, Any]
    data: dict[str, Any]
    metrics: dict[str, float | None]
    intervals: dict[str, dict[str, float | None]]
    slices: dict[str, dict[str, dict[str, Any]]]
    fairness: dict[str, Any] | None
    latency: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)  # confusion matrix, classes
    y_true: np.ndarray | None = field(default=None, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)
    scores: np.ndarray | None = field(default=None, repr=False)  # probabilities (n, k) or values (n,)
    row_index: np.ndarray | None = field(default=None, repr=False)  # rows of the input that were valid
    boot: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # metric per bootstrap resample
    samples: np.ndarray | None = field(default=None, repr=False)  # the resampling indices behind ``boot``
    explanation: GlobalExplanation | None = field(default=None, repr=False)  # None: not asked for (0 rows)

    @property
    def task(self) -> str:
        return str(self.model["task"])

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"model": self.model, "data": self.data, "metrics": self.metrics,
                       "intervals": self.intervals, "slices": self.slices, "fairness": self.fairness,
                       "latency": self.latency, "details": self.details,
                       "explanations": self.explanation.to_dict() if self.explanation else
                       {"available": False, "reason": "not computed (explain_rows=0)"}})


def metric_names(task: str) -> tuple[str, ...]:
    """The scalar metrics evaluated for a task."""
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def compute_metrics(task: str, y_true: np.ndarray, labels: np.ndarray | None, scores: np.ndarray | None,
                    classes: list[Any] | None) -> dict[str, Any]:
    """Full metrics (``mlship.stats.metrics``) of one set of predictions."""
    if task == "classification":
        return classification_metrics(y_true, labels, scores, classes or [])
    return regression_metrics(y_true, scores)


def _scalars(task: str, full: dict[str, Any]) -> dict[str, float | None]:
    return {m: (None if full.get(m) is None else float(full[m])) for m in metric_names(task)}


def bootstrap_samples(n: int, rounds: int, seed: int) -> np.ndarray:
    """``rounds`` x ``n`` resampling indices (shared by candidate and champion in the gate)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(rounds, n))


def bootstrap_metrics(task: str, y_true: np.ndarray, labels: np.ndarray | None, scores: np.ndarray | None,
                      classes: list[Any] | None, samples: np.ndarray) -> dict[str, np.ndarray]:
    """Each scalar metric on each bootstrap resample (NaN where undefined)."""
    out = {m: np.full(len(samples), np.nan) for m in metric_names(task)}
    for b, idx in enumerate(samples):
        full = compute_metrics(task, y_true[idx], None if labels is None else labels[idx],
                               None if scores is None else scores[idx], classes)
        for m in out:
            if full.get(m) is not None:
                out[m][b] = float(full[m])
    return out


def interval(values: np.ndarray, confidence: float) -> dict[str, float | None]:
    """Percentile interval of bootstrap values."""
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return {"low": None, "high": None, "std": None}
    alpha = (1 - confidence) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return {"low": float(low), "high": float(high), "std": float(finite.std(ddof=1))}


def _slice_groups(frame: Any, column: str) -> list[tuple[str, np.ndarray]]:
    import pandas as pd

    col = frame[column]
    if pd.api.types.is_numeric_dtype(col) and col.nunique(dropna=True) > MAX_SLICE_VALUES:
        edges = np.unique(np.nanquantile(col.to_numpy(dtype=float), np.linspace(0, 1, NUMERIC_SLICE_BINS + 1)))
        binned = pd.cut(col, edges, include_lowest=True, duplicates="drop")
        keys = binned.astype(str).to_numpy()
        return [(k, keys == k) for k in [str(c) for c in binned.cat.categories] if (keys == k).any()]
    values = col.astype(object).where(col.notna(), "<null>").astype(str).to_numpy()
    uniques, counts = np.unique(values, return_counts=True)
    top = [u for _, u in sorted(zip(-counts, uniques, strict=True))][:MAX_SLICE_VALUES]
    return [(u, values == u) for u in top]


def measure_latency(predictor: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Single-row latency percentiles of ``predict([record])`` (validation included), in ms."""
    if not records:
        return {}
    predictor.predict(records[:1], allow_extra=True)  # warm-up
    times = []
    for rec in records:
        start = time.perf_counter()
        predictor.predict([rec], allow_extra=True)
        times.append((time.perf_counter() - start) * 1000.0)
    arr = np.asarray(times)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)),
            "p99": float(np.percentile(arr, 99)), "mean": float(arr.mean()), "n": len(times)}


def evaluate(model: Any, frame: Any, label: str | None = None, *, slices: Sequence[str] = (),
             sensitive: str | None = None, bootstrap: int = 200, confidence: float = 0.95, seed: int = 0,
             latency_rows: int = 200, public_key: Any = None, samples: np.ndarray | None = None,
             explain_rows: int = DEFAULT_ROWS, explain_seconds: float | None = DEFAULT_SECONDS,
             progress: Callable[[str], None] | None = None) -> Evaluation:
    """Evaluate a bundle (URI or loaded :class:`~mlship.runtime.predictor.Predictor`) on a labelled DataFrame.

    ``label`` and ``sensitive`` default to the ones recorded at export. Rows that fail the
    model's schema are counted and left out. ``samples`` (from :func:`bootstrap_samples`) fixes
    the bootstrap resamples, e.g. to share them between two models. ``explain_rows`` (0: none)
    bounds the rows explained for global attributions, and ``explain_seconds`` their time.
    """
    from mlship.runtime.predictor import Predictor

    say = progress or (lambda _msg: None)
    predictor = model if isinstance(model, Predictor) else Predictor.load(model, public_key=public_key)
    lineage = predictor.bundle.manifest.get("lineage") or {}
    label = label or lineage.get("label")
    _check_columns(frame, label, [*slices, *([sensitive] if sensitive else [])])
    say(f"predicting {len(frame)} rows with {predictor.model_name}:{predictor.model_version} (onnxruntime)")
    started = time.perf_counter()
    scored = predictor.score(frame, allow_extra=True)
    batch_seconds = time.perf_counter() - started
    valid = np.asarray(scored.valid, dtype=bool)
    if scored.prediction is None or not valid.any():
        reasons = scored.validated.errors[:3]
        raise EvaluationError(f"no row of the data is valid for {predictor.model_name}:{predictor.model_version}: "
                              + "; ".join(str(e) for e in reasons))
    task = predictor.task
    kept = frame.loc[valid]
    y_true, labels, scores = _outcomes(task, kept[label].to_numpy(), scored.prediction)
    classes = predictor.classes
    full = compute_metrics(task, y_true, labels, scores, classes)
    say(f"bootstrapping {bootstrap} resamples")
    if samples is None or samples.shape[1] != len(y_true):
        samples = bootstrap_samples(len(y_true), bootstrap, seed)
    boot = bootstrap_metrics(task, y_true, labels, scores, classes, samples) if len(samples) else {}
    slice_out = _slice_metrics(task, kept, slices, y_true, labels, scores, classes)
    fairness = _fairness(task, kept, sensitive, classes, y_true, labels) if sensitive else None
    say(f"measuring latency ({min(latency_rows, len(kept))} single-row calls)")
    latency = _latency(predictor, kept, latency_rows, rows=int(len(frame)), batch_seconds=batch_seconds)
    explanation = _explain(predictor, scored.validated.columns, valid, y_true, explain_rows, explain_seconds,
                           seed, say)
    details: dict[str, Any] = {}
    if task == "classification":
        details = {"classes": full.get("classes"), "confusion_matrix": full.get("confusion_matrix")}
    return Evaluation(
        model={"name": predictor.model_name, "version": predictor.model_version, "task": task,
               "uri": str(model) if not isinstance(model, Predictor) else str(predictor.bundle.path)},
        data={"rows": int(len(frame)), "valid_rows": int(valid.sum()), "invalid_rows": int((~valid).sum()),
              "label": label, "fingerprint": dataframe_sha256(frame), "bootstrap": int(len(samples)),
              "confidence": confidence, "seed": seed},
        metrics=_scalars(task, full), intervals={m: interval(v, confidence) for m, v in boot.items()},
        slices=slice_out, fairness=fairness, latency=latency,
        details=details, y_true=y_true, labels=labels, scores=scores, row_index=np.flatnonzero(valid),
        boot=boot, samples=samples, explanation=explanation)


def _explain(predictor: Any, columns: dict[str, np.ndarray], valid: np.ndarray, y_true: np.ndarray, rows: int,
             seconds: float | None, seed: int, say: Callable[[str], None]) -> GlobalExplanation | None:
    """Global attributions and permutation importance of the valid rows (None when ``rows`` is 0)."""
    if rows <= 0:
        return None
    kept = {k: v[valid] for k, v in columns.items()}
    return explain_globally(predictor, kept, y_true, max_rows=rows, seed=seed, budget_seconds=seconds, progress=say)


def _check_columns(frame: Any, label: str | None, attributes: Sequence[str]) -> None:
    """Raise :class:`EvaluationError` unless the label and every slice / sensitive column are in ``frame``."""
    if not label or label not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise EvaluationError(f"label column {label!r} is not in the data (columns: {columns})")
    for col in attributes:
        if col not in frame.columns:
            raise EvaluationError(f"column {col!r} (slice or sensitive attribute) is not in the data")


def _outcomes(task: str, y_true: np.ndarray, pred: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(y_true, labels, scores)`` in the types the metrics expect (labels are None for a regressor)."""
    if task == "classification":
        return np.asarray(python_values(y_true), dtype=object), pred.labels, pred.probabilities
    return y_true.astype(np.float64), None, pred.values


def _slice_metrics(task: str, kept: Any, slices: Sequence[str], y_true: np.ndarray, labels: np.ndarray | None,
                   scores: np.ndarray | None, classes: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """``{column: {group: {"rows": n, metric: value}}}`` for each slice column."""
    slice_out: dict[str, dict[str, dict[str, Any]]] = {}
    for col in slices:
        slice_out[col] = {}
        for key, mask in _slice_groups(kept, col):
            sub = compute_metrics(task, y_true[mask], None if labels is None else labels[mask],
                                  None if scores is None else scores[mask], classes)
            slice_out[col][key] = {"rows": int(mask.sum()), **_scalars(task, sub)}
    return slice_out


def _fairness(task: str, kept: Any, sensitive: str, classes: Any, y_true: np.ndarray,
              labels: np.ndarray | None) -> dict[str, Any]:
    """Fairness metrics of a classifier by the ``sensitive`` column (the last class is the positive one)."""
    if task != "classification":
        raise EvaluationError("fairness metrics need a classifier (demographic parity / equalized odds)")
    from mlship.stats.fairness import fairness_metrics

    positive = classes[-1] if classes else 1
    return {"attribute": sensitive,
            **fairness_metrics(y_true, labels, kept[sensitive].to_numpy(), positive_label=positive)}


def _latency(predictor: Any, kept: Any, latency_rows: int, *, rows: int, batch_seconds: float) -> dict[str, Any]:
    """Batch throughput of the scoring run, plus single-row percentiles on up to ``latency_rows`` rows."""
    features = kept[predictor.schema.names]
    records = json.loads(features.head(latency_rows).to_json(orient="records")) if latency_rows else []
    latency: dict[str, Any] = {"batch": {"rows": rows, "seconds": batch_seconds,
                                         "rows_per_s": rows / batch_seconds if batch_seconds > 0 else None}}
    if records:
        latency["single_row_ms"] = measure_latency(predictor, records)
    return latency

# ---------------------------------------------------------------------------------- reports
def _curves(ev: Evaluation) -> dict[str, Any]:
    """ROC and precision-recall points (binary classifiers)."""
    if ev.task != "classification" or ev.scores is None or ev.scores.ndim != 2 or ev.scores.shape[1] != 2:
        return {}
    classes = ev.details.get("classes") or []
    positive = classes[-1] if classes else 1
    y = np.array([v == positive or str(v) == str(positive) for v in ev.y_true.tolist()], dtype=int)
    s = ev.scores[:, 1]
    order = np.argsort(-s, kind="mergesort")
    tps, fps = np.cumsum(y[order]), np.cumsum(1 - y[order])
    pos, neg = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    tpr, fpr = np.r_[0, tps / pos], np.r_[0, fps / neg]
    precision = tps / np.maximum(tps + fps, 1)
    bins = np.linspace(0, 1, 11)
    which = np.clip(np.digitize(s, bins) - 1, 0, 9)
    calib = [(float(s[which == b].mean()), float(y[which == b].mean())) for b in range(10) if (which == b).any()]
    return {"fpr": fpr, "tpr": tpr, "recall": tps / pos, "precision": precision, "calibration": calib}


def evaluation_figures(ev: Evaluation) -> list[tuple[str, str]]:
    """(title, PNG data URI) pairs for an evaluation report (the explanation plots last)."""
    return _performance_figures(ev) + explanation_figures(ev)


def _performance_figures(ev: Evaluation) -> list[tuple[str, str]]:
    """Curves or predictions, metrics, slices and fairness."""
    plt = pyplot()
    figs: list[tuple[str, str]] = []
    curves = _curves(ev)
    if curves:
        figs.append(("Curves", _curves_figure(plt, ev, curves)))
    elif ev.task == "regression" and ev.scores is not None:
        figs.append(("Predictions", _regression_figure(plt, ev)))
    names = [m for m, v in ev.metrics.items() if v is not None]
    if names:
        figs.append(("Metrics", _metrics_figure(plt, ev, names)))
    primary = PRIMARY_METRIC[ev.task]
    for col, groups in ev.slices.items():
        figs.append((f"Slices: {col}", _slice_figure(plt, ev, col, groups, primary)))
    if ev.fairness:
        figs.append(("Fairness", _fairness_figure(plt, ev.fairness)))
    return figs


def explanation_figures(ev: Evaluation) -> list[tuple[str, str]]:
    """(title, PNG data URI) of the explanation plots: mean |contribution|, beeswarm, dependence,
    permutation importance (none when the evaluation has no explanation)."""
    if ev.explanation is None:
        return []
    from mlship.evaluation.attribution_plots import explanation_figures as build

    return [(f"Explanations: {title}", figure_uri(fig)) for _stem, title, fig in build(pyplot(), ev.explanation)]


def _curves_figure(plt: Any, ev: Evaluation, curves: dict[str, Any]) -> str:
    """ROC, precision-recall and calibration of a binary classifier, side by side."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    axes[0].plot(curves["fpr"], curves["tpr"], lw=2, color=REFERENCE)
    axes[0].plot([0, 1], [0, 1], "--", color=NEUTRAL, lw=1)
    axes[0].set(title=f"ROC (AUC {ev.metrics.get('roc_auc') or float('nan'):.3f})", xlabel="false positive rate",
                ylabel="true positive rate")
    axes[1].plot(curves["recall"], curves["precision"], lw=2, color=REFERENCE)
    axes[1].set(title=f"Precision-recall (AP {ev.metrics.get('pr_auc') or float('nan'):.3f})",
                xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    if curves["calibration"]:
        mean_p, frac = zip(*curves["calibration"], strict=True)
        axes[2].plot(mean_p, frac, "o-", color=CURRENT)
    axes[2].plot([0, 1], [0, 1], "--", color=NEUTRAL, lw=1)
    axes[2].set(title="Calibration", xlabel="mean predicted probability", ylabel="observed positive rate")
    fig.tight_layout()
    return figure_uri(fig)


def _regression_figure(plt: Any, ev: Evaluation) -> str:
    """Predicted against actual values, and the residuals' histogram."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].scatter(ev.y_true, ev.scores, s=4, alpha=0.4, color=REFERENCE)
    axes[0].set(title="Predicted vs actual", xlabel="actual", ylabel="predicted")
    axes[1].hist(ev.scores - ev.y_true, bins=50, color=REFERENCE)
    axes[1].set(title="Residuals", xlabel="predicted - actual", ylabel="rows")
    fig.tight_layout()
    return figure_uri(fig)


def _metrics_figure(plt: Any, ev: Evaluation, names: list[str]) -> str:
    """The metrics ``names`` as bars with their bootstrap intervals as error bars."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    vals = [ev.metrics[m] for m in names]
    lows = [ev.metrics[m] - (ev.intervals.get(m, {}).get("low") or ev.metrics[m]) for m in names]
    highs = [(ev.intervals.get(m, {}).get("high") or ev.metrics[m]) - ev.metrics[m] for m in names]
    ax.bar(names, vals, yerr=[lows, highs], capsize=4, color=REFERENCE)
    conf = ev.data.get("confidence", 0.95)
    ax.set(title=f"Metrics with {conf:.0%} bootstrap intervals ({ev.data.get('bootstrap')} resamples)")
    return figure_uri(fig)


def _slice_figure(plt: Any, ev: Evaluation, col: str, groups: dict[str, dict[str, Any]], primary: str) -> str:
    """The ``primary`` metric per group of slice ``col``, against the overall value."""
    keys = list(groups)
    vals = [groups[k].get(primary) or 0.0 for k in keys]
    fig, ax = plt.subplots(figsize=(min(11, max(5, 0.7 * len(keys) + 2)), 3.2))
    ax.bar(keys, vals, color=GOOD)
    if ev.metrics.get(primary) is not None:
        ax.axhline(ev.metrics[primary], color="k", ls="--", lw=1, label="overall")
        ax.legend()
    ax.set(title=f"{primary} by {col}", ylabel=primary)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    return figure_uri(fig)


def _fairness_figure(plt: Any, fairness: dict[str, Any]) -> str:
    """Selection rate, TPR and FPR per group of the sensitive attribute."""
    groups = fairness["groups"]
    keys = list(groups)
    fig, ax = plt.subplots(figsize=(min(11, max(5, 1.2 * len(keys) + 2)), 3.2))
    width = 0.27
    x = np.arange(len(keys))
    for i, (metric, colour) in enumerate([("selection_rate", REFERENCE), ("tpr", GOOD), ("fpr", BAD)]):
        ax.bar(x + (i - 1) * width, [groups[k].get(metric) or 0.0 for k in keys], width, label=metric,
               color=colour)
    ax.set_xticks(x, keys)
    ax.set(title=f"Rates by {fairness['attribute']}")
    ax.legend()
    return figure_uri(fig)


def evaluation_tables(ev: Evaluation) -> list[dict[str, Any]]:
    """The report's tables: ``{"title", "header", "rows"}`` each (values formatted by the template)."""
    tables = [{"title": "Metrics", "header": ["metric", "value", "CI low", "CI high"],
               "rows": [[m, v, ev.intervals.get(m, {}).get("low"), ev.intervals.get(m, {}).get("high")]
                        for m, v in ev.metrics.items()]}]
    if ev.latency.get("single_row_ms"):
        lat = ev.latency["single_row_ms"]
        tables.append({"title": "Latency", "header": ["measure", "value"],
                       "rows": [["single row p50 (ms)", lat["p50"]], ["single row p99 (ms)", lat["p99"]],
                                ["batch rows/s (validation + scoring)", ev.latency["batch"]["rows_per_s"]]]})
    if ev.fairness:
        f = ev.fairness
        tables.append({"title": f"Fairness by {f['attribute']}", "header": ["metric", "value"],
                       "rows": [[k, f.get(k)] for k in ("demographic_parity_difference", "demographic_parity_ratio",
                                                        "equalized_odds_difference")]})
        tables.append({"title": None, "header": ["group", "rows", "selection rate", "TPR", "FPR"],
                       "rows": [[g, e["count"], e["selection_rate"], e.get("tpr"), e.get("fpr")]
                                for g, e in f["groups"].items()]})
    names = list(metric_names(ev.task))
    for col, groups in ev.slices.items():
        tables.append({"title": f"Slices by {col}", "header": [col, "rows", *names],
                       "rows": [[k, g["rows"], *[g.get(m) for m in names]] for k, g in groups.items()]})
    return tables + explanation_tables(ev)


def explanation_tables(ev: Evaluation) -> list[dict[str, Any]]:
    """Per field (most important first): mean |contribution| and permutation importance (mean, std);
    marked ``"section": "explanations"``."""
    explained = ev.explanation
    attr, perm = (explained.attributions, explained.permutation) if explained else (None, None)
    columns: dict[str, dict[str, float]] = {}
    if attr is not None:
        columns["mean |contribution|"] = dict(zip(attr.fields, attr.importance().tolist(), strict=True))
    if perm is not None:
        columns[f"{perm.metric} {perm.worse} (mean)"] = dict(zip(perm.fields, perm.mean.tolist(), strict=True))
        columns[f"{perm.metric} {perm.worse} (std)"] = dict(zip(perm.fields, perm.std.tolist(), strict=True))
    if not columns:
        return []
    first = next(iter(columns.values()))
    rows = [[name, *[col.get(name) for col in columns.values()]] for name in sorted(first, key=lambda f: -first[f])]
    return [{"title": "Attribution per field", "header": ["field", *columns], "rows": rows,
             "section": "explanations"}]


def explanation_text(ev: Evaluation) -> str:
    """How the explanations were computed, or why there are none."""
    return ev.explanation.describe() if ev.explanation else "Not computed (explain_rows=0)."


def evaluation_html(ev: Evaluation) -> str:
    """A self-contained HTML report (tables + embedded plots), from ``templates/evaluation.html.j2``."""
    figures = [{"title": t, "uri": u} for t, u in _performance_figures(ev)]
    explain_figures = [{"title": t, "uri": u} for t, u in explanation_figures(ev)]
    tables = evaluation_tables(ev)
    return render_page(TEMPLATES, "evaluation.html.j2", ev=ev, figures=figures, explain_figures=explain_figures,
                       tables=[t for t in tables if t.get("section") != "explanations"],
                       explain_tables=[t for t in tables if t.get("section") == "explanations"],
                       explain_text=explanation_text(ev))


def write_report_pair(out_dir: str | Path, stem: str, json_text: str, html_text: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` into ``out_dir`` (created); returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / f"{stem}.json", out / f"{stem}.html"
    json_path.write_text(json_text, "utf-8")
    html_path.write_text(html_text, "utf-8")
    return json_path, html_path


def write_report(ev: Evaluation, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``evaluation.json`` and ``evaluation.html``; returns both paths."""
    return write_report_pair(out_dir, "evaluation", json.dumps(ev.to_dict(), indent=2, allow_nan=False) + "\n",
                             evaluation_html(ev))
