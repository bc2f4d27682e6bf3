"""``mlship edge build``: edge variants of a bundle, checked against fp32, signed and packaged.

Variants (see :data:`edge.package.VARIANTS`):

- ``fp32``: the model with onnxruntime's offline graph optimizations (``ORT_ENABLE_EXTENDED``:
  hardware-independent, unlike ``ALL``) saved as ONNX.
- ``int8-dynamic``: ``onnxruntime.quantization.quantize_dynamic`` of MatMul/Gemm/Conv weights.
- ``int8-static``: ``quantize_static`` (QOperator, MinMax) calibrated on holdout rows.
- ``ort``: the optimized model in ORT format, for minimal onnxruntime builds.

Tree ensembles (``TreeEnsemble*``) and ``LinearClassifier``/``LinearRegressor`` keep their
weights in ai.onnx.ml attributes that onnxruntime does not quantize: for them the int8
variants are *skipped* with that reason. Every variant is compared with the fp32 model on
the holdout and the golden examples under a :class:`Tolerance`; a variant outside it is
*refused* (not packaged) with the numbers that failed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlship.edge.package import ANY_ARCH, EDGE_FORMAT, VARIANTS, package_filename

from mlship.errors import MlshipError
from mlship.runtime.archive import pack_bundle
from mlship.runtime.bundle import GOLDEN_FILE, MANIFEST, PROFILE_FILE, Bundle, hash_files, sign_bundle
from mlship.runtime.bundle import write_manifest as _write_manifest
from mlship.runtime.hashing import sha256_file
from mlship.runtime.jsonutil import python_values
from mlship.runtime.manifest import EXPLAIN_DIR
from mlship.runtime.sources import open_bundle

QUANTIZABLE_OPS = ("MatMul", "Gemm", "Conv")
TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")
LINEAR_ML_OPS = ("LinearClassifier", "LinearRegressor", "SVMClassifier", "SVMRegressor")
QUANTIZED_OPS = (
    "MatMulInteger",
    "QLinearMatMul",
    "ConvInteger",
    "QLinearConv",
    "DynamicQuantizeLinear",
    "QuantizeLinear",
    "QGemm",
)

# First onnxruntime release supporting each opset (onnxruntime's compatibility table).
_ORT_FOR_OPSET = {
    7: "1.0",
    8: "1.0",
    9: "1.0",
    10: "1.0",
    11: "1.1",
    12: "1.5",
    13: "1.7",
    14: "1.8",
    15: "1.9",
    16: "1.11",
    17: "1.12",
    18: "1.14",
    19: "1.15",
    20: "1.17",
    21: "1.18",
    22: "1.20",
    23: "1.22",
}
_ORT_FOR_ML_OPSET = {1: "1.0", 2: "1.0", 3: "1.12", 4: "1.17", 5: "1.20"}


class EdgeBuildError(MlshipError):
    """The edge build cannot run (bad bundle, bad holdout, no variant requested)."""

    kind = "edge-build"


@dataclass
class Tolerance:
    """How far a variant may stray from the fp32 model and still be packaged.

    A row is *over tolerance* when its largest probability difference (classifier) or its
    value difference relative to ``max(1, |value|)`` (regressor) exceeds ``max_prob_diff``.
    A variant passes when, on the holdout, at most ``max_share_over`` of rows are over,
    labels agree on at least ``min_label_agreement`` of rows, the primary metric (ROC-AUC for
    binary classifiers, accuracy otherwise, R2 for regressors) drops by at most
    ``max_metric_delta``, and on the golden examples every label agrees and no row is over.
    """

    max_prob_diff: float = 0.05
    max_share_over: float = 0.01
    min_label_agreement: float = 0.99
    max_metric_delta: float = 0.01


@dataclass
class VariantResult:
    """What happened to one variant: packaged, refused (outside tolerance) or skipped (no gain)."""

    variant: str
    status: str
    reason: str | None = None
    package: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    latency: dict[str, float] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- model analysis
def analyse(model: Any) -> dict[str, Any]:
    """Op counts, opsets and whether int8 quantization can change anything in this graph."""
    inits = {i.name for i in model.graph.initializer}
    ops = Counter(n.op_type for n in model.graph.node)
    weighted = [n for n in model.graph.node if n.op_type in QUANTIZABLE_OPS and any(i in inits for i in n.input)]
    opset = {d.domain or "ai.onnx": d.version for d in model.opset_import}
    reason = None
    if not weighted:
        trees = sorted(o for o in ops if o in TREE_OPS)
        linear = sorted(o for o in ops if o in LINEAR_ML_OPS)
        if trees:
            reason = (
                f"the model is a tree ensemble ({', '.join(trees)}): its thresholds and leaf values are "
                "ai.onnx.ml attributes that int8 quantization does not touch, so an int8 variant would be "
                "the same model; skipped"
            )
        elif linear:
            reason = (
                f"the model's weights live in {', '.join(linear)} (ai.onnx.ml), which onnxruntime does "
                "not quantize; an int8 variant would be the same model; skipped"
            )
        else:
            reason = "the model has no MatMul/Gemm/Conv weights to quantize; skipped"
    return {
        "ops": dict(ops),
        "opset": opset,
        "quantizable_nodes": len(weighted),
        "no_quantization_reason": reason,
    }


def required_operators(model: Any) -> dict[str, list[str]]:
    """Operators per domain (what a minimal onnxruntime build must include)."""
    found: dict[str, set[str]] = {}
    for node in model.graph.node:
        found.setdefault(node.domain or "ai.onnx", set()).add(node.op_type)
    return {d: sorted(v) for d, v in sorted(found.items())}


def min_onnxruntime(opset: dict[str, int], model_format: str) -> str:
    """The oldest onnxruntime that can run these opsets (the building version for ORT format)."""
    import onnxruntime

    building = ".".join(onnxruntime.__version__.split(".")[:2])
    if model_format == "ort":
        return building  # ORT format files are read by the same or newer releases
    needed = [(1, 0)]
    for domain, version in opset.items():
        table = _ORT_FOR_OPSET if domain == "ai.onnx" else _ORT_FOR_ML_OPSET if domain == "ai.onnx.ml" else None
        if table is None:
            continue
        text = table.get(version, building)
        needed.append(tuple(int(p) for p in text.split(".")))
    return ".".join(str(p) for p in max(needed))


# ---------------------------------------------------------------------------- variants
def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    stack.callback(logger.setLevel, level)
    return stack


def optimize(src: Path, out: Path, *, ort_format: bool = False) -> Path:
    """Offline graph optimization (hardware-independent level), saved as ONNX or ORT format."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3
    if ort_format:
        options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    return out


