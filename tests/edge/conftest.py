"""Edge fixtures: an MLP bundle (quantizable), its edge packages, re-versioned packages, devices."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import repack


@pytest.fixture(scope="session")
def mlp_bundle(tmp_path_factory: pytest.TempPathFactory, churn_split: tuple[Any, Any], signing_keys: Path) -> Path:
    """A signed bundle of a ColumnTransformer + MLP pipeline (MatMul weights: quantization applies)."""
    from sklearn.neural_network import MLPClassifier

    from mlship.evaluation.export import export_bundle
    from mlship.local.train import churn_pipeline

    train, holdout = churn_split
    pipe = churn_pipeline("mlp")
    pipe.set_params(
        model=MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-2, max_iter=300, early_stopping=True, random_state=0)
    )
    pipe.fit(train.drop(columns=["churned"]), train["churned"])
    out = tmp_path_factory.mktemp("edge-bundles") / "churn-mlp"
    return export_bundle(
        pipe,
        holdout,
        "churned",
        out,
        name="churn-mlp",
        version="1.0.0",
        sensitive="gender",
        private_key=signing_keys / "mlship.key",
        tarball=False,
    )


@pytest.fixture(scope="session")
def mlp_build(
    tmp_path_factory: pytest.TempPathFactory, mlp_bundle: Path, churn_split: tuple[Any, Any], signing_keys: Path
) -> dict[str, Any]:
    """``build_edge`` results of the MLP bundle, keyed by variant."""
    from mlship.edge.build import build_edge

    out = tmp_path_factory.mktemp("edge-packages")
    results = build_edge(
        mlp_bundle, out, private_key=signing_keys / "mlship.key", holdout=churn_split[1], latency_repeats=20
    )
    return {r.variant: r for r in results}


@pytest.fixture(scope="session")
def versioned(
    tmp_path_factory: pytest.TempPathFactory, mlp_build: dict[str, Any], signing_keys: Path
) -> Callable[[str, str], Path]:
    """``versioned(version, variant="fp32")``: a signed package of the MLP at that version (cached)."""
    root = tmp_path_factory.mktemp("versioned")
    cache: dict[tuple[str, str], Path] = {}

    def make(version: str, variant: str = "fp32") -> Path:
        if (version, variant) not in cache:
            src = Path(mlp_build[variant].package)
            cache[(version, variant)] = repack(
                src,
                root / f"churn-mlp-{version}-{variant}.edge.tar.gz",
                version=version,
                key=signing_keys / "mlship.key",
            )
        return cache[(version, variant)]

    return make


@pytest.fixture
def device(tmp_path: Path, signing_keys: Path, versioned: Callable[..., Path]) -> Any:
    """A device with version 1.0.0 of the MLP installed."""
    from mlship.edge.agent.device import Device

    dev = Device.init(tmp_path / "device", [signing_keys / "mlship.pub"], device_id="dev-1")
    result = dev.install(versioned("1.0.0"))
    assert result.outcome == "installed", result.reason
    return dev


@pytest.fixture(scope="session")
def golden_inputs(mlp_bundle: Path) -> list[dict[str, Any]]:
    return json.loads((mlp_bundle / "golden.json").read_text())["inputs"]


@pytest.fixture(scope="session")
def nan_pkg(tmp_path_factory: pytest.TempPathFactory, versioned: Callable[..., Path], signing_keys: Path) -> Path:
    """Version 1.1.0 of the MLP whose probabilities are NaN when monthly_charges > 1000 (a model-side bug)."""
    from edge_helpers import nan_package

    out = tmp_path_factory.mktemp("nan") / "churn-mlp-1.1.0-fp32.edge.tar.gz"
    return nan_package(versioned("1.1.0"), out, signing_keys / "mlship.key")


@pytest.fixture
def served(device: Any) -> Any:
    """``device`` served by the agent's HTTP server on a free port; yields an ``edge_helpers.Http``."""
    from edge_helpers import Http
    from mlship.edge.agent.server import start_server

    server = start_server(device, "127.0.0.1", 0, timeout=10.0)
    try:
        yield Http(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
