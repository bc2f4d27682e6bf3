"""numpy metrics equal scikit-learn's on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlship.stats.metrics import classification_metrics, regression_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    p1 = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    p1[:50] = np.round(p1[:50], 1)  # ties
    probs = np.c_[1 - p1, p1]
    labels = (p1 > 0.5).astype(int)
    got = classification_metrics(y, labels, probs, [0, 1])
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, labels))
    assert got["precision"] == pytest.approx(skm.precision_score(y, labels))
    assert got["recall"] == pytest.approx(skm.recall_score(y, labels))
    assert got["f1"] == pytest.approx(skm.f1_score(y, labels))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, p1))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, probs), rel=1e-6)
    assert got["confusion_matrix"] == skm.confusion_matrix(y, labels).tolist()


def test_multiclass_and_string_labels_match_sklearn():
    rng = np.random.default_rng(3)
    classes = ["a", "b", "c"]
    y = rng.choice(classes, 400)
    probs = rng.dirichlet([1, 1, 1], 400)
    labels = np.array(classes)[probs.argmax(axis=1)]
    got = classification_metrics(y, labels, probs, classes)
    assert got["f1"] == pytest.approx(skm.f1_score(y, labels, average="macro"))
    assert got["precision"] == pytest.approx(skm.precision_score(y, labels, average="macro"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", labels=classes))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, probs, labels=classes), rel=1e-6)


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(4)
    y = rng.normal(size=300) * 10
    v = y + rng.normal(size=300)
    got = regression_metrics(y, v)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, v))
    assert got["mse"] == pytest.approx(skm.mean_squared_error(y, v))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, v)))
    assert got["r2"] == pytest.approx(skm.r2_score(y, v))
