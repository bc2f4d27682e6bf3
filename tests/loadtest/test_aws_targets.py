"""``endpoint:NAME`` and ``lambda:NAME`` through boto3 (a thread pool sized for the rate) against the
local control plane, which runs what moto only records: a SageMaker endpoint backed by real
``mlship serve`` processes, and the real predict handler behind ``lambda.invoke``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlship.loadtest.bodies import from_bundle
from mlship.loadtest.plan import Plan
from mlship.loadtest.run import CostBasis, loadtest
from mlship.loadtest.summary import Slo

KW = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
LAMBDA = "mlship.local.plane.lambdas:LambdaService"


@pytest.fixture
def local_aws(moto_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from mlship.aws import clients

    yield
    clients.clear_cache()


def _plane(moto_server: str, log_dir: Path, monkeypatch: pytest.MonkeyPatch, services: tuple[str, ...] | None,
           env: tuple[str, ...]) -> Any:
    from mlship.aws import clients
    from mlship.local.plane.server import ControlPlane

    kwargs = {"services": services} if services else {}
    plane = ControlPlane(moto_server, log_dir=log_dir, time_scale=0.01, **kwargs)
    started = plane.__enter__()
    for name in env:
        monkeypatch.setenv(name, started.url)
    clients.clear_cache()
    return plane


def _upload(moto_server: str, bundle: Path, bucket: str) -> str:
    s3 = boto3.client("s3", endpoint_url=moto_server, **KW)
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(bundle.parent / f"{bundle.name}.tar.gz"), bucket, "bundle.tar.gz")
    return f"s3://{bucket}/bundle.tar.gz"


def test_an_endpoint_through_the_plane(local_aws: None, moto_server: str, churn_bundle: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from release.plane import create_config, wait_status

    plane = _plane(moto_server, tmp_path / "plane", monkeypatch, None,
                   ("AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"))
    try:
        sm = boto3.client("sagemaker", endpoint_url=plane.url, **KW)
        create_config(sm, "lt-ep-v1", _upload(moto_server, churn_bundle, "lt-endpoint"), "1")
        sm.create_endpoint(EndpointName="lt-ep", EndpointConfigName="lt-ep-v1")
        wait_status(sm, "lt-ep", "InService")
        plan = Plan(slo=Slo(p99_ms=3000), rate=20.0, step_duration=2.0, warmup=0.5)
        outcome = loadtest("endpoint:lt-ep", from_bundle(str(churn_bundle), count=20), plan, tmp_path / "out",
                           cost=CostBasis(instance_type="ml.m5.large", instances=2))
    finally:
        plane.__exit__(None, None, None)
    step = outcome.report["steps"][0]
    assert outcome.report["target"] == "endpoint:lt-ep"
    assert step["requests"] == 40 and step["errors"] == {}, step
    assert outcome.report["cost"]["instances"] == 2 and outcome.report["cost"]["usd_per_hour"] == 0.23
    assert outcome.report["sdk_retries"] == 0


def test_a_lambda_alias_through_the_plane(local_aws: None, moto_server: str, churn_bundle: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from mlship.local.plane.lambdas import REPO, zip_directory

    uri = _upload(moto_server, churn_bundle, "lt-lambda")
    plane = _plane(moto_server, tmp_path / "plane", monkeypatch, (LAMBDA,), ("AWS_ENDPOINT_URL_LAMBDA",))
    try:
        lam = boto3.client("lambda", endpoint_url=plane.url, **KW)
        role = boto3.client("iam", endpoint_url=moto_server, **KW).create_role(
            RoleName="lt-lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam.create_function(FunctionName="lt-predict", Runtime="python3.12", Role=role, Handler="handler.handler",
                            Timeout=60, MemorySize=512, Code={"ZipFile": zip_directory(REPO / "functions" / "predict")},
                            Environment={"Variables": {"MODEL_URI": uri, "POWERTOOLS_METRICS_NAMESPACE": "lt"}})
        version = lam.publish_version(FunctionName="lt-predict")["Version"]
        lam.create_alias(FunctionName="lt-predict", Name="live", FunctionVersion=version)
        plan = Plan(slo=Slo(p99_ms=3000), rate=10.0, step_duration=2.0, warmup=1.0, timeout=30.0)
        outcome = loadtest("lambda:lt-predict:live", from_bundle(str(churn_bundle), count=20), plan,
                           tmp_path / "out")
    finally:
        plane.__exit__(None, None, None)
    step = outcome.report["steps"][0]
    assert step["requests"] == 20 and step["errors"] == {}, (step, outcome.report["warmup"])
    cost = outcome.report["cost"]
    assert cost["basis"] == "lambda" and cost["memory_mb"] == 512 and cost["usd_per_million"] > 0.2
