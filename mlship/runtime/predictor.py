"""The one prediction code path: a verified bundle, one onnxruntime session, schema validation.

Every target (Lambda, ``mlship serve``, Spark, the edge agent, evaluation and monitoring)
predicts through :class:`Predictor`. It imports only numpy and onnxruntime (plus the
bundle/schema modules), so it is light enough for Lambda and devices.

Example::

    from mlship.runtime.predictor import Predictor
    predictor = Predictor.load("bundles/churn")          # dir, .tar.gz, s3:// or mlship://
    result = predictor.predict([{"tenure_months": 3, ...}])
    result.labels, result.probabilities, result.model_version
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlship.errors import BundleError, GoldenCheckError, ModelOutputError, ValidationError
from mlship.runtime.bundle import Bundle
from mlship.runtime.jsonutil import python_values
from mlship.runtime.records import input_rows, make_records
from mlship.runtime.schema import InputSchema, ValidatedBatch
from mlship.runtime.sources import open_bundle

CLASSIFICATION = "classification"
REGRESSION = "regression"

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": object,
}


@dataclass
class Prediction:
    """Outputs for a batch of valid rows: labels and probabilities, or regression values."""

    model_name: str
    model_version: str
    task: str
    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None
    classes: list[Any] | None = None

    def __len__(self) -> int:
        ref = self.labels if self.labels is not None else self.values
        return 0 if ref is None else int(ref.shape[0])

    @property
    def outputs(self) -> np.ndarray:
        """The main output: labels for a classifier, values for a regressor."""
        return self.labels if self.task == CLASSIFICATION else self.values  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready answer: predictions, probabilities/values and the model identity."""
        body: dict[str, Any] = {"model": {"name": self.model_name, "version": self.model_version}}
        if self.task == CLASSIFICATION:
            body["predictions"] = _to_python(self.labels)
            body["probabilities"] = self.probabilities.tolist() if self.probabilities is not None else None
            body["classes"] = self.classes
        else:
            body["predictions"] = self.values.tolist() if self.values is not None else []
        return body

    def all_finite(self) -> bool:
        """Whether every probability or value is finite (the answering paths' check, cheap for one
        request's few values: plain Python instead of array operations)."""
        out = self.probabilities if self.task == CLASSIFICATION else self.values
        if out is None or len(self) == 0:
            return True
        flat = np.asarray(out).reshape(-1)
        if flat.size <= 64:
            return all(map(math.isfinite, flat.tolist()))
        return bool(np.isfinite(flat).all())

    def non_finite(self) -> np.ndarray:
        """Boolean mask of the rows whose probabilities or value are NaN or infinite."""
        out = self.probabilities if self.task == CLASSIFICATION else self.values
        if out is None or len(self) == 0:
            return np.zeros(len(self), dtype=bool)
        return ~np.isfinite(np.asarray(out, dtype=np.float64).reshape(len(self), -1)).all(axis=1)

    def records(self) -> list[dict[str, Any]]:
        """One dict per row: ``prediction`` and ``probabilities`` (or ``value``)."""
        if self.task == CLASSIFICATION:
            probs = self.probabilities.tolist() if self.probabilities is not None else [None] * len(self)
            return [{"prediction": lbl, "probabilities": p} for lbl, p in zip(_to_python(self.labels), probs,
                                                                             strict=True)]
        return [{"prediction": v} for v in self.values.tolist()]


@dataclass
class ScoredBatch:
    """Predictions for the valid rows of a batch plus the validation outcome of every row."""

    validated: ValidatedBatch
    prediction: Prediction | None

    @property
    def valid(self) -> np.ndarray:
        return self.validated.valid

    @property
    def non_finite(self) -> np.ndarray:
        """Mask over the *scored* rows (``prediction``'s rows) whose output is NaN or infinite.

        Batch paths quarantine these rows with reason ``non_finite_output``: a model-side failure.
        """
        if self.prediction is None:
            return np.zeros(0, dtype=bool)
        return self.prediction.non_finite()


