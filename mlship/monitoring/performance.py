"""Late labels joined to inference records; model quality over the labelled window vs the holdout.

Labels are JSON Lines under ``s3://BUCKET/LABELS_PREFIX/model=NAME/`` (any sub-layout), each line
``{"request_id": ..., "row": 0, "label": ...}``; ``(request_id, row)`` joins them to records.
Only label objects written since the start of the label window are read, and only labelled
records are kept, so memory is bounded by the number of labels, not by traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

HIGHER_IS_BETTER = {"accuracy", "roc_auc", "pr_auc", "f1", "precision", "recall", "r2"}
LOWER_IS_BETTER = {"log_loss", "rmse", "mae", "mse"}


@dataclass
class LabelledWindow:
    """Predictions, probabilities, labels and sensitive values of the labelled records."""

    y_true: list[Any] = field(default_factory=list)
    y_pred: list[Any] = field(default_factory=list)
    probabilities: list[Any] = field(default_factory=list)
    sensitive: list[Any] = field(default_factory=list)

    def add(self, label: Any, prediction: Any, probabilities: Any, sensitive: Any) -> None:
        self.y_true.append(label)
        self.y_pred.append(prediction)
        self.probabilities.append(probabilities)
        self.sensitive.append(sensitive)

    def extend(self, other: LabelledWindow) -> LabelledWindow:
        """Append another window's rows (Spark partitions, in partition order)."""
        self.y_true.extend(other.y_true)
        self.y_pred.extend(other.y_pred)
        self.probabilities.extend(other.probabilities)
        self.sensitive.extend(other.sensitive)
        return self

    def __len__(self) -> int:
        return len(self.y_true)


def join(records: Any, labels: dict[tuple[str, int], Any], sensitive_attribute: str | None) -> LabelledWindow:
    """Keep the records that have a label (records: an iterable of record dicts)."""
    out = LabelledWindow()
    if not labels:
        return out
    for rec in records:
        key = (str(rec.get("request_id")), int(rec.get("row") or 0))
        if key not in labels:
            continue
        outputs = rec.get("outputs") or {}
        sens = (rec.get("inputs") or {}).get(sensitive_attribute) if sensitive_attribute else None
        out.add(labels[key], outputs.get("prediction"), outputs.get("probabilities"), sens)
    return out


def primary_metric(task: str, holdout: dict[str, Any], requested: str | None = None) -> str:
    """The metric the rollback alarm reads: requested, else roc_auc/accuracy or rmse."""
    if requested:
        return requested
    if task == "classification":
        return "roc_auc" if holdout.get("roc_auc") is not None else "accuracy"
    return "rmse"


def evaluate(window: LabelledWindow, manifest: dict[str, Any], *, metric: str | None = None,
             tolerance: float = 0.05, min_rows: int = 50) -> dict[str, Any]:
    """Metrics over the labelled window, compared with the manifest's holdout metrics.

    Degraded when there are at least ``min_rows`` labelled rows and the primary metric is worse
    than the holdout by more than ``tolerance`` (absolute for scores in [0, 1] such as accuracy
    and ROC-AUC; relative for errors such as RMSE and log loss).
    """
    from mlship.stats.metrics import classification_metrics, regression_metrics

    task = manifest.get("task", "classification")
    holdout = (manifest.get("metrics") or {}).get("holdout") or {}
    name = primary_metric(task, holdout, metric)
    out: dict[str, Any] = {"labelled_rows": len(window), "primary_metric": name,
                           "holdout": {k: v for k, v in holdout.items() if isinstance(v, (int, float))},
                           "tolerance": tolerance, "min_rows": min_rows}
    if len(window) == 0:
        out.update(status="no-labels", degraded=False, current=None, value=None)
        return out
    if task == "classification":
        classes = (manifest.get("output_schema") or {}).get("classes") or sorted({*window.y_true, *window.y_pred},
                                                                                  key=str)
        probs = None
        if all(p is not None for p in window.probabilities):
            probs = np.asarray(window.probabilities, dtype=np.float64)
        current = classification_metrics(_align(window.y_true, classes), _align(window.y_pred, classes), probs,
                                          classes)
    else:
        current = regression_metrics(window.y_true, window.y_pred)
    value, reference = current.get(name), holdout.get(name)
    out.update(current={k: v for k, v in current.items() if isinstance(v, (int, float))}, value=value,
               reference=reference)
    if value is None or reference is None:
        out.update(status="metric-unavailable", degraded=False)
        return out
    if name in LOWER_IS_BETTER:
        change = (value - reference) / reference if reference else value - reference
        worse = change > tolerance
    else:
        change = value - reference
        worse = -change > tolerance
    enough = len(window) >= min_rows
    out.update(change=change, degraded=bool(worse and enough),
               status=("degraded" if worse else "ok") if enough else "too-few-labels")
    return out


def _align(values: list[Any], classes: list[Any]) -> list[Any]:
    """Map labels read from JSON (e.g. "1" or 1.0) onto the manifest's class values."""
    lookup = {str(c): c for c in classes}
    for c in classes:
        if isinstance(c, (int, float)) and not isinstance(c, bool):
            lookup.setdefault(str(float(c)), c)
    return [lookup.get(str(v), v) for v in values]
