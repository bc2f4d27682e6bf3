"""Unseen categories are scored as scikit-learn scores them, or refused as scikit-learn refuses them.

Each bundle is a real pipeline (ColumnTransformer: an encoder on a string column, StandardScaler on
two numeric columns, then LogisticRegression) exported by the real export code, one per
``handle_unknown`` mode; its predictions for rows with unseen categories are compared with the
fitted pipeline's own.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlship.errors import BundleError, ValidationError
from mlship.evaluation.export import ParityPolicy, export_bundle
from mlship.runtime.predictor import Predictor
from mlship.runtime.records import encode, object_records
from mlship.runtime.schema import Field, InputSchema

PLANS = ["basic", "plus", "pro"]
TOLERANCE = ParityPolicy().tolerance
# (encoder, the mode the schema records)
MODES = {
    "error": ({"handle_unknown": "error"}, "error"),
    "ignore": ({"handle_unknown": "ignore"}, "ignore"),
    "infrequent_if_exist": ({"handle_unknown": "infrequent_if_exist"}, "infrequent_if_exist"),
    "ordinal": ({"handle_unknown": "use_encoded_value", "unknown_value": -1}, "use_encoded_value"),
    # scikit-learn itself fails on the NaN code (LogisticRegression takes no NaN): export's check of
    # the unseen-category answer fails, so the field is recorded as refusing
    "ordinal-nan": ({"handle_unknown": "use_encoded_value", "unknown_value": np.nan}, "error"),
}
SCORED = [m for m, (_, recorded) in MODES.items() if recorded != "error"]
UNSEEN = ["enterprise", "", " basic", "BASIC", "pro\x00", "é", "计划", "😀" * 3, "x" * 100_000]


def _frame(n: int, seed: int) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"plan": rng.choice(PLANS, n, p=[0.5, 0.3, 0.2]), "usage": rng.normal(10, 3, n).round(2),
                          "seats": rng.integers(1, 50, n)})
    logit = 0.3 * (frame["usage"] - 10) + 0.04 * frame["seats"] + frame["plan"].map({"basic": -1, "plus": 0,
                                                                                      "pro": 1.2})
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def _pipeline(mode: str) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    params = MODES[mode][0]
    encoder = OrdinalEncoder(**params) if mode.startswith("ordinal") else OneHotEncoder(sparse_output=False, **params)
    pre = ColumnTransformer([("cat", encoder, ["plan"]), ("num", StandardScaler(), ["usage", "seats"])])
    return Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=1000))])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Predictor, Path]]:
    """Per mode: the fitted pipeline, the exported bundle's predictor and its folder."""
    train, holdout = _frame(600, 1), _frame(200, 2)
    out = tmp_path_factory.mktemp("handle_unknown")
    made = {}
    for mode in MODES:
        pipe = _pipeline(mode).fit(train.drop(columns=["churned"]), train["churned"])
        path = export_bundle(pipe, holdout, "churned", out / mode, name=f"hu-{mode}", version="1", tarball=False)
        made[mode] = (pipe, Predictor.load(path), path)
    return made


def _records(values: list[str]) -> list[dict[str, Any]]:
    return [{"plan": v, "usage": 8.5 + i * 0.75, "seats": 3 + 4 * i} for i, v in enumerate(values)]


def _sklearn(pipe: Any, records: list[dict[str, Any]]) -> np.ndarray:
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipe.predict_proba(pd.DataFrame(records, columns=["plan", "usage", "seats"]))


def _assert_sklearn_answer(pipe: Any, prediction: Any, records: list[dict[str, Any]]) -> None:
    expected = _sklearn(pipe, records)
    np.testing.assert_allclose(prediction.probabilities, expected, rtol=0, atol=TOLERANCE)
    assert prediction.labels.tolist() == pipe.classes_[expected.argmax(axis=1)].tolist()


# ---------------------------------------------------------------------------- the schema
@pytest.mark.parametrize("mode", list(MODES))
def test_the_schema_records_the_mode_and_export_checked_it(bundles, mode):
    manifest = json.loads((bundles[mode][2] / "manifest.json").read_text())
    fields = {f["name"]: f for f in manifest["input_schema"]["fields"]}
    assert fields["plan"]["handle_unknown"] == MODES[mode][1]
    assert fields["plan"]["categories"] == PLANS
    assert fields["usage"]["handle_unknown"] == fields["seats"]["handle_unknown"] == "error"
    probe = manifest["parity"].get("unknown_categories", {})
    if mode == "error":
        assert probe == {}
    elif mode in SCORED:
        assert probe["plan"]["passed"] and probe["plan"]["max_abs_diff"] <= TOLERANCE and probe["plan"]["rows"] > 0
    else:
        assert probe["plan"] == {"handle_unknown": "use_encoded_value", "rows": 20, "max_abs_diff": None,
                                 "passed": False}


