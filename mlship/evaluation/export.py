"""Export a fitted scikit-learn estimator or Pipeline into a signed mlship bundle.

Steps: infer the input schema from the holdout (and the estimator's encoders), convert with
skl2onnx, check with ``onnx.checker``, compare scikit-learn and onnxruntime on the holdout
(parity report with an explicit pass/fail policy), compute holdout metrics from what will
serve (onnxruntime through :class:`~mlship.runtime.predictor.Predictor`), build the baseline
profile and golden examples, render the model card, hash every file, sign, and pack.
"""

from __future__ import annotations

import copy
import json
import platform
import shutil
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlship import __version__
from mlship.errors import ExportError
from mlship.runtime.archive import pack_bundle
from mlship.runtime.bundle import (
    FORMAT,
    GOLDEN_FILE,
    MODEL_FILE,
    PROFILE_FILE,
    Bundle,
    file_sizes,
    hash_files,
    sign_bundle,
)
from mlship.runtime.bundle import write_manifest as _write_manifest
from mlship.runtime.jsonutil import jsonable, python_value, python_values
from mlship.runtime.schema import (
    INTEGER,
    LAYOUT_COLUMNS,
    LAYOUT_TENSOR,
    NUMBER,
    STRING,
    UNKNOWN_ENCODED,
    UNKNOWN_ERROR,
    UNKNOWN_IGNORE,
    UNKNOWN_INFREQUENT,
    Field,
    InputSchema,
)
from mlship.runtime.versions import parse_version

SUPPORTED = (
    "LogisticRegression, LinearRegression, Ridge, Lasso, ElasticNet, SGD*, LinearSVC/SVC/SVR, "
    "DecisionTree*, RandomForest*, ExtraTrees*, GradientBoosting*, HistGradientBoosting*, "
    "KNeighbors*, MLPClassifier/MLPRegressor, GaussianNB, and Pipelines of these with "
    "ColumnTransformer, StandardScaler, MinMaxScaler, SimpleImputer, OneHotEncoder, OrdinalEncoder"
)


@dataclass
class ParityPolicy:
    """When scikit-learn and onnxruntime disagree too much, export fails.

    A row is *over tolerance* when its largest probability difference (classifier) or its
    value difference relative to ``max(1, |value|)`` (regressor) exceeds ``tolerance``.
    Export passes when the share of such rows is at most ``max_share_over`` and labels agree
    on at least ``min_label_agreement`` of rows. Tree ensembles compare in float32 in ONNX, so
    an input within float32 rounding of a split threshold can take the other branch. Gradient
    boosting on repeated 2-decimal values (prices) puts split thresholds exactly on data values,
    and after a float32 StandardScaler a few rows in a thousand land on the other side: a strict
    ``max_share_over=0`` fails such models; the default tolerates 0.5% of rows, reports them
    (``rows_over_tolerance_index``) and still demands near-total label agreement.
    """

    tolerance: float = 1e-4
    max_share_over: float = 0.005
    min_label_agreement: float = 0.999


