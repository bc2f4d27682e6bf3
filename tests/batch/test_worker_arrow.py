"""The batch worker's Arrow path over fuzzed batches: every row scored or quarantined, never raised.

Batches are drawn the way Spark hands them to the scoring UDF (one Arrow array per feature,
nulls included; for CSV every cell as text) with the values clients get wrong: null, NaN,
infinities, numbers beyond float32, fractions for integer fields, unknown categories, number
tokens the CSV parser must refuse. The worker must return one result row per input row, count
what it quarantined, give each quarantined row the same reason the records path (HTTP JSON)
gives, and score the rest exactly as ``Predictor.predict`` does. In-process: no Spark needed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fuzzing import NUMBER_TOKENS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlship.batch import worker

from mlship.runtime.predictor import Predictor

EDGE_NUMBERS = (math.nan, math.inf, -math.inf, 3.5e38, -1e39, 0.5, 1e300, -0.0)



@pytest.fixture(scope="module")
def predictor(strict_bundle: Path) -> Predictor:
    return Predictor.load(strict_bundle)


def _spec(predictor: Predictor, text: bool) -> worker.WorkerSpec:
    return worker.WorkerSpec(
        bundle_file="unused", text_input=text, numeric_fields=tuple(f.name for f in predictor.schema.fields
                                                                     if f.is_numeric),
        probability_columns=tuple(f"p_{c}" for c in predictor.classes or []), task=predictor.task,
        input_columns=tuple(predictor.schema.names))


@st.composite
def batches(draw: st.DrawFn, predictor: Predictor, holdout: Any, text: bool) -> list[dict[str, Any]]:
    """Rows of holdout values, some cells replaced by a value a client gets wrong."""
    start = draw(st.integers(0, len(holdout) - 40))
    rows = holdout.iloc[start:start + draw(st.integers(1, 30))].to_dict("records")
    for row in rows:
        for spec in predictor.schema.fields:
            if draw(st.integers(0, 5)) != 0:
                continue
            if spec.is_numeric:
                bad = st.one_of(st.none(), st.sampled_from(EDGE_NUMBERS), st.floats(-1e6, 1e6))
                if text:
                    bad = st.one_of(bad.map(lambda v: None if v is None else repr(v)),
                                    st.sampled_from(NUMBER_TOKENS), st.text(max_size=4))
                row[spec.name] = draw(bad)
            else:
                row[spec.name] = draw(st.one_of(st.none(), st.sampled_from(spec.categories or ["x"]),
                                                st.text(max_size=4)))
        if text:  # Spark's CSV reader hands over text, and an empty cell (quoted or not) as null
            for spec in predictor.schema.fields:
                value = row[spec.name]
                row[spec.name] = None if value is None or value == "" else (
                    value if isinstance(value, str) else repr(value))
    return rows


def _arrow(rows: list[dict[str, Any]], spec: worker.WorkerSpec, predictor: Predictor) -> tuple[Any, ...]:
    types = {f.name: (pa.string() if spec.text_input or not f.is_numeric else pa.float64())
             for f in predictor.schema.fields}
    return tuple(pa.array([row[name] for row in rows], type=types[name]) for name in spec.input_columns)


def _check(rows: list[dict[str, Any]], text: bool, predictor: Predictor) -> None:
    spec = _spec(predictor, text)
    columns, malformed = worker.arrow_columns(_arrow(rows, spec, predictor), spec)
    chunk = worker.score_chunk(columns, spec, predictor, malformed)
    result = worker.to_arrow(chunk, spec, predictor)
    assert len(result) == len(rows)
    out = {name: result.field(name).to_pylist() for name in result.type.names}
    scored = out[worker.SCORED]
    assert chunk.n_quarantined == scored.count(False)
    causes = chunk.counts.get(worker.CAUSE_INPUT, 0) + chunk.counts.get(worker.CAUSE_MODEL, 0)
    assert causes == chunk.n_quarantined
    if text:  # what a CSV request of these cells answers: the same reasons, row for row
        header = ",".join(spec.input_columns)
        lines = [",".join("" if r[n] is None else '"' + str(r[n]).replace('"', '""') + '"'
                          for n in spec.input_columns) for r in rows]
        expected = predictor.schema.validate_csv("\n".join([header, *lines])).row_reasons()
    else:
        expected = predictor.schema.validate([{n: r[n] for n in spec.input_columns} for r in rows]).row_reasons()
    assert {i: out[worker.REASON][i] for i in range(len(rows)) if not scored[i]} == expected
    assert all((out[worker.ERROR_KINDS][i] is None) == scored[i] for i in range(len(rows)))
    kept = [i for i in range(len(rows)) if scored[i]]
    if kept:
        direct = predictor.predict([{n: _typed(rows[i][n], n, predictor, text) for n in spec.input_columns}
                                    for i in kept])
        assert [out[worker.PREDICTION][i] for i in kept] == direct.labels.tolist()
        probs = np.array([[out[c][i] for c in spec.probability_columns] for i in kept])
        np.testing.assert_allclose(probs, direct.probabilities, rtol=0, atol=1e-6)


def _typed(value: Any, name: str, predictor: Predictor, text: bool) -> Any:
    """A scored cell as a JSON client would send it (CSV text that parsed is a number)."""
    field = next(f for f in predictor.schema.fields if f.name == name)
    if text and field.is_numeric and value is not None:
        return float(value)
    return value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), text=st.booleans())
def test_fuzzed_arrow_batches_are_scored_or_quarantined_like_requests(data: st.DataObject, text: bool,
                                                                        predictor: Predictor, holdout: Any) -> None:
    rows = data.draw(batches(predictor, holdout.drop(columns=["customer_id", "churned"]), text))
    _check(rows, text, predictor)
