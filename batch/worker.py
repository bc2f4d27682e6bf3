"""What runs inside Spark's Python workers: one Predictor per worker, Arrow batches in and out.

This module is imported by executors. It imports only numpy and the mlship core at import
time; pyarrow arrives with the batches the ``arrow_udf`` hands over (pyspark's own worker loads
it) and is imported lazily. Only the model's feature columns travel to Python and only the
computed columns come back: Spark keeps the rest of each row. No pyspark import here either:
the driver passes a :class:`WorkerSpec` and the accumulators in the closure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlship.runtime.jsonutil import python_values
from mlship.runtime.schema import parse_numeric_text, parse_string_text

STATUS = "status"
SCORED = "scored"
QUARANTINED = "quarantined"
REASON = "reason"
ERROR_KINDS = "error_kinds"
ROW_ID = "row_id"
PREDICTION = "prediction"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
MALFORMED_ROW = "malformed_row"  # a CSV record with the wrong field count (HTTP: 400 wrong_arity)
NON_FINITE_OUTPUT = "non_finite_output"  # the model emitted NaN/inf: a model-side failure
KIND = "kind:"  # counter prefix of the per-error-kind counts
CAUSE_INPUT = "cause:input"
CAUSE_MODEL = "cause:model"

_lock = threading.Lock()
_predictors: dict[str, Any] = {}


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, pickled once into the task closure (small: no model bytes)."""

    bundle_file: str  # file name registered with SparkContext.addFile (or a local path)
    public_key_pem: str | None = None
    threads: int = 1
    text_input: bool = False  # CSV: numeric features arrive as text and are parsed here
    numeric_fields: tuple[str, ...] = ()
    probability_columns: tuple[str, ...] = ()
    task: str = "classification"
    drift: bool = True
    malformed_column: str | None = None  # CSV: Spark's corrupt-record column (wrong field count)
    csv_fields: int = 0  # CSV: the header's field count (for the malformed_row reason)
    input_columns: tuple[str, ...] = ()  # the model's features, in the order Spark passes them
    explain_columns: tuple[str, ...] = ()  # --explain: per target, its base value then each field's contribution
    extra: dict[str, Any] = field(default_factory=dict)


def bundle_path(spec: WorkerSpec) -> str:
    """The local path of the shipped bundle archive on this executor."""
    if os.path.isabs(spec.bundle_file) and os.path.exists(spec.bundle_file):
        return spec.bundle_file
    from pyspark import SparkFiles  # only resolvable inside a Spark worker; imported lazily

    return SparkFiles.get(spec.bundle_file)


def get_predictor(path: str, public_key_pem: str | None = None, threads: int = 1) -> Any:
    """The worker's Predictor for ``path``: loaded, verified and golden-checked once per process."""
    cached = _predictors.get(path)
    if cached is not None:
        return cached
    with _lock:
        if path not in _predictors:
            from mlship.runtime.predictor import Predictor

            key = public_key_pem.encode() if public_key_pem else None
            _predictors[path] = Predictor.load(path, public_key=key, threads=threads)
        return _predictors[path]


def _parse_text_columns(columns: dict[str, np.ndarray], spec: WorkerSpec) -> dict[str, np.ndarray]:
    """The CSV columns parsed by the schema's parsers, as a CSV request's are (Spark reads every CSV
    cell as text): numbers from text, and string cells stripped with an empty one null."""
    numeric = set(spec.numeric_fields)
    return {name: (parse_numeric_text(cells) if name in numeric else parse_string_text(cells))
            if name in spec.input_columns else cells for name, cells in columns.items()}


@dataclass(frozen=True)
class Chunk:
    """One scored chunk: every row's outcome, the model's outputs and the chunk's counts."""

    n: int
    outcome: _Outcome
    prediction: Any  # Prediction of the predicted rows (None when no row validated)
    validated: Any  # the well-formed rows' ValidatedBatch (empty when there were none)
    reasons: np.ndarray | None  # per row (None when scored); None when every row was scored
    error_kinds: np.ndarray | None
    counts: dict[str, int]

    @property
    def n_quarantined(self) -> int:
        return self.n - int(self.outcome.scored.sum())