def load_estimator(path: str | Path) -> Any:
    """Load a fitted estimator from a joblib or pickle file.

    The file must come from a source you trust: unpickling runs whatever code the file names.
    """
    import joblib
    from sklearn.base import BaseEstimator

    try:
        estimator = joblib.load(path)
    except FileNotFoundError:
        raise ExportError(f"model file not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - unpickling fails in many types; each is one message
        raise ExportError(f"cannot load an estimator from {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(estimator, BaseEstimator):
        raise ExportError(f"{path} holds a {type(estimator).__name__}, not a fitted scikit-learn estimator or "
                          "Pipeline")
    return estimator


def load_table(path: str | Path) -> Any:
    """Read a CSV or Parquet file into a DataFrame."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise ExportError(f"data file not found: {p}")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if p.suffix.lower() in (".csv", ".txt"):
        return pd.read_csv(p)
    raise ExportError(f"unsupported data file {p.name}: use .csv or .parquet")


# ---------------------------------------------------------------------------- schema inference
def _walk(estimator: Any) -> list[Any]:
    """The estimator and every nested step/transformer (Pipeline, ColumnTransformer)."""
    found = [estimator]
    for attr in ("steps", "transformers_"):
        for item in getattr(estimator, attr, []) or []:
            obj = item[1]
            if obj not in ("drop", "passthrough"):
                found += _walk(obj)
    return found


def final_estimator(estimator: Any) -> Any:
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def _encoder_categories(estimator: Any) -> dict[str, list[str]]:
    """Categories known to fitted OneHot/Ordinal encoders inside a ColumnTransformer."""
    cats: dict[str, list[str]] = {}
    for part in _walk(estimator):
        for _name, trans, columns in getattr(part, "transformers_", []) or []:
            for sub in _walk(trans) if not isinstance(trans, str) else []:
                if hasattr(sub, "categories_") and isinstance(columns, (list, tuple)):
                    for col, values in zip(columns, sub.categories_, strict=False):
                        cats[str(col)] = [str(v) for v in values]
    return cats


def _unknown_mode(encoder: Any) -> str:
    """How one fitted encoder treats an unseen category, as a ``handle_unknown`` the schema records."""
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    handle = getattr(encoder, "handle_unknown", UNKNOWN_ERROR)
    if isinstance(encoder, OneHotEncoder):
        # "warn" encodes as "infrequent_if_exist" does, with a warning
        return {"ignore": UNKNOWN_IGNORE, "infrequent_if_exist": UNKNOWN_INFREQUENT,
                "warn": UNKNOWN_INFREQUENT}.get(handle, UNKNOWN_ERROR)
    if isinstance(encoder, OrdinalEncoder) and handle == "use_encoded_value":
        return UNKNOWN_ENCODED
    return UNKNOWN_ERROR  # any other encoder: not known to score an unseen category as scikit-learn does


def _encoder_unknown_modes(estimator: Any) -> dict[str, str]:
    """Per input column, how the fitted encoders inside a ColumnTransformer treat an unseen category;
    a column whose encoders disagree is "error" (refused), as is any column no encoder names."""
    modes: dict[str, str] = {}
    for part in _walk(estimator):
        for _name, trans, columns in getattr(part, "transformers_", []) or []:
            for sub in _walk(trans) if not isinstance(trans, str) else []:
                if hasattr(sub, "categories_") and isinstance(columns, (list, tuple)):
                    mode = _unknown_mode(sub)
                    for col in columns[:len(sub.categories_)]:
                        key = str(col)
                        modes[key] = mode if modes.get(key, mode) == mode else UNKNOWN_ERROR
    return modes


def feature_names(estimator: Any, holdout: Any, label: str) -> list[str]:
    """The estimator's input columns (``feature_names_in_``) or the holdout's non-label columns."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        names = [str(n) for n in names]
        missing = [n for n in names if n not in holdout.columns]
        if missing:
            raise ExportError(f"holdout is missing feature columns the model was trained on: {missing}")
        return names
    return [str(c) for c in holdout.columns if c != label]


def infer_schema(estimator: Any, frame: Any, names: list[str], enforce_range: bool = False) -> InputSchema:
    """Build the input schema from the data's dtypes, ranges and nulls and the encoders' categories."""
    has_ct = any(hasattr(p, "transformers_") for p in _walk(estimator))
    cats = _encoder_categories(estimator)
    modes = _encoder_unknown_modes(estimator)
    fields = []
    for name in names:
        col = frame[name]
        kind = col.dtype.kind
        nullable = bool(col.isna().any())
        if kind in "iub":
            dtype = INTEGER
        elif kind == "f":
            dtype = NUMBER
        else:
            dtype = STRING
        if dtype == STRING:
            observed = sorted({str(v) for v in col.dropna().unique()})
            fields.append(Field(name, STRING, nullable=nullable, categories=cats.get(name, observed),
                                handle_unknown=modes.get(name, UNKNOWN_ERROR)))
        else:
            vals = col.dropna().astype(float)
            fields.append(Field(name, dtype, nullable=nullable,
                                minimum=float(vals.min()) if len(vals) else None,
                                maximum=float(vals.max()) if len(vals) else None,
                                enforce_range=enforce_range))
    if has_ct:
        return InputSchema(fields, LAYOUT_COLUMNS)
    strings = [f.name for f in fields if f.dtype == STRING]
    if strings:
        raise ExportError(f"string columns {strings} need a ColumnTransformer with an encoder in the pipeline")
    return InputSchema(fields, LAYOUT_TENSOR, tensor_input="input")


# ---------------------------------------------------------------------------- conversion
def convert(estimator: Any, schema: InputSchema, classifier: bool) -> Any:
    """skl2onnx conversion with explicit input types (float32 numeric, string categorical)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    if schema.layout == LAYOUT_COLUMNS:
        initial = [(f.name, StringTensorType([None, 1]) if f.dtype == STRING else FloatTensorType([None, 1]))
                   for f in schema.fields]
    else:
        initial = [(schema.tensor_input or "input", FloatTensorType([None, len(schema.fields)]))]
    estimator, infrequent = _zeros_for_unknown(estimator)
    options = {id(final_estimator(estimator)): {"zipmap": False}} if classifier else None
    try:
        model = to_onnx(estimator, initial_types=initial, options=options)
    except Exception as exc:  # skl2onnx raises several unrelated exception types
        name = type(final_estimator(estimator)).__name__
        raise ExportError(f"skl2onnx cannot convert {name}: {str(exc).splitlines()[0][:300]}. "
                          f"Supported: {SUPPORTED}") from None
    _unseen_to_infrequent(model, infrequent)
    return model


def _is_infrequent_if_exist(part: Any) -> bool:
    from sklearn.preprocessing import OneHotEncoder

    return isinstance(part, OneHotEncoder) and part.handle_unknown in ("infrequent_if_exist", "warn")


def _zeros_for_unknown(estimator: Any) -> tuple[Any, list[frozenset[str]]]:
    """The estimator as skl2onnx should see it, and the category sets of its columns that have
    infrequent categories under "infrequent_if_exist" (or "warn", which encodes the same way).

    skl2onnx gives the ONNX OneHotEncoder its all-zeros option for an unseen value (``zeros=1``)
    only under "ignore"; otherwise onnxruntime fails on the value. Those encoders give all zeros for
    an unseen category in a column without infrequent categories, as "ignore" does, so the copy
    converted has them set to "ignore"; in a column with infrequent ones the unseen value belongs
    in the infrequent column, which :func:`_unseen_to_infrequent` then does in the graph."""
    encoders = [part for part in _walk(estimator) if _is_infrequent_if_exist(part)]
    if not encoders:
        return estimator, []
    infrequent = [frozenset(str(c) for c in cats)
                  for enc in encoders if getattr(enc, "_infrequent_enabled", False)
                  for cats, rare in zip(enc.categories_, enc.infrequent_categories_, strict=True) if rare is not None]
    converted = copy.deepcopy(estimator)
    for part in _walk(converted):
        if _is_infrequent_if_exist(part):
            part.handle_unknown = "ignore"
    return converted, infrequent


def _unseen_to_infrequent(model: Any, category_sets: list[frozenset[str]]) -> None:
    """For a OneHotEncoder column with infrequent categories skl2onnx builds a one-hot over frequent
    then infrequent categories, splits it, and sums the infrequent part into one column. Here that
    column becomes 1 minus the sum of the frequent ones: the same for every known value, and 1 for
    an unseen one (all zeros from the ONNX OneHotEncoder), as scikit-learn's "infrequent_if_exist"
    encodes it. A graph of another shape is left alone: export's unseen-category check decides."""
    if not category_sets:
        return
    from onnx import NodeProto, TensorProto, helper

    graph = model.graph
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    after: dict[str, Any] = {}  # a ReduceSum node's output -> the Sub node to insert after it
    for node in graph.node:
        cats = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "cats_strings"), None)
        if node.op_type != "OneHotEncoder" or cats is None:
            continue
        if frozenset(c.decode("utf-8") for c in cats) not in category_sets:
            continue
        split = next((n for n in consumers.get(node.output[0], []) if n.op_type == "Split"), None)
        total = split and next((n for n in consumers.get(split.output[1], []) if n.op_type == "ReduceSum"), None)
        if total is None:
            continue
        summed, flipped = total.output[0], total.output[0] + "_mlship_infrequent"
        for consumer in consumers.get(summed, []):
            for i, name in enumerate(consumer.input):
                if name == summed:
                    consumer.input[i] = flipped
        total.input[0] = split.output[0]  # now the sum of the frequent columns
        after[summed] = helper.make_node("Sub", ["mlship_one", summed], [flipped], name=f"{total.name}_mlship_sub")
    if not after:
        return
    graph.initializer.append(helper.make_tensor("mlship_one", TensorProto.FLOAT, [], [1.0]))
    nodes = []
    for node in graph.node:  # nodes stay in topological order: each Sub right after its ReduceSum
        copied = NodeProto()
        copied.CopyFrom(node)  # the container is cleared below: keep copies, not references into it
        nodes.append(copied)
        if node.output and node.output[0] in after:
            nodes.append(after[node.output[0]])
    del graph.node[:]
    graph.node.extend(nodes)


