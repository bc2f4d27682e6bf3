"""The model's input schema and the one validation path for every input shape.

Records (JSON objects), CSV text, pandas DataFrames and Arrow tables all become named
column arrays here, with one :class:`~mlship.errors.FieldError` per bad field and row.
This module imports only numpy: it runs in Lambda, on devices and in Spark workers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlship.errors import BundleError, FieldError, ValidationError
from mlship.runtime.hashing import json_type

NUMBER = "number"
INTEGER = "integer"
STRING = "string"
DTYPES = (NUMBER, INTEGER, STRING)

# How the fitted encoder treats a category it never saw (scikit-learn's ``handle_unknown``):
# "error" refuses it; the others score it as scikit-learn does (export checks that the ONNX model
# gives scikit-learn's answer before recording one of them).
UNKNOWN_ERROR = "error"
UNKNOWN_IGNORE = "ignore"  # OneHotEncoder: all-zero encoding
UNKNOWN_INFREQUENT = "infrequent_if_exist"  # OneHotEncoder: the infrequent column, else all zeros
UNKNOWN_ENCODED = "use_encoded_value"  # OrdinalEncoder: its ``unknown_value``
HANDLE_UNKNOWN = (UNKNOWN_ERROR, UNKNOWN_IGNORE, UNKNOWN_INFREQUENT, UNKNOWN_ENCODED)

LAYOUT_COLUMNS = "columns"  # one ONNX input per feature, shape [N, 1]
LAYOUT_TENSOR = "tensor"  # one float ONNX input of shape [N, n_features]

_MISSING = object()
# The model's tensors are float32: a finite float64 beyond this would become +-inf in the feed.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Field:
    """One input feature: its type, nullability, observed range and known categories."""

    name: str
    dtype: str
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    categories: list[str] | None = None
    enforce_range: bool = False
    handle_unknown: str = UNKNOWN_ERROR  # bundles from before the field existed keep refusing

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"field '{self.name}': dtype must be one of {DTYPES}, got '{self.dtype}'")
        if self.handle_unknown not in HANDLE_UNKNOWN:
            raise ValueError(f"field '{self.name}': handle_unknown must be one of {HANDLE_UNKNOWN}, "
                             f"got '{self.handle_unknown}'")

    @property
    def is_numeric(self) -> bool:
        return self.dtype in (NUMBER, INTEGER)

    @property
    def refuses_unknown(self) -> bool:
        """Whether a category outside ``categories`` is an input error (else it is scored)."""
        return self.handle_unknown == UNKNOWN_ERROR

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Field:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class ValidatedBatch:
    """Column arrays for every row, which rows are valid, and the problems found."""

    columns: dict[str, np.ndarray]
    valid: np.ndarray
    errors: list[FieldError] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return int(self.valid.shape[0])

    def row_reasons(self) -> dict[int, str]:
        """Map each invalid row index to a '; '-joined description of its problems."""
        reasons: dict[int, list[str]] = {}
        for err in self.errors:
            if err.row is not None:
                label = f"{err.field}: {err.message}" if err.field else err.message
                reasons.setdefault(err.row, []).append(label)
        return {row: "; ".join(msgs) for row, msgs in reasons.items()}

    def raise_for_errors(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


@dataclass
class InputSchema:
    """The ordered features a model takes and how they map onto its ONNX inputs."""

    fields: list[Field]
    layout: str = LAYOUT_COLUMNS
    tensor_input: str | None = None

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "tensor_input": self.tensor_input,
                "fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSchema:
        """The schema of a manifest's ``input_schema``; a field value this runtime does not know (a dtype,
        a ``handle_unknown``) is a :class:`~mlship.errors.BundleError`."""
        try:
            fields = [Field.from_dict(f) for f in data["fields"]]
        except ValueError as exc:
            raise BundleError(f"manifest input_schema: {exc}") from None
        return cls(fields=fields, layout=data.get("layout", LAYOUT_COLUMNS), tensor_input=data.get("tensor_input"))

    # ------------------------------------------------------------------ entry points
    def validate(self, data: Any, *, allow_extra: bool = False) -> ValidatedBatch:
        """Validate any supported input shape and return column arrays plus errors.

        Accepts a record (dict), a list of records, CSV text (str/bytes), a pandas
        DataFrame or an Arrow table. ``allow_extra`` ignores unknown columns (batch
        inputs carry ids and labels); otherwise each unknown field is an error.
        """
        if type(data) is list:  # decoded JSON, the hot path: no abstract-class checks
            return self.validate_records(data, allow_extra=allow_extra)
        if isinstance(data, Mapping):
            return self.validate_records([data], allow_extra=allow_extra)
        if isinstance(data, (str, bytes)):
            return self.validate_csv(data, allow_extra=allow_extra)
        if hasattr(data, "column_names") and hasattr(data, "column"):  # pyarrow.Table
            cols = {name: data.column(name).to_numpy(zero_copy_only=False) for name in data.column_names}
            return self.validate_columns(cols, allow_extra=allow_extra)
        if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # pandas.DataFrame
            cols = {str(name): data[name].to_numpy() for name in data.columns}
            return self.validate_columns(cols, allow_extra=allow_extra)
        if isinstance(data, Sequence):
            return self.validate_records(data, allow_extra=allow_extra)
        raise ValidationError([FieldError(None, None, "malformed",
                                          f"unsupported input type {type(data).__name__}: expected "
                                          "records, CSV text, a DataFrame or an Arrow table")])

    def validate_records(self, records: Sequence[Any], *, allow_extra: bool = False) -> ValidatedBatch:
        """Validate a list of JSON-like records (dicts keyed by field name)."""
        clean = _clean_records(self._value_checks(), records, allow_extra)
        if clean is not None:
            return clean
        names = self.names
        known = set(names)
        n = len(records)
        if n == 0:
            raise ValidationError([FieldError(None, None, "empty", "no rows to score")])
        raw: dict[str, list[Any]] = {name: [_MISSING] * n for name in names}
        errors: list[FieldError] = []
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                errors.append(FieldError(i, None, "wrong_type",
                                         f"expected an object with fields {names}, got {_describe(rec)}"))
                continue
            for key, value in rec.items():
                if key in known:
                    raw[key][i] = value
                elif not allow_extra:
                    errors.append(FieldError(i, str(key), "unexpected_field",
                                             f"unexpected field (expected only {names})"))
        return self._check_columns(raw, n, errors)

    def validate_csv(self, text: str | bytes, *, allow_extra: bool = False) -> ValidatedBatch:
        """Validate CSV text, with or without a header row (a header must name the fields)."""
        rows = _csv_rows(text)
        names = self.names
        first = [c.strip() for c in rows[0]]
        header: list[str] | None = None
        if sum(c in names for c in first) * 2 >= len(names):  # at least half the cells name fields
            header, rows = first, rows[1:]
            self._check_header(header, allow_extra)
            if not rows:
                raise ValidationError([FieldError(None, None, "empty", "CSV body has a header but no rows")])
        order = header or names
        width = len(order)
        arity_errors = [FieldError(i, None, "wrong_arity",
                                   f"expected {width} values ({', '.join(order)}), got {len(row)}")
                        for i, row in enumerate(rows) if len(row) != width]
        table = np.empty((len(rows), width), dtype=object)
        table[:] = [row if len(row) == width else [""] * width for row in rows]
        by_name = {f.name: f for f in self.fields}
        columns = {name: parse_numeric_text(table[:, j]) if by_name[name].is_numeric else parse_string_text(table[:, j])
                   for j, name in enumerate(order) if name in by_name}
        batch = self._check_columns(columns, len(rows), [])
        malformed = {e.row for e in arity_errors}
        batch.valid[list(malformed)] = False
        batch.errors = arity_errors + [e for e in batch.errors if e.row not in malformed]
        batch.errors.sort(key=_row_order)
        return batch

    def _check_header(self, header: list[str], allow_extra: bool) -> None:
        names = self.names
        problems = [FieldError(None, m, "missing_field", "column missing from the CSV header")
                    for m in names if m not in header]
        if not allow_extra:
            problems += [FieldError(None, x, "unexpected_field", "unexpected column in the CSV header")
                         for x in header if x not in names]
        if problems:
            raise ValidationError(problems)

    def validate_columns(self, columns: Mapping[str, Any], *, allow_extra: bool = False) -> ValidatedBatch:
        """Validate named column arrays (from a DataFrame or Arrow table), vectorized where typed."""
        names = self.names
        missing = [n for n in names if n not in columns]
        problems = [FieldError(None, m, "missing_field", "column missing from the input") for m in missing]
        if not allow_extra:
            problems += [FieldError(None, str(c), "unexpected_field", "unexpected column")
                         for c in columns if c not in names]
        if problems:
            raise ValidationError(problems)
        n = len(next(iter(columns.values()))) if columns else 0
        if n == 0:
            raise ValidationError([FieldError(None, None, "empty", "no rows to score")])
        return self._check_columns(columns, n, [])

    def plain_row(self, record: Any) -> list[tuple[str, bool, Any]] | None:
        """``(name, numeric, value)`` of each field of one JSON record, in field order, when every
        value passes its plain test (what the records fast path accepts, no extra field), else
        None: the general path then names the problem. A one-record request is the real-time hot path."""
        checks = self._value_checks()
        if not checks or type(record) is not dict or len(record) != len(checks):
            return None
        row = []
        for name, numeric, plain in checks:
            value = record.get(name, _MISSING)
            if not plain(value):
                return None
            row.append((name, numeric, value))
        return row

    # ------------------------------------------------------------------ internals
    def _value_checks(self) -> list[tuple[str, bool, Callable[[Any], bool]]]:
        """Per field: (name, numeric, a test that a JSON value is plainly valid), built once per field list."""
        cached = self.__dict__.get("_checks")
        if cached is not None and len(cached[0]) == len(self.fields) and all(map(operator.is_, cached[0], self.fields)):
            return cached[1]
        checks = [(spec.name, spec.is_numeric, _plain_value_test(spec)) for spec in self.fields]
        if len({name for name, _, _ in checks}) != len(checks):
            checks = []  # duplicate names: only the full checks say which
        self.__dict__["_checks"] = (tuple(self.fields), checks)
        return checks

    def _check_columns(self, columns: Mapping[str, Any], n: int, errors: list[FieldError]) -> ValidatedBatch:
        """Check every field's column; a row with any error (``errors`` included) is invalid.

        The numeric columns are first tested together for being plainly valid (one request's few
        values are the hot path: one set of array operations instead of one per field); only when
        that test fails does each column get the checks that name every row's problem.
        """
        strings = {s.name: _check_strings(s, columns[s.name], errors) for s in self.fields if not s.is_numeric}
        numeric = [(s, *_as_numbers(s, columns[s.name], errors)) for s in self.fields if s.is_numeric]
        if _plainly_valid(numeric):
            checked = {spec.name: numbers.astype(np.float32) for spec, numbers, _ in numeric}
        else:
            checked = {spec.name: _check_numbers(spec, numbers, reported, errors)
                       for spec, numbers, reported in numeric}
        out = {spec.name: strings.get(spec.name, checked.get(spec.name)) for spec in self.fields}
        valid = np.ones(n, dtype=bool)
        valid[[e.row for e in errors if e.row is not None]] = False
        position = {spec.name: i for i, spec in enumerate(self.fields)}  # input-level errors come first
        errors.sort(key=lambda e: (_row_order(e), position.get(e.field, -1)))
        return ValidatedBatch(out, valid, errors)


def _plain_value_test(spec: Field) -> Callable[[Any], bool]:
    """A test that one JSON value of ``spec`` needs no error: the exact types JSON decoding gives
    (``bool`` is not an ``int`` here), finite, within float32, whole for integers, inside an
    enforced range, a known category. False sends the batch to the checks that name the problem."""
    lo = -FLOAT32_MAX if not (spec.enforce_range and spec.minimum is not None) else max(-FLOAT32_MAX, spec.minimum)
    hi = FLOAT32_MAX if not (spec.enforce_range and spec.maximum is not None) else min(FLOAT32_MAX, spec.maximum)
    if not spec.is_numeric:
        cats = frozenset(spec.categories or ())
        if cats and spec.refuses_unknown:
            return lambda v: type(v) is str and v in cats
        # a known category costs one lookup; only an unseen one is checked for what the model can take
        return lambda v: type(v) is str and (v in cats or _feedable(v))
    nullable, whole = spec.nullable, spec.dtype == INTEGER

    def plain_number(v: Any) -> bool:
        kind = type(v)
        if kind is int:
            return lo <= v <= hi  # exact: Python compares an int with a float without rounding it
        if kind is float:  # NaN and infinities fail the range test
            return lo <= v <= hi and (not whole or v.is_integer())
        return v is None and nullable

    return plain_number


def _clean_records(checks: list[tuple[str, bool, Callable[[Any], bool]]], records: Sequence[Any],
                   allow_extra: bool) -> ValidatedBatch | None:
    """The batch of records whose every value passes its plain test, built with plain Python (the
    hot path: one request's few values cost less than one array operation each); None as soon
    as any record or value needs :meth:`InputSchema._check_columns`, which then names it. The
    columns are what the full checks give: float64 values cast to float32, str objects."""
    if not checks or not records or type(records) is not list:
        return None
    width = len(checks)
    values: list[list[Any]] = [[] for _ in checks]
    for rec in records:
        if type(rec) is not dict or (len(rec) != width and not allow_extra):
            return None  # not a JSON object, or a field missing or unexpected
        for (name, _, plain), column in zip(checks, values, strict=True):
            value = rec.get(name, _MISSING)
            if not plain(value):
                return None
            column.append(value)
    valid = np.empty(len(records), dtype=bool)
    valid.fill(True)  # (np.ones is Python code around the same two steps)
    return ValidatedBatch(_plain_columns(checks, values), valid, [])


def _plain_columns(checks: list[tuple[str, bool, Callable[[Any], bool]]],
                   values: list[list[Any]]) -> dict[str, np.ndarray]:
    """Plain values as the model's columns: the numeric ones through one float64 matrix cast once
    to float32 (None, for a nullable field, is NaN), each column a contiguous row of it; strings
    as object arrays."""
    numeric = [column for (_, is_numeric, _), column in zip(checks, values, strict=True) if is_numeric]
    matrix = np.array(numeric, dtype=np.float64).astype(np.float32) if numeric else None
    out: dict[str, np.ndarray] = {}
    position = 0
    for (name, is_numeric, _), column in zip(checks, values, strict=True):
        if is_numeric:
            out[name] = matrix[position]  # type: ignore[index]
            position += 1
        else:
            out[name] = np.array(column, dtype=object)  # every value is a str (the plain test)
    return out


def _row_order(err: FieldError) -> int:
    return err.row if err.row is not None else -1


_FLOAT32_MESSAGE = f"is beyond the float32 range the model takes (magnitude over {FLOAT32_MAX:.7g})"
_NULL_MESSAGE = "is null or NaN but the field is not nullable"


def check_column(spec: Field, values: Any, errors: list[FieldError]) -> np.ndarray:
    """One field's column checked: the model's array (float32 or str objects), errors appended.

    A typed numeric array is checked as is; Python values (records, object columns) are first
    converted to one float64 array, recording wrong types per row. Each row of a field gets at
    most one error: the first of missing, null, type, finiteness, float32 range, integer, range.
    """
    if not spec.is_numeric:
        return _check_strings(spec, values, errors)
    numbers, reported = _as_numbers(spec, values, errors)
    return _check_numbers(spec, numbers, reported, errors)


def _as_numbers(spec: Field, values: Any, errors: list[FieldError]) -> tuple[np.ndarray, np.ndarray]:
    """A numeric field's values as float64 and the rows already reported (wrong types)."""
    arr = values if isinstance(values, np.ndarray) else None
    if arr is not None and arr.dtype.kind in "fiu":
        return arr.astype(np.float64, copy=False), np.zeros(len(arr), dtype=bool)
    return _python_numbers(spec, values, errors)


def _python_numbers(spec: Field, values: Iterable[Any],
                    errors: list[FieldError]) -> tuple[np.ndarray, np.ndarray]:
    """Python values of a numeric field as float64 (null is NaN) and the rows already reported."""
    values = list(values)
    numbers = np.zeros(len(values), dtype=np.float64)
    reported = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is None:
            numbers[i] = np.nan
            continue
        problem = _number_problem(spec, v)
        if problem is None:
            try:
                numbers[i] = float(v)
                continue
            except OverflowError:  # an int with hundreds of digits: beyond any float
                problem = ("out_of_range", _FLOAT32_MESSAGE)
        errors.append(FieldError(i, spec.name, *problem))
        reported[i] = True
    return numbers, reported


def _number_problem(spec: Field, value: Any) -> tuple[str, str] | None:
    """(kind, message) when a Python value cannot be a number at all, else None."""
    if value is _MISSING:
        return "missing_field", "required field is missing"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        expected = "an integer" if spec.dtype == INTEGER else "a number"
        return "wrong_type", f"expected {expected}, got {_describe(value)}"
    return None


def _plainly_valid(columns: list[tuple[Field, np.ndarray, np.ndarray]]) -> bool:
    """A cheap sufficient condition for clean numeric columns: nothing reported yet, every value
    finite and within float32, whole for integer fields, inside enforced ranges. When it does not
    hold, :func:`_check_numbers` finds and names each row's problem."""
    if not columns:
        return True
    matrix = np.stack([numbers for _, numbers, _ in columns])
    if not matrix.size:
        return True
    if np.stack([reported for _, _, reported in columns]).any():
        return False
    if not np.isfinite(matrix).all() or np.abs(matrix).max() > FLOAT32_MAX:
        return False
    whole = [i for i, (spec, _, _) in enumerate(columns) if spec.dtype == INTEGER]
    if whole and not (matrix[whole] == np.round(matrix[whole])).all():
        return False
    return all((spec.minimum is None or numbers.min() >= spec.minimum)
               and (spec.maximum is None or numbers.max() <= spec.maximum)
               for spec, numbers, _ in columns if spec.enforce_range)


def _check_numbers(spec: Field, numbers: np.ndarray, reported: np.ndarray,
                   errors: list[FieldError]) -> np.ndarray:
    """The vectorised checks of a float64 column; rows in ``reported`` already have their error."""
    finite = np.isfinite(numbers)
    with np.errstate(invalid="ignore"):
        checks: list[tuple[np.ndarray, str, Callable[[float], str]]] = [
            (np.isnan(numbers) if not spec.nullable else np.zeros_like(finite), "null_not_allowed",
             lambda v: _NULL_MESSAGE),
            (np.isinf(numbers), "not_finite", lambda v: f"is infinite ({v}): must be finite"),
            (finite & (np.abs(numbers) > FLOAT32_MAX), "out_of_range", lambda v: _FLOAT32_MESSAGE),
        ]
        if spec.dtype == INTEGER:
            fraction = np.zeros_like(finite)
            fraction[finite] = numbers[finite] != np.round(numbers[finite])
            checks.append((fraction, "wrong_type", lambda v: f"expected an integer, got {v!r}"))
        if spec.enforce_range and (spec.minimum is not None or spec.maximum is not None):
            lo = -np.inf if spec.minimum is None else spec.minimum
            hi = np.inf if spec.maximum is None else spec.maximum
            checks.append(((numbers < lo) | (numbers > hi), "out_of_range",
                           lambda v: f"{v} is outside the allowed range [{lo}, {hi}]"))
    reported = reported.copy()
    for mask, kind, message in checks:
        for row in np.flatnonzero(mask & ~reported):
            errors.append(FieldError(int(row), spec.name, kind, message(float(numbers[row]))))
        reported |= mask
    with np.errstate(over="ignore"):  # rows beyond float32 are refused above; their cast is never fed
        return numbers.astype(np.float32)


def _check_strings(spec: Field, values: Iterable[Any], errors: list[FieldError]) -> np.ndarray:
    """Python values of a string field as an object array (invalid rows hold a placeholder)."""
    values = list(values)
    out = np.empty(len(values), dtype=object)
    out[:] = spec.categories[0] if spec.categories else ""
    cats = set(spec.categories) if spec.categories and spec.refuses_unknown else None
    for i, v in enumerate(values):
        problem = _string_problem(spec, v, cats)
        if problem is not None:
            errors.append(FieldError(i, spec.name, *problem))
        elif isinstance(v, str):
            out[i] = v
    return out


def _string_problem(spec: Field, value: Any, cats: set[str] | None) -> tuple[str, str] | None:
    if value is _MISSING:
        return "missing_field", "required field is missing"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None if spec.nullable else ("null_not_allowed", _NULL_MESSAGE)
    if not isinstance(value, str):
        return "wrong_type", f"expected a string, got {_describe(value)}"
    if cats is not None and value not in cats:
        shown = ", ".join(repr(c) for c in sorted(cats)[:10])
        return "unknown_category", f"unknown category {value!r} (expected one of {shown})"
    if cats is None and not _feedable(value):
        return "wrong_type", "expected a string, got text that is not valid Unicode (a lone surrogate)"
    return None


def _feedable(text: str) -> bool:
    """Whether onnxruntime can take the string: it encodes it as UTF-8, which a lone surrogate (JSON
    allows ``"\\ud800"``) cannot be. Refusing such text is the typed answer instead of a model failure."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_numeric_text(cells: Any) -> np.ndarray:
    """Text cells of a numeric field (CSV) as numbers, vectorised; the one CSV number parser.

    Surrounding whitespace is ignored and an empty or None cell is null. When every cell parses
    the result is float64 (null is NaN). Otherwise it is an object array of floats, None for
    nulls and the stripped text of each cell that is not a number, so that validation reports
    that cell as ``wrong_type`` with its value instead of mistaking it for a null.
    """
    text = np.asarray(cells, dtype=object)
    try:
        return text.astype(np.float64)  # the common case, every cell a number: float() of each, in C
    except (TypeError, ValueError):
        pass
    missing = np.equal(text, None)
    stripped = np.char.strip(np.where(missing, "", text).astype(str))
    empty = stripped == ""
    try:
        return np.where(empty, "nan", text).astype(np.float64)  # object to float is faster than str to float
    except ValueError:  # some cell is not a number: only then is each cell parsed on its own
        return np.array([None if blank else _float_or_text(cell)
                         for cell, blank in zip(stripped.tolist(), empty.tolist(), strict=True)], dtype=object)


def _float_or_text(cell: str) -> float | str:
    try:
        return float(cell)
    except ValueError:
        return cell


def parse_string_text(cells: Any) -> np.ndarray:
    """Text cells of a string field (CSV): stripped, an empty or None cell is null (None); the one
    CSV string parser (a CSV request and Spark's CSV input alike)."""
    text = np.asarray(cells, dtype=object)
    missing = np.equal(text, None)
    stripped = np.char.strip((np.where(missing, "", text) if missing.any() else text).astype(str))
    out = stripped.astype(object)
    out[stripped == ""] = None
    return out


def _csv_rows(text: str | bytes) -> list[list[str]]:
    """The rows of a CSV body (UTF-8, an optional byte-order mark); empty lines are skipped, but a
    row of empty cells is a row (its nulls are refused or scored like Spark's CSV reader's)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError([FieldError(None, None, "malformed",
                                              f"CSV body is not UTF-8: {exc}")]) from None
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    except csv.Error as exc:
        raise ValidationError([FieldError(None, None, "malformed", f"CSV body cannot be parsed: {exc}")]) from None
    if not rows:
        raise ValidationError([FieldError(None, None, "empty", "CSV body has no rows")])
    return rows


def _describe(value: Any) -> str:
    if isinstance(value, (list, tuple, Mapping)):  # repr of a deeply nested value would recurse without limit
        return f"{json_type(value)} of {len(value)} item(s)"
    try:
        text = json.dumps(value, allow_nan=False)  # as the client wrote it: null, true, "forty"
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{json_type(value)} {text}"
