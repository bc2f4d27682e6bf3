"""The batch worker parses CSV text with the schema's parser: the same errors as a CSV request."""

from __future__ import annotations

import numpy as np
import pytest
from mlship.batch import worker

from mlship.runtime.predictor import Predictor


@pytest.fixture(scope="module")
def predictor(churn_bundle):
    return Predictor.load(churn_bundle)


def _text_frame(churn_split, rows: int = 6):
    """Rows as Spark's CSV reader hands them over: every cell text, a missing cell None."""
    frame = churn_split[1].head(rows).drop(columns=["churned"], errors="ignore").reset_index(drop=True)
    return frame.astype(object).map(lambda v: None if v is None else str(v))


def _spec(predictor) -> worker.WorkerSpec:
    numeric = tuple(f.name for f in predictor.schema.fields if f.is_numeric)
    return worker.WorkerSpec(bundle_file="unused", text_input=True, numeric_fields=numeric,
                             probability_columns=tuple(f"p_{c}" for c in predictor.classes or []),
                             task=predictor.task, drift=False)


def test_text_cells_score_like_the_csv_request(predictor, churn_split) -> None:
    frame = _text_frame(churn_split)
    frame.loc[1, "monthly_charges"] = " forty "
    frame.loc[2, "tenure_months"] = "   "  # blank: a null, refused by a non-nullable field
    frame.loc[3, "age"] = "41.5"
    out, kinds, _ = worker.score_frame(frame, _spec(predictor), predictor)
    assert out[worker.STATUS].tolist() == ["scored", "quarantined", "quarantined", "quarantined", "scored",
                                           "scored"]
    assert out[worker.ERROR_KINDS].tolist()[1:4] == ["wrong_type", "null_not_allowed", "wrong_type"]
    csv_text = "\n".join([",".join(frame.columns)] + [",".join(str(v) for v in row) for row in frame.to_numpy()])
    request = predictor.schema.validate_csv(csv_text)
    reasons = out[worker.REASON].tolist()
    assert [reasons[row] for row in (1, 2, 3)] == [request.row_reasons()[row] for row in (1, 2, 3)]
    assert 'got string "forty"' in reasons[1]
    assert kinds["cause:input"] == 3


def test_all_number_text_takes_the_float_path(predictor, churn_split) -> None:
    frame = _text_frame(churn_split)
    direct = predictor.score(churn_split[1].head(6).drop(columns=["churned"], errors="ignore").reset_index(drop=True))
    out, _, _ = worker.score_frame(frame, _spec(predictor), predictor)
    assert (out[worker.STATUS] == "scored").all()
    assert out[worker.PREDICTION].astype(str).tolist() == [str(v) for v in direct.prediction.labels.tolist()]
    assert np.isfinite(out[[c for c in out.columns if c.startswith("p_")]].to_numpy()).all()