def _sklearn_input(estimator: Any, frame: Any, schema: InputSchema) -> Any:
    if schema.layout == LAYOUT_TENSOR and getattr(estimator, "feature_names_in_", None) is None:
        return frame[schema.names].to_numpy(dtype=np.float64)
    return frame[schema.names]


def top_two_margin(probabilities: np.ndarray) -> np.ndarray:
    """Per row, the gap between the two largest class probabilities (0 means a tie)."""
    top2 = np.sort(np.asarray(probabilities), axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def parity_report(task: str, sk: dict[str, np.ndarray], ort: Any, policy: ParityPolicy) -> dict[str, Any]:
    """Compare scikit-learn and onnxruntime outputs row by row under the policy."""
    if task == "classification":
        diff = np.abs(sk["probabilities"] - ort.probabilities).max(axis=1)
        same = np.asarray([str(a) for a in sk["labels"]]) == np.asarray([str(b) for b in ort.labels])
        # a row whose top two probabilities tie (e.g. 50 of 100 trees) has no well-defined label:
        # argmax tie-breaking differs between libraries, so ties are reported, not counted
        tied = top_two_margin(sk["probabilities"]) <= policy.tolerance
        agree = float(np.mean(same[~tied])) if (~tied).any() else 1.0
        extra = {"tied_rows": int(tied.sum()), "label_disagreements_on_ties": int((~same & tied).sum())}
        compared = "probabilities"
    else:
        diff = np.abs(sk["values"] - ort.values) / np.maximum(1.0, np.abs(sk["values"]))
        agree = 1.0
        extra = {}
        compared = "values (relative to max(1, |value|))"
    over = diff > policy.tolerance
    share = float(over.mean())
    passed = share <= policy.max_share_over and agree >= policy.min_label_agreement
    return {"compared": compared, "rows": int(diff.size), "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean()), "p99_abs_diff": float(np.quantile(diff, 0.99)),
            "rows_over_tolerance": int(over.sum()), "share_over_tolerance": share,
            "rows_over_tolerance_index": [int(i) for i in np.flatnonzero(over)[:20]],
            "label_agreement": agree, "tolerance": policy.tolerance,
            "policy": {"max_share_over_tolerance": policy.max_share_over,
                       "min_label_agreement": policy.min_label_agreement},
            "passed": bool(passed), **extra}


def _json_safe(value: Any) -> Any:
    """Metadata as JSON; free-form objects (estimator parameters) by a short repr."""
    return jsonable(value, fallback=lambda v: repr(v)[:200])


def _record(row: Any, names: list[str]) -> dict[str, Any]:
    out = {}
    for n in names:
        v = row[n]
        v = python_value(v)
        out[n] = None if isinstance(v, float) and not np.isfinite(v) else v
    return out


def pick_golden(frame: Any, schema: InputSchema, pred: Any, row_diff: np.ndarray, n: int,
                tolerance: float) -> dict[str, Any]:
    """A handful of rows spread over the outputs, avoiding rows near float32 split thresholds."""
    stable = row_diff <= tolerance / 10
    if pred.task == "classification":
        # skip near-ties: summation order (batch size, threads) may flip the label of a 0.5/0.5 row
        stable &= top_two_margin(pred.probabilities) > 0.02
    safe = np.flatnonzero(stable)
    if safe.size == 0:
        safe = np.arange(len(row_diff))
    if pred.task == "classification":
        from mlship.stats.profile import prediction_score

        score = prediction_score(pred.probabilities)[safe]
        chosen: list[int] = []
        for lbl in dict.fromkeys(str(v) for v in pred.labels[safe].tolist()):
            idx = safe[np.asarray([str(v) == lbl for v in pred.labels[safe].tolist()])]
            chosen.append(int(idx[0]))
        order = safe[np.argsort(score, kind="mergesort")]
        for q in np.linspace(0, 1, n):
            cand = int(order[int(q * (len(order) - 1))])
            if cand not in chosen:
                chosen.append(cand)
        chosen = chosen[:n]
        labels = python_values(pred.labels[chosen])
        expected = {"labels": labels, "probabilities": pred.probabilities[chosen].tolist()}
    else:
        order = safe[np.argsort(pred.values[safe], kind="mergesort")]
        chosen = list(dict.fromkeys(int(order[int(q * (len(order) - 1))]) for q in np.linspace(0, 1, n)))
        expected = {"values": pred.values[chosen].tolist()}
    inputs = [_record(frame.iloc[i], schema.names) for i in chosen]
    return {"inputs": inputs, "expected": expected, "tolerance": max(tolerance, 1e-5)}


def cross_validation(estimator: Any, frame: Any, label: str, names: list[str], k: int, task: str) -> dict:
    """k-fold cross-validation of a clone of the estimator (scikit-learn scorers)."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold, cross_validate

    if task == "classification":
        binary = frame[label].nunique() == 2
        scoring = ["accuracy", "f1" if binary else "f1_macro", "roc_auc" if binary else "roc_auc_ovr"]
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=0)
    else:
        scoring = ["r2", "neg_mean_absolute_error", "neg_root_mean_squared_error"]
        splitter = KFold(n_splits=k, shuffle=True, random_state=0)
    res = cross_validate(clone(estimator), frame[names], frame[label], cv=splitter, scoring=scoring)
    return {"folds": k, "rows": len(frame),
            "metrics": {m: {"mean": float(np.mean(res[f"test_{m}"])), "std": float(np.std(res[f"test_{m}"])),
                            "folds": [float(v) for v in res[f"test_{m}"]]} for m in scoring}}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _data_fingerprint(frame: Any, path: str | Path | None) -> dict[str, Any]:
    from mlship.evaluation.lineage import dataframe_sha256
    from mlship.runtime.hashing import sha256_file

    if path is not None and Path(path).is_file():
        return {"path": str(path), "sha256": sha256_file(path), "rows": int(len(frame))}
    return {"path": None, "sha256": dataframe_sha256(frame), "rows": int(len(frame)), "hash_of": "pandas row hashes"}


def _library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "mlship": __version__}


# ---------------------------------------------------------------------------- the export
@dataclass
class _ExportState:
    """What the export steps share: the estimator, its holdout and schema, the bundle folder and manifest."""

    estimator: Any
    task: str
    label: str
    names: list[str]
    frame: Any  # the holdout, index reset
    schema: InputSchema
    out: Path
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class _ParityResult:
    """The holdout scored by onnxruntime (what will serve) and its comparison with scikit-learn."""

    predictor: Any
    scored: Any
    row_diff: np.ndarray  # per row, the largest difference from scikit-learn
    report: dict[str, Any]

    @property
    def prediction(self) -> Any:
        return self.scored.prediction


def export_bundle(estimator: Any, holdout: Any, label: str, out_dir: str | Path, *, name: str,
                  version: str | None = None, description: str = "", private_key: Any = None,
                  reference: Any = None, train: Any = None, cv: int | None = None,
                  sensitive: str | None = None, parity: ParityPolicy | None = None, n_golden: int = 5,
                  n_bins: int | None = None, enforce_range: bool = False, tarball: bool = True,
                  data_path: str | Path | None = None, progress: Any = None,
                  explain_budget: int | None = None) -> Path:
    """Export a fitted estimator to a bundle directory (and ``<out_dir>.tar.gz``); return the directory.

    ``holdout`` is a labelled DataFrame (``label`` column); ``reference`` (default: the holdout)
    is profiled as the drift baseline; ``train`` feeds ``cv``-fold cross-validation;
    ``private_key`` (Ed25519 key object or PEM path) signs the manifest; ``explain_budget``
    bounds the model evaluations per explained row of a sampling explainer (default 1,024).
    """
    def step(msg: str) -> None:
        if progress is not None:
            progress(msg)

    parity = parity or ParityPolicy()
    task = _check_export_inputs(estimator, holdout, label, version)
    budget = _explain_budget(explain_budget)
    names = feature_names(estimator, holdout, label)
    frame = holdout.reset_index(drop=True)
    if reference is None:
        combined = frame
    else:
        import pandas as pd

        combined = pd.concat([frame[names], reference[names]])
    schema = infer_schema(estimator, combined, names, enforce_range)

    step("converting to ONNX")
    model = _convert_checked(estimator, schema, task)
    state = _ExportState(estimator, task, label, names, frame, schema, Path(out_dir))
    _write_model(state, model, name=name, version=version, description=description)

    step("checking parity: scikit-learn vs onnxruntime")
    checked = _check_parity(state, parity)
    _check_unknown_parity(state, checked, parity.tolerance)

    step("storing the explainer")
    _write_explainer(state, model, checked, budget)

    step("computing holdout metrics, profile and golden examples")
    _write_evaluation(state, checked, reference=reference, n_bins=n_bins, n_golden=n_golden,
                      tolerance=parity.tolerance)
    state.manifest["libraries"] = _library_versions()
    state.manifest["lineage"] = _lineage(state, reference, sensitive, data_path)
    if cv:
        step(f"{cv}-fold cross-validation")
        cv_frame = train if train is not None else frame
        state.manifest["cross_validation"] = cross_validation(estimator, cv_frame, label, names, cv, task)
        state.manifest["cross_validation"]["data"] = "train" if train is not None else "holdout"

    explained = _explain_holdout(state, checked, step)
    step("rendering the model card")
    _finish(state, checked, private_key, tarball, step, explained)
    return state.out


def _check_export_inputs(estimator: Any, holdout: Any, label: str, version: str | None) -> str:
    """The task (classification or regression), once the version, holdout and estimator can be exported."""
    from sklearn.base import is_classifier, is_regressor

    if version is not None:
        parse_version(version)  # an unparseable version could never be ordered against another
    if label not in holdout.columns:
        raise ExportError(f"label column {label!r} not found in the holdout (columns: {list(holdout.columns)})")
    if len(holdout) < 10:
        raise ExportError(f"holdout has {len(holdout)} rows: need at least 10 to check parity and metrics")
    if is_classifier(estimator):
        task = "classification"
    elif is_regressor(estimator):
        task = "regression"
    else:
        raise ExportError(f"{type(estimator).__name__} is neither a classifier nor a regressor")
    if not hasattr(estimator, "predict"):
        raise ExportError(f"{type(estimator).__name__} has no predict(): is it fitted?")
    return task


def _convert_checked(estimator: Any, schema: InputSchema, task: str) -> Any:
    """The skl2onnx conversion, once ``onnx.checker`` accepts it."""
    import onnx

    model = convert(estimator, schema, task == "classification")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the converted ONNX model fails onnx.checker: {exc}") from None
    return model


def _write_model(state: _ExportState, model: Any, *, name: str, version: str | None, description: str) -> None:
    """A fresh bundle folder with the ONNX model and the manifest's identity, model and schemas."""
    out, estimator = state.out, state.estimator
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MODEL_FILE).write_bytes(model.SerializeToString())
    out_names = [o.name for o in model.graph.output]
    if state.task == "classification":
        classes = [_json_safe(c) for c in final_estimator(estimator).classes_.tolist()]
        output_schema = {"kind": "probabilities", "classes": classes,
                         "onnx_outputs": {"label": out_names[0], "probabilities": out_names[1]}}
    else:
        output_schema = {"kind": "value", "onnx_outputs": {"value": out_names[0]}}
    state.manifest = {
        "format": FORMAT, "name": name, "version": version or datetime.now(UTC).strftime("%Y%m%d.%H%M%S"),
        "description": description, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": state.task,
        "model": {"file": MODEL_FILE, "opset": {d.domain or "ai.onnx": d.version for d in model.opset_import},
                  "ir_version": model.ir_version, "estimator": type(estimator).__name__,
                  "final_estimator": type(final_estimator(estimator)).__name__},
        "input_schema": state.schema.to_dict(), "output_schema": output_schema,
    }
    _write_manifest(out, state.manifest)


