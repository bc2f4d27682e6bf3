"""A one-record request goes straight into the session's input arrays
(``Predictor.predict_with_inputs``'s fast path): the answers and the inference records are those
of the general columns path, for fuzzed churn records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def predictor(churn_bundle: Path) -> Any:
    from mlship.runtime.predictor import Predictor

    return Predictor.load(churn_bundle)


def _records(predictor: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Valid records: integers for integer fields, numbers inside an enforced range, known categories."""
    fields = {}
    for spec in predictor.schema.fields:
        lo = spec.minimum if spec.enforce_range and spec.minimum is not None else -1e6
        hi = spec.maximum if spec.enforce_range and spec.maximum is not None else 1e6
        if spec.dtype == "integer":
            fields[spec.name] = st.integers(int(np.ceil(lo)), int(np.floor(hi)))
        elif spec.is_numeric:
            fields[spec.name] = st.one_of(st.floats(lo, hi), st.integers(int(np.ceil(lo)), int(np.floor(hi))),
                                          st.sampled_from([v for v in (0.1, 16777217.0, 1e-7) if lo <= v <= hi]
                                                          or [lo]))
        else:
            fields[spec.name] = st.sampled_from(spec.categories or ["x"])
    return st.fixed_dictionaries(fields)


def test_the_row_path_equals_the_columns_path(predictor):
    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_records(predictor))
    def check(record: dict[str, Any]) -> None:
        fast, columns = predictor.predict_with_inputs([record])
        assert columns is None  # the fast path took it
        general = predictor.predict_checked(predictor.schema.validate((record,)).columns)  # a tuple: general path
        assert fast.labels.tolist() == general.labels.tolist()
        assert np.array_equal(fast.probabilities, general.probabilities)
        records = predictor.inference_records("r", fast, None, source="lambda", data=[record])
        expected = predictor.inference_records("r", general, predictor.schema.validate((record,)).columns,
                                               source="lambda")
        assert [r["inputs"] for r in records] == [r["inputs"] for r in expected]

    check()


def test_a_record_with_a_problem_takes_the_general_path_and_is_refused(predictor):
    from mlship.errors import ValidationError

    golden = predictor.bundle.golden["inputs"]
    bad = {**golden[0], "age": "forty"}
    with pytest.raises(ValidationError, match="age"):
        predictor.predict_with_inputs([bad])
    _, columns = predictor.predict_with_inputs(golden[:2])
    assert columns is not None  # two records: the columns path
