"""`mlship edge build`: variants, tolerance checks, tree-ensemble detection, package format."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

from mlship.edge.build import Tolerance, build_edge
from mlship.edge.package import EDGE_FORMAT, check_constraints, verify_package

from mlship.runtime.archive import extract_tarball
from mlship.runtime.bundle import Bundle
from mlship.runtime.predictor import Predictor
from mlship.runtime.signing import key_id, load_public_key

REPO = Path(__file__).resolve().parents[2]


def test_mlp_variants_are_packaged_within_tolerance(mlp_build, signing_keys) -> None:
    assert {v: r.status for v, r in mlp_build.items()} == {
        "fp32": "packaged",
        "int8-dynamic": "packaged",
        "int8-static": "packaged",
        "ort": "packaged",
    }
    fp32 = mlp_build["fp32"]
    for variant in ("int8-dynamic", "int8-static"):
        r = mlp_build[variant]
        assert r.size_bytes < fp32.size_bytes  # int8 weights
        tol = Tolerance()
        hold = r.checks["holdout"]
        assert hold["share_over_tolerance"] <= tol.max_share_over
        assert hold["label_agreement"] >= tol.min_label_agreement
        assert hold["max_abs_diff"] > 0  # quantization really changed the numbers
        assert r.checks["metric"]["drop"] <= tol.max_metric_delta
        assert r.checks["golden"]["label_agreement"] == 1.0
    key = load_public_key(signing_keys / "mlship.pub")
    for r in mlp_build.values():
        path = extract_tarball(r.package)
        bundle = verify_package(path, {key_id(key): key})
        edge = bundle.manifest["edge"]
        assert edge["format"] == EDGE_FORMAT and edge["variant"] == r.variant
        assert edge["size_bytes"] == r.size_bytes and edge["latency"]["variant"]["one_row_median_ms"] > 0
        cons = edge["constraints"]
        assert cons["opset"]["ai.onnx"] >= 1 and cons["min_onnxruntime"] and cons["architectures"] == ["any"]
        assert check_constraints(bundle.manifest) == []
        assert check_constraints(bundle.manifest, runtime_version="1.0.0")  # too old a runtime is named
        assert "model_card.html" not in bundle.manifest["files"]  # devices get only what they need
        # the shared predictor loads the package like any bundle and checks its golden examples
        predictor = Predictor.load(r.package, public_key=key)
        assert predictor.model_version == "1.0.0"
    assert Bundle(extract_tarball(mlp_build["ort"].package)).manifest["model"]["file"] == "model.ort"
    with tarfile.open(mlp_build["int8-dynamic"].package) as tar:
        tar_names = tar.getnames()
    assert {"model.onnx", "manifest.json", "signature.json", "golden.json"} <= set(tar_names)


def test_tree_ensemble_skips_quantization_and_says_why(churn_bundle, churn_split, signing_keys, tmp_path) -> None:
    results = {
        r.variant: r
        for r in build_edge(
            churn_bundle, tmp_path, private_key=signing_keys / "mlship.key", holdout=churn_split[1], latency_repeats=10
        )
    }
    for variant in ("int8-dynamic", "int8-static"):
        assert results[variant].status == "skipped"
        assert "tree ensemble (TreeEnsembleClassifier)" in results[variant].reason
        assert results[variant].package is None
    assert results["fp32"].status == "packaged" and results["ort"].status == "packaged"
    report = json.loads((tmp_path / "edge-build.json").read_text())
    assert report["analysis"]["quantizable_nodes"] == 0
    assert sorted(p.name for p in tmp_path.glob("*.edge.tar.gz")) == [
        "churn-1-fp32.edge.tar.gz",
        "churn-1-ort.edge.tar.gz",
    ]


def test_variant_outside_tolerance_is_refused(mlp_bundle, churn_split, signing_keys, tmp_path) -> None:
    strict = Tolerance(max_prob_diff=1e-4, max_share_over=0.0)
    results = {
        r.variant: r
        for r in build_edge(
            mlp_bundle,
            tmp_path,
            private_key=signing_keys / "mlship.key",
            holdout=churn_split[1],
            tolerance=strict,
            variants=["fp32", "int8-dynamic"],
            latency_repeats=5,
        )
    }
    refused = results["int8-dynamic"]
    assert refused.status == "refused" and refused.package is None
    assert "outside tolerance and was not packaged" in refused.reason and "differ by more than 0.0001" in refused.reason
    assert not list(tmp_path.glob("*int8*"))
    assert results["fp32"].status == "packaged"  # offline optimization does not change the numbers


def test_cli_build_and_one_line_errors(mlp_bundle, signing_keys, tmp_path) -> None:
    def edge_build(variant: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mlship", "edge", "build", str(mlp_bundle), "--out", str(tmp_path / "o"),
             "--key", str(signing_keys / "mlship.key"), "--variant", variant],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )

    ok = edge_build("int8-dynamic")
    assert ok.returncode == 0, ok.stderr
    assert "int8-dynamic" in ok.stdout and "packaged" in ok.stdout
    assert (tmp_path / "o" / "churn-mlp-1.0.0-int8-dynamic.edge.tar.gz").is_file()
    bad = edge_build("int4")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: unknown variants ['int4']: choose from fp32, int8-dynamic, int8-static, ort"
    ]