def _explain_budget(budget: int | None) -> int:
    """The sampling explainer's budget, checked before any work (the manifest check's range)."""
    from mlship.runtime.manifest import MAX_EXPLAIN_BUDGET
    from mlship.runtime.sampling_shap import DEFAULT_BUDGET

    if budget is None:
        return DEFAULT_BUDGET
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_EXPLAIN_BUDGET:
        raise ValueError(f"the explain budget must be 1 to {MAX_EXPLAIN_BUDGET} model evaluations per row, "
                         f"got {budget!r}")
    return budget


def _write_explainer(state: _ExportState, model: Any, checked: _ParityResult, budget: int) -> None:
    """The model's explainer files (exact for trees and linear models, else sampling) into the bundle."""
    from mlship.evaluation.explain_export import write_explainer

    columns = checked.scored.validated.columns
    state.manifest["explain"] = write_explainer(state.out, model, final_estimator(state.estimator),
                                                checked.predictor, columns, budget)
    _write_manifest(state.out, state.manifest)


def _check_parity(state: _ExportState, parity: ParityPolicy) -> _ParityResult:
    """Score the holdout with onnxruntime and scikit-learn; remove the bundle and raise when they differ."""
    from mlship.runtime.predictor import Predictor

    estimator, frame = state.estimator, state.frame
    predictor = Predictor(Bundle(state.out))
    scored = predictor.score(frame[state.names], allow_extra=False)
    if not scored.valid.all():
        raise ExportError(f"holdout rows do not fit the inferred schema: {scored.validated.errors[:5]}")
    ort_pred = scored.prediction
    x_sk = _sklearn_input(estimator, frame, state.schema)
    if state.task == "classification":
        sk = {"labels": estimator.predict(x_sk), "probabilities": estimator.predict_proba(x_sk)}
        row_diff = np.abs(sk["probabilities"] - ort_pred.probabilities).max(axis=1)
    else:
        sk = {"values": np.asarray(estimator.predict(x_sk), dtype=np.float64).reshape(-1)}
        row_diff = np.abs(sk["values"] - ort_pred.values) / np.maximum(1.0, np.abs(sk["values"]))
    report = parity_report(state.task, sk, ort_pred, parity)
    if not report["passed"]:
        shutil.rmtree(state.out, ignore_errors=True)
        raise ExportError(
            f"parity check failed: {report['rows_over_tolerance']} of {report['rows']} rows "
            f"({report['share_over_tolerance']:.3%}) differ by more than {parity.tolerance:g} "
            f"(max {report['max_abs_diff']:.3g}; allowed share {parity.max_share_over:.3%}); label agreement "
            f"{report['label_agreement']:.4f} (min {parity.min_label_agreement}). Raise the tolerance "
            "(--parity-tolerance / --parity-max-share) only if you accept these differences.")
    return _ParityResult(predictor=predictor, scored=scored, row_diff=row_diff, report=report)