def quantize_dynamic_variant(src: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZABLE_OPS))
    return out


def quantize_static_variant(src: Path, out: Path, feeds: list[dict[str, np.ndarray]]) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class HoldoutReader(CalibrationDataReader):
        """Feeds holdout batches (already validated by the schema) to the calibrator."""

        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    with _quiet():
        quantize_static(
            str(src),
            str(out),
            HoldoutReader(),
            quant_format=QuantFormat.QOperator,
            op_types_to_quantize=list(QUANTIZABLE_OPS),
            per_channel=False,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return out


# ---------------------------------------------------------------------------- checks
def primary_metric(task: str, metrics: dict[str, Any]) -> tuple[str, float | None]:
    if task == "classification":
        if metrics.get("roc_auc") is not None and len(metrics.get("classes") or []) == 2:
            return "roc_auc", metrics["roc_auc"]
        return "accuracy", metrics.get("accuracy")
    return "r2", metrics.get("r2")


def compare(task: str, ref: Any, got: Any, tol: Tolerance) -> dict[str, Any]:
    """Row-by-row comparison of a variant's prediction with the fp32 prediction."""
    if task == "classification":
        diff = np.abs(np.asarray(ref.probabilities) - np.asarray(got.probabilities)).max(axis=1)
        agree = float(
            np.mean([str(a) == str(b) for a, b in zip(ref.labels.tolist(), got.labels.tolist(), strict=True)])
        )
    else:
        diff = np.abs(ref.values - got.values) / np.maximum(1.0, np.abs(ref.values))
        agree = 1.0
    over = diff > tol.max_prob_diff
    return {
        "rows": int(diff.size),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "rows_over_tolerance": int(over.sum()),
        "share_over_tolerance": float(over.mean()),
        "label_agreement": agree,
    }


def _metrics(task: str, y: Any, pred: Any, classes: list[Any] | None) -> dict[str, Any]:
    from mlship.stats.metrics import classification_metrics, regression_metrics

    if task == "classification":
        return classification_metrics(y, pred.labels, pred.probabilities, classes or [])
    return regression_metrics(y, pred.values)


def measure_latency(
    predictor: Any, one: dict[str, np.ndarray], batch: dict[str, np.ndarray] | None, repeats: int = 200
) -> dict[str, float]:
    """Median and p99 of one-row predictions (ms), and the median of a batch (ms)."""
    for _ in range(10):
        predictor.predict_columns(one)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.predict_columns(one)
        times.append((time.perf_counter() - t0) * 1000)
    out = {"one_row_median_ms": statistics.median(times), "one_row_p99_ms": float(np.quantile(times, 0.99))}
    if batch is not None:
        rows = len(next(iter(batch.values())))
        bt = []
        for _ in range(7):
            t0 = time.perf_counter()
            predictor.predict_columns(batch)
            bt.append((time.perf_counter() - t0) * 1000)
        out.update({"batch_rows": rows, "batch_median_ms": statistics.median(bt)})
    return out


# ---------------------------------------------------------------------------- the build
def _load_holdout(holdout: Any) -> Any:
    if holdout is None or not isinstance(holdout, (str, Path)):
        return holdout
    from mlship.evaluation.export import load_table

    return load_table(holdout)


@dataclass
class EdgeBuildOptions:
    """What ``build_edge`` was asked for beyond the bundle: where, how strict, what to promise."""

    out_dir: Path
    private_key: Any
    tolerance: Tolerance
    architectures: list[str] | None = None
    min_runtime: str | None = None
    calibration_rows: int = 500
    latency_repeats: int = 200


@dataclass
class VariantSpec:
    """One variant being built: its name and the work folder that becomes its package."""

    variant: str
    vdir: Path

    @property
    def model_format(self) -> str:
        return "ort" if self.variant == "ort" else "onnx"

    @property
    def model_file(self) -> str:
        return f"model.{self.model_format}"

    @property
    def target(self) -> Path:
        return self.vdir / self.model_file


@dataclass
class _Reference:
    """The verified source bundle and the fp32 answers every variant is compared with."""

    source: Bundle
    predictor: Any
    model_path: Path
    analysis: dict[str, Any]
    golden: dict[str, Any]
    golden_columns: dict[str, np.ndarray]
    golden_prediction: Any
    holdout_columns: dict[str, np.ndarray] | None
    holdout_prediction: Any
    holdout_labels: Any
    metrics: dict[str, Any] | None
    latency: dict[str, float] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return str(self.predictor.task)

    @property
    def one_row(self) -> dict[str, np.ndarray]:
        return {k: v[:1] for k, v in self.golden_columns.items()}

    @property
    def latency_batch(self) -> dict[str, np.ndarray] | None:
        if self.holdout_columns is None:
            return None
        return {k: v[:1000] for k, v in self.holdout_columns.items()}


def build_edge(
    bundle_uri: str | Path,
    out_dir: str | Path,
    *,
    private_key: Any,
    holdout: Any = None,
    label: str | None = None,
    variants: tuple[str, ...] | list[str] = VARIANTS,
    tolerance: Tolerance | None = None,
    architectures: list[str] | None = None,
    min_runtime: str | None = None,
    calibration_rows: int = 500,
    latency_repeats: int = 200,
    progress: Callable[[str], None] | None = None,
) -> list[VariantResult]:
    """Build, check, sign and pack every requested variant; return one result per variant.

    ``holdout``: a labelled DataFrame or a .csv/.parquet path (label column ``label``, default
    the bundle's lineage label); without it only the golden examples are compared and the
    static int8 variant (which needs calibration data) is skipped. ``private_key`` signs each
    package (Ed25519 key or PEM path). Writes ``out_dir/NAME-VERSION-VARIANT.edge.tar.gz`` and
    ``out_dir/edge-build.json``.
    """
    from mlship.runtime.signing import load_private_key

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise EdgeBuildError(f"unknown variants {unknown}: choose from {', '.join(VARIANTS)}")
    options = EdgeBuildOptions(
        out_dir=Path(out_dir),
        private_key=load_private_key(private_key) if isinstance(private_key, (str, Path)) else private_key,
        tolerance=tolerance or Tolerance(),
        architectures=architectures,
        min_runtime=min_runtime,
        calibration_rows=calibration_rows,
        latency_repeats=latency_repeats,
    )
    ref = _reference(bundle_uri, holdout, label, latency_repeats)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".edge-build-", dir=options.out_dir))
    results: list[VariantResult] = []
    try:
        optimized = optimize(ref.model_path, work / "optimized.onnx")
        for variant in variants:
            if progress is not None:
                progress(f"building variant {variant}")
            spec = VariantSpec(variant, work / variant)
            spec.vdir.mkdir()
            results.append(_build_variant(spec, ref, optimized, options))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _write_report(options.out_dir, ref, results)
    return results


