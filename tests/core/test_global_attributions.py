"""Global explanations: mean |contribution| per field from the bundle's explainer, permutation
importance through onnxruntime, their place in ``mlship evaluate``'s report, in the model card and
in the manifest (``explain.summary``, the baseline of attribution drift).

The data is built here: the label depends on ``signal`` (numeric) and ``plan`` (categorical) only;
``noise`` and ``colour`` are drawn independently of it. Bundles are exported as users export them
(ColumnTransformer + gradient boosting: exact TreeSHAP)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reports import browser

from mlship.evaluation.attributions import (
    FIRST_CHUNK_ROWS,
    GlobalExplanation,
    attribution_summary,
    global_attributions,
    permutation_importance,
)
from mlship.evaluation.evaluate import evaluate, write_report
from mlship.evaluation.export import export_bundle
from mlship.runtime.bundle import Bundle
from mlship.runtime.manifest import MalformedDocumentError, check_manifest
from mlship.runtime.predictor import Predictor

SUMMARY_KEYS = {"method", "exact", "output_space", "rows", "targets", "mean_abs", "permutation"}
INFORMATIVE = {"signal", "plan"}


def _frame(n: int, seed: int, classes: int = 2) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], n)
    signal = rng.normal(size=n)
    score = 2.0 * signal + np.select([plan == "basic", plan == "pro"], [-1.5, 1.5], 0.0) + rng.normal(0, 0.3, n)
    label = (score > 0).astype(int) if classes == 2 else np.digitize(score, [-1.0, 1.0])
    return pd.DataFrame({"signal": signal, "noise": rng.normal(size=n), "plan": plan,
                         "colour": rng.choice(["red", "green"], n), "label": label})


def _pipeline(classes: int = 2) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer([("num", "passthrough", ["signal", "noise"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["plan", "colour"])])
    model = GradientBoostingClassifier(n_estimators=40 if classes == 2 else 20, max_depth=2, random_state=0)
    return Pipeline([("pre", pre), ("model", model)])


def _export(tmp: Path, name: str, classes: int = 2) -> tuple[Path, Any]:
    train, holdout = _frame(900, seed=1, classes=classes), _frame(300, seed=2, classes=classes)
    model = _pipeline(classes).fit(train.drop(columns=["label"]), train["label"])
    return export_bundle(model, holdout, "label", tmp / name, name=name, version="1", tarball=False), holdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    return _export(tmp_path_factory.mktemp("attributions"), "synthetic")


@pytest.fixture(scope="module")
def predictor(exported: tuple[Path, Any]) -> Predictor:
    return Predictor.load(exported[0])


def _columns(predictor: Predictor, frame: Any) -> dict[str, np.ndarray]:
    return predictor.schema.validate(frame.drop(columns=["label"])).columns


def test_informative_fields_rank_first_and_an_unused_field_is_near_zero(predictor: Predictor,
                                                                         exported: tuple[Path, Any]) -> None:
    attr = global_attributions(predictor, _columns(predictor, exported[1]), max_rows=200)
    assert attr.rows == 200 and attr.available_rows == 300 and attr.method == "tree_shap" and attr.exact
    assert attr.targets == [1] and attr.summary_target == "class 1" and attr.mean_abs.shape == (4, 1)
    importance = dict(zip(attr.fields, attr.importance(), strict=True))
    assert {attr.fields[i] for i in attr.top(2)} == INFORMATIVE, importance
    assert importance["noise"] < 0.02 * importance["signal"] and importance["colour"] < 0.02 * importance["plan"]
    again = global_attributions(predictor, _columns(predictor, exported[1]), max_rows=200)
    np.testing.assert_array_equal(again.contributions, attr.contributions)  # the same rows, the same values
    assert list(attr.values["plan"]) == list(again.values["plan"])


def test_the_time_budget_stops_after_the_first_chunk(predictor: Predictor, exported: tuple[Path, Any]) -> None:
    attr = global_attributions(predictor, _columns(predictor, exported[1]), max_rows=300, budget_seconds=0.0)
    assert attr.rows == FIRST_CHUNK_ROWS and attr.contributions.shape == (FIRST_CHUNK_ROWS, 4, 1)


def test_permutation_importance_is_positive_for_the_signal_and_near_zero_for_noise(
        predictor: Predictor, exported: tuple[Path, Any]) -> None:
    holdout = exported[1]
    perm = permutation_importance(predictor, _columns(predictor, holdout), holdout["label"].to_numpy(),
                                  "classification", repeats=4)
    assert perm.metric == "roc_auc" and perm.rows == 300 and perm.drops.shape == (4, 4) and perm.worse == "drop"
    mean = dict(zip(perm.fields, perm.mean, strict=True))
    assert mean["signal"] > 0.1 and mean["plan"] > 0.02, mean
    assert abs(mean["noise"]) < 0.01 and abs(mean["colour"]) < 0.01, mean
    assert set(perm.to_dict()["signal"]) == {"mean", "std"} and perm.to_dict()["signal"]["std"] >= 0


def test_the_permutation_baseline_is_the_evaluations_metric(predictor: Predictor, exported: tuple[Path, Any]) -> None:
    from mlship.evaluation.attributions import _primary_scorer
    from mlship.stats.metrics import classification_metrics

    holdout = exported[1]
    prediction = predictor.predict_columns(_columns(predictor, holdout))
    y = holdout["label"].to_numpy(dtype=object)
    full = classification_metrics(y, prediction.labels, prediction.probabilities, predictor.classes)
    for metric in ("roc_auc", "accuracy"):
        assert _primary_scorer("classification", metric, y, predictor.classes)(prediction) == full[metric]


def test_export_stores_the_summary_and_draws_the_card(exported: tuple[Path, Any]) -> None:
    bundle = exported[0]
    manifest = json.loads((bundle / "manifest.json").read_text())
    summary = manifest["explain"]["summary"]
    assert set(summary) == SUMMARY_KEYS and summary["rows"] == 300 and summary["targets"] == [1]
    assert set(summary["mean_abs"]) == {"signal", "noise", "plan", "colour"}
    assert all(len(v) == 1 and v[0] >= 0 for v in summary["mean_abs"].values())
    assert set(summary["permutation"]["signal"]) == {"mean", "std"}
    assert check_manifest(manifest) == []
    Predictor.load(bundle)  # hashed and verified with the summary in it
    for stem in ("importance", "beeswarm", "permutation"):
        assert (bundle / "card" / f"explain_{stem}.png").is_file()
    card = (bundle / "model_card.md").read_text()
    assert "## Explanations" in card and "card/explain_beeswarm.png" in card and "tree_shap (exact)" in card
    assert 'id="explanations"' in (bundle / "model_card.html").read_text()


def test_a_malformed_summary_is_refused_naming_the_key(exported: tuple[Path, Any], tmp_path: Path) -> None:
    manifest = json.loads((exported[0] / "manifest.json").read_text())
    cases = {"explain.summary.mean_abs.signal[0]": ("mean_abs", {"signal": ["big"]}),
             "explain.summary.mean_abs.noise": ("mean_abs", {"noise": 0.5}),
             "explain.summary.mean_abs'": ("mean_abs", [0.5]),
             "explain.summary.rows": ("rows", "300")}
    for key, (field, value) in cases.items():
        bad = copy.deepcopy(manifest)
        bad["explain"]["summary"][field] = value
        problems = check_manifest(bad)
        assert len(problems) == 1 and f"field '{key}" in problems[0], problems
    bad = copy.deepcopy(manifest)
    del bad["explain"]["summary"]["rows"]
    assert check_manifest(bad) == ["manifest.json field 'explain.summary.rows' is missing"]
    copied = shutil.copytree(exported[0], tmp_path / "bad")
    bad["explain"]["summary"] = "not an object"
    (copied / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(MalformedDocumentError, match=r"'explain\.summary' must be an object"):
        Bundle(copied)


@pytest.fixture(scope="module")
def evaluation_report(predictor: Predictor, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    ev = evaluate(predictor, _frame(400, seed=3), "label", bootstrap=0, latency_rows=0, explain_rows=120)
    return (ev, *write_report(ev, tmp_path_factory.mktemp("evaluation")))


def test_the_evaluation_reports_the_summary_and_the_section(evaluation_report: tuple[Any, Path, Path]) -> None:
    ev, json_path, html_path = evaluation_report
    report = json.loads(json_path.read_text())["explanations"]
    assert report["available"] is True and report["reason"] is None and report["sampled_from"] == 400
    summary = report["summary"]
    assert set(summary) == SUMMARY_KEYS and summary["rows"] == 120 and summary["method"] == "tree_shap"
    assert summary == attribution_summary(ev.explanation.attributions, ev.explanation.permutation)
    assert report["permutation"]["metric"] == "roc_auc"
    assert set(report["permutation"]["fields"]) == set(summary["mean_abs"])
    page = html_path.read_text()
    assert '<h2 id="explanations">Explanations</h2>' in page and "tree_shap (exact) on 120 of 400 rows" in page
    for title in ("Mean |contribution| per field", "beeswarm", "Dependence", "Permutation importance"):
        assert title in page


@pytest.mark.skipif(not browser.available(), reason="/usr/bin/chromium is not installed: the report cannot be "
                    "opened in a browser")
def test_the_evaluation_page_renders_cleanly_in_chromium(evaluation_report: tuple[Any, Path, Path],
                                                        tmp_path: Path) -> None:
    shown = browser.render(evaluation_report[2], tmp_path / "evaluation.png")
    assert shown.problems() == [], shown.problems()
    assert "Explanations" in shown.headings, shown.headings
    explain_images = [i for i in shown.images if i["alt"].startswith("Explanations: ")]
    assert len(explain_images) == 4 and all(i["natural_width"] > 0 for i in explain_images), shown.images


def test_a_bundle_without_an_explainer_says_why(exported: tuple[Path, Any], tmp_path: Path) -> None:
    old = Predictor(Bundle(exported[0]))
    del old.bundle.manifest["explain"]  # what a bundle exported by an earlier mlship holds
    ev = evaluate(old, _frame(200, seed=4), "label", bootstrap=0, latency_rows=0, explain_rows=50)
    json_path, html_path = write_report(ev, tmp_path)
    report = json.loads(json_path.read_text())["explanations"]
    assert report["available"] is False and report["summary"] is None and "re-export" in report["reason"]
    assert report["permutation"]["metric"] == "roc_auc"  # needs no explainer: only the model's predictions
    page = html_path.read_text()
    assert "No attributions: bundle synthetic:1 stores no explainer" in page and "Permutation importance" in page
    skipped = evaluate(old, _frame(200, seed=4), "label", bootstrap=0, latency_rows=0, explain_rows=0)
    assert skipped.to_dict()["explanations"] == {"available": False, "reason": "not computed (explain_rows=0)"}
    assert "Not computed (explain_rows=0)." in write_report(skipped, tmp_path / "skipped")[1].read_text()


def test_a_card_without_attributions_says_why(exported: tuple[Path, Any], tmp_path: Path) -> None:
    from mlship.evaluation.modelcard import render_model_card

    bundle = shutil.copytree(exported[0], tmp_path / "card")
    predictor = Predictor(Bundle(bundle))
    manifest = copy.deepcopy(predictor.bundle.manifest)
    manifest["explain"] = {"method": "none", "reason": "KNeighborsClassifier is not a tree ensemble"}
    holdout = exported[1]
    render_model_card(bundle, manifest, holdout["label"].to_numpy(), predictor.predict(holdout.drop(columns="label")))
    card = (bundle / "model_card.md").read_text()
    assert "No global explanations: KNeighborsClassifier is not a tree ensemble." in card
    explained = GlobalExplanation(None, None, reason="model synthetic:1 has no exact explainer")
    render_model_card(bundle, manifest, holdout["label"].to_numpy(), predictor.predict(holdout.drop(columns="label")),
                      explained=explained)
    assert "No attributions: model synthetic:1 has no exact explainer." in (bundle / "model_card.html").read_text()


def test_multiclass_plots_the_mean_over_targets(tmp_path: Path) -> None:
    bundle, holdout = _export(tmp_path, "three", classes=3)
    manifest = json.loads((bundle / "manifest.json").read_text())
    summary = manifest["explain"]["summary"]
    assert summary["targets"] == [0, 1, 2] and all(len(v) == 3 for v in summary["mean_abs"].values())
    predictor = Predictor.load(bundle)
    attr = global_attributions(predictor, _columns(predictor, holdout), max_rows=100)
    assert attr.summary_index is None and attr.summary_target == "mean |contribution| over the 3 targets"
    assert (attr.field_scores() >= 0).all()
    np.testing.assert_allclose(attr.importance(), attr.mean_abs.mean(axis=1))
    assert {attr.fields[i] for i in attr.top(2)} == INFORMATIVE


def test_regression_permutation_importance_is_an_rmse_increase(tmp_path: Path) -> None:
    from sklearn.ensemble import GradientBoostingRegressor

    train, holdout = _frame(600, seed=5), _frame(200, seed=6)
    for frame in (train, holdout):
        frame["label"] = 3.0 * frame["signal"]
    features = ["signal", "noise"]
    model = GradientBoostingRegressor(n_estimators=30, max_depth=2, random_state=0).fit(train[features], train["label"])
    bundle = export_bundle(model, holdout[[*features, "label"]], "label", tmp_path / "reg", name="reg", version="1",
                           tarball=False)
    predictor = Predictor.load(bundle)
    perm = permutation_importance(predictor, predictor.schema.validate(holdout[features]).columns,
                                  holdout["label"].to_numpy(), "regression", repeats=3)
    mean = dict(zip(perm.fields, perm.mean, strict=True))
    assert perm.metric == "rmse" and perm.worse == "increase" and mean["signal"] > 1.0 and abs(mean["noise"]) < 0.05
    summary = json.loads((bundle / "manifest.json").read_text())["explain"]["summary"]
    assert summary["targets"] == ["value"] and summary["output_space"] == "value"