_PROBE_ROWS = 20


def _check_unknown_parity(state: _ExportState, checked: _ParityResult, tolerance: float) -> None:
    """Each string field whose encoder scores an unseen category: scikit-learn and onnxruntime on up
    to 20 stable holdout rows with an unseen value in that field. Where they differ by more than the
    tolerance (or either fails), the field is recorded as "error", so serving refuses the value
    instead of answering differently from scikit-learn. The outcome is ``parity.unknown_categories``."""
    fields = [f for f in state.schema.fields if f.dtype == STRING and not f.refuses_unknown]
    if not fields:
        return
    rows = np.flatnonzero(checked.row_diff <= tolerance / 10)[:_PROBE_ROWS]
    if rows.size == 0:
        rows = np.arange(min(_PROBE_ROWS, len(state.frame)))
    outcome: dict[str, Any] = {}
    for spec in fields:
        unseen = "mlship-unseen-category"
        while unseen in (spec.categories or ()):
            unseen += "_"
        frame = state.frame.loc[rows, state.names].reset_index(drop=True)
        frame[spec.name] = unseen
        diff = _unknown_diff(state, checked.predictor, frame)
        passed = diff is not None and diff <= tolerance
        outcome[spec.name] = {"handle_unknown": spec.handle_unknown, "rows": int(rows.size),
                              "max_abs_diff": diff, "passed": passed}
        if not passed:
            spec.handle_unknown = UNKNOWN_ERROR
    checked.report["unknown_categories"] = outcome
    state.manifest["input_schema"] = state.schema.to_dict()  # written with the rest by _finish


