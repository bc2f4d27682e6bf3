"""Registry test helpers: unique buckets, cheap extra versions of the shared bundle, and S3's
atomic conditional writes in moto."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def atomic_s3_conditions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's conditional PutObject atomic, and its reads consistent, as they are in S3.

    moto 5.2.5 checks If-Match / If-None-Match and then stores the object in two unlocked steps
    (moto/s3/responses.py ``S3Response.put_object``); real S3 evaluates the condition and the
    write atomically (a concurrent loser gets 412 or 409). moto also closes a replaced object's
    buffer while another thread may still be reading it in ``get_object`` ("I/O operation on
    closed file"); a real S3 GET returns the old or the new object whole. Serialising moto's
    put/get/head handlers gives the race tests S3's semantics; the registry code is unchanged.
    """
    from moto.s3.responses import S3Response

    lock = threading.RLock()
    for handler in ("put_object", "get_object", "head_object"):
        original = getattr(S3Response, handler)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(S3Response, handler, locked)


@pytest.fixture
def bucket(aws: None) -> str:
    """A fresh registry bucket in in-process moto."""
    from mlship.aws import client

    name = f"mlship-reg-{uuid.uuid4().hex[:12]}"
    client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def registry(bucket: str) -> Any:
    from mlship.registry import Registry

    return Registry(bucket, sagemaker=True)


def make_version(source: Path, out: Path, version: str, *, description: str | None = None) -> Path:
    """An unsigned copy of ``source`` with another version (and optionally another description)."""
    from mlship.bundle import write_manifest

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
    from mlship.export import export_bundle
    from mlship.train import train_pipeline

    model = train_pipeline(churn_split[0], "logreg")
    out = tmp_path_factory.mktemp("bundles") / "churn-2-logreg"
    return export_bundle(model, churn_split[1], "churned", out, name="churn", version="2", sensitive="gender",
                         description="logistic regression challenger")


@pytest.fixture(scope="session")
def holdout(churn_split: tuple[Any, Any]) -> Any:
    return churn_split[1]
