"""What runs inside Spark's Python workers: one Predictor per worker, rows in, rows out.

This module is imported by executors. It imports only numpy and the mlship core at import
time; pandas arrives with the frames ``mapInPandas`` hands over (pyspark's own worker loads
it) and is imported lazily inside :func:`score_partition`. No pyspark import here either:
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
from mlship.runtime.schema import parse_numeric_text

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


def _parse_text_columns(frame: Any, spec: WorkerSpec) -> dict[str, np.ndarray]:
    """The CSV numeric columns parsed by the schema's parser (Spark reads every CSV cell as text)."""
    return {name: parse_numeric_text(frame[name].to_numpy(dtype=object, na_value=None))
            for name in spec.numeric_fields if name in frame.columns}


def score_frame(frame: Any, spec: WorkerSpec, predictor: Any) -> tuple[Any, dict[str, int], Any]:
    """Score one pandas chunk; return (output chunk, counts, scored rows' feature columns).

    Three outcomes per row: ``malformed_row`` (the CSV record does not have the header's field
    count: never validated), an input error from the schema, ``non_finite_output`` (the model
    emitted NaN/inf: a model-side failure), or scored.
    """
    malformed = _malformed_mask(frame, spec)
    out = frame.copy(deep=False)
    if spec.malformed_column is not None:
        del out[spec.malformed_column]
    wellformed = out if not malformed.any() else out[~malformed]
    result = _score(wellformed, spec, predictor)
    outcome = _Outcome.of(result, malformed)
    _write_outputs(out, spec, predictor, result.prediction, outcome)
    reasons, error_kinds, kinds = _quarantine_reasons(frame, spec, result.validated, outcome)
    out[REASON] = reasons
    out[ERROR_KINDS] = error_kinds
    out[STATUS] = np.where(outcome.scored, SCORED, QUARANTINED)
    valid_columns = None
    if spec.drift and outcome.scored.any():
        keep = outcome.finite  # over the validated rows: NaN outputs stay out of the drift report
        valid_columns = {k: v[result.valid][keep] for k, v in result.validated.columns.items()}
        if result.prediction is not None:
            valid_columns["__prediction__"] = _subset(result.prediction, keep)
    return out, kinds, valid_columns


def _score(frame: Any, spec: WorkerSpec, predictor: Any) -> Any:
    """``Predictor.score`` of the well-formed rows (a chunk may have none: nothing to validate)."""
    if len(frame) == 0:
        from mlship.runtime.predictor import ScoredBatch
        from mlship.runtime.schema import ValidatedBatch

        return ScoredBatch(ValidatedBatch({}, np.zeros(0, dtype=bool)), None)
    data: Any = frame.assign(**_parse_text_columns(frame, spec)) if spec.text_input else frame
    return predictor.score(data, allow_extra=True)


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
        predicted = np.zeros(len(malformed), dtype=bool)
        predicted[np.flatnonzero(~malformed)[result.valid]] = True
        bad = np.asarray(result.non_finite, dtype=bool)
        non_finite = np.zeros(len(malformed), dtype=bool)
        non_finite[np.flatnonzero(predicted)[bad]] = True
        return cls(malformed, predicted, ~bad, non_finite, predicted & ~non_finite)


def _malformed_mask(frame: Any, spec: WorkerSpec) -> np.ndarray:
    """Rows whose raw CSV record Spark put in the corrupt-record column (wrong field count)."""
    if spec.malformed_column is None or spec.malformed_column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[spec.malformed_column].notna().to_numpy(dtype=bool)


def _write_outputs(out: Any, spec: WorkerSpec, predictor: Any, prediction: Any, outcome: _Outcome) -> None:
    """Prediction columns of the scored rows; null for every quarantined row (NaN outputs too)."""
    import pandas as pd

    n = len(out)
    rows = outcome.scored
    finite = outcome.finite
    if spec.task == "classification":
        labels = np.empty(n, dtype=object)
        labels[:] = None
        if prediction is not None:
            labels[rows] = python_values(prediction.labels[finite])
        out[PREDICTION] = pd.array(labels.tolist(), dtype=label_dtype(predictor))
        probs = np.full((n, len(spec.probability_columns)), np.nan)
        if prediction is not None and prediction.probabilities is not None:
            probs[rows] = prediction.probabilities[finite]
        for j, name in enumerate(spec.probability_columns):
            out[name] = probs[:, j]
    else:
        values = np.full(n, np.nan)
        if prediction is not None:
            values[rows] = prediction.values[finite]
        out[PREDICTION] = values
    out[MODEL_NAME] = predictor.model_name
    out[MODEL_VERSION] = predictor.model_version