def _unknown_diff(state: _ExportState, predictor: Any, frame: Any) -> float | None:
    """The largest difference between scikit-learn and onnxruntime on ``frame`` (as the parity report
    measures it), or None when either fails or gives a non-finite answer."""
    x_sk = _sklearn_input(state.estimator, frame, state.schema)
    try:
        with warnings.catch_warnings():  # "warn" encoders warn on every unseen value, by design
            warnings.simplefilter("ignore")
            sk = (state.estimator.predict_proba(x_sk) if state.task == "classification"
                  else np.asarray(state.estimator.predict(x_sk), dtype=np.float64).reshape(-1))
        scored = predictor.score(frame, allow_extra=False)
    except Exception:  # noqa: BLE001 - scikit-learn and onnxruntime raise many types; any is a failure
        return None
    if scored.prediction is None or not scored.valid.all() or not scored.prediction.all_finite():
        return None
    if state.task == "classification":
        diff = np.abs(sk - scored.prediction.probabilities).max(axis=1)
    else:
        diff = np.abs(sk - scored.prediction.values) / np.maximum(1.0, np.abs(sk))
    return float(diff.max()) if np.isfinite(diff).all() else None


def _write_evaluation(state: _ExportState, checked: _ParityResult, *, reference: Any, n_bins: int | None,
                      n_golden: int, tolerance: float) -> None:
    """Holdout metrics, the drift baseline profile and the golden examples, into the folder and manifest."""
    from mlship.stats.metrics import classification_metrics, regression_metrics

    ort_pred = checked.prediction
    y = state.frame[state.label].to_numpy()
    if state.task == "classification":
        classes = state.manifest["output_schema"]["classes"]
        metrics = classification_metrics(y, ort_pred.labels, ort_pred.probabilities, classes)
    else:
        metrics = regression_metrics(y, ort_pred.values)
    profile = _write_profile(state, checked, reference, n_bins)
    golden = pick_golden(state.frame, state.schema, ort_pred, checked.row_diff, n_golden, tolerance)
    (state.out / GOLDEN_FILE).write_text(json.dumps(_json_safe(golden), indent=2) + "\n")
    state.manifest.update({
        "metrics": {"holdout": _json_safe(metrics)},
        "parity": checked.report,
        "golden": {"file": GOLDEN_FILE, "count": len(golden["inputs"]), "tolerance": golden["tolerance"]},
        "profile": {"file": PROFILE_FILE, "rows": profile["rows"], "source": profile["source"],
                    "n_bins": profile["n_bins"]},
    })


