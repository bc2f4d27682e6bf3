"""Holdout metrics in numpy (checked against scikit-learn in the tests).

numpy-only so the same code scores a holdout at export, a labelled window in the monitor
Lambda and an evaluation in the gate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlship.runtime.jsonutil import python_value

EPS = 1e-15


def classification_metrics(y_true: Any, labels: Any, probabilities: Any | None, classes: list[Any]) -> dict:
    """Accuracy, precision, recall, F1 (binary: positive = last class; else macro), ROC-AUC,
    PR-AUC (average precision), log loss and the confusion matrix (rows = true, cols = predicted)."""
    y_true = np.asarray(y_true, dtype=object)
    labels = np.asarray(labels, dtype=object)
    cls = list(classes)
    index = {c: i for i, c in enumerate(cls)}
    t = np.array([index.get(_norm(v), -1) for v in y_true])
    p = np.array([index.get(_norm(v), -1) for v in labels])
    k = len(cls)
    known = (t >= 0) & (p >= 0)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t[known], p[known]), 1)
    out: dict[str, Any] = {"rows": int(len(t)), "accuracy": float(np.mean(t == p)) if len(t) else None,
                           "confusion_matrix": cm.tolist(), "classes": [_norm(c) for c in cls]}
    tp = np.diag(cm).astype(float)
    pred_pos = cm.sum(axis=0).astype(float)
    true_pos = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, pred_pos, out=np.zeros(k), where=pred_pos > 0)
    recall = np.divide(tp, true_pos, out=np.zeros(k), where=true_pos > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    if k == 2:
        out.update(precision=float(precision[1]), recall=float(recall[1]), f1=float(f1[1]))
    else:
        out.update(precision=float(precision.mean()), recall=float(recall.mean()), f1=float(f1.mean()))
    if probabilities is not None:
        probs = np.asarray(probabilities, dtype=np.float64)
        valid = t >= 0
        clipped = np.clip(probs[valid], EPS, 1 - EPS)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        out["log_loss"] = float(-np.mean(np.log(clipped[np.arange(valid.sum()), t[valid]]))) if valid.any() else None
        if k == 2:
            y = (t[valid] == 1).astype(int)
            out["roc_auc"] = roc_auc(y, probs[valid, 1])
            out["pr_auc"] = average_precision(y, probs[valid, 1])
        else:
            aucs = [roc_auc((t[valid] == j).astype(int), probs[valid, j]) for j in range(k)]
            aps = [average_precision((t[valid] == j).astype(int), probs[valid, j]) for j in range(k)]
            out["roc_auc"] = _nanmean(aucs)
            out["pr_auc"] = _nanmean(aps)
    return out


def regression_metrics(y_true: Any, values: Any) -> dict:
    """MAE, MSE, RMSE and R2."""
    y = np.asarray(y_true, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    err = v - y
    mse = float(np.mean(err**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"rows": int(len(y)), "mae": float(np.mean(np.abs(err))), "mse": mse, "rmse": float(np.sqrt(mse)),
            "r2": float(1 - np.sum(err**2) / ss_tot) if ss_tot > 0 else None}


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank statistic (ties count half)."""
    y = np.asarray(y)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(np.asarray(score, dtype=np.float64))
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float | None:
    """Average precision (area under the precision-recall curve, scikit-learn's definition)."""
    y = np.asarray(y)
    if y.sum() == 0:
        return None
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    s, yy = np.asarray(score)[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(yy)[distinct]
    fps = (distinct + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / yy.sum()
    recall_prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - recall_prev) * precision))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (``scipy.stats.rankdata(method="average")``)."""
    order = np.argsort(x, kind="mergesort")
    sx = x[order]
    starts = np.r_[True, np.diff(sx) != 0] if len(sx) else np.zeros(0, dtype=bool)
    bounds = np.r_[np.flatnonzero(starts), len(x)]
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = ((bounds[:-1] + bounds[1:] + 1) / 2.0)[np.cumsum(starts) - 1]
    return ranks


def _nanmean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _norm(v: Any) -> Any:
    return python_value(v)