def _to_python(arr: np.ndarray | None) -> list[Any]:
    return [] if arr is None else python_values(arr)


def resolve_public_key(public_key: Any = None) -> Any:
    """A public key object from a key, PEM bytes, a path, or (when None) ``$MLSHIP_PUBLIC_KEY``."""
    if public_key is None:
        public_key = os.environ.get("MLSHIP_PUBLIC_KEY")
        if not public_key:
            return None
    if isinstance(public_key, (str, Path, bytes)):
        from mlship.runtime.signing import load_public_key

        return load_public_key(public_key)
    return public_key


class Predictor:
    """A loaded bundle with one onnxruntime session; the only way mlship predicts."""

    def __init__(self, bundle: Bundle, *, threads: int | None = None):
        import onnxruntime as ort

        self.bundle = bundle
        manifest = bundle.manifest
        self.schema = InputSchema.from_dict(manifest["input_schema"])
        self.task: str = manifest["task"]
        self.model_name = bundle.name
        self.model_version = bundle.version
        outputs = manifest["output_schema"]
        self.classes: list[Any] | None = outputs.get("classes")
        self._output_names: dict[str, str] = outputs["onnx_outputs"]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(bundle.file(manifest["model"]["file"])), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes for a bad graph
            raise BundleError(f"model {manifest['model']['file']} cannot be loaded by onnxruntime: "
                              f"{type(exc).__name__}") from None
        self._inputs = {i.name: _ORT_DTYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self._fetch = list(self._output_names.values())
        # The session's native run: InferenceSession.run re-checks the feed names on every call
        # (about a third of a one-row call here); onnx_feeds builds exactly the session's inputs.
        # ``run_session`` is the one place every prediction calls the model (tests replace it).
        native = getattr(self.session, "_sess", None)
        self.run_session = native.run if native is not None and hasattr(native, "run") else self._checked_run
        self._row_buffers = threading.local()  # per thread: one-row feeds reused (see _row_feeds)
        self._explainer: Any = None

    def _checked_run(self, fetch: list[str], feeds: dict[str, np.ndarray], options: Any) -> list[Any]:
        return self.session.run(fetch, feeds, options)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, uri: str | Path, *, public_key: Any = None, verify: bool = True,
             check_golden: bool = True, threads: int | None = None) -> Predictor:
        """Open a bundle from any URI, verify it, start a session and check its golden examples.

        ``public_key`` (a key object, PEM bytes or a path; default ``$MLSHIP_PUBLIC_KEY``) makes
        the signature mandatory. Raises :class:`~mlship.errors.BundleError` subclasses on failure.
        """
        bundle = open_bundle(uri)
        if verify:
            bundle.verify(resolve_public_key(public_key))
        predictor = cls(bundle, threads=threads)
        if check_golden:
            predictor.check_golden()
        return predictor

    # ------------------------------------------------------------------ predicting
    def predict(self, data: Any, *, allow_extra: bool = False) -> Prediction:
        """Validate any input shape and predict; raise :class:`ValidationError` on any bad field."""
        return self.predict_with_inputs(data, allow_extra=allow_extra)[0]

    def predict_with_inputs(self, data: Any, *,
                            allow_extra: bool = False) -> tuple[Prediction, dict[str, np.ndarray] | None]:
        """:meth:`predict`, also returning the validated input columns (what inference records hold),
        or None for a one-record request of plain values: it goes straight into the session's
        input arrays, and :meth:`inference_records` validates ``data`` again if records are wanted."""
        if not allow_extra and type(data) is list and len(data) == 1 and self.schema.layout != "tensor":
            row = self.schema.plain_row(data[0])
            if row is not None:
                return self._checked(self._predict_row(row)), None
        batch = self.schema.validate(data, allow_extra=allow_extra)
        batch.raise_for_errors()
        return self.predict_checked(batch.columns), batch.columns

    def inference_records(self, request_id: str, prediction: Prediction, columns: dict[str, np.ndarray] | None, *,
                          source: str, data: Any = None) -> list[dict[str, Any]]:
        """One inference record per row of an answered request (see :mod:`mlship.runtime.records`);
        ``columns`` None: validated from ``data`` (the one-record fast path kept none)."""
        if columns is None:
            columns = self.schema.validate(data).columns
        return make_records(request_id, self.model_name, self.model_version,
                            input_rows(columns, self.schema.names), prediction.records(), source=source)

    def predict_checked(self, columns: dict[str, np.ndarray]) -> Prediction:
        """Predict validated columns; raise :class:`ModelOutputError` if any output is not finite.

        Every answering path (Lambda, ``serve``, the edge agent, ``mlship predict``) predicts
        through this, so a model that emits NaN is a model failure, never invalid JSON.
        """
        return self._checked(self.predict_columns(columns))

    @staticmethod
    def _checked(prediction: Prediction) -> Prediction:
        if not prediction.all_finite():
            raise ModelOutputError(np.flatnonzero(prediction.non_finite()).tolist())
        return prediction

    def score(self, data: Any, *, allow_extra: bool = True) -> ScoredBatch:
        """Validate and predict the valid rows only (batch use: bad rows are reported, not raised)."""
        return self._score_validated(self.schema.validate(data, allow_extra=allow_extra))

    def score_columns(self, columns: dict[str, np.ndarray]) -> ScoredBatch:
        """:meth:`score` of named column arrays (Spark's Arrow batches); extra columns are ignored."""
        return self._score_validated(self.schema.validate_columns(columns, allow_extra=True))

    def _score_validated(self, batch: ValidatedBatch) -> ScoredBatch:
        if not batch.valid.any():
            return ScoredBatch(batch, None)
        if batch.valid.all():
            return ScoredBatch(batch, self.predict_columns(batch.columns))
        subset = {k: v[batch.valid] for k, v in batch.columns.items()}
        return ScoredBatch(batch, self.predict_columns(subset))

    def explain(self, data: Any, *, allow_extra: bool = False) -> Any:
        """Validate any input shape and explain each row (:class:`mlship.runtime.explain.Explanation`).

        Raises :class:`ValidationError` on a bad field and
        :class:`~mlship.runtime.explain.ExplainError` when the bundle stores no explainer.
        """
        batch = self.schema.validate(data, allow_extra=allow_extra)
        batch.raise_for_errors()
        return self.explainer().explain_columns(batch.columns)

    def explainer(self) -> Any:
        """The bundle's explainer, loaded on first use."""
        if self._explainer is None:
            from mlship.runtime.explain import load_explainer

            self._explainer = load_explainer(self)
        return self._explainer

    def predict_columns(self, columns: dict[str, np.ndarray]) -> Prediction:
        """Predict already-validated column arrays (as produced by :class:`InputSchema`)."""
        feeds = self._row_feeds(columns) if self.schema.layout != "tensor" else None
        return self._prediction(self.run_session(self._fetch, feeds or self.onnx_feeds(columns), None))

    def _predict_row(self, row: list[tuple[str, bool, Any]]) -> Prediction:
        """Predict one record's plain values (:meth:`InputSchema.plain_row`) written straight into
        this thread's one-row input arrays: a number as float64 cast to the input's type (the
        columns path's float32 rounding included), None as NaN, a string as is."""
        feeds = self._thread_feeds()
        for name, numeric, value in row:
            buffer = feeds[name]
            if not numeric:
                buffer[0, 0] = value
            elif buffer.dtype == np.float32:
                buffer[0, 0] = np.nan if value is None else float(value)
            else:
                buffer[0, 0] = np.float32(np.nan if value is None else float(value))
        return self._prediction(self.run_session(self._fetch, feeds, None))

    def _prediction(self, results: list[Any]) -> Prediction:
        named = dict(zip(self._output_names, results, strict=True))
        if self.task == CLASSIFICATION:
            probs = named.get("probabilities")
            return Prediction(self.model_name, self.model_version, self.task, classes=self.classes,
                              labels=np.asarray(named["label"]).reshape(-1),
                              probabilities=None if probs is None else np.asarray(probs, dtype=np.float64))
        return Prediction(self.model_name, self.model_version, self.task, classes=self.classes,
                          values=np.asarray(named["value"], dtype=np.float64).reshape(-1))

    def _row_feeds(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """One row's feeds written into arrays this thread reuses (None for more rows): onnxruntime
        answers a one-row request measurably faster from the same input arrays than from new ones.
        Only :meth:`predict_columns` uses them, and only until its ``run`` returns."""
        first = next(iter(columns.values()), None)
        if first is None or first.shape[0] != 1:
            return None
        feeds = self._thread_feeds()
        for name, buffer in feeds.items():
            buffer[0, 0] = columns[name][0]
        return feeds

    def _thread_feeds(self) -> dict[str, np.ndarray]:
        """This thread's one-row input arrays, one per session input."""
        feeds: dict[str, np.ndarray] | None = getattr(self._row_buffers, "feeds", None)
        if feeds is None:
            feeds = {name: np.empty((1, 1), dtype=dtype) for name, dtype in self._inputs.items()}
            self._row_buffers.feeds = feeds
        return feeds

    def onnx_feeds(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The onnxruntime input feeds for validated column arrays (calibration, benchmarks)."""
        if self.schema.layout == "tensor":
            name = self.schema.tensor_input or next(iter(self._inputs))
            matrix = np.column_stack([columns[n] for n in self.schema.names])
            return {name: matrix.astype(self._inputs[name], copy=False)}
        feeds = {}
        for name, dtype in self._inputs.items():
            col = columns[name].reshape(-1, 1)
            feeds[name] = col if dtype is object or col.dtype == dtype else col.astype(dtype)
        return feeds

    # ------------------------------------------------------------------ golden examples
    def check_golden(self) -> int:
        """Predict the bundle's golden examples and compare; raise GoldenCheckError on mismatch."""
        golden = self.bundle.golden
        tolerance = float(golden.get("tolerance", 1e-4))
        try:
            result = self.predict(golden["inputs"])
        except ValidationError as exc:
            raise GoldenCheckError(f"golden examples do not validate against the schema: {exc}") from None
        expected = golden["expected"]
        problems: list[str] = []
        if self.task == CLASSIFICATION:
            got_labels = _to_python(result.labels)
            for i, (want, got) in enumerate(zip(expected["labels"], got_labels, strict=True)):
                if want != got:
                    problems.append(f"example {i}: label {got!r} != expected {want!r}")
            if expected.get("probabilities") is not None and result.probabilities is not None:
                diff = np.abs(np.asarray(expected["probabilities"]) - result.probabilities).max(axis=1)
                problems += [f"example {i}: probabilities differ by {d:.2e} > {tolerance:g}"
                             for i, d in enumerate(diff) if d > tolerance]
        else:
            diff = np.abs(np.asarray(expected["values"]) - result.values)
            problems += [f"example {i}: value differs by {d:.2e} > {tolerance:g}"
                         for i, d in enumerate(diff) if d > tolerance * max(1.0, abs(expected["values"][i]))]
        if problems:
            raise GoldenCheckError(f"model {self.model_name}:{self.model_version} fails its golden examples: "
                                   + "; ".join(problems))
        return len(golden["inputs"])

    def describe(self) -> dict[str, Any]:
        """Identity and schema summary (for health endpoints and logs)."""
        return {"name": self.model_name, "version": self.model_version, "task": self.task,
                "features": self.schema.names, "classes": self.classes}
