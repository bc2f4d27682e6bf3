"""Explanations of the models TreeSHAP does not cover, from exported bundles.

Linear models (the churn pipeline with logistic regression, iris multinomial, diabetes ridge) are
explained exactly: each field's contribution equals shap.LinearExplainer's interventional values
on scikit-learn's own transformed matrix summed over the field's columns (the grouping is taken
from ``get_feature_names_out``, independently of the bundle's), and base value plus contributions
give the model's outputs. A neural network gets the sampling explainer: labelled approximate, its
contributions add up to the probability exactly, and they approach the exact Shapley values over
the same background (computed here by enumerating every coalition) as the budget grows.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlship.local.datasets import CHURN_LABEL
from mlship.runtime import sampling_shap
from mlship.runtime.predictor import Predictor

shap = pytest.importorskip("shap", reason="shap is a dev dependency (the reference explainer)")


def _export(pipe: Any, holdout: pd.DataFrame, label: str, out: Path, name: str) -> Predictor:
    from mlship.evaluation.export import export_bundle

    return Predictor.load(export_bundle(pipe, holdout, label, out / name, name=name, version="1", tarball=False))


@pytest.fixture(scope="module")
def churn_linear(tmp_path_factory: pytest.TempPathFactory, churn_split: Any) -> tuple[Any, Predictor]:
    from sklearn.linear_model import LogisticRegression

    from mlship.local.train import churn_pipeline

    train, holdout = churn_split
    pipe = churn_pipeline("hgb").set_params(model=LogisticRegression(max_iter=500))
    pipe.fit(train.drop(columns=[CHURN_LABEL]), train[CHURN_LABEL])
    return pipe, _export(pipe, holdout, CHURN_LABEL, tmp_path_factory.mktemp("linear"), "churn-linear")


def _field_sums(pipe: Any, values: np.ndarray, fields: list[str]) -> np.ndarray:
    """Per-column values summed per raw field, the columns named by scikit-learn's transformer."""
    names = pipe[:-1].get_feature_names_out()
    owner = [next(f for f in fields if name.split("__", 1)[1].startswith(f)) for name in names]
    return np.stack([values[:, [i for i, o in enumerate(owner) if o == f]].sum(axis=1) for f in fields], axis=1)


def test_logistic_regression_is_explained_exactly(churn_linear: tuple[Any, Predictor], churn_split: Any) -> None:
    pipe, predictor = churn_linear
    holdout = churn_split[1]
    rows = holdout.drop(columns=[CHURN_LABEL]).head(60)
    explanation = predictor.explain(rows)
    assert (explanation.method, explanation.exact, explanation.output_space) == ("linear", True, "log-odds")
    assert explanation.targets == [predictor.classes[-1]]
    contributions = explanation.contributions[:, :, 0]

    raw = explanation.base_value[0] + contributions.sum(axis=1)
    np.testing.assert_allclose(raw, pipe.decision_function(rows), atol=1e-4)
    probability = predictor.predict(rows).probabilities[:, -1]
    np.testing.assert_allclose(1 / (1 + np.exp(-raw)), probability, atol=1e-6)

    transformed = pipe[:-1].transform(holdout.drop(columns=[CHURN_LABEL]))
    reference = shap.LinearExplainer(pipe[-1], shap.maskers.Independent(transformed, max_samples=len(transformed)))
    expected = _field_sums(pipe, reference.shap_values(pipe[:-1].transform(rows)), explanation.fields)
    np.testing.assert_allclose(contributions, expected, atol=1e-5)
    np.testing.assert_allclose(explanation.base_value[0], reference.expected_value, atol=1e-5)