def test_a_bundle_from_before_the_field_keeps_refusing():
    old = {"layout": "columns", "fields": [{"name": "plan", "dtype": "string", "nullable": False,
                                            "categories": PLANS}]}
    schema = InputSchema.from_dict(old)
    assert schema.fields[0].handle_unknown == "error"
    with pytest.raises(ValidationError) as err:
        schema.validate([{"plan": "enterprise"}]).raise_for_errors()
    assert err.value.errors[0].kind == "unknown_category"
    with pytest.raises(ValueError, match="handle_unknown must be one of"):
        Field("plan", "string", handle_unknown="sometimes")
    old["fields"][0]["handle_unknown"] = "sometimes"  # a mode this runtime does not know: the bundle is refused
    with pytest.raises(BundleError, match="manifest input_schema: field 'plan': handle_unknown must be one of"):
        InputSchema.from_dict(old)


# ---------------------------------------------------------------------------- serving
@pytest.mark.parametrize("mode", SCORED)
def test_unseen_categories_predict_as_scikit_learn(bundles, mode):
    pipe, predictor, _ = bundles[mode]
    records = _records(UNSEEN + PLANS)
    _assert_sklearn_answer(pipe, predictor.predict(records), records)  # the batch path
    for record in _records(UNSEEN):  # the one-record fast path
        _assert_sklearn_answer(pipe, predictor.predict([record]), [record])
    import pandas as pd

    frame = pd.DataFrame(records)
    _assert_sklearn_answer(pipe, predictor.predict(frame), records)  # columns (DataFrame)
    csv_rows = [r for r in records if r["plan"] and r["plan"] == r["plan"].strip() and "\x00" not in r["plan"]]
    text = "plan,usage,seats\n" + "\n".join(f"{r['plan']},{r['usage']},{r['seats']}" for r in csv_rows)
    _assert_sklearn_answer(pipe, predictor.predict(text), csv_rows)
    scored = predictor.score(frame)
    assert scored.valid.all()


def test_error_mode_refuses_with_the_same_typed_error(bundles):
    pipe, predictor, _ = bundles["error"]
    for batch in (_records(["enterprise"]), _records(["pro", "enterprise"])):
        with pytest.raises(ValidationError) as err:
            predictor.predict(batch)
        (only,) = err.value.errors
        assert (only.row, only.field, only.kind) == (len(batch) - 1, "plan", "unknown_category")
        assert only.message == "unknown category 'enterprise' (expected one of 'basic', 'plus', 'pro')"
    _assert_sklearn_answer(pipe, predictor.predict(_records(PLANS)), _records(PLANS))
    scored = predictor.score(_records(["pro", "enterprise", "basic"]))
    assert scored.valid.tolist() == [True, False, True]
    assert scored.validated.row_reasons()[1].startswith("plan: unknown category 'enterprise'")


def test_text_onnxruntime_cannot_take_is_a_typed_refusal(bundles):
    _, predictor, _ = bundles["ignore"]
    body = json.loads('{"plan": "\\ud800", "usage": 1.5, "seats": 2}')  # JSON allows a lone surrogate
    for batch in ([body], [body, _records(["pro"])[0]]):
        with pytest.raises(ValidationError) as err:
            predictor.predict(batch)
        assert [(e.row, e.field, e.kind) for e in err.value.errors] == [(0, "plan", "wrong_type")]
        assert "not valid Unicode" in err.value.errors[0].message