def _reference(bundle_uri: str | Path, holdout: Any, label: str | None, latency_repeats: int) -> _Reference:
    """Open and verify the bundle, predict its golden examples and holdout, time the fp32 model."""
    import onnx

    from mlship.runtime.predictor import Predictor

    source = open_bundle(bundle_uri)
    source.verify()
    predictor = Predictor(source)
    model_path = source.file(source.manifest["model"]["file"])
    analysis = analyse(onnx.load(str(model_path)))
    golden = source.golden
    golden_columns = predictor.schema.validate(golden["inputs"]).columns
    golden_prediction = predictor.predict_columns(golden_columns)
    columns, prediction, labels = _score_holdout(predictor, source, holdout, label)
    metrics = _metrics(predictor.task, labels, prediction, predictor.classes) if labels is not None else None
    ref = _Reference(
        source=source,
        predictor=predictor,
        model_path=model_path,
        analysis=analysis,
        golden=golden,
        golden_columns=golden_columns,
        golden_prediction=golden_prediction,
        holdout_columns=columns,
        holdout_prediction=prediction,
        holdout_labels=labels,
        metrics=metrics,
    )
    ref.latency = measure_latency(predictor, ref.one_row, ref.latency_batch, latency_repeats)
    return ref


def _score_holdout(
    predictor: Any, source: Bundle, holdout: Any, label: str | None
) -> tuple[dict[str, np.ndarray] | None, Any, Any]:
    """The holdout's schema-valid columns, their fp32 prediction and labels (``None`` without one)."""
    frame = _load_holdout(holdout)
    if frame is None:
        return None, None, None
    label = label or (source.manifest.get("lineage") or {}).get("label")
    scored = predictor.score(frame, allow_extra=True)
    if not scored.valid.any():
        raise EdgeBuildError(f"no holdout row fits the model's schema: {scored.validated.errors[:3]}")
    columns = {k: v[scored.valid] for k, v in scored.validated.columns.items()}
    labels = frame[label].to_numpy()[scored.valid] if label and label in frame.columns else None
    return columns, scored.prediction, labels