def _write_profile(state: _ExportState, checked: _ParityResult, reference: Any, n_bins: int | None) -> dict:
    """The drift baseline: a profile of the reference (default: the holdout) and its predictions."""
    from mlship.stats.profile import DEFAULT_BINS, build_profile

    ref_frame = state.frame[state.names] if reference is None else reference[state.names]
    ref_batch = checked.predictor.score(ref_frame, allow_extra=False) if reference is not None else checked.scored
    numeric = {f.name: f.dtype != STRING for f in state.schema.fields}
    ref_cols = {f.name: (ref_frame[f.name].to_numpy(dtype=np.float64) if numeric[f.name]
                         else ref_frame[f.name].to_numpy(dtype=object)) for f in state.schema.fields}
    profile = build_profile(ref_cols, numeric, ref_batch.prediction, n_bins or DEFAULT_BINS)
    profile["source"] = "holdout" if reference is None else "reference"
    (state.out / PROFILE_FILE).write_text(json.dumps(_json_safe(profile)) + "\n")
    return profile


def _lineage(state: _ExportState, reference: Any, sensitive: str | None,
             data_path: str | Path | None) -> dict[str, Any]:
    """Where the bundle came from: data fingerprints, label, sensitive attribute, commit, estimator."""
    estimator = state.estimator
    return {"holdout": _data_fingerprint(state.frame, data_path), "label": state.label,
            "sensitive_attribute": sensitive,
            "reference": None if reference is None else _data_fingerprint(reference, None),
            "git_commit": _git_commit(),
            "estimator": {"class": f"{type(estimator).__module__}.{type(estimator).__name__}",
                          "params": _json_safe(estimator.get_params(deep=False))}}


