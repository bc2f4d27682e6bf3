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
    import onnx

    from mlship.runtime.predictor import Predictor
    from mlship.runtime.signing import load_private_key

    def step(msg: str) -> None:
        if progress is not None:
            progress(msg)

    tol = tolerance or Tolerance()
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise EdgeBuildError(f"unknown variants {unknown}: choose from {', '.join(VARIANTS)}")
    if isinstance(private_key, (str, Path)):
        private_key = load_private_key(private_key)
    source = open_bundle(bundle_uri)
    source.verify()
    ref = Predictor(source)
    task = ref.task
    src_model_path = source.file(source.manifest["model"]["file"])
    info = analyse(onnx.load(str(src_model_path)))

    golden = source.golden
    golden_cols = ref.schema.validate(golden["inputs"]).columns
    golden_ref = ref.predict_columns(golden_cols)
    frame = _load_holdout(holdout)
    cols = y = hold_ref = None
    if frame is not None:
        label = label or (source.manifest.get("lineage") or {}).get("label")
        scored = ref.score(frame, allow_extra=True)
        if not scored.valid.any():
            raise EdgeBuildError(f"no holdout row fits the model's schema: {scored.validated.errors[:3]}")
        cols = {k: v[scored.valid] for k, v in scored.validated.columns.items()}
        hold_ref = scored.prediction
        if label and label in frame.columns:
            y = frame[label].to_numpy()[scored.valid]
    classes = ref.classes
    ref_metrics = _metrics(task, y, hold_ref, classes) if y is not None else None
    one = {k: v[:1] for k, v in golden_cols.items()}
    batch = {k: v[:1000] for k, v in cols.items()} if cols is not None else None
    fp32_latency = measure_latency(ref, one, batch, latency_repeats)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".edge-build-", dir=out))
    results: list[VariantResult] = []
    try:
        optimized = optimize(src_model_path, work / "optimized.onnx")
        for variant in variants:
            step(f"building variant {variant}")
            result = VariantResult(variant, "skipped")
            results.append(result)
            model_file = "model.ort" if variant == "ort" else "model.onnx"
            vdir = work / variant
            vdir.mkdir()
            target = vdir / model_file
            try:
                if variant == "fp32":
                    shutil.copyfile(optimized, target)
                elif variant == "ort":
                    optimize(optimized, target, ort_format=True)
                elif info["quantizable_nodes"] == 0:
                    result.reason = info["no_quantization_reason"]
                    continue
                elif variant == "int8-dynamic":
                    quantize_dynamic_variant(src_model_path, target)
                else:
                    if cols is None:
                        result.reason = "static quantization needs calibration data: pass --holdout; skipped"
                        continue
                    feeds = ref.onnx_feeds({k: v[:calibration_rows] for k, v in cols.items()})
                    n = len(next(iter(feeds.values())))
                    chunks = [{k: v[i : i + 100] for k, v in feeds.items()} for i in range(0, n, 100)]
                    quantize_static_variant(src_model_path, target, chunks)
            except Exception as exc:  # onnxruntime's optimizer/quantizer raise many types
                result.status, result.reason = "refused", f"{variant} conversion failed: {str(exc)[:300]}"
                continue
            if variant.startswith("int8"):
                qmodel = onnx.load(str(target))
                if not any(n.op_type in QUANTIZED_OPS for n in qmodel.graph.node):
                    result.reason = "the quantizer changed nothing in this graph; skipped"
                    continue
            _assemble(source, vdir, model_file, variant)
            candidate = Predictor(Bundle(vdir))
            golden_got = candidate.predict_columns(golden_cols)
            checks: dict[str, Any] = {
                "tolerance": asdict(tol),
                "golden": compare(task, golden_ref, golden_got, tol),
            }
            problems = []
            g = checks["golden"]
            if g["label_agreement"] < 1.0 or g["rows_over_tolerance"]:
                problems.append(
                    f"golden examples: label agreement {g['label_agreement']:.2f}, "
                    f"{g['rows_over_tolerance']} rows differ by more than {tol.max_prob_diff:g} "
                    f"(max {g['max_abs_diff']:.3g})"
                )
            if cols is not None:
                got = candidate.predict_columns(cols)
                h = checks["holdout"] = compare(task, hold_ref, got, tol)
                if h["label_agreement"] < tol.min_label_agreement:
                    problems.append(f"holdout label agreement {h['label_agreement']:.4f} < {tol.min_label_agreement}")
                if h["share_over_tolerance"] > tol.max_share_over:
                    problems.append(
                        f"{h['share_over_tolerance']:.2%} of holdout rows differ by more than "
                        f"{tol.max_prob_diff:g} (max {h['max_abs_diff']:.3g}; allowed "
                        f"{tol.max_share_over:.2%})"
                    )
                if ref_metrics is not None:
                    name, base = primary_metric(task, ref_metrics)
                    _, value = primary_metric(task, _metrics(task, y, got, classes))
                    if base is not None and value is not None:
                        delta = float(base - value)
                        checks["metric"] = {"name": name, "fp32": base, "variant": value, "drop": delta}
                        if delta > tol.max_metric_delta:
                            problems.append(
                                f"holdout {name} drops by {delta:.4f} ({base:.4f} -> {value:.4f}; "
                                f"allowed {tol.max_metric_delta})"
                            )
            else:
                checks["holdout"] = None
            result.checks = checks
            result.size_bytes = target.stat().st_size
            result.latency = measure_latency(candidate, one, batch, latency_repeats)
            if problems:
                result.status = "refused"
                result.reason = f"{variant} is outside tolerance and was not packaged: " + "; ".join(problems)
                continue
            _write_golden(vdir, golden, golden_got, task, variant, tol, source)
            manifest = _edge_manifest(
                source,
                vdir,
                model_file,
                variant,
                target,
                src_model_path,
                result,
                fp32_latency,
                architectures,
                min_runtime,
                info,
                ref_metrics,
            )
            _write_manifest(vdir, manifest)
            Predictor(Bundle(vdir)).check_golden()
            sign_bundle(vdir, private_key)
            Bundle(vdir).verify(private_key.public_key())
            pkg = pack_bundle(vdir, out / package_filename(source.name, source.version, variant))
            result.status, result.package, result.sha256 = "packaged", str(pkg), sha256_file(pkg)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "bundle": {"name": source.name, "version": source.version, "path": str(source.path)},
        "analysis": info,
        "fp32_source": {
            "size_bytes": src_model_path.stat().st_size,
            "latency": fp32_latency,
            "metrics": ref_metrics,
        },
        "variants": [r.to_dict() for r in results],
    }
    (out / "edge-build.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return results


def _assemble(source: Bundle, vdir: Path, model_file: str, variant: str) -> None:
    """Copy what a device needs (golden examples, profile) next to the variant's model file."""
    for name in (GOLDEN_FILE, PROFILE_FILE):
        if source.file(name).is_file():
            shutil.copyfile(source.file(name), vdir / name)
    manifest = json.loads(json.dumps(source.manifest))
    manifest["model"] = {**manifest["model"], "file": model_file}
    manifest.pop("files", None)
    if "sizes" in manifest:  # the package has other files than the bundle: its sizes are recorded anew
        manifest["sizes"] = {}
    _write_manifest(vdir, manifest)


def _write_golden(
    vdir: Path, golden: dict[str, Any], got: Any, task: str, variant: str, tol: Tolerance, source: Bundle
) -> None:
    """The variant's golden file: the same inputs, the variant's own outputs (checked against fp32)."""
    tolerance = float(golden.get("tolerance", 1e-4))
    if variant.startswith("int8"):
        tolerance = max(tolerance, tol.max_prob_diff / 10)  # int8 kernels differ slightly across CPUs
    if task == "classification":
        labels = [v.item() if hasattr(v, "item") else v for v in got.labels.tolist()]
        expected = {"labels": labels, "probabilities": np.asarray(got.probabilities).tolist()}
    else:
        expected = {"values": got.values.tolist()}
    data = {
        "inputs": golden["inputs"],
        "expected": expected,
        "tolerance": tolerance,
        "fp32_expected": golden["expected"],
        "source": f"{source.name}:{source.version}",
    }
    (vdir / GOLDEN_FILE).write_text(json.dumps(data, indent=2) + "\n")


def _edge_manifest(
    source: Bundle,
    vdir: Path,
    model_file: str,
    variant: str,
    target: Path,
    src_model: Path,
    result: VariantResult,
    fp32_latency: dict[str, float],
    architectures: list[str] | None,
    min_runtime: str | None,
    info: dict[str, Any],
    ref_metrics: dict[str, Any] | None,
) -> dict:
    import onnxruntime

    manifest = json.loads((vdir / MANIFEST).read_text())
    model_format = "ort" if variant == "ort" else "onnx"
    if model_format == "onnx":
        import onnx

        model = onnx.load(str(target))
        opset = {d.domain or "ai.onnx": d.version for d in model.opset_import}
        ops = required_operators(model)
    else:
        opset, ops = dict(info["opset"]), None
    golden = json.loads((vdir / GOLDEN_FILE).read_text())
    manifest["model"].update({"file": model_file, "opset": opset, "format": model_format})
    manifest["golden"] = {
        "file": GOLDEN_FILE,
        "count": len(golden["inputs"]),
        "tolerance": golden["tolerance"],
    }
    manifest["edge"] = {
        "format": EDGE_FORMAT,
        "variant": variant,
        "source": {
            "name": source.name,
            "version": source.version,
            "model_sha256": sha256_file(src_model),
            "size_bytes": src_model.stat().st_size,
        },
        "constraints": {
            "opset": opset,
            "min_onnxruntime": min_runtime or min_onnxruntime(opset, model_format),
            "architectures": architectures or [ANY_ARCH],
            "model_format": model_format,
            "required_operators": ops,
        },
        "checks": result.checks,
        "size_bytes": result.size_bytes,
        "latency": {"variant": result.latency, "fp32_source": fp32_latency},
        "built_with": {"onnxruntime": onnxruntime.__version__},
        "fp32_metrics": ref_metrics,
    }
    manifest["files"] = hash_files(vdir)
    if "sizes" in manifest:  # byte sizes of exactly the listed files (extraction checks them first)
        manifest["sizes"] = {rel: (vdir / rel).stat().st_size for rel in manifest["files"]}
    return manifest
