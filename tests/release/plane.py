"""Helpers for rollouts rehearsed on the local control plane: bundles per version, a live endpoint,
and a background client that counts every failed request."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlship.local.plane.server import ControlPlane

ROLE = "arn:aws:iam::123456789012:role/mlship-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlship-serve:1"
VARIANT = "AllTraffic"


def plane_clients(plane: ControlPlane, upstream: str) -> dict[str, Any]:
    """boto3 clients as a user has them after ``eval "$(mlship local env)"``."""
    kw = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return {"sagemaker": boto3.client("sagemaker", endpoint_url=plane.url, **kw),
            "runtime": boto3.client("sagemaker-runtime", endpoint_url=plane.url, **kw),
            "cloudwatch": boto3.client("cloudwatch", endpoint_url=upstream, **kw),
            "s3": boto3.client("s3", endpoint_url=upstream, **kw)}


@pytest.fixture
def plane(moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlPlane]:
    """A control plane in front of the session's moto server, with waits scaled by 0.01."""
    from mlship.aws import clients as aws

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    aws.clear_cache()
    with ControlPlane(moto_server, log_dir=tmp_path / "plane", time_scale=0.01) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", running.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", running.url)
        aws.clear_cache()
        yield running
    aws.clear_cache()


def upload(s3: Any, tarball: Path) -> str:
    """The bundle in a fresh bucket; its s3:// URI."""
    bucket = f"bundles-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(tarball), bucket, "bundle.tar.gz")
    return f"s3://{bucket}/bundle.tar.gz"


def create_config(sm: Any, name: str, bundle_uri: str, version: str, fault: str | None = None) -> str:
    """A model and an endpoint configuration (one variant) serving ``bundle_uri``."""
    env = {"MLSHIP_MODEL_VERSION": version, **({"MLSHIP_LOCAL_FAULT": fault} if fault else {})}
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": bundle_uri, "Environment": env})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": VARIANT, "ModelName": name, "InitialInstanceCount": 2, "InstanceType": "ml.m5.large",
         "InitialVariantWeight": 1.0}])
    return name


def wait_status(sm: Any, endpoint: str, status: str, timeout: float = 90) -> dict[str, Any]:
    """Poll DescribeEndpoint until ``status`` with nothing pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sm.describe_endpoint(EndpointName=endpoint)
        if found["EndpointStatus"] == status and not found.get("PendingDeploymentSummary"):
            return found
        time.sleep(0.1)
    raise AssertionError(f"{endpoint} not {status} after {timeout}s: {found}")


def served_version(runtime: Any, endpoint: str, row: dict[str, Any]) -> str:
    """The model version that answered one invocation."""
    answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="application/json",
                                     Body=json.dumps({"instances": [row]}))
    return str(json.loads(answer["Body"].read())["model"]["version"])


class BackgroundClient:
    """Invokes an endpoint continuously from a thread; counts answers by version and failures."""

    def __init__(self, runtime: Any, endpoint: str, row: dict[str, Any]):
        self.runtime, self.endpoint, self.row = runtime, endpoint, row
        self.versions: dict[str, int] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = served_version(self.runtime, self.endpoint, self.row)
                self.versions[version] = self.versions.get(version, 0) + 1
            except Exception as exc:  # noqa: BLE001 - every failure is counted, whatever it is
                self.failures.append(f"{type(exc).__name__}: {exc}"[:300])
            time.sleep(0.005)

    def __enter__(self) -> BackgroundClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(30)