def score_chunk(columns: dict[str, np.ndarray], spec: WorkerSpec, predictor: Any,
                malformed_raw: np.ndarray | None = None) -> Chunk:
    """Score one chunk's columns through the shared Predictor.

    Three outcomes per row: ``malformed_row`` (the CSV record does not have the header's field
    count: never validated; ``malformed_raw`` holds its text, None elsewhere), an input error from
    the schema, ``non_finite_output`` (the model emitted NaN/inf: a model-side failure), or scored.
    """
    n = len(next(iter(columns.values())))
    malformed = np.zeros(n, dtype=bool) if malformed_raw is None else np.not_equal(malformed_raw, None)
    wellformed = columns if not malformed.any() else {k: v[~malformed] for k, v in columns.items()}
    result = _score(wellformed, spec, predictor, n - int(malformed.sum()))
    outcome = _Outcome.of(result, malformed)
    reasons, error_kinds, kinds = _quarantine_reasons(malformed_raw, spec, result.validated, outcome)
    return Chunk(n, outcome, result.prediction, result.validated, reasons, error_kinds, kinds)


def _score(columns: dict[str, np.ndarray], spec: WorkerSpec, predictor: Any, n: int) -> Any:
    """``Predictor.score_columns`` of the well-formed rows (a chunk may have none)."""
    if n == 0:
        from mlship.runtime.predictor import ScoredBatch
        from mlship.runtime.schema import ValidatedBatch

        return ScoredBatch(ValidatedBatch({}, np.zeros(0, dtype=bool)), None)
    return predictor.score_columns(_parse_text_columns(columns, spec) if spec.text_input else columns)


@dataclass(frozen=True)
class _Outcome:
    """Row masks of one chunk: over the chunk (``n``) and over the schema-valid rows (``finite``)."""

    malformed: np.ndarray  # chunk rows whose record has the wrong field count
    predicted: np.ndarray  # chunk rows the model scored (well-formed and schema-valid)
    finite: np.ndarray  # over the predicted rows: output is finite
    non_finite: np.ndarray  # chunk rows whose model output is NaN/inf
    scored: np.ndarray  # chunk rows written as scored

    @classmethod
    def of(cls, result: Any, malformed: np.ndarray) -> _Outcome:
        valid = result.valid
        if not malformed.any() and valid.all():  # the common chunk: no index arithmetic
            bad = np.asarray(result.non_finite, dtype=bool)
            return cls(malformed, valid, ~bad, bad, ~bad)
        predicted = np.zeros(len(malformed), dtype=bool)
        predicted[np.flatnonzero(~malformed)[valid]] = True
        bad = np.asarray(result.non_finite, dtype=bool)
        non_finite = np.zeros(len(malformed), dtype=bool)
        non_finite[np.flatnonzero(predicted)[bad]] = True
        return cls(malformed, predicted, ~bad, non_finite, predicted & ~non_finite)


def result_fields(spec: WorkerSpec, label_type: str) -> list[tuple[str, str]]:
    """(name, type) of the struct each chunk returns: the type is ``label_dtype``'s or double/string/bool."""
    label = label_type if spec.task == "classification" else "double"
    return [(PREDICTION, label), *[(name, "double") for name in spec.probability_columns],
            *[(name, "double") for name in spec.explain_columns],
            (REASON, "string"), (ERROR_KINDS, "string"), (SCORED, "boolean")]


def to_arrow(chunk: Chunk, spec: WorkerSpec, predictor: Any) -> Any:
    """The chunk's result struct (``result_fields``): outputs of the scored rows, null elsewhere.

    Built from numpy buffers (no per-row Python on a clean chunk); input columns, the model's
    name and version and the status string are added by Spark, not shipped back from here.
    """
    import pyarrow as pa

    rows, finite, n = chunk.outcome.scored, chunk.outcome.finite, chunk.n
    missing = ~rows
    arrays: list[Any] = []
    prediction = chunk.prediction
    labels = label_dtype(predictor)
    if spec.task == "classification":
        arrays.append(_label_array(prediction, rows, finite, labels))
        probs = None if prediction is None else prediction.probabilities
        for j in range(len(spec.probability_columns)):
            arrays.append(_masked(None if probs is None else probs[finite, j], rows, missing, np.float64))
    else:
        arrays.append(_masked(None if prediction is None else prediction.values[finite], rows, missing,
                              np.float64))
    if spec.explain_columns:
        arrays.extend(_masked(values, rows, missing, np.float64) for values in _explained(chunk, spec, predictor))
    for text in (chunk.reasons, chunk.error_kinds):
        arrays.append(pa.nulls(n, pa.string()) if text is None else pa.array(text, type=pa.string()))
    arrays.append(pa.array(rows))
    return pa.StructArray.from_arrays(arrays, names=[name for name, _ in result_fields(spec, labels)])


