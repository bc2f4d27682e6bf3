"""Real-time fixtures: holdout records, a fresh prediction handler bound to a bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: builds Lambda assets (downloads wheels on the first run)")


@pytest.fixture(scope="session")
def feature_names(churn_bundle: Path) -> list[str]:
    from mlship.runtime.sources import open_bundle

    return [f["name"] for f in open_bundle(churn_bundle).manifest["input_schema"]["fields"]]


@pytest.fixture(scope="session")
def holdout_records(churn_split: tuple[Any, Any], feature_names: list[str]) -> list[dict[str, Any]]:
    """50 holdout rows as JSON records (features only; NaN as None)."""
    import math

    frame = churn_split[1].head(50)
    out = []
    for row in frame[feature_names].to_dict(orient="records"):
        rec = {}
        for k, v in row.items():
            v = v.item() if hasattr(v, "item") else v
            rec[k] = None if isinstance(v, float) and math.isnan(v) else v
        out.append(rec)
    return out


@pytest.fixture(scope="session")
def predictor(churn_bundle: Path) -> Any:
    from mlship.runtime.predictor import Predictor

    return Predictor.load(churn_bundle)


@pytest.fixture
def handler(churn_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The prediction handler module with a clean cold-start state, serving ``churn_bundle``."""
    from functions.predict import handler as module

    monkeypatch.setenv("MODEL_URI", str(churn_bundle))
    monkeypatch.delenv("RECORDS_BUCKET", raising=False)
    monkeypatch.delenv("PREDICT_BACKEND", raising=False)
    monkeypatch.delenv("MLSHIP_PUBLIC_KEY", raising=False)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    module.reset()
    yield module
    module.reset()


@pytest.fixture(scope="session")
def challenger_bundle(tmp_path_factory: pytest.TempPathFactory, churn_split: tuple[Any, Any],
                      signing_keys: Path) -> Path:
    """Version 2 of churn: a logistic regression (it disagrees with the champion on some rows)."""
    from mlship.evaluation.export import export_bundle
    from mlship.local.train import train_pipeline

    train, holdout = churn_split
    out = tmp_path_factory.mktemp("bundles") / "churn-2"
    return export_bundle(train_pipeline(train, "logreg"), holdout, "churned", out, name="churn", version="2",
                         private_key=signing_keys / "mlship.key")