def _build_variant(spec: VariantSpec, ref: _Reference, optimized: Path, options: EdgeBuildOptions) -> VariantResult:
    """Convert one variant, compare it with fp32 and package it when it is within tolerance."""
    from mlship.runtime.predictor import Predictor

    result = VariantResult(spec.variant, "skipped")
    if not _convert(spec, ref, optimized, options.calibration_rows, result):
        return result
    _assemble(ref.source, spec.vdir, spec.model_file, spec.variant)
    candidate = Predictor(Bundle(spec.vdir))
    golden_got = candidate.predict_columns(ref.golden_columns)
    result.checks, problems = _check_variant(ref, candidate, golden_got, options.tolerance)
    result.size_bytes = spec.target.stat().st_size
    result.latency = measure_latency(candidate, ref.one_row, ref.latency_batch, options.latency_repeats)
    if problems:
        result.status = "refused"
        result.reason = f"{spec.variant} is outside tolerance and was not packaged: " + "; ".join(problems)
        return result
    _package(spec, ref, options, result, golden_got)
    return result


def _convert(spec: VariantSpec, ref: _Reference, optimized: Path, calibration_rows: int, result: VariantResult) -> bool:
    """Write the variant's model file; when there is none, say why on ``result`` and return False."""
    try:
        reason = _write_variant_model(spec, ref, optimized, calibration_rows)
    except Exception as exc:  # onnxruntime's optimizer/quantizer raise many types
        result.status, result.reason = "refused", f"{spec.variant} conversion failed: {str(exc)[:300]}"
        return False
    if reason is None and spec.variant.startswith("int8") and not _has_quantized_ops(spec.target):
        reason = "the quantizer changed nothing in this graph; skipped"
    result.reason = reason
    return reason is None


