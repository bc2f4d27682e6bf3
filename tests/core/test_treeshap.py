"""Exact TreeSHAP from the ONNX tree ensemble (mlship.runtime.treeshap) against shap.TreeExplainer.

Every family skl2onnx writes as a tree ensemble (random forest, gradient boosting, histogram
gradient boosting; classifiers binary and multi-class, regressors) is exported to ONNX, its
ensemble extracted with the scikit-learn covers (mlship.evaluation.treestats), and explained in
numpy: each contribution agrees with ``shap.TreeExplainer`` on the scikit-learn model within 1e-5,
and base value + contributions equal onnxruntime's raw score within 1e-6 (additivity). Rows are
fresh draws: on training rows a histogram model's thresholds sit on the data, where the float32
model the bundle serves and scikit-learn's float64 one may take different branches.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier

from mlship.evaluation.treestats import TreeStatsError, tree_ensemble
from mlship.runtime.treeshap import TreeEnsemble, TreeExplainer

shap = pytest.importorskip("shap", reason="shap is a dev dependency (the reference explainer)")

FAMILIES = {
    "rf": lambda: RandomForestClassifier(12, max_depth=6, random_state=0),
    "gb": lambda: GradientBoostingClassifier(n_estimators=12, max_depth=3, random_state=0),
    "hgb": lambda: HistGradientBoostingClassifier(max_iter=12, max_depth=4, random_state=0),
    "tree": lambda: DecisionTreeClassifier(max_depth=5, random_state=0),
    "rf-reg": lambda: RandomForestRegressor(12, max_depth=6, random_state=0),
    "et-reg": lambda: ExtraTreesRegressor(8, max_depth=6, random_state=0),
    "gb-reg": lambda: GradientBoostingRegressor(n_estimators=12, max_depth=3, random_state=0),
    "hgb-reg": lambda: HistGradientBoostingRegressor(max_iter=12, max_depth=4, random_state=0),
}


def _data(classes: int, missing: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(classes)
    x = rng.normal(size=(800, 7))
    score = x[:, 0] + x[:, 1] * x[:, 2] + 0.5 * rng.normal(size=800)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])) if classes else score
    fresh = rng.normal(size=(60, 7)).astype(np.float32).astype(np.float64)
    if missing:  # histogram models learn where a missing value goes
        x[rng.random(x.shape) < 0.05] = np.nan
        fresh[rng.random(fresh.shape) < 0.1] = np.nan
    return x, y, fresh


def _fit(family: str, classes: int) -> tuple[object, object, np.ndarray]:
    estimator = FAMILIES[family]()
    x, y, fresh = _data(classes, missing=family.startswith("hgb"))
    estimator.fit(x, y)
    options = {id(estimator): {"zipmap": False}} if classes else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = to_onnx(estimator, x[:1].astype(np.float32), options=options,
                        target_opset={"": 17, "ai.onnx.ml": 3})
    return estimator, model, fresh


def _raw_score(model: object, ensemble: TreeEnsemble, rows: np.ndarray, classes: int) -> np.ndarray:
    """onnxruntime's output in the ensemble's raw space (log-odds before LOGISTIC, per-class scores)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: rows.astype(np.float32)})
    if not classes:
        return outputs[0].reshape(len(rows), -1)
    probs = outputs[1].astype(np.float64)
    if ensemble.post_transform == "LOGISTIC":
        p = probs[:, 1]
        return np.log(p / (1 - p)).reshape(-1, 1)
    if ensemble.post_transform == "SOFTMAX":
        logs = np.log(probs)
        return logs - logs.mean(axis=1, keepdims=True)  # softmax is shift-invariant: compare centred
    return probs[:, 1:] if ensemble.n_targets == 1 else probs


def _reference(estimator: object, rows: np.ndarray, n_targets: int) -> np.ndarray:
    """shap.TreeExplainer's values as (rows, features, targets), the targets ordered as the ensemble's."""
    values = np.asarray(shap.TreeExplainer(estimator).shap_values(rows))
    if values.ndim == 2:
        values = values[..., None]
    if n_targets == 1 and values.shape[-1] == 2:  # binary: the ensemble scores the positive class
        values = values[..., 1:]
    return values


CASES = [(f, c) for f in FAMILIES for c in ((0,) if f.endswith("-reg") else (2, 3))]
SHAP_LACKS = {("gb", 3)}  # shap: "GradientBoostingClassifier is only supported for binary classification"


@pytest.mark.parametrize(("family", "classes"), CASES)
def test_contributions_agree_with_shap_and_add_up_to_the_onnx_score(family: str, classes: int) -> None:
    estimator, model, rows = _fit(family, classes)
    ensemble = tree_ensemble(model, estimator)
    explainer = TreeExplainer(ensemble)
    values = explainer.shap_values(rows)
    if (family, classes) not in SHAP_LACKS:
        np.testing.assert_allclose(values, _reference(estimator, rows, ensemble.n_targets), rtol=0, atol=1e-5)
    raw = explainer.expected_value + values.sum(axis=1)
    expected_raw = _raw_score(model, ensemble, rows, classes)
    if ensemble.post_transform == "SOFTMAX":
        raw = raw - raw.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(raw, expected_raw, rtol=0, atol=1e-6 if not family.startswith("rf") else 2e-6)


def test_the_stored_arrays_explain_the_same(tmp_path) -> None:
    estimator, model, rows = _fit("hgb", 2)
    ensemble = tree_ensemble(model, estimator)
    np.savez(tmp_path / "trees.npz", **ensemble.to_arrays())
    with np.load(tmp_path / "trees.npz") as stored:
        again = TreeExplainer(TreeEnsemble.from_arrays(stored))
    np.testing.assert_array_equal(again.shap_values(rows), TreeExplainer(ensemble).shap_values(rows))


def test_a_model_whose_trees_do_not_match_is_refused() -> None:
    estimator, model, _ = _fit("rf", 2)
    other = RandomForestClassifier(12, max_depth=6, random_state=1).fit(*_data(2, missing=False)[:2])
    with pytest.raises(TreeStatsError, match="does not match"):
        tree_ensemble(model, other)


def test_large_leaf_groups_are_cut_without_changing_a_value(monkeypatch) -> None:
    import mlship.runtime.treeshap as treeshap

    estimator, model, rows = _fit("rf", 3)
    explainer = TreeExplainer(tree_ensemble(model, estimator))
    whole = explainer.shap_values(rows)
    monkeypatch.setattr(treeshap, "WORK_ELEMENTS", 500)  # a few leaves per pass
    np.testing.assert_allclose(explainer.shap_values(rows), whole, rtol=0, atol=1e-12)
