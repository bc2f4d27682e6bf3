"""Group fairness metrics in numpy, with fairlearn's definitions (checked against fairlearn in tests).

* demographic parity difference: max - min selection rate (share predicted positive) across groups;
* demographic parity ratio: min / max selection rate;
* equalized odds difference: the larger of the TPR spread and the FPR spread across groups
  (fairlearn's ``agg="worst_case"``); equalized odds ratio likewise with min/max ratios.

Example::

    from mlship.stats.fairness import fairness_metrics
    fairness_metrics(y_true, y_pred, sensitive=df["gender"], positive_label=1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlship.runtime.jsonutil import python_values


def _norm(values: Any) -> np.ndarray:
    arr = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values, dtype=object).reshape(-1)
    return np.array(python_values(arr), dtype=object)


def _is_positive(values: np.ndarray, positive_label: Any) -> np.ndarray:
    target = positive_label.item() if hasattr(positive_label, "item") else positive_label
    return np.array([v == target or str(v) == str(target) for v in values.tolist()], dtype=bool)


def _spread(rates: list[float]) -> tuple[float, float]:
    vals = [r for r in rates if r is not None and not np.isnan(r)]
    if not vals:
        return float("nan"), float("nan")
    hi, lo = max(vals), min(vals)
    return float(hi - lo), float(lo / hi) if hi > 0 else (1.0 if lo == hi else 0.0)


def fairness_metrics(y_true: Any, y_pred: Any, sensitive: Any, positive_label: Any = 1) -> dict[str, Any]:
    """Demographic parity and equalized odds by sensitive group, plus per-group rates.

    ``y_true`` may be None (then only selection rates and demographic parity are computed:
    useful before labels arrive). Labels are compared to ``positive_label`` by value or by
    string (``1`` matches ``"1"``). Groups with no rows are not listed; a group without
    positives (negatives) has TPR (FPR) None and is left out of the equalized odds spread.
    """
    pred = _is_positive(_norm(y_pred), positive_label)
    groups_raw = _norm(sensitive)
    if groups_raw.shape[0] != pred.shape[0]:
        raise ValueError(f"sensitive has {groups_raw.shape[0]} rows but predictions have {pred.shape[0]}")
    groups = np.array(["<null>" if g is None or (isinstance(g, float) and g != g) else str(g)
                       for g in groups_raw.tolist()], dtype=object)
    truth = None if y_true is None else _is_positive(_norm(y_true), positive_label)
    if truth is not None and truth.shape[0] != pred.shape[0]:
        raise ValueError(f"y_true has {truth.shape[0]} rows but predictions have {pred.shape[0]}")
    per_group: dict[str, dict[str, Any]] = {}
    for g in sorted(set(groups.tolist())):
        mask = groups == g
        entry: dict[str, Any] = {"count": int(mask.sum()), "selection_rate": float(pred[mask].mean())}
        if truth is not None:
            t, p = truth[mask], pred[mask]
            pos, neg = t.sum(), (~t).sum()
            entry["tpr"] = float((p & t).sum() / pos) if pos else None
            entry["fpr"] = float((p & ~t).sum() / neg) if neg else None
            entry["accuracy"] = float((p == t).mean())
            entry["positives"], entry["negatives"] = int(pos), int(neg)
        per_group[g] = entry
    dp_diff, dp_ratio = _spread([e["selection_rate"] for e in per_group.values()])
    out: dict[str, Any] = {"groups": per_group, "n_groups": len(per_group),
                           "demographic_parity_difference": dp_diff, "demographic_parity_ratio": dp_ratio,
                           "positive_label": positive_label}
    if truth is not None:
        tpr_diff, tpr_ratio = _spread([e["tpr"] for e in per_group.values()])
        fpr_diff, fpr_ratio = _spread([e["fpr"] for e in per_group.values()])
        out.update(true_positive_rate_difference=tpr_diff, false_positive_rate_difference=fpr_diff,
                   equalized_odds_difference=_nanmax(tpr_diff, fpr_diff),
                   equalized_odds_ratio=_nanmin(tpr_ratio, fpr_ratio))
    return out


def _nanmax(a: float, b: float) -> float:
    vals = [v for v in (a, b) if not np.isnan(v)]
    return float(max(vals)) if vals else float("nan")


def _nanmin(a: float, b: float) -> float:
    vals = [v for v in (a, b) if not np.isnan(v)]
    return float(min(vals)) if vals else float("nan")