def test_multinomial_and_regression_linear_models_add_up(tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True).frame
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    classifier.fit(iris.drop(columns=["target"]), iris["target"])
    predictor = _export(classifier, iris, "target", tmp_path, "iris")
    explanation = predictor.explain(iris.drop(columns=["target"]).head(30))
    assert (explanation.method, explanation.output_space, len(explanation.targets)) == ("linear", "logit", 3)
    logits = explanation.base_value + explanation.contributions.sum(axis=1)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True),
                               predictor.predict(iris.drop(columns=["target"]).head(30)).probabilities, atol=1e-6)

    diabetes = load_diabetes(as_frame=True).frame
    regressor = make_pipeline(StandardScaler(), Ridge()).fit(diabetes.drop(columns=["target"]), diabetes["target"])
    predictor = _export(regressor, diabetes, "target", tmp_path, "diabetes")
    rows = diabetes.drop(columns=["target"]).head(30)
    explanation = predictor.explain(rows)
    assert (explanation.method, explanation.output_space, explanation.targets) == ("linear", "value", ["value"])
    np.testing.assert_allclose(explanation.base_value[0] + explanation.contributions[:, :, 0].sum(axis=1),
                               predictor.predict(rows).values.reshape(-1), rtol=1e-6, atol=1e-4)


@pytest.fixture(scope="module")
def churn_mlp(tmp_path_factory: pytest.TempPathFactory, churn_split: Any) -> Predictor:
    from mlship.local.train import churn_pipeline, make_estimator

    train, holdout = churn_split
    pipe = churn_pipeline("hgb").set_params(model=make_estimator("mlp"))
    pipe.fit(train.drop(columns=[CHURN_LABEL]), train[CHURN_LABEL])
    return _export(pipe, holdout, CHURN_LABEL, tmp_path_factory.mktemp("mlp"), "churn-mlp")


def _exact_shapley(explainer: Any, columns: dict[str, np.ndarray], row: int) -> np.ndarray:
    """Exact Shapley values of one row over the explainer's background: every coalition enumerated."""
    background, weights, fields = explainer.plan.background, explainer.plan.weights, explainer.fields
    n = len(fields)

    def value(coalition: tuple[int, ...]) -> float:
        hybrid = {name: np.where(i in coalition, np.repeat(columns[name][row:row + 1], len(weights)), background[name])
                  for i, name in enumerate(fields)}
        return float(weights @ explainer.outputs(hybrid)[:, 0])

    values = {c: value(c) for size in range(n + 1) for c in itertools.combinations(range(n), size)}
    phi = np.zeros(n)
    for i in range(n):
        for coalition, v in values.items():
            if i not in coalition:
                weight = math.factorial(len(coalition)) * math.factorial(n - len(coalition) - 1) / math.factorial(n)
                phi[i] += weight * (values[tuple(sorted((*coalition, i)))] - v)
    return phi


def test_a_neural_network_gets_the_sampling_explainer(churn_mlp: Predictor, churn_split: Any) -> None:
    entry = churn_mlp.bundle.manifest["explain"]
    assert entry["method"] == "sampling" and "MLPClassifier" in entry["reason"]
    rows = churn_split[1].drop(columns=[CHURN_LABEL]).head(12)
    explanation = churn_mlp.explain(rows)
    assert (explanation.method, explanation.exact, explanation.output_space) == ("sampling", False, "probability")
    assert explanation.model_calls is not None and explanation.model_calls <= sampling_shap.DEFAULT_BUDGET
    record = explanation.records()[0]
    assert record["exact"] is False and record["model_calls"] == explanation.model_calls

    total = explanation.base_value[0] + explanation.contributions[:, :, 0].sum(axis=1)
    np.testing.assert_allclose(total, churn_mlp.predict(rows).probabilities[:, -1], atol=1e-6)

    alone = churn_mlp.explain(rows.iloc[[5]])  # the same permutations whatever else the request holds
    np.testing.assert_allclose(alone.contributions[0], explanation.contributions[5], atol=1e-6)


def test_sampling_error_against_exact_shapley_shrinks_with_the_budget(churn_mlp: Predictor, churn_split: Any) -> None:
    from mlship.runtime.explain import SamplingExplainer

    rows = churn_split[1].drop(columns=[CHURN_LABEL]).head(6)
    columns = churn_mlp.schema.validate(rows).columns
    entry = churn_mlp.bundle.manifest["explain"]
    errors, scale = {}, 0.0
    exact = None
    for budget in (sampling_shap.DEFAULT_BUDGET, 16 * sampling_shap.DEFAULT_BUDGET):
        explainer = SamplingExplainer(churn_mlp, {**entry, "budget": budget})
        exact = exact if exact is not None else np.stack([_exact_shapley(explainer, columns, r) for r in range(6)])
        estimate = explainer.explain_columns(columns).contributions[:, :, 0]
        errors[budget] = float(np.abs(estimate - exact).mean())
        scale = float(np.abs(exact).mean())
    small, large = errors.values()
    assert small < 0.25 * scale  # the default budget is within a quarter of the mean |contribution|
    assert large < 0.6 * small  # 16x the permutations: the error falls (1/4 expected, 1/sqrt(16))


