"""Fairness metrics against fairlearn; late labels joined to records by (request_id, row)."""

from __future__ import annotations

import numpy as np
import pytest

from mlship.monitoring.performance import LabelledWindow, evaluate, join
from mlship.stats.fairness import fairness_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fairness_matches_fairlearn(seed: int) -> None:
    fl = pytest.importorskip("fairlearn.metrics")
    rng = np.random.default_rng(seed)
    n = 4000
    groups = rng.choice(["female", "male", "other"], n, p=[0.45, 0.45, 0.1])
    y = rng.integers(0, 2, n)
    pred = (rng.random(n) < np.where(groups == "female", 0.3, 0.5) + 0.2 * y).astype(int)
    got = fairness_metrics(y, pred, groups)
    assert got["demographic_parity_difference"] == pytest.approx(
        fl.demographic_parity_difference(y, pred, sensitive_features=groups), abs=1e-12)
    assert got["demographic_parity_ratio"] == pytest.approx(
        fl.demographic_parity_ratio(y, pred, sensitive_features=groups), abs=1e-12)
    assert got["equalized_odds_difference"] == pytest.approx(
        fl.equalized_odds_difference(y, pred, sensitive_features=groups), abs=1e-12)
    assert got["equalized_odds_ratio"] == pytest.approx(
        fl.equalized_odds_ratio(y, pred, sensitive_features=groups), abs=1e-12)
    assert set(got["groups"]) == {"female", "male", "other"}
    assert sum(g["count"] for g in got["groups"].values()) == n


def test_fairness_with_string_labels_and_no_truth() -> None:
    got = fairness_metrics(None, ["1", "0", "1", "1"], ["a", "a", "b", "b"], positive_label=1)
    assert got["groups"]["a"]["selection_rate"] == 0.5 and got["groups"]["b"]["selection_rate"] == 1.0
    assert got["demographic_parity_difference"] == 0.5
    assert "equalized_odds_difference" not in got
    with pytest.raises(ValueError, match="rows"):
        fairness_metrics([1, 0], [1, 0, 1], ["a", "b", "c"])


def _record(rid: str, row: int, pred: int, gender: str) -> dict:
    return {"request_id": rid, "row": row, "inputs": {"gender": gender},
            "outputs": {"prediction": pred, "probabilities": [1 - pred * 0.8, pred * 0.8 + 0.1]}}


def test_late_labels_join_on_request_and_row() -> None:
    records = [_record("r1", 0, 1, "f"), _record("r1", 1, 0, "m"), _record("r2", 0, 1, "m"),
               _record("r3", 0, 0, "f")]
    # r1 row 1 and r3 have no label yet; a label for an unknown request is ignored
    labels = {("r1", 0): 1, ("r2", 0): 0, ("r9", 0): 1}
    window = join(records, labels, "gender")
    assert window.y_true == [1, 0] and window.y_pred == [1, 1] and window.sensitive == ["f", "m"]
    assert join(records, {}, "gender").y_true == []


def test_evaluate_against_the_holdout() -> None:
    manifest = {"task": "classification", "output_schema": {"classes": [0, 1]},
                "metrics": {"holdout": {"accuracy": 0.8, "roc_auc": 0.85}}}
    w = LabelledWindow()
    for i in range(100):  # labels read from JSON may be strings
        w.add(str(i % 2), i % 2, [0.9, 0.1] if i % 2 == 0 else [0.2, 0.8], None)
    ok = evaluate(w, manifest)
    assert ok["primary_metric"] == "roc_auc" and ok["value"] == 1.0 and ok["status"] == "ok"
    bad = LabelledWindow()
    for i in range(100):
        bad.add(1 - i % 2, i % 2, [0.9, 0.1] if i % 2 == 0 else [0.2, 0.8], None)
    out = evaluate(bad, manifest, metric="accuracy")
    assert out["value"] == 0.0 and out["degraded"] is True
    few = evaluate(bad, manifest, min_rows=500)
    assert few["status"] == "too-few-labels" and few["degraded"] is False
    reg = evaluate(LabelledWindow([1.0, 2.0], [1.5, 2.5], [None, None], [None, None]),
                   {"task": "regression", "metrics": {"holdout": {"rmse": 0.4}}}, min_rows=1)
    assert reg["primary_metric"] == "rmse" and reg["value"] == pytest.approx(0.5) and reg["degraded"] is True
