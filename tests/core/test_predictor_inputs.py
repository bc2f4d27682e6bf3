"""Every kind of bad input gets one clear, field-level error; every input shape predicts the same."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from mlship.errors import ValidationError
from mlship.runtime.predictor import Predictor


@pytest.fixture(scope="module")
def predictor(churn_bundle):
    return Predictor.load(churn_bundle)


@pytest.fixture
def good() -> dict:
    return {"tenure_months": 12, "monthly_charges": 70.25, "total_charges": 843.0, "support_calls": 1,
            "age": 41, "contract": "month-to-month", "payment_method": "electronic-check",
            "internet_service": "fiber", "gender": "female"}


def _errors(predictor, data):
    with pytest.raises(ValidationError) as err:
        predictor.predict(data)
    return err.value.errors


@pytest.mark.parametrize("change,field,kind,message", [
    (lambda r: r.pop("age"), "age", "missing_field", "required field is missing"),
    (lambda r: r.update(colour="red"), "colour", "unexpected_field", "unexpected field"),
    (lambda r: r.update(age="forty"), "age", "wrong_type", "expected an integer, got string \"forty\""),
    (lambda r: r.update(monthly_charges="70"), "monthly_charges", "wrong_type", "expected a number, got string"),
    (lambda r: r.update(monthly_charges=True), "monthly_charges", "wrong_type", "got boolean"),
    (lambda r: r.update(age=41.5), "age", "wrong_type", "expected an integer, got 41.5"),
    (lambda r: r.update(monthly_charges=math.nan), "monthly_charges", "null_not_allowed", "not nullable"),
    (lambda r: r.update(monthly_charges=None), "monthly_charges", "null_not_allowed", "not nullable"),
    (lambda r: r.update(monthly_charges=math.inf), "monthly_charges", "not_finite", "must be finite"),
    (lambda r: r.update(contract="weekly"), "contract", "unknown_category", "unknown category 'weekly'"),
    (lambda r: r.update(contract=3), "contract", "wrong_type", "expected a string, got integer"),
    (lambda r: r.update(gender=None), "gender", "null_not_allowed", "not nullable"),
])
def test_each_bad_field_is_named(predictor, good, change, field, kind, message):
    change(good)
    errors = _errors(predictor, [good])
    assert len(errors) == 1
    assert (errors[0].row, errors[0].field, errors[0].kind) == (0, field, kind)
    assert message in errors[0].message


def test_nullable_field_accepts_null(predictor, good):
    good["total_charges"] = None  # new customers have no total yet: nullable in the schema
    assert predictor.predict(good).labels.shape == (1,)


def test_one_error_per_field_and_row(predictor, good):
    bad1 = dict(good, age="x", contract="weekly")
    bad2 = dict(good, monthly_charges=math.inf)
    errors = _errors(predictor, [good, bad1, bad2])
    assert [(e.row, e.field) for e in errors] == [(1, "age"), (1, "contract"), (2, "monthly_charges")]
    assert "row 1, field 'age'" in str(errors[0])


def test_not_an_object_and_empty_input(predictor):
    assert _errors(predictor, [42])[0].kind == "wrong_type"
    assert _errors(predictor, [])[0].kind == "empty"


def test_csv_with_and_without_header_matches_records(predictor, good):
    names = predictor.schema.names
    values = ",".join(str(good[n]) for n in names)
    with_header = ",".join(names) + "\n" + values + "\n"
    reordered = ",".join(reversed(names)) + "\n" + ",".join(str(good[n]) for n in reversed(names))
    expected = predictor.predict(good).probabilities
    for text in (with_header, values, reordered, with_header.encode()):
        assert np.allclose(predictor.predict(text).probabilities, expected)


def test_csv_errors_are_named(predictor, good):
    names = predictor.schema.names
    assert _errors(predictor, "1,2,3\n")[0].kind == "wrong_arity"
    assert _errors(predictor, ",".join(names[:-1]) + "\n" + "1," * 7 + "x\n")[0].field == names[-1]
    row = ",".join("abc" if n == "age" else str(good[n]) for n in names)
    err = _errors(predictor, row)[0]
    assert (err.field, err.kind) == ("age", "wrong_type")
    assert _errors(predictor, "\n\n")[0].kind == "empty"


def test_dataframe_and_arrow_inputs_match_records(predictor, churn_split):
    frame = churn_split[1].drop(columns=["churned"]).head(200)
    by_records = predictor.predict(frame.to_dict(orient="records"))
    by_frame = predictor.predict(frame)
    by_arrow = predictor.predict(pa.Table.from_pandas(frame, preserve_index=False))
    assert np.array_equal(by_records.probabilities, by_frame.probabilities)
    assert np.array_equal(by_records.probabilities, by_arrow.probabilities)


def test_score_reports_bad_rows_and_scores_the_rest(predictor, churn_split):
    frame = churn_split[1].head(50).copy()  # keeps the label column: batch inputs carry extra columns
    frame["contract"] = frame["contract"].astype(object)
    frame.loc[3, "contract"] = "weekly"
    frame.loc[7, "monthly_charges"] = np.inf
    scored = predictor.score(frame)
    assert scored.valid.sum() == 48 and not scored.valid[3] and not scored.valid[7]
    assert len(scored.prediction) == 48
    reasons = scored.validated.row_reasons()
    assert "unknown category 'weekly'" in reasons[3] and "infinite" in reasons[7]


def test_dataframe_missing_and_extra_columns(predictor, churn_split):
    frame = churn_split[1].head(5)
    errors = _errors(predictor, frame.drop(columns=["age"]))
    assert {(e.field, e.kind) for e in errors} == {("age", "missing_field"), ("churned", "unexpected_field")}


def test_prediction_shapes(predictor, good):
    body = predictor.predict([good, good]).to_dict()
    assert body["model"] == {"name": "churn", "version": "1"}
    assert len(body["predictions"]) == 2 and len(body["probabilities"][0]) == 2
    assert body["classes"] == [0, 1]


@pytest.mark.parametrize("body", ["\r\x00", "a,\"b\nc", "\x00\x00"])
def test_unparseable_csv_is_a_validation_error(predictor, body):
    errors = _errors(predictor, body)
    assert errors[0].kind in {"malformed", "wrong_arity", "empty"}