def _write_variant_model(spec: VariantSpec, ref: _Reference, optimized: Path, calibration_rows: int) -> str | None:
    """Optimize or quantize the model into ``spec.target``; return the reason when it is skipped."""
    if spec.variant == "fp32":
        shutil.copyfile(optimized, spec.target)
    elif spec.variant == "ort":
        optimize(optimized, spec.target, ort_format=True)
    elif ref.analysis["quantizable_nodes"] == 0:
        return str(ref.analysis["no_quantization_reason"])
    elif spec.variant == "int8-dynamic":
        quantize_dynamic_variant(ref.model_path, spec.target)
    elif ref.holdout_columns is None:
        return "static quantization needs calibration data: pass --holdout; skipped"
    else:
        feeds = ref.predictor.onnx_feeds({k: v[:calibration_rows] for k, v in ref.holdout_columns.items()})
        n = len(next(iter(feeds.values())))
        chunks = [{k: v[i : i + 100] for k, v in feeds.items()} for i in range(0, n, 100)]
        quantize_static_variant(ref.model_path, spec.target, chunks)
    return None


def _has_quantized_ops(model_path: Path) -> bool:
    import onnx

    return any(n.op_type in QUANTIZED_OPS for n in onnx.load(str(model_path)).graph.node)


def _check_variant(
    ref: _Reference, candidate: Any, golden_got: Any, tol: Tolerance
) -> tuple[dict[str, Any], list[str]]:
    """The variant's checks against fp32 (golden, holdout, primary metric) and what failed."""
    golden = compare(ref.task, ref.golden_prediction, golden_got, tol)
    checks: dict[str, Any] = {"tolerance": asdict(tol), "golden": golden}
    problems = []
    if golden["label_agreement"] < 1.0 or golden["rows_over_tolerance"]:
        problems.append(
            f"golden examples: label agreement {golden['label_agreement']:.2f}, "
            f"{golden['rows_over_tolerance']} rows differ by more than {tol.max_prob_diff:g} "
            f"(max {golden['max_abs_diff']:.3g})"
        )
    if ref.holdout_columns is None:
        checks["holdout"] = None
        return checks, problems
    got = candidate.predict_columns(ref.holdout_columns)
    checks["holdout"] = compare(ref.task, ref.holdout_prediction, got, tol)
    problems += _holdout_problems(checks["holdout"], tol)
    metric = _metric_check(ref, got) if ref.metrics is not None else None
    if metric is not None:
        checks["metric"] = metric
        if metric["drop"] > tol.max_metric_delta:
            problems.append(
                f"holdout {metric['name']} drops by {metric['drop']:.4f} ({metric['fp32']:.4f} -> "
                f"{metric['variant']:.4f}; allowed {tol.max_metric_delta})"
            )
    return checks, problems


