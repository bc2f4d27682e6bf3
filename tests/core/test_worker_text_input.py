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
                             task=predictor.task, drift=False, input_columns=tuple(predictor.schema.names))


def _score(frame, predictor):
    """The frame's cells as the Arrow batch Spark hands the worker, scored; the result as columns."""
    import pyarrow as pa

    spec = _spec(predictor)
    arrays = tuple(pa.array(frame[name].tolist(), type=pa.string()) for name in spec.input_columns)
    columns, malformed = worker.arrow_columns(arrays, spec)
    chunk = worker.score_chunk(columns, spec, predictor, malformed)
    result = worker.to_arrow(chunk, spec, predictor)
    out = {name: result.field(name).to_pylist() for name in result.type.names}
    out[worker.STATUS] = [worker.SCORED if ok else worker.QUARANTINED for ok in out.pop(worker.SCORED)]
    return out, chunk.counts


def test_text_cells_score_like_the_csv_request(predictor, churn_split) -> None:
    frame = _text_frame(churn_split)
    frame.loc[1, "monthly_charges"] = " forty "
    frame.loc[2, "tenure_months"] = "   "  # blank: a null, refused by a non-nullable field
    frame.loc[3, "age"] = "41.5"
    out, kinds = _score(frame, predictor)
    assert out[worker.STATUS] == ["scored", "quarantined", "quarantined", "quarantined", "scored",
                                           "scored"]
    assert out[worker.ERROR_KINDS][1:4] == ["wrong_type", "null_not_allowed", "wrong_type"]
    csv_text = "\n".join([",".join(frame.columns)] + [",".join(str(v) for v in row) for row in frame.to_numpy()])
    request = predictor.schema.validate_csv(csv_text)
    reasons = out[worker.REASON]
    assert [reasons[row] for row in (1, 2, 3)] == [request.row_reasons()[row] for row in (1, 2, 3)]
    assert 'got string "forty"' in reasons[1]
    assert kinds["cause:input"] == 3


def test_all_number_text_takes_the_float_path(predictor, churn_split) -> None:
    frame = _text_frame(churn_split)
    direct = predictor.score(churn_split[1].head(6).drop(columns=["churned"], errors="ignore").reset_index(drop=True))
    out, _ = _score(frame, predictor)
    assert set(out[worker.STATUS]) == {"scored"}
    assert [str(v) for v in out[worker.PREDICTION]] == [str(v) for v in direct.prediction.labels.tolist()]
    assert np.isfinite(np.array([out[c] for c in out if c.startswith("p_")], dtype=float)).all()