def _explained(chunk: Chunk, spec: WorkerSpec, predictor: Any) -> list[np.ndarray | None]:
    """The scored rows' explanation as ``explain_columns`` orders it: per target, base value then fields."""
    if chunk.prediction is None or not chunk.outcome.scored.any():
        return [None] * len(spec.explain_columns)
    valid = chunk.validated.valid
    keep = np.flatnonzero(valid)[chunk.outcome.finite]  # the predicted rows whose output is finite
    scored = {name: values[keep] for name, values in chunk.validated.columns.items()}
    explanation = predictor.explainer().explain_columns(scored)
    out: list[np.ndarray | None] = []
    for k in range(len(explanation.targets)):
        out.append(np.full(len(explanation.contributions), explanation.base_value[k]))
        out.extend(explanation.contributions[:, f, k] for f in range(len(explanation.fields)))
    return out


def _masked(values: np.ndarray | None, rows: np.ndarray, missing: np.ndarray, dtype: Any) -> Any:
    """An Arrow array of ``values`` at ``rows`` and null at every other position."""
    import pyarrow as pa

    full = np.zeros(len(rows), dtype=dtype)
    if values is not None:
        full[rows] = values
    return pa.array(full, mask=missing if missing.any() else None)


def _label_array(prediction: Any, rows: np.ndarray, finite: np.ndarray, dtype: str) -> Any:
    """The label column in the type of :func:`label_dtype` (null where not scored)."""
    import pyarrow as pa

    missing = ~rows
    labels = None if prediction is None else prediction.labels[finite]
    if dtype == "Int64":
        return _masked(labels, rows, missing, np.int64)
    if dtype == "boolean":
        return _masked(None if labels is None else labels.astype(bool), rows, missing, np.bool_)
    full = np.full(len(rows), None, dtype=object)
    if labels is not None:  # string labels arrive as str objects; other classes are written as text
        full[rows] = labels if labels.dtype.kind in "OU" else [str(v) for v in python_values(labels)]
    return pa.array(full, type=pa.string())


def _quarantine_reasons(malformed_raw: np.ndarray | None, spec: WorkerSpec, validated: Any, outcome: _Outcome
                        ) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, int]]:
    """Per-row ``reason`` and ``error_kinds`` (None when scored) and the chunk's counts.

    Counts are keyed ``kind:<error kind>`` (a row with two kinds counts in both) and carry
    ``cause:input`` / ``cause:model`` (rows, not kinds), so that a model emitting NaN is never
    mistaken for bad input in the summary. A chunk with every row scored has no reason arrays.
    """
    n = len(outcome.scored)
    kinds: dict[str, int] = {}
    if outcome.scored.all():
        return None, None, kinds
    reasons = np.full(n, None, dtype=object)
    error_kinds = np.full(n, None, dtype=object)
    # schema errors are numbered over the well-formed rows: map them back to chunk positions
    position = np.flatnonzero(~outcome.malformed)
    for row, text in validated.row_reasons().items():
        reasons[position[row]] = text
    per_row: dict[int, list[str]] = {}
    for err in validated.errors:
        if err.row is not None and err.kind not in per_row.setdefault(err.row, []):
            per_row[err.row].append(err.kind)
    for row, row_kinds in per_row.items():
        error_kinds[position[row]] = ",".join(row_kinds)
        for kind in row_kinds:
            kinds[KIND + kind] = kinds.get(KIND + kind, 0) + 1
    if outcome.malformed.any() and malformed_raw is not None:
        raw = np.asarray(malformed_raw, dtype=object)[outcome.malformed]
        reasons[outcome.malformed] = [malformed_reason(r, spec.csv_fields) for r in raw]
        error_kinds[outcome.malformed] = MALFORMED_ROW
        kinds[KIND + MALFORMED_ROW] = int(outcome.malformed.sum())
    if outcome.non_finite.any():
        reasons[outcome.non_finite] = "the model produced a non-finite output (NaN or infinity)"
        error_kinds[outcome.non_finite] = NON_FINITE_OUTPUT
        kinds[KIND + NON_FINITE_OUTPUT] = int(outcome.non_finite.sum())
    n_model = int(outcome.non_finite.sum())
    kinds[CAUSE_MODEL] = n_model
    kinds[CAUSE_INPUT] = n - int(outcome.scored.sum()) - n_model
    return reasons, error_kinds, kinds


