"""Batch fixtures: one real local Spark session per test session, a range-enforcing bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A real SparkSession (local[2]); started once (~10 s) and shared by every batch test."""
    from batch.spark import get_session

    session = get_session("local[2]", app_name="mlship-batch-tests",
                          conf={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def strict_bundle(tmp_path_factory: pytest.TempPathFactory, churn_split: tuple[Any, Any], churn_model: Any,
                  signing_keys: Path) -> Path:
    """The churn pipeline exported with enforce_range=True (so out-of-range rows are rejected)."""
    from mlship.export import export_bundle

    out = tmp_path_factory.mktemp("batch-bundles") / "churn-strict"
    return export_bundle(churn_model, churn_split[1], "churned", out, name="churn", version="7",
                         sensitive="gender", private_key=signing_keys / "mlship.key", enforce_range=True)


@pytest.fixture(scope="session")
def holdout(churn_split: tuple[Any, Any]) -> Any:
    """Holdout rows with a unique customer id (all inside the strict bundle's ranges)."""
    frame = churn_split[1].copy()
    frame.insert(0, "customer_id", [f"c{i:05d}" for i in range(len(frame))])
    return frame


@pytest.fixture(scope="session")
def nan_above() -> float:
    """``monthly_charges`` above this make ``nan_bundle``'s probabilities NaN (golden rows stay below)."""
    return 1000.0


@pytest.fixture(scope="session")
def nan_bundle(tmp_path_factory: pytest.TempPathFactory, churn_bundle: Path, signing_keys: Path,
               nan_above: float) -> Path:
    """The churn bundle with its ONNX graph wrapped so that probabilities are NaN when
    ``monthly_charges > nan_above`` (labels unchanged), re-hashed, signed and packed with the
    same bundle code as ``mlship export``: a signed, valid bundle whose model emits NaN."""
    import shutil

    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from mlship.bundle import MODEL_FILE, Bundle, hash_files, pack_bundle, sign_bundle, write_manifest
    from mlship.signing import load_private_key

    out = tmp_path_factory.mktemp("nan-bundles") / "churn-nan"
    shutil.copytree(churn_bundle, out)
    model = onnx.load(out / MODEL_FILE)
    graph = model.graph
    probs = next(o for o in graph.output if o.name == "probabilities")
    for node in graph.node:  # the original probabilities become an inner tensor
        node.output[:] = ["probabilities_raw" if name == probs.name else name for name in node.output]
    graph.initializer.extend([numpy_helper.from_array(np.array(nan_above, np.float32), "nan_threshold"),
                              numpy_helper.from_array(np.array(np.nan, np.float32), "nan_value")])
    graph.node.extend([helper.make_node("Greater", ["monthly_charges", "nan_threshold"], ["nan_rows"]),
                       helper.make_node("Where", ["nan_rows", "nan_value", "probabilities_raw"],
                                        ["probabilities"])])
    onnx.checker.check_model(model)
    (out / MODEL_FILE).write_bytes(model.SerializeToString())
    manifest = Bundle(out).manifest
    manifest["files"] = hash_files(out)
    write_manifest(out, manifest)
    sign_bundle(out, load_private_key(signing_keys / "mlship.key"))
    pack_bundle(out, out.with_name(out.name + ".tar.gz"))
    return out
