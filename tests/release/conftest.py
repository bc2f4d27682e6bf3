"""Release fixtures: signed bundles of three versions and one holdout record."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from release.plane import plane  # noqa: F401 - the control-plane fixture


@pytest.fixture(scope="session")
def versioned_bundles(tmp_path_factory: pytest.TempPathFactory, churn_split: tuple[Any, Any], churn_model: Any,
                      signing_keys: Path) -> dict[str, Path]:
    """Signed bundles of the churn pipeline as versions 1, 2 and 3 (``.tar.gz`` paths)."""
    from mlship.evaluation.export import export_bundle

    out = {}
    for version in ("1", "2", "3"):
        target = tmp_path_factory.mktemp("release-bundles") / f"churn-{version}"
        bundle = export_bundle(churn_model, churn_split[1], "churned", target, name="churn", version=version,
                               sensitive="gender", private_key=signing_keys / "mlship.key")
        out[version] = Path(f"{bundle}.tar.gz")
    return out


@pytest.fixture(scope="session")
def record(churn_split: tuple[Any, Any], churn_bundle: Path) -> dict[str, Any]:
    """One holdout row as a JSON record."""
    from mlship.runtime.sources import open_bundle

    names = [f["name"] for f in open_bundle(churn_bundle).manifest["input_schema"]["fields"]]
    row = churn_split[1].head(1)[names].to_dict(orient="records")[0]
    return {k: (None if isinstance(v, float) and math.isnan(v) else (v.item() if hasattr(v, "item") else v))
            for k, v in row.items()}