@pytest.mark.parametrize(("change", "named"), [({"budget": 0}, "explain.budget"),
                                              ({"budget": "many"}, "explain.budget"),
                                              ({"background": None}, "explain.background"),
                                              ({"output_space": 3}, "explain.output_space")])
def test_a_malformed_sampling_entry_is_refused_naming_the_key(churn_mlp: Predictor, change: dict, named: str) -> None:
    from mlship.runtime.manifest import check_manifest

    manifest = json.loads(json.dumps(churn_mlp.bundle.manifest))
    assert check_manifest(manifest) == []
    manifest["explain"].update(change)
    assert any(f"'{named}'" in problem for problem in check_manifest(manifest)), check_manifest(manifest)


def test_a_malformed_linear_entry_is_refused_naming_the_key(churn_linear: tuple[Any, Predictor]) -> None:
    from mlship.runtime.manifest import check_manifest

    manifest = json.loads(json.dumps(churn_linear[1].bundle.manifest))
    assert check_manifest(manifest) == []
    manifest["explain"]["columns"] = ["age", 7]
    del manifest["explain"]["linear"]
    problems = " | ".join(check_manifest(manifest))
    assert "'explain.linear' is missing" in problems and "explain.columns[1]" in problems, problems


def test_the_sampling_budget_is_chosen_at_export_and_bounds_every_answer(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPClassifier

    from mlship.evaluation.export import export_bundle

    frame = load_iris(as_frame=True).frame
    features = frame.drop(columns=["target"])
    mlp = MLPClassifier((8,), max_iter=500, random_state=0).fit(features, frame["target"])
    bundle = export_bundle(mlp, frame.sample(60, random_state=0), "target", tmp_path / "iris-mlp", name="iris-mlp",
                           version="1", tarball=False, explain_budget=64)
    predictor = Predictor.load(bundle)
    assert predictor.bundle.manifest["explain"]["method"] == "sampling"
    assert predictor.bundle.manifest["explain"]["budget"] == 64
    explanation = predictor.explain(features.head(3).to_dict(orient="records"))
    assert explanation.model_calls is not None and 0 < explanation.model_calls <= 64


@pytest.mark.parametrize("budget", ["0", "-5", "65537"])
def test_an_explain_budget_out_of_range_is_refused_before_the_export(tmp_path: Path, budget: str) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.neighbors import KNeighborsClassifier
    from typer.testing import CliRunner

    from mlship.cli import app

    frame = load_iris(as_frame=True).frame
    joblib.dump(KNeighborsClassifier(3).fit(frame.drop(columns=["target"]), frame["target"]), tmp_path / "knn.joblib")
    frame.to_csv(tmp_path / "holdout.csv", index=False)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["export", str(tmp_path / "knn.joblib"), str(tmp_path / "holdout.csv"), "--out",
                                      str(out), "--name", "knn", "--label", "target", "--explain-budget", budget])
    assert result.exit_code != 0 and "explain budget must be 1 to 65536" in result.output, result.output
    assert "Traceback" not in result.output and not out.exists()


def test_one_vs_rest_logistic_regression_is_explained_and_adds_up(tmp_path: Path) -> None:
    """One binary logistic regression per class, normalised after: the linear operators are not the
    model's last step, so no exact explainer is claimed; the sampling one still adds up exactly."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True).frame
    rows = iris.drop(columns=["target"])
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(max_iter=1000)))
    predictor = _export(model.fit(rows, iris["target"]), iris, "target", tmp_path, "iris-ovr")
    explanation = predictor.explain(rows.head(20))
    assert (explanation.method, explanation.exact, len(explanation.targets)) == ("sampling", False, 3)
    assert "found 3" in predictor.bundle.manifest["explain"]["reason"]  # one linear operator per class
    np.testing.assert_allclose(explanation.base_value + explanation.contributions.sum(axis=1),
                               predictor.predict(rows.head(20)).probabilities, atol=1e-6)