def _holdout_problems(holdout: dict[str, Any], tol: Tolerance) -> list[str]:
    problems = []
    if holdout["label_agreement"] < tol.min_label_agreement:
        problems.append(f"holdout label agreement {holdout['label_agreement']:.4f} < {tol.min_label_agreement}")
    if holdout["share_over_tolerance"] > tol.max_share_over:
        problems.append(
            f"{holdout['share_over_tolerance']:.2%} of holdout rows differ by more than "
            f"{tol.max_prob_diff:g} (max {holdout['max_abs_diff']:.3g}; allowed "
            f"{tol.max_share_over:.2%})"
        )
    return problems


def _metric_check(ref: _Reference, got: Any) -> dict[str, Any] | None:
    """The primary metric on the holdout, fp32 against the variant (``None`` when undefined)."""
    name, base = primary_metric(ref.task, ref.metrics or {})
    _, value = primary_metric(ref.task, _metrics(ref.task, ref.holdout_labels, got, ref.predictor.classes))
    if base is None or value is None:
        return None
    return {"name": name, "fp32": base, "variant": value, "drop": float(base - value)}


def _package(
    spec: VariantSpec, ref: _Reference, options: EdgeBuildOptions, result: VariantResult, golden_got: Any
) -> None:
    """Write the variant's golden file and manifest, check, sign, verify and pack it."""
    from mlship.runtime.predictor import Predictor

    _write_golden(spec, ref, golden_got, options.tolerance)
    _write_manifest(spec.vdir, _edge_manifest(spec, ref, result, options))
    Predictor(Bundle(spec.vdir)).check_golden()
    sign_bundle(spec.vdir, options.private_key)
    Bundle(spec.vdir).verify(options.private_key.public_key())
    source = ref.source
    pkg = pack_bundle(spec.vdir, options.out_dir / package_filename(source.name, source.version, spec.variant))
    result.status, result.package, result.sha256 = "packaged", str(pkg), sha256_file(pkg)


def _write_report(out: Path, ref: _Reference, results: list[VariantResult]) -> None:
    """``edge-build.json``: the source bundle, its analysis and fp32 numbers, and every variant."""
    report = {
        "bundle": {"name": ref.source.name, "version": ref.source.version, "path": str(ref.source.path)},
        "analysis": ref.analysis,
        "fp32_source": {
            "size_bytes": ref.model_path.stat().st_size,
            "latency": ref.latency,
            "metrics": ref.metrics,
        },
        "variants": [r.to_dict() for r in results],
    }
    (out / "edge-build.json").write_text(json.dumps(report, indent=2, default=str) + "\n")