def malformed_reason(raw: str, expected: int) -> str:
    """The reason for a record with the wrong field count, naming both counts and the record."""
    import csv

    # only quarantined records are re-parsed (rare): the scored rows never pay for this
    fields = next(csv.reader([raw]), [])
    shown = raw if len(raw) <= 200 else raw[:200] + "..."
    return f"expected {expected} fields (the header's), got {len(fields)}: {shown!r}"


def label_dtype(predictor: Any) -> str:
    """The pandas dtype of the prediction column: boolean, Int64 or string, from the model's classes."""
    classes = predictor.classes or []
    if classes and all(isinstance(c, bool) for c in classes):
        return "boolean"
    if classes and all(isinstance(c, int) for c in classes):
        return "Int64"
    return "string"


def score_batches(batches: Iterator[Any], spec: WorkerSpec, counters: Any = None, drift_acc: Any = None,
                  profile: dict[str, Any] | None = None) -> Iterator[Any]:
    """The ``arrow_udf`` (scalar iterator) body: score every Arrow batch of a partition.

    Spark hands over the ``spec.input_columns`` arrays of each batch; each yields the
    :func:`result_fields` struct. ``counters`` receives ``{partition: scored/quarantined/error-kind
    counts}`` and ``drift_acc`` ``{partition: DriftAccumulator}`` (:mod:`mlship.batch.accumulators`:
    keyed by partition, so a partition that Spark scores twice counts once).
    """
    predictor = get_predictor(bundle_path(spec), spec.public_key_pem, spec.threads)
    totals: dict[str, int] = {SCORED: 0, QUARANTINED: 0}
    partial = None
    if drift_acc is not None and profile is not None:
        from mlship.stats.drift import DriftAccumulator

        partial = DriftAccumulator(profile)
    for arrays in batches:
        columns, malformed_raw = arrow_columns(arrays, spec)
        chunk = score_chunk(columns, spec, predictor, malformed_raw)
        totals[QUARANTINED] += chunk.n_quarantined
        totals[SCORED] += chunk.n - chunk.n_quarantined
        for key, count in chunk.counts.items():
            totals[key] = totals.get(key, 0) + count
        if partial is not None and spec.drift and chunk.prediction is not None:
            partial.update(*drift_inputs(chunk, spec))
        yield to_arrow(chunk, spec, predictor)
    partition = partition_id()
    if counters is not None:
        counters.add({partition: totals})
    if partial is not None:
        drift_acc.add({partition: partial})


def arrow_columns(arrays: Any, spec: WorkerSpec) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """One batch's Arrow arrays as numpy columns (no copy for a double column without nulls) and,
    for CSV input, the corrupt-record column (the raw text of each malformed record, else None)."""
    arrays = arrays if isinstance(arrays, tuple) else (arrays,)  # one input column comes bare
    columns = {name: array.to_numpy(zero_copy_only=False) for name, array in zip(spec.input_columns, arrays,
                                                                                  strict=False)}
    if spec.malformed_column is None:
        return columns, None
    return columns, arrays[len(spec.input_columns)].to_numpy(zero_copy_only=False)


def partition_id() -> int:
    """The partition this task scores (the key of its accumulator updates; 0 outside Spark)."""
    from pyspark import TaskContext  # inside a Spark worker only

    context = TaskContext.get()
    return context.partitionId() if context is not None else 0


def drift_inputs(chunk: Chunk, spec: WorkerSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Feature columns and model outputs of the rows scored with a finite output, as
    ``DriftAccumulator.update`` takes them (NaN outputs stay out of the drift report)."""
    from mlship.stats.profile import prediction_score

    keep = chunk.outcome.finite
    valid = chunk.validated.valid
    every = keep.all() and valid.all()
    columns = {k: v if every else v[valid][keep] for k, v in chunk.validated.columns.items()}
    prediction = chunk.prediction
    outputs: dict[str, Any] = {}
    if spec.task == "classification":
        labels = prediction.labels if keep.all() else prediction.labels[keep]
        outputs["label"] = labels.astype(str)
        if prediction.probabilities is not None:
            probs = prediction.probabilities if keep.all() else prediction.probabilities[keep]
            outputs["score"] = prediction_score(probs)
    else:
        outputs["value"] = prediction.values if keep.all() else prediction.values[keep]
    return columns, outputs
