"""Batch fixtures: one real local Spark session per test session, a range-enforcing bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A real SparkSession (local[2]); started once (~10 s) and shared by every batch test."""
    from mlship.batch.spark import get_session

    session = get_session("local[2]", app_name="mlship-batch-tests",
                          conf={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def strict_bundle(tmp_path_factory: pytest.TempPathFactory, churn_split: tuple[Any, Any], churn_model: Any,
                  signing_keys: Path) -> Path:
    """The churn pipeline exported with enforce_range=True (so out-of-range rows are rejected)."""
    from mlship.evaluation.export import export_bundle

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
    from nonfinite import THRESHOLD

    return THRESHOLD


@pytest.fixture(scope="session")
def nan_bundle(nonfinite_bundle: Path) -> Path:
    """The shared NaN-emitting signed bundle (``tests/nonfinite.py``), packed as a ``.tar.gz`` too."""
    from mlship.runtime.archive import pack_bundle

    tarball = nonfinite_bundle.with_name(nonfinite_bundle.name + ".tar.gz")
    if not tarball.exists():
        pack_bundle(nonfinite_bundle, tarball)
    return nonfinite_bundle