def _quarantine_reasons(frame: Any, spec: WorkerSpec, validated: Any, outcome: _Outcome
                        ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Per-row ``reason`` and ``error_kinds`` (None when scored) and the chunk's counts.

    Counts are keyed ``kind:<error kind>`` (a row with two kinds counts in both) and carry
    ``cause:input`` / ``cause:model`` (rows, not kinds), so that a model emitting NaN is never
    mistaken for bad input in the summary.
    """
    n = len(frame)
    reasons = np.full(n, None, dtype=object)
    error_kinds = np.full(n, None, dtype=object)
    kinds: dict[str, int] = {}
    if outcome.scored.all():
        return reasons, error_kinds, kinds
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
    if outcome.malformed.any():
        raw = frame[spec.malformed_column].to_numpy(dtype=object)[outcome.malformed]
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


def _subset(prediction: Any, keep: np.ndarray) -> Any:
    """The prediction of the rows in ``keep`` only (no copy when every row is kept)."""
    if keep.all():
        return prediction
    from dataclasses import replace

    def cut(arr: np.ndarray | None) -> np.ndarray | None:
        return None if arr is None else arr[keep]

    return replace(prediction, labels=cut(prediction.labels), probabilities=cut(prediction.probabilities),
                   values=cut(prediction.values))


def label_dtype(predictor: Any) -> str:
    """The pandas dtype of the prediction column: boolean, Int64 or string, from the model's classes."""
    classes = predictor.classes or []
    if classes and all(isinstance(c, bool) for c in classes):
        return "boolean"
    if classes and all(isinstance(c, int) for c in classes):
        return "Int64"
    return "string"


def score_partition(frames: Iterator[Any], spec: WorkerSpec, counters: Any = None, drift_acc: Any = None,
                    profile: dict[str, Any] | None = None) -> Iterator[Any]:
    """The ``mapInPandas`` function: score every chunk of a partition through the shared Predictor.

    ``counters`` receives ``{partition: scored/quarantined/error-kind counts}`` and ``drift_acc``
    ``{partition: DriftAccumulator}`` (:mod:`mlship.batch.accumulators`: keyed by partition, so a
    partition that Spark scores twice counts once).
    """
    predictor = get_predictor(bundle_path(spec), spec.public_key_pem, spec.threads)
    totals: dict[str, int] = {SCORED: 0, QUARANTINED: 0}
    partial = None
    if drift_acc is not None and profile is not None:
        from mlship.stats.drift import DriftAccumulator

        partial = DriftAccumulator(profile)
    for frame in frames:
        if len(frame) == 0:
            continue
        out, kinds, valid_columns = score_frame(frame, spec, predictor)
        n_bad = int((out[STATUS] == QUARANTINED).sum())
        totals[QUARANTINED] += n_bad
        totals[SCORED] += len(out) - n_bad
        for key, count in kinds.items():
            totals[key] = totals.get(key, 0) + count
        if partial is not None and valid_columns is not None:
            partial.update(*drift_inputs(valid_columns, spec))
        yield out
    partition = partition_id()
    if counters is not None:
        counters.add({partition: totals})
    if partial is not None:
        drift_acc.add({partition: partial})


def partition_id() -> int:
    """The partition this task scores (the key of its accumulator updates; 0 outside Spark)."""
    from pyspark import TaskContext  # inside a Spark worker only

    context = TaskContext.get()
    return context.partitionId() if context is not None else 0




def drift_inputs(valid_columns: dict[str, Any], spec: WorkerSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Feature columns and model outputs of the valid rows, as ``DriftAccumulator.update`` takes them."""
    from mlship.stats.profile import prediction_score

    cols = dict(valid_columns)
    prediction = cols.pop("__prediction__", None)
    outputs: dict[str, Any] = {}
    if prediction is not None:
        if spec.task == "classification":
            outputs["label"] = [str(v) for v in prediction.labels.tolist()]
            if prediction.probabilities is not None:
                outputs["score"] = prediction_score(prediction.probabilities)
        else:
            outputs["value"] = prediction.values
    return cols, outputs