_unicode = st.characters(codec=None, exclude_categories=())  # every code point, lone surrogates included
unseen_text = st.one_of(
    st.text(_unicode, max_size=30),
    st.text(st.characters(codec="ascii"), max_size=8),
    st.sampled_from(["", " ", "\x00", "\ud800", "pro\udfff", "ｂａｓｉｃ", "basic\n", "null", "None", "NaN"]),
    st.builds(lambda piece, n: piece * n, st.text(_unicode, min_size=1, max_size=3), st.integers(1000, 30_000)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(value=unseen_text, usage=st.floats(-50, 50), seats=st.integers(0, 500))
def test_any_category_text_gets_the_sklearn_answer_or_the_typed_refusal(bundles, value, usage, seats):
    record = json.loads(json.dumps({"plan": value, "usage": usage, "seats": seats}))  # as a request decodes it
    feedable = True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        feedable = False
    for mode, (pipe, predictor, _) in bundles.items():
        refuses = MODES[mode][1] == "error"
        for batch in ([record], [record, _records(["plus"])[0]]):
            try:
                prediction = predictor.predict(batch)
            except ValidationError as err:
                kinds = {(e.row, e.field, e.kind) for e in err.errors}
                expected = "unknown_category" if refuses and value not in PLANS else "wrong_type"
                assert kinds == {(0, "plan", expected)}, (mode, value)
                assert refuses or not feedable, (mode, value)
                continue
            assert feedable and (not refuses or value in PLANS), (mode, value)
            _assert_sklearn_answer(pipe, prediction, batch)


def test_infrequent_categories_take_unseen_values_as_scikit_learn(tmp_path):
    """An encoder over two columns with infrequent categories (skl2onnx converts those only for more
    than one column): an unseen value goes to the infrequent column, as scikit-learn puts it."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def frame(n: int, seed: int) -> Any:
        rng = np.random.default_rng(seed)
        out = _frame(n, seed)
        out.loc[rng.random(n) < 0.06, "plan"] = "legacy"  # infrequent (min_frequency 0.1)
        out["region"] = rng.choice(["eu", "us", "apac", "latam"], n, p=[0.45, 0.45, 0.05, 0.05])
        return out

    train, holdout = frame(600, 3), frame(200, 4)
    encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=0.1, sparse_output=False)
    pre = ColumnTransformer([("cat", encoder, ["plan", "region"]), ("num", StandardScaler(), ["usage", "seats"])])
    pipe = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=1000))])
    pipe.fit(train.drop(columns=["churned"]), train["churned"])
    fitted = pipe.named_steps["pre"].named_transformers_["cat"]
    assert [list(c) for c in fitted.infrequent_categories_] == [["legacy"], ["apac", "latam"]]
    predictor = Predictor.load(export_bundle(pipe, holdout, "churned", tmp_path / "b", name="hu", version="1",
                                             tarball=False))
    assert {f.name: f.handle_unknown for f in predictor.schema.fields if not f.is_numeric} == {
        "plan": "infrequent_if_exist", "region": "infrequent_if_exist"}
    records = [dict(r, region=region) for r, region in
               zip(_records(["enterprise", "legacy", "pro", "", "basic"]), ["eu", "mars", "apac", "", "us"],
                   strict=True)]
    expected = pipe.predict_proba(pd.DataFrame(records))
    fitted.handle_unknown = "ignore"
    ignored = pipe.predict_proba(pd.DataFrame(records))
    assert np.abs(expected - ignored).max() > 0.01  # the infrequent column, not all zeros, decides
    np.testing.assert_allclose(predictor.predict(records).probabilities, expected, rtol=0, atol=TOLERANCE)
    for record, want in zip(records, expected, strict=True):
        np.testing.assert_allclose(predictor.predict([record]).probabilities[0], want, rtol=0, atol=TOLERANCE)


# ---------------------------------------------------------------------------- drift
def test_scored_unseen_values_reach_drift_as_unseen_categories(bundles):
    from mlship.monitoring.window import batches
    from mlship.stats.drift import DriftAccumulator

    _, predictor, _ = bundles["ignore"]
    sent = _records(["pro", "enterprise", "basic", "enterprise", "starter"])
    records = []
    for i, rec in enumerate(sent):  # one request per record: the fast path keeps no columns
        prediction, columns = predictor.predict_with_inputs([rec])
        records += predictor.inference_records(f"req-{i}", prediction, columns, source="test", data=[rec])
    prediction, columns = predictor.predict_with_inputs(sent)  # and one batch request
    records += predictor.inference_records("req-batch", prediction, columns, source="test")
    stored = list(object_records("inference-records/x.jsonl.gz", encode(records)))  # as the monitor reads S3
    assert [r["inputs"]["plan"] for r in stored] == [r["plan"] for r in sent] * 2
    acc = DriftAccumulator(predictor.bundle.profile)
    for batch in batches(iter(stored), predictor.schema.names):
        acc.update(batch.columns)
    plan = acc.result().features["plan"]
    assert plan["unseen_categories"] == 2
    assert set(plan["unseen_examples"]) == {"enterprise", "starter"}
    assert plan["unseen_share"] == pytest.approx(6 / 10)
