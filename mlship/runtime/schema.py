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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlship.errors import FieldError, ValidationError

NUMBER = "number"
INTEGER = "integer"
STRING = "string"
DTYPES = (NUMBER, INTEGER, STRING)

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

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"field '{self.name}': dtype must be one of {DTYPES}, got '{self.dtype}'")

    @property
    def is_numeric(self) -> bool:
        return self.dtype in (NUMBER, INTEGER)

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
        return cls(fields=[Field.from_dict(f) for f in data["fields"]],
                   layout=data.get("layout", LAYOUT_COLUMNS), tensor_input=data.get("tensor_input"))

    # ------------------------------------------------------------------ entry points
    def validate(self, data: Any, *, allow_extra: bool = False) -> ValidatedBatch:
        """Validate any supported input shape and return column arrays plus errors.

        Accepts a record (dict), a list of records, CSV text (str/bytes), a pandas
        DataFrame or an Arrow table. ``allow_extra`` ignores unknown columns (batch
        inputs carry ids and labels); otherwise each unknown field is an error.
        """
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
        return self._check_raw(raw, n, errors)

    def validate_csv(self, text: str | bytes, *, allow_extra: bool = False) -> ValidatedBatch:
        """Validate CSV text, with or without a header row (a header must name the fields)."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ValidationError([FieldError(None, None, "malformed",
                                                  f"CSV body is not UTF-8: {exc}")]) from None
        try:
            rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r and any(c.strip() for c in r)]
        except csv.Error as exc:
            raise ValidationError([FieldError(None, None, "malformed", f"CSV body cannot be parsed: {exc}")]) from None
        if not rows:
            raise ValidationError([FieldError(None, None, "empty", "CSV body has no rows")])
        names = self.names
        first = [c.strip() for c in rows[0]]
        header: list[str] | None = None
        if sum(c in names for c in first) * 2 >= len(names):  # at least half the cells name fields
            header, rows = first, rows[1:]
            missing = [n for n in names if n not in header]
            extra = [c for c in header if c not in names]
            problems = [FieldError(None, m, "missing_field", "column missing from the CSV header")
                        for m in missing]
            if not allow_extra:
                problems += [FieldError(None, x, "unexpected_field", "unexpected column in the CSV header")
                             for x in extra]
            if problems:
                raise ValidationError(problems)
            if not rows:
                raise ValidationError([FieldError(None, None, "empty", "CSV body has a header but no rows")])
        by_name = {f.name: f for f in self.fields}
        order = header or names
        records: list[Any] = []
        errors: list[FieldError] = []
        for i, row in enumerate(rows):
            if len(row) != len(order):
                errors.append(FieldError(i, None, "wrong_arity",
                                         f"expected {len(order)} values ({', '.join(order)}), got {len(row)}"))
                records.append({})
                continue
            rec: dict[str, Any] = {}
            for name, cell in zip(order, row, strict=True):
                spec = by_name.get(name)
                if spec is not None:
                    rec[name] = _parse_cell(cell, spec)
            records.append(rec)
        batch = self.validate_records(records, allow_extra=True)
        bad_arity = {e.row for e in errors}
        batch.errors = errors + [e for e in batch.errors if e.row not in bad_arity]
        batch.errors.sort(key=lambda e: (e.row if e.row is not None else -1))
        return batch

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
        valid = np.ones(n, dtype=bool)
        out: dict[str, np.ndarray] = {}
        errors: list[FieldError] = []
        for spec in self.fields:
            arr = np.asarray(columns[spec.name])
            if spec.is_numeric and arr.dtype.kind in "fiu":
                out[spec.name] = self._check_numeric_array(spec, arr, valid, errors)
            else:
                vals, col_errors = _check_values(spec, list(arr))
                out[spec.name] = vals
                for e in col_errors:
                    valid[e.row] = False
                errors.extend(col_errors)
        errors.sort(key=lambda e: (e.row if e.row is not None else -1))
        return ValidatedBatch(out, valid, errors)

    # ------------------------------------------------------------------ internals
    def _check_raw(self, raw: dict[str, list[Any]], n: int, errors: list[FieldError]) -> ValidatedBatch:
        valid = np.ones(n, dtype=bool)
        out: dict[str, np.ndarray] = {}
        for spec in self.fields:
            vals, col_errors = _check_values(spec, raw[spec.name])
            out[spec.name] = vals
            errors.extend(col_errors)
        for e in errors:
            if e.row is not None:
                valid[e.row] = False
        errors.sort(key=lambda e: (e.row if e.row is not None else -1))
        return ValidatedBatch(out, valid, errors)

    @staticmethod
    def _check_numeric_array(spec: Field, arr: np.ndarray, valid: np.ndarray,
                             errors: list[FieldError]) -> np.ndarray:
        values = arr.astype(np.float64, copy=False)
        problems: list[tuple[np.ndarray, str, str]] = []
        if arr.dtype.kind == "f":
            nulls = np.isnan(values)
            if not spec.nullable:
                problems.append((nulls, "null_not_allowed", "is null or NaN but the field is not nullable"))
            problems.append((np.isinf(values), "not_finite", "is infinite"))
            with np.errstate(invalid="ignore"):
                beyond = np.abs(values) > FLOAT32_MAX  # inf is reported as not_finite above
            problems.append((beyond & np.isfinite(values), "out_of_range", _FLOAT32_MESSAGE))
            if spec.dtype == INTEGER:
                finite = np.isfinite(values)
                frac = np.zeros_like(nulls)
                frac[finite] = values[finite] != np.round(values[finite])
                problems.append((frac, "wrong_type", "expected an integer, got a fraction"))
        if spec.enforce_range and (spec.minimum is not None or spec.maximum is not None):
            lo = -np.inf if spec.minimum is None else spec.minimum
            hi = np.inf if spec.maximum is None else spec.maximum
            with np.errstate(invalid="ignore"):
                out_of_range = (values < lo) | (values > hi)
            problems.append((out_of_range, "out_of_range", f"outside the allowed range [{lo}, {hi}]"))
        for mask, kind, message in problems:
            for row in np.flatnonzero(mask):
                valid[row] = False
                errors.append(FieldError(int(row), spec.name, kind, message))
        with np.errstate(over="ignore"):  # rows beyond float32 are refused above; their cast is never fed
            return values.astype(np.float32)


_FLOAT32_MESSAGE = f"is beyond the float32 range the model takes (magnitude over {FLOAT32_MAX:.7g})"


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
               (tuple, "array"), (Mapping, "object"), (type(None), "null"))


def json_type(value: Any) -> str:
    """The JSON name of a value's type (what a client sent), not Python's (``NoneType``, ``dict``)."""
    for cls, name in _JSON_TYPES:
        if isinstance(value, cls):
            return name
    return "number" if isinstance(value, (np.integer, np.floating)) else "value"


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


def _parse_cell(cell: str, spec: Field) -> Any:
    """Turn one CSV cell into a Python value for the field (empty means null)."""
    cell = cell.strip()
    if cell == "":
        return None
    if spec.is_numeric:
        try:
            return float(cell)
        except ValueError:
            return cell  # reported as wrong_type by the checker
    return cell


def _check_values(spec: Field, values: Iterable[Any]) -> tuple[np.ndarray, list[FieldError]]:
    """Check Python values of one field, returning a typed column array and the errors."""
    values = list(values)
    errors: list[FieldError] = []
    if spec.is_numeric:
        out = np.zeros(len(values), dtype=np.float32)
    else:
        out = np.empty(len(values), dtype=object)
        out[:] = spec.categories[0] if spec.categories else ""
    cats = set(spec.categories) if spec.categories else None
    for i, v in enumerate(values):
        if v is _MISSING:
            errors.append(FieldError(i, spec.name, "missing_field", "required field is missing"))
            continue
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if not spec.nullable:
                errors.append(FieldError(i, spec.name, "null_not_allowed",
                                         "is null or NaN but the field is not nullable"))
            elif spec.is_numeric:
                out[i] = np.nan
            continue
        if spec.is_numeric:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                kind = "an integer" if spec.dtype == INTEGER else "a number"
                errors.append(FieldError(i, spec.name, "wrong_type", f"expected {kind}, got {_describe(v)}"))
                continue
            try:
                fv = float(v)
            except OverflowError:  # an int with hundreds of digits: beyond any float
                errors.append(FieldError(i, spec.name, "out_of_range", _FLOAT32_MESSAGE))
                continue
            if math.isnan(fv):
                if not spec.nullable:
                    errors.append(FieldError(i, spec.name, "null_not_allowed",
                                             "is null or NaN but the field is not nullable"))
                else:
                    out[i] = np.nan
                continue
            if math.isinf(fv):
                errors.append(FieldError(i, spec.name, "not_finite", f"is {fv} (must be finite)"))
                continue
            if abs(fv) > FLOAT32_MAX:
                errors.append(FieldError(i, spec.name, "out_of_range", _FLOAT32_MESSAGE))
                continue
            if spec.dtype == INTEGER and not fv.is_integer():
                errors.append(FieldError(i, spec.name, "wrong_type", f"expected an integer, got {v!r}"))
                continue
            if spec.enforce_range and (
                (spec.minimum is not None and fv < spec.minimum)
                or (spec.maximum is not None and fv > spec.maximum)
            ):
                errors.append(FieldError(i, spec.name, "out_of_range",
                                         f"{fv} is outside the allowed range [{spec.minimum}, {spec.maximum}]"))
                continue
            out[i] = fv
        else:
            if not isinstance(v, str):
                errors.append(FieldError(i, spec.name, "wrong_type", f"expected a string, got {_describe(v)}"))
                continue
            if cats is not None and v not in cats:
                shown = ", ".join(repr(c) for c in sorted(cats)[:10])
                errors.append(FieldError(i, spec.name, "unknown_category",
                                         f"unknown category {v!r} (expected one of {shown})"))
                continue
            out[i] = v
    return out, errors