def _assemble(source: Bundle, vdir: Path, model_file: str, variant: str) -> None:
    """Copy what a device needs (golden examples, profile, explainer) next to the variant's model file.

    The explainer files go as they are: an exact one (tree ensemble, linear model) explains
    ai.onnx.ml operators that int8 quantization leaves alone, so only the fp32 variant carries it;
    the sampling one evaluates the variant's own model.
    """
    for name in (GOLDEN_FILE, PROFILE_FILE):
        if source.file(name).is_file():
            shutil.copyfile(source.file(name), vdir / name)
    if source.file(EXPLAIN_DIR).is_dir():
        shutil.copytree(source.file(EXPLAIN_DIR), vdir / EXPLAIN_DIR)
    manifest = json.loads(json.dumps(source.manifest))
    manifest["model"] = {**manifest["model"], "file": model_file}
    manifest.pop("files", None)
    if "sizes" in manifest:  # the package has other files than the bundle: its sizes are recorded anew
        manifest["sizes"] = {}
    _write_manifest(vdir, manifest)


def _write_golden(spec: VariantSpec, ref: _Reference, got: Any, tol: Tolerance) -> None:
    """The variant's golden file: the same inputs, the variant's own outputs (checked against fp32)."""
    golden = ref.golden
    tolerance = float(golden.get("tolerance", 1e-4))
    if spec.variant.startswith("int8"):
        tolerance = max(tolerance, tol.max_prob_diff / 10)  # int8 kernels differ slightly across CPUs
    if ref.task == "classification":
        labels = python_values(got.labels)
        expected = {"labels": labels, "probabilities": np.asarray(got.probabilities).tolist()}
    else:
        expected = {"values": got.values.tolist()}
    data = {
        "inputs": golden["inputs"],
        "expected": expected,
        "tolerance": tolerance,
        "fp32_expected": golden["expected"],
        "source": f"{ref.source.name}:{ref.source.version}",
    }
    (spec.vdir / GOLDEN_FILE).write_text(json.dumps(data, indent=2) + "\n")


def _edge_manifest(spec: VariantSpec, ref: _Reference, result: VariantResult, options: EdgeBuildOptions) -> dict:
    """The variant's manifest: the source's, with its model, golden file, edge section and hashes."""
    import onnxruntime

    vdir = spec.vdir
    manifest = json.loads((vdir / MANIFEST).read_text())
    opset, ops = _variant_operators(spec, ref)
    golden = json.loads((vdir / GOLDEN_FILE).read_text())
    manifest["model"].update({"file": spec.model_file, "opset": opset, "format": spec.model_format})
    manifest["golden"] = {
        "file": GOLDEN_FILE,
        "count": len(golden["inputs"]),
        "tolerance": golden["tolerance"],
    }
    manifest["edge"] = {
        "format": EDGE_FORMAT,
        "variant": spec.variant,
        "source": {
            "name": ref.source.name,
            "version": ref.source.version,
            "model_sha256": sha256_file(ref.model_path),
            "size_bytes": ref.model_path.stat().st_size,
        },
        "constraints": {
            "opset": opset,
            "min_onnxruntime": options.min_runtime or min_onnxruntime(opset, spec.model_format),
            "architectures": options.architectures or [ANY_ARCH],
            "model_format": spec.model_format,
            "required_operators": ops,
        },
        "checks": result.checks,
        "size_bytes": result.size_bytes,
        "latency": {"variant": result.latency, "fp32_source": ref.latency},
        "built_with": {"onnxruntime": onnxruntime.__version__},
        "fp32_metrics": ref.metrics,
    }
    manifest["files"] = hash_files(vdir)
    if "sizes" in manifest:  # byte sizes of exactly the listed files (extraction checks them first)
        manifest["sizes"] = {rel: (vdir / rel).stat().st_size for rel in manifest["files"]}
    return manifest


def _variant_operators(spec: VariantSpec, ref: _Reference) -> tuple[dict[str, int], dict[str, list[str]] | None]:
    """The variant's opsets and operators (an ORT-format file is not readable by onnx: the source's opsets)."""
    if spec.model_format == "ort":
        return dict(ref.analysis["opset"]), None
    import onnx

    model = onnx.load(str(spec.target))
    return {d.domain or "ai.onnx": d.version for d in model.opset_import}, required_operators(model)