def _explain_holdout(state: _ExportState, checked: _ParityResult, step: Callable[[str], None]) -> Any:
    """Global attributions and permutation importance on a bounded sample of the holdout (for the model
    card); the summary goes into ``manifest["explain"]["summary"]`` when the bundle has an explainer."""
    from mlship.evaluation.attributions import explain_globally
    from mlship.runtime.predictor import Predictor

    # a fresh Predictor: the parity check's one was opened before the explainer was written
    predictor = Predictor(Bundle(state.out))
    explained = explain_globally(predictor, checked.scored.validated.columns, state.frame[state.label].to_numpy(),
                                 progress=step)
    summary = explained.summary()
    if summary is not None:  # None: the bundle could not be explained
        state.manifest["explain"]["summary"] = summary
    return explained


def _finish(state: _ExportState, checked: _ParityResult, private_key: Any, tarball: bool,
            step: Callable[[str], None], explained: Any = None) -> None:
    """Render the model card, hash every file into the manifest, sign, and pack the tarball."""
    from mlship.evaluation.modelcard import render_model_card

    out, manifest = state.out, state.manifest
    render_model_card(out, manifest, state.frame[state.label].to_numpy(), checked.prediction, explained=explained)
    manifest["files"] = hash_files(out)
    manifest["sizes"] = file_sizes(out)  # lets extraction refuse a member of the wrong size before writing it
    _write_manifest(out, manifest)
    if private_key is not None:
        if isinstance(private_key, (str, Path)):
            from mlship.runtime.signing import load_private_key

            private_key = load_private_key(private_key)
        step("signing")
        sign_bundle(out, private_key)
    if tarball:
        pack_bundle(out, out.with_name(out.name + ".tar.gz"))
