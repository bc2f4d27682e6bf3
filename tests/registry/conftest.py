"""Registry test helpers: unique buckets and cheap extra versions of the shared bundle."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def bucket(aws: None) -> str:
    """A fresh registry bucket in in-process moto."""
    from mlship.aws.clients import client

    name = f"mlship-reg-{uuid.uuid4().hex[:12]}"
    client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def registry(bucket: str) -> Any:
    from mlship.registry.store import Registry

    return Registry(bucket, sagemaker=True)


def make_version(source: Path, out: Path, version: str, *, description: str | None = None) -> Path:
    """An unsigned copy of ``source`` with another version (and optionally another description)."""
    from mlship.runtime.bundle import write_manifest

    target = out / f"v{version}-{uuid.uuid4().hex[:6]}"
    shutil.copytree(source, target)
    (target / "signature.json").unlink(missing_ok=True)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = version
    if description is not None:
        manifest["description"] = description
    write_manifest(target, manifest)
    return target


@pytest.fixture
def versions(churn_bundle: Path, tmp_path: Path) -> Iterator[Any]:
    """``versions(v, description=None)`` makes a bundle directory of version ``v``."""
    yield lambda v, description=None: make_version(churn_bundle, tmp_path, v, description=description)


@pytest.fixture(scope="session")
def logreg_bundle(tmp_path_factory: pytest.TempPathFactory, churn_split: tuple[Any, Any]) -> Path:
    """A second, different model of the same name: logistic regression, version 2 (unsigned)."""
    from mlship.evaluation.export import export_bundle
    from mlship.local.train import train_pipeline

    model = train_pipeline(churn_split[0], "logreg")
    out = tmp_path_factory.mktemp("bundles") / "churn-2-logreg"
    return export_bundle(model, churn_split[1], "churned", out, name="churn", version="2", sensitive="gender",
                         description="logistic regression challenger")


@pytest.fixture(scope="session")
def holdout(churn_split: tuple[Any, Any]) -> Any:
    return churn_split[1]
