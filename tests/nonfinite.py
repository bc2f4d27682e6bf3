"""A signed bundle whose model emits NaN for some inputs: the model-side failure every path must catch.

The copy's ONNX graph replaces the classifier's probabilities with NaN where ``x > threshold``
(labels unchanged). The golden examples stay below the threshold, so the bundle
verifies and passes its golden check like a real model with a latent numerical bug.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

FEATURE = "monthly_charges"
THRESHOLD = 1_000.0  # far above the churn data's range: only crafted requests cross it


def inject_nan(model_path: Path, feature: str = FEATURE, threshold: float = THRESHOLD) -> None:
    """Rewrite an ONNX classifier so that its ``probabilities`` output is NaN where ``feature > threshold``.

    The graph's own consumers of the probabilities (an MLP's ArgMax) keep the untouched tensor, so
    labels stay right and only the answer carries NaN.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    probs = next(o for o in graph.output if o.name == "probabilities")
    for node in graph.node:  # the original probabilities become an inner tensor
        node.output[:] = ["probabilities_raw" if name == probs.name else name for name in node.output]
        node.input[:] = ["probabilities_raw" if name == probs.name else name for name in node.input]
    graph.initializer.extend([numpy_helper.from_array(np.array(threshold, np.float32), "nan_threshold"),
                              numpy_helper.from_array(np.array(np.nan, np.float32), "nan_value")])
    graph.node.extend([helper.make_node("Greater", [feature, "nan_threshold"], ["nan_rows"]),
                       helper.make_node("Where", ["nan_rows", "nan_value", "probabilities_raw"], [probs.name])])
    onnx.checker.check_model(model)
    onnx.save(model, str(model_path))


def nonfinite_copy(src: Path, dest: Path, private_key: Any, *, feature: str = FEATURE,
                   threshold: float = THRESHOLD) -> Path:
    """A re-hashed, re-signed copy of ``src`` whose probabilities are NaN when ``feature > threshold``."""
    from mlship.runtime.bundle import (
        MANIFEST,
        MODEL_FILE,
        SIGNATURE,
        file_sizes,
        hash_files,
        sign_bundle,
        write_manifest,
    )

    shutil.copytree(src, dest)
    manifest = json.loads((dest / MANIFEST).read_text())
    inject_nan(dest / MODEL_FILE, feature, threshold)
    (dest / SIGNATURE).unlink(missing_ok=True)
    manifest["files"] = hash_files(dest)
    if "sizes" in manifest:
        manifest["sizes"] = file_sizes(dest)
    write_manifest(dest, manifest)
    sign_bundle(dest, private_key)
    return dest
