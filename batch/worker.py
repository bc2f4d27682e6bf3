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

STATUS = "status"
SCORED = "scored"
QUARANTINED = "quarantined"
REASON = "reason"
ERROR_KINDS = "error_kinds"
ROW_ID = "row_id"
PREDICTION = "prediction"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"

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
            from mlship.predictor import Predictor

            key = public_key_pem.encode() if public_key_pem else None
            _predictors[path] = Predictor.load(path, public_key=key, threads=threads)
        return _predictors[path]


def parse_text_numbers(values: np.ndarray) -> np.ndarray:
    """CSV cells of a numeric field: numbers become floats, empty cells None, other text stays text.

    Text that is not a number is kept so that the schema reports it as ``wrong_type`` with the
    offending value (a blind ``to_numeric(errors='coerce')`` would misreport it as a null).
    """
    out = np.empty(len(values), dtype=object)
    for i, cell in enumerate(values.tolist()):
        if cell is None:
            out[i] = None
            continue
        text = str(cell).strip()
        if text == "":
            out[i] = None
            continue
        try:
            out[i] = float(text)
        except ValueError:
            out[i] = cell
    return out


def _coerce_text(frame: Any, spec: WorkerSpec) -> dict[str, np.ndarray]:
    """Column arrays for validation, with CSV numeric columns parsed (fast path when all parse)."""
    import pandas as pd

    cols: dict[str, np.ndarray] = {}
    for name in spec.numeric_fields:
        if name not in frame.columns:
            continue
        raw = frame[name]
        parsed = pd.to_numeric(raw, errors="coerce")
        text = raw.astype("string").str.strip()
        unparsed = parsed.isna() & text.notna() & (text != "")
        if unparsed.any():
            cols[name] = parse_text_numbers(raw.to_numpy(dtype=object))
        else:
            cols[name] = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    return cols


def score_frame(frame: Any, spec: WorkerSpec, predictor: Any) -> tuple[Any, dict[str, int], Any]:
    """Score one pandas chunk; return (output chunk, error-kind counts, valid feature columns)."""
    import pandas as pd

    n = len(frame)
    data: Any = frame.assign(**_coerce_text(frame, spec)) if spec.text_input else frame
    result = predictor.score(data, allow_extra=True)
    validated, prediction = result.validated, result.prediction
    valid = validated.valid
    out = frame.copy(deep=False)
    kinds: dict[str, int] = {}
    if spec.task == "classification":
        labels = np.empty(n, dtype=object)
        labels[:] = None
        if prediction is not None:
            labels[valid] = [v.item() if hasattr(v, "item") else v for v in prediction.labels.tolist()]
        out[PREDICTION] = pd.array(labels.tolist(), dtype=_label_dtype(predictor))
        probs = np.full((n, len(spec.probability_columns)), np.nan)
        if prediction is not None and prediction.probabilities is not None:
            probs[valid] = prediction.probabilities
        for j, name in enumerate(spec.probability_columns):
            out[name] = probs[:, j]
    else:
        values = np.full(n, np.nan)
        if prediction is not None:
            values[valid] = prediction.values
        out[PREDICTION] = values
    out[MODEL_NAME] = predictor.model_name
    out[MODEL_VERSION] = predictor.model_version
    reasons = np.empty(n, dtype=object)
    reasons[:] = None
    error_kinds = np.empty(n, dtype=object)
    error_kinds[:] = None
    if not valid.all():
        for row, text in validated.row_reasons().items():
            reasons[row] = text
        per_row: dict[int, list[str]] = {}
        for err in validated.errors:
            if err.row is not None and err.kind not in per_row.setdefault(err.row, []):
                per_row[err.row].append(err.kind)
        for row, row_kinds in per_row.items():
            error_kinds[row] = ",".join(row_kinds)
            for kind in row_kinds:
                kinds[kind] = kinds.get(kind, 0) + 1
    out[REASON] = reasons
    out[ERROR_KINDS] = error_kinds
    out[STATUS] = np.where(valid, SCORED, QUARANTINED)
    valid_columns = None
    if spec.drift and valid.any():
        valid_columns = {k: v[valid] for k, v in validated.columns.items()}
        if prediction is not None:
            valid_columns["__prediction__"] = prediction
    return out, kinds, valid_columns


def _label_dtype(predictor: Any) -> str:
    classes = predictor.classes or []
    if classes and all(isinstance(c, bool) for c in classes):
        return "boolean"
    if classes and all(isinstance(c, int) for c in classes):
        return "Int64"
    return "string"


def score_partition(frames: Iterator[Any], spec: WorkerSpec, counters: Any = None, drift_acc: Any = None,
                    profile: dict[str, Any] | None = None) -> Iterator[Any]:
    """The ``mapInPandas`` function: score every chunk of a partition through the shared Predictor.

    ``counters`` (a Spark accumulator of dicts) receives scored/quarantined/error-kind counts;
    ``drift_acc`` receives this partition's :class:`mlship.drift.DriftAccumulator`, merged on
    the driver. Both are applied once per successful task.
    """
    predictor = get_predictor(bundle_path(spec), spec.public_key_pem, spec.threads)
    totals: dict[str, int] = {SCORED: 0, QUARANTINED: 0}
    partial = None
    if drift_acc is not None and profile is not None:
        from mlship.drift import DriftAccumulator

        partial = DriftAccumulator(profile)
    for frame in frames:
        if len(frame) == 0:
            continue
        out, kinds, valid_columns = score_frame(frame, spec, predictor)
        n_bad = int((out[STATUS] == QUARANTINED).sum())
        totals[QUARANTINED] += n_bad
        totals[SCORED] += len(out) - n_bad
        for kind, count in kinds.items():
            key = f"kind:{kind}"
            totals[key] = totals.get(key, 0) + count
        if partial is not None and valid_columns is not None:
            partial.update(*drift_inputs(valid_columns, spec))
        yield out
    if counters is not None:
        counters.add(totals)
    if partial is not None:
        drift_acc.add(partial)


def drift_inputs(valid_columns: dict[str, Any], spec: WorkerSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Feature columns and model outputs of the valid rows, as ``DriftAccumulator.update`` takes them."""
    from mlship.profile import prediction_score

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
