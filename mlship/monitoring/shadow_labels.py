"""Both models' quality on the same labelled live rows, with a paired test (the shadow report's
``labelled`` section).

A classifier: accuracy of each side and McNemar's exact test on the rows exactly one side gets
right (``statsmodels.stats.contingency_tables.mcnemar``, McNemar 1947), the paired test for two
classifiers scored on the same items. A regressor: MAE of each side and the Wilcoxon signed-rank
test on the paired absolute errors (``scipy.stats.wilcoxon``). ``improvement`` is positive when
the shadow is better (higher accuracy, lower MAE).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlship.aws.labels import label_matches as _same


def labelled(answered: list[tuple[dict[str, Any], dict[str, Any]]], labels: dict[tuple[str, int], Any],
             task: str) -> dict[str, Any] | None:
    """The labelled comparison, or None when no joined row has a label."""
    rows = [(p, s, labels[key]) for p, s in answered
            if (key := (str(p.get("request_id")), int(p.get("row") or 0))) in labels]
    if not rows:
        return None
    if task == "regression":
        return _regression(rows)
    return _classification(rows)


def _classification(rows: list[tuple[dict[str, Any], dict[str, Any], Any]]) -> dict[str, Any]:
    from statsmodels.stats.contingency_tables import mcnemar

    primary_ok = np.array([_same(p["outputs"]["prediction"], y) for p, _, y in rows])
    shadow_ok = np.array([_same(s["outputs"]["prediction"], y) for _, s, y in rows])
    table = [[int(np.sum(primary_ok & shadow_ok)), int(np.sum(primary_ok & ~shadow_ok))],
             [int(np.sum(~primary_ok & shadow_ok)), int(np.sum(~primary_ok & ~shadow_ok))]]
    test = mcnemar(table, exact=True)
    return {"rows": len(rows), "metric": "accuracy", "primary": float(primary_ok.mean()),
            "shadow": float(shadow_ok.mean()), "improvement": float(shadow_ok.mean() - primary_ok.mean()),
            "test": "McNemar exact", "p_value": float(test.pvalue), "table": table}


def _regression(rows: list[tuple[dict[str, Any], dict[str, Any], Any]]) -> dict[str, Any]:
    from scipy.stats import wilcoxon

    truth = np.array([float(y) for _, _, y in rows])
    primary_err = np.abs(np.array([float(p["outputs"]["prediction"]) for p, _, _ in rows]) - truth)
    shadow_err = np.abs(np.array([float(s["outputs"]["prediction"]) for _, s, _ in rows]) - truth)
    differs = primary_err != shadow_err
    p_value = float(wilcoxon(shadow_err[differs], primary_err[differs]).pvalue) if differs.sum() >= 2 else 1.0
    return {"rows": len(rows), "metric": "mae", "primary": float(primary_err.mean()),
            "shadow": float(shadow_err.mean()), "improvement": float(primary_err.mean() - shadow_err.mean()),
            "test": "Wilcoxon signed-rank", "p_value": p_value}
