"""Explanations from an exported bundle: the stored explainer, summed back to the request's fields.

The churn pipeline (ColumnTransformer with one-hot blocks + HistGradientBoosting) is exported as
users export it; its bundle explains rows with numpy and onnxruntime only. Checked: each field's
contribution equals shap.TreeExplainer's values on the model's own input matrix summed over that
field's columns (within 1e-5); base value plus contributions equal the stored ensemble evaluated in
float64 (within 1e-6) and onnxruntime's float32 log-odds (within 1e-4); a model with no tree
ensemble stored by an earlier release and a bundle exported before explainers are refused with a
message that says why and asks for a re-export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlship.runtime.explain import ExplainError, feature_matrix
from mlship.runtime.predictor import Predictor
from mlship.runtime.treeshap import TreeEnsemble

shap = pytest.importorskip("shap", reason="shap is a dev dependency (the reference explainer)")


@pytest.fixture(scope="module")
def predictor(churn_bundle: Path) -> Predictor:
    return Predictor.load(churn_bundle)


def _rows(churn_split: Any, n: int = 80) -> Any:
    return churn_split[1].drop(columns=["churned"]).head(n)


def _ensemble_raw(ensemble: TreeEnsemble, matrix: np.ndarray) -> np.ndarray:
    """The stored trees evaluated in float64 by plain traversal: the score the contributions add to."""
    out = np.tile(ensemble.base_values, (len(matrix), 1)).astype(np.float64)
    weights: dict[tuple[int, int], np.ndarray] = {}
    for t, n, k, w in zip(ensemble.leaf_tree, ensemble.leaf_node, ensemble.leaf_target, ensemble.leaf_weight,
                          strict=True):
        weights.setdefault((int(t), int(n)), np.zeros(ensemble.n_targets))[int(k)] += w
    for tree in np.unique(ensemble.tree):
        rows = np.flatnonzero(ensemble.tree == tree)
        index = {int(ensemble.node[r]): r for r in rows}
        for i, x in enumerate(matrix):
            node = 0
            while not ensemble.is_leaf[index[node]]:
                r = index[node]
                value = x[ensemble.feature[r]]
                go_true = bool(ensemble.missing_true[r]) if np.isnan(value) else value <= ensemble.threshold[r]
                node = int(ensemble.true_child[r] if go_true else ensemble.false_child[r])
            out[i] += weights.get((int(tree), node), 0.0)
    return out


def test_the_bundle_explains_its_fields_exactly(predictor: Predictor, churn_split: Any, churn_model: Any) -> None:
    rows = _rows(churn_split)
    explanation = predictor.explain(rows)
    assert explanation.fields == predictor.schema.names
    assert explanation.output_space == "log-odds" and explanation.targets == [1]
    explainer = predictor.explainer()
    matrix = feature_matrix(explainer.session, predictor.onnx_feeds(predictor.schema.validate(rows).columns), None)
    reference = np.asarray(shap.TreeExplainer(churn_model[-1]).shap_values(matrix))
    columns = predictor.bundle.manifest["explain"]["columns"]
    summed = np.zeros((len(rows), len(explanation.fields)))
    for column, field in enumerate(columns):
        summed[:, explanation.fields.index(field)] += reference[:, column]
    np.testing.assert_allclose(explanation.contributions[..., 0], summed, rtol=0, atol=1e-5)
    total = explanation.base_value + explanation.contributions.sum(axis=1)
    np.testing.assert_allclose(total, _ensemble_raw(explainer.trees.ensemble, matrix), rtol=0, atol=1e-6)
    probability = predictor.predict(rows).probabilities[:, 1].astype(np.float64)
    np.testing.assert_allclose(total[:, 0], np.log(probability / (1 - probability)), rtol=0, atol=1e-4)


def test_one_hot_blocks_belong_to_their_field(predictor: Predictor) -> None:
    columns = predictor.bundle.manifest["explain"]["columns"]
    for field in predictor.schema.fields:
        owned = columns.count(field.name)
        assert owned == (len(field.categories) if field.categories else 1), field.name


def test_records_carry_the_top_fields_and_say_what_they_are(predictor: Predictor, churn_split: Any) -> None:
    explanation = predictor.explain(_rows(churn_split, 3))
    record = explanation.records(top_k=2)[0]
    json.dumps(record)
    assert record["exact"] is True and record["method"] == "tree_shap" and record["output_space"] == "log-odds"
    contributions = record["targets"][0]["contributions"]
    assert len(contributions) == 2
    full = explanation.contributions[0, :, 0]
    assert sorted(abs(v) for v in contributions.values()) == sorted(np.sort(np.abs(full))[-2:].tolist())


def test_a_bundle_whose_explainer_was_not_stored_says_why(predictor: Predictor, churn_split: Any) -> None:
    from mlship.runtime.bundle import Bundle

    old = Predictor(Bundle(predictor.bundle.path))
    # what the first release with explainers wrote for a model that was not a tree ensemble
    old.bundle.manifest["explain"] = {"method": "none", "reason": "LogisticRegression is not a tree ensemble"}
    with pytest.raises(ExplainError, match="not a tree ensemble.*re-export"):
        old.explain(_rows(churn_split, 2))


def test_a_bundle_exported_before_explainers_asks_for_a_re_export(predictor: Predictor, churn_split: Any) -> None:
    from mlship.runtime.bundle import Bundle

    old = Predictor(Bundle(predictor.bundle.path))
    del old.bundle.manifest["explain"]  # what a bundle exported by an earlier mlship holds
    with pytest.raises(ExplainError, match="re-export"):
        old.explain(_rows(churn_split, 2))
