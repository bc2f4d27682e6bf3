"""A signed bundle whose model emits NaN for some inputs: the model-side failure every path must catch.

The copy's ONNX graph adds ``Sqrt(threshold - x) * 0`` to the classifier's probabilities: 0 while
``x <= threshold``, NaN above it. The golden examples stay below the threshold, so the bundle
verifies and passes its golden check like a real model with a latent numerical bug.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

FEATURE = "monthly_charges"
THRESHOLD = 1_000.0  # far above the churn data's range: only crafted requests cross it


def _inject_nan(model_path: Path, feature: str, threshold: float) -> None:
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    graph = model.graph
    target = next(o for o in graph.output if o.name == "probabilities")
    producer = next(n for n in graph.node if target.name in n.output)
    raw = "probabilities_before_nan"
    producer.output[list(producer.output).index(target.name)] = raw
    graph.initializer.extend([
        helper.make_tensor("nan_threshold", TensorProto.FLOAT, [], [threshold]),
        helper.make_tensor("nan_zero", TensorProto.FLOAT, [], [0.0]),
    ])
    graph.node.extend([
        helper.make_node("Sub", ["nan_threshold", feature], ["nan_room"]),
        helper.make_node("Sqrt", ["nan_room"], ["nan_root"]),
        helper.make_node("Mul", ["nan_root", "nan_zero"], ["nan_term"]),
        helper.make_node("Add", [raw, "nan_term"], [target.name]),
    ])
    onnx.checker.check_model(model)
    onnx.save(model, str(model_path))


def nonfinite_copy(src: Path, dest: Path, private_key: Any, *, feature: str = FEATURE,
                   threshold: float = THRESHOLD) -> Path:
    """A re-hashed, re-signed copy of ``src`` whose probabilities are NaN when ``feature > threshold``."""
    from mlship.bundle import MANIFEST, MODEL_FILE, SIGNATURE, hash_files, sign_bundle, write_manifest

    shutil.copytree(src, dest)
    manifest = json.loads((dest / MANIFEST).read_text())
    _inject_nan(dest / MODEL_FILE, feature, threshold)
    (dest / SIGNATURE).unlink(missing_ok=True)
    manifest["files"] = hash_files(dest)
    write_manifest(dest, manifest)
    sign_bundle(dest, private_key)
    return dest
