"""The per-request fast paths give exactly what the general paths give.

Records in a list go through the plain-Python check of clean values first
(``schema._clean_records``); the same records in a tuple take the general path, so comparing the
two over fuzzed records (clean, dirty, and every edge the fast path must hand over) shows that the
fast path accepts nothing the general one refuses and builds the same columns. Likewise
``jsonable`` of a 1-D array against its item-by-item conversion, and a prediction's finiteness check
against its row mask.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlship.runtime.jsonutil import jsonable, python_value
from mlship.runtime.schema import FLOAT32_MAX, INTEGER, NUMBER, STRING, Field, InputSchema

SCHEMA = InputSchema([
    Field("x", NUMBER, minimum=0.0, maximum=10.0, enforce_range=True),
    Field("n", INTEGER, nullable=True),
    Field("f", NUMBER),
    Field("c", STRING, categories=["a", "b"]),
    Field("s", STRING, nullable=True),
])

EDGES = [0, 1, -1, 10, 10.0, 10.000001, -0.0, 2.5, 3.0, math.nan, math.inf, -math.inf, FLOAT32_MAX,
         FLOAT32_MAX * 1.0000001, 2**53 + 1, 10**400, -(10**39), True, False, None, "a", "b", "z", "", np.float32(1.5),
         np.int64(3), [1], {"a": 1}]
values = st.one_of(st.sampled_from(EDGES), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=3))
clean = st.fixed_dictionaries({"x": st.floats(0, 10), "n": st.one_of(st.none(), st.integers(-1000, 1000)),
                               "f": st.floats(-1e30, 1e30), "c": st.sampled_from(["a", "b"]), "s": st.text(max_size=4)})
dirty = st.dictionaries(st.sampled_from(["x", "n", "f", "c", "s", "extra"]), values, max_size=6)
records = st.lists(st.one_of(clean, clean, dirty, st.sampled_from([1, "row", None])), min_size=1, max_size=4)


def _same(fast, general) -> None:
    assert fast.valid.tolist() == general.valid.tolist()
    assert [(e.row, e.field, e.kind, e.message) for e in fast.errors] == \
        [(e.row, e.field, e.kind, e.message) for e in general.errors]
    assert list(fast.columns) == list(general.columns)
    for name, column in fast.columns.items():
        other = general.columns[name]
        assert column.dtype == other.dtype, name
        if column.dtype.kind == "f":
            np.testing.assert_array_equal(column, other)  # NaN equals NaN here
        else:
            assert column.tolist() == other.tolist(), name


@settings(max_examples=400, deadline=None)
@given(records, st.booleans())
def test_list_records_validate_as_the_general_path_does(rows, allow_extra) -> None:
    _same(SCHEMA.validate_records(rows, allow_extra=allow_extra),
          SCHEMA.validate_records(tuple(rows), allow_extra=allow_extra))


def test_clean_records_take_the_fast_path_and_keep_float32_columns() -> None:
    rows = [{"x": 1.5, "n": None, "f": 2, "c": "a", "s": "q"}, {"x": 10, "n": 7, "f": -1e30, "c": "b", "s": ""}]
    batch = SCHEMA.validate(rows)
    assert batch.errors == [] and batch.valid.tolist() == [True, True]
    assert batch.columns["x"].dtype == np.float32 and batch.columns["c"].dtype == object
    assert math.isnan(batch.columns["n"][0]) and batch.columns["n"][1] == 7.0
    _same(batch, SCHEMA.validate_records(tuple(rows)))


def test_integer_fields_refuse_fractions_and_bools_on_either_path() -> None:
    for value, kind in ((2.5, "wrong_type"), (True, "wrong_type"), (1e39, "out_of_range")):
        batch = SCHEMA.validate([{"x": 1.0, "n": value, "f": 0.0, "c": "a", "s": None}])
        assert [(e.field, e.kind) for e in batch.errors] == [("n", kind)], value


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=40),
       st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.int64, bool, object, str]))
def test_jsonable_of_a_flat_array_is_its_items_converted_one_by_one(items, dtype) -> None:
    array = np.array(items, dtype=np.float64)
    if dtype in (np.int32, np.int64, bool):
        array = np.clip(np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0), -1e6, 1e6).astype(dtype)
    elif dtype in (object, str):
        array = np.array([str(v) for v in items], dtype=dtype)
    else:
        with np.errstate(over="ignore"):
            array = array.astype(dtype)

    def one_by_one(v):
        v = python_value(v)
        return None if isinstance(v, float) and not math.isfinite(v) else v

    assert jsonable(array) == [one_by_one(v) for v in array]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=100), st.booleans())
def test_prediction_all_finite_agrees_with_the_row_mask(values, classifier) -> None:
    from mlship.runtime.predictor import Prediction

    if classifier:
        probs = np.array(values * 2, dtype=np.float64).reshape(2, -1).T
        pred = Prediction("m", "1", "classification", labels=np.zeros(len(probs)), probabilities=probs)
    else:
        pred = Prediction("m", "1", "regression", values=np.array(values, dtype=np.float64))
    assert pred.all_finite() == (not pred.non_finite().any())


@settings(max_examples=150, deadline=None)
@given(st.one_of(clean, dirty))
def test_a_plain_row_is_exactly_the_records_fast_path(record):
    """:meth:`InputSchema.plain_row` accepts a record exactly when the records fast path takes it
    as a one-record list, with the same values in field order."""
    from mlship.runtime.schema import _clean_records

    row = SCHEMA.plain_row(record)
    batch = _clean_records(SCHEMA._value_checks(), [record], False)
    assert (row is None) == (batch is None)
    if row is not None:
        assert [name for name, _, _ in row] == SCHEMA.names
        for name, numeric, value in row:
            column = batch.columns[name]
            if numeric:
                expected = np.float32(np.nan if value is None else float(value))
                assert np.array_equal(column, [expected], equal_nan=True)
            else:
                assert column.tolist() == [value]
