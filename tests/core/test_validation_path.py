"""One validation path: records, CSV and typed columns give the same error, one per field and row."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlship.errors import FieldError
from mlship.runtime.schema import (
    FLOAT32_MAX,
    INTEGER,
    NUMBER,
    STRING,
    Field,
    InputSchema,
    check_column,
    parse_numeric_text,
)

SCHEMA = InputSchema([
    Field("x", NUMBER, minimum=0.0, maximum=10.0, enforce_range=True),
    Field("n", INTEGER, nullable=True),
    Field("c", STRING, categories=["a", "b"]),
])


def _by_shape(rows: list[dict]) -> dict[str, list[FieldError]]:
    """The errors of the same rows given as records, CSV text and a pandas DataFrame."""
    import pandas as pd

    csv_lines = ["x,n,c"] + [",".join("" if r[k] is None else str(r[k]) for k in ("x", "n", "c")) for r in rows]
    return {"records": SCHEMA.validate(rows).errors,
            "csv": SCHEMA.validate("\n".join(csv_lines)).errors,
            "columns": SCHEMA.validate(pd.DataFrame(rows)).errors}


@pytest.mark.parametrize(("x", "n", "kind", "text"), [
    (math.inf, 1, "not_finite", "is infinite (inf): must be finite"),
    (-math.inf, 1, "not_finite", "is infinite (-inf): must be finite"),
    (11.0, 1, "out_of_range", "11.0 is outside the allowed range [0.0, 10.0]"),
    (1.0, 2.5, "wrong_type", "expected an integer, got 2.5"),
    (None, 1, "null_not_allowed", "is null or NaN but the field is not nullable"),
])
def test_every_shape_reports_one_error_with_one_message(x, n, kind, text) -> None:
    for shape, errors in _by_shape([{"x": 1.0, "n": 1, "c": "a"}, {"x": x, "n": n, "c": "a"}]).items():
        assert [(e.row, e.kind, e.message) for e in errors] == [(1, kind, text)], shape


def test_float32_overflow_and_huge_ints_are_out_of_range_once() -> None:
    wide = InputSchema([Field("x", NUMBER, minimum=0.0, maximum=1.0, enforce_range=True)])
    batch = wide.validate_records([{"x": 10**400}, {"x": 1e39}, {"x": 0.5}])
    assert [(e.row, e.kind) for e in batch.errors] == [(0, "out_of_range"), (1, "out_of_range")]
    assert all("float32" in e.message for e in batch.errors)  # the first check wins, the range one is not added
    assert batch.valid.tolist() == [False, False, True]
    columns = wide.validate_columns({"x": np.array([1e39, 0.5])})
    assert [(e.row, e.message) for e in columns.errors] == [(0, batch.errors[1].message)]


def test_wrong_types_are_recorded_per_row_before_the_vectorised_checks() -> None:
    batch = SCHEMA.validate_records([{"x": "3", "n": True, "c": 1}, {"x": 2, "n": None, "c": "z"}])
    found = [(e.row, e.field, e.kind) for e in batch.errors]
    assert found == [(0, "x", "wrong_type"), (0, "n", "wrong_type"), (0, "c", "wrong_type"),
                     (1, "c", "unknown_category")]
    assert 'got string "3"' in batch.errors[0].message and "got boolean true" in batch.errors[1].message
    assert math.isnan(batch.columns["n"][1])  # a nullable integer keeps its null as NaN


def test_a_missing_field_is_reported_once_per_row() -> None:
    batch = SCHEMA.validate_records([{"x": 1.0, "c": "a"}])
    assert [(e.field, e.kind) for e in batch.errors] == [("n", "missing_field")]


def test_check_column_takes_typed_arrays_and_python_values_alike() -> None:
    spec = Field("n", INTEGER)
    typed: list[FieldError] = []
    python: list[FieldError] = []
    out_typed = check_column(spec, np.array([1.0, 2.5, np.nan]), typed)
    out_python = check_column(spec, [1, 2.5, None], python)
    assert out_typed.dtype == out_python.dtype == np.float32
    assert [(e.row, e.kind, e.message) for e in typed] == [(e.row, e.kind, e.message) for e in python]
    assert sorted((e.row, e.kind) for e in typed) == [(1, "wrong_type"), (2, "null_not_allowed")]


def test_csv_wrong_arity_rows_report_only_the_arity() -> None:
    batch = SCHEMA.validate_csv("x,n,c\n1,1,a\n2,2\n")
    assert [(e.row, e.kind) for e in batch.errors] == [(1, "wrong_arity")]
    assert batch.valid.tolist() == [True, False]


def test_parse_numeric_text_is_float64_when_every_cell_parses() -> None:
    out = parse_numeric_text(np.array([" 1.5", "", None, "1e3", "nan", "-inf"], dtype=object))
    assert out.dtype == np.float64
    assert out[0] == 1.5 and math.isnan(out[1]) and math.isnan(out[2]) and out[3] == 1000.0
    assert math.isnan(out[4]) and out[5] == -math.inf


def test_parse_numeric_text_keeps_text_that_is_not_a_number() -> None:
    out = parse_numeric_text(np.array(["2", " forty ", "  ", None], dtype=object))
    assert out.dtype == object and out.tolist() == [2.0, "forty", None, None]
    errors: list[FieldError] = []
    check_column(Field("x", NUMBER, nullable=True), out, errors)
    assert [(e.row, e.kind, e.message) for e in errors] == [(1, "wrong_type", 'expected a number, got string "forty"')]


def test_float32_max_is_accepted_and_just_beyond_is_not() -> None:
    errors: list[FieldError] = []
    check_column(Field("x", NUMBER), [FLOAT32_MAX, FLOAT32_MAX * 1.01], errors)
    assert [(e.row, e.kind) for e in errors] == [(1, "out_of_range")]
