"""The local control plane as sagemaker-runtime: boto3 ``invoke_endpoint`` answered by real ``mlship serve``
processes for endpoints created in moto (adopted on first use) or through the plane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from mlship.local.environment import is_alive
from mlship.local.plane.server import ControlPlane
from realtime.helpers import REPO, LambdaContext, csv_text, rest_v1_event

ROLE = "arn:aws:iam::123456789012:role/mlship-sagemaker"


def create_endpoint(tarball: str, name: str, weights: dict[str, float]) -> None:
    """A SageMaker model per variant (same bundle, separate S3 keys), a config and an endpoint in moto."""
    from mlship.aws.clients import client

    s3, sm = client("s3"), client("sagemaker")
    bucket = f"models-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    variants = []
    for variant, weight in weights.items():
        key = f"{name}/{variant}/model.tar.gz"
        s3.upload_file(tarball, bucket, key)
        sm.create_model(ModelName=f"{name}-{variant}", ExecutionRoleArn=ROLE,
                        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlship:1",
                                          "ModelDataUrl": f"s3://{bucket}/{key}"})
        variants.append({"VariantName": variant, "ModelName": f"{name}-{variant}", "InitialInstanceCount": 1,
                         "InstanceType": "ml.m5.large", "InitialVariantWeight": weight})
    sm.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=variants)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


@pytest.fixture(scope="module")
def gateway_env(moto_server: str, churn_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A moto endpoint 'churn-rt' (blue weight 1, green weight 0) and a control plane in front of moto."""
    from mlship.aws import clients as aws

    old = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = moto_server
    aws.clear_cache()
    create_endpoint(f"{churn_bundle}.tar.gz", "churn-rt", {"blue": 1.0, "green": 0.0})
    server = ControlPlane(moto_server, log_dir=tmp_path_factory.mktemp("plane")).start()
    try:
        runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1")
        sagemaker = boto3.client("sagemaker", endpoint_url=server.url, region_name="us-east-1")
        yield {"server": server, "runtime": runtime, "sagemaker": sagemaker, "endpoint": "churn-rt"}
    finally:
        server.stop()
        if old is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = old
        aws.clear_cache()


def _same(answer: dict, expected: Any) -> None:
    assert answer["predictions"] == expected.labels.tolist()
    np.testing.assert_allclose(np.asarray(answer["probabilities"]), expected.probabilities, rtol=0, atol=1e-7)


def test_invoke_endpoint_returns_the_predictors_answers(gateway_env, holdout_records, feature_names, predictor):
    rt = gateway_env["runtime"]
    resp = rt.invoke_endpoint(EndpointName="churn-rt", ContentType="text/csv",
                              Body=csv_text(holdout_records[:30], feature_names, header=False).encode())
    assert resp["InvokedProductionVariant"] == "blue"
    assert resp["ContentType"] == "application/json"
    _same(json.loads(resp["Body"].read()), predictor.predict(holdout_records[:30]))
    resp = rt.invoke_endpoint(EndpointName="churn-rt", ContentType="application/json",
                              Body=json.dumps({"instances": holdout_records[:5]}), InferenceId="abc-1")
    answer = json.loads(resp["Body"].read())
    _same(answer, predictor.predict(holdout_records[:5]))
    assert answer["request_id"] == "abc-1"


def test_routing_follows_the_variant_weights_in_the_local_aws(gateway_env, holdout_records):
    client = {"sagemaker": gateway_env["sagemaker"]}.__getitem__  # weights change through the plane
    rt, body = gateway_env["runtime"], json.dumps(holdout_records[0])
    seen = {rt.invoke_endpoint(EndpointName="churn-rt", ContentType="application/json",
                               Body=body)["InvokedProductionVariant"] for _ in range(10)}
    assert seen == {"blue"}  # green has weight 0
    assert rt.invoke_endpoint(EndpointName="churn-rt", ContentType="application/json", Body=body,
                              TargetVariant="green")["InvokedProductionVariant"] == "green"
    client("sagemaker").update_endpoint_weights_and_capacities(
        EndpointName="churn-rt", DesiredWeightsAndCapacities=[{"VariantName": "blue", "DesiredWeight": 0.0},
                                                              {"VariantName": "green", "DesiredWeight": 1.0}])
    try:
        seen = {rt.invoke_endpoint(EndpointName="churn-rt", ContentType="application/json",
                                   Body=body)["InvokedProductionVariant"] for _ in range(10)}
        assert seen == {"green"}
    finally:
        client("sagemaker").update_endpoint_weights_and_capacities(
            EndpointName="churn-rt", DesiredWeightsAndCapacities=[{"VariantName": "blue", "DesiredWeight": 1.0},
                                                                  {"VariantName": "green", "DesiredWeight": 0.0}])


def test_sagemaker_errors(gateway_env, holdout_records):
    rt = gateway_env["runtime"]
    with pytest.raises(rt.exceptions.ModelError) as err:
        rt.invoke_endpoint(EndpointName="churn-rt", ContentType="application/json",
                           Body=json.dumps(dict(holdout_records[0], age="old")))
    assert err.value.response["OriginalStatusCode"] == 400
    assert json.loads(err.value.response["OriginalMessage"])["errors"][0]["field"] == "age"
    with pytest.raises(rt.exceptions.ModelError) as err:
        rt.invoke_endpoint(EndpointName="churn-rt", ContentType="application/xml", Body=b"<a/>")
    assert err.value.response["OriginalStatusCode"] == 415
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="text/csv", Body=b"1")
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert "no-such-endpoint" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="churn-rt", ContentType="text/csv", Body=b"1", TargetVariant="purple")
    assert err.value.response["Error"]["Code"] == "ValidationError"


def test_lambda_endpoint_backend_runs_unchanged_against_the_plane(gateway_env, handler, monkeypatch,
                                                                    holdout_records, predictor):
    from mlship.aws import clients as aws

    monkeypatch.setenv("PREDICT_BACKEND", "sagemaker")
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_NAME", "churn-rt")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", gateway_env["server"].url)
    aws.clear_cache()
    resp = handler.handler(rest_v1_event(json.dumps({"instances": holdout_records[:8]})), LambdaContext())
    assert resp["statusCode"] == 200, resp
    answer = json.loads(resp["body"])
    _same(answer, predictor.predict(holdout_records[:8]))
    assert answer["variant"] == "blue" and answer["model"] == {"name": "churn", "version": "1"}
    assert answer["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    resp = handler.handler(rest_v1_event(json.dumps(dict(holdout_records[0], contract="weekly"))), LambdaContext())
    assert resp["statusCode"] == 400
    assert json.loads(resp["body"])["errors"][0]["kind"] == "unknown_category"
    resp = handler.handler(rest_v1_event("<a/>", "application/xml"), LambdaContext())
    assert resp["statusCode"] == 415
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_NAME", "missing-endpoint")
    handler.reset()
    resp = handler.handler(rest_v1_event(json.dumps(holdout_records[0])), LambdaContext())
    assert resp["statusCode"] == 503 and "missing-endpoint" in json.loads(resp["body"])["reason"]
    aws.clear_cache()


def test_cli_invoke_endpoint(gateway_env, tmp_path, holdout_records, feature_names):
    req = tmp_path / "rows.csv"
    req.write_text(csv_text(holdout_records[:3], feature_names))
    env = {**os.environ, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": gateway_env["server"].url, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "mlship", "invoke", str(req), "--endpoint", "churn-rt",
                           "--variant", "green"], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["variant"] == "green" and len(answer["predictions"]) == 3


def test_mlship_local_up_starts_the_control_plane(churn_bundle, tmp_path, holdout_records):
    """`mlship local up` as a user runs it: moto + control plane; `local env` points sagemaker and
    sagemaker-runtime at the plane; `local down` stops the plane and the serve processes it started."""
    from mlship.aws import clients as aws
    from mlship.local.environment import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(MLSHIP_LOCAL_HOME=str(tmp_path / "state"), MLSHIP_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("MLSHIP_STATE_DIR", None)

    def mlship(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mlship", *args], capture_output=True, text=True, cwd=REPO,
                              env=env, timeout=120)

    up = mlship("local", "up", "--port", str(free_port()), "--plane-port", str(free_port()))
    assert up.returncode == 0, up.stderr
    try:
        exports = dict(line.removeprefix("export ").split("=", 1) for line in mlship("local", "env").stdout.split("\n")
                       if line.startswith("export "))
        assert "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME" in exports
        state = json.loads((tmp_path / "state" / "local.json").read_text())
        saved = {k: os.environ.get(k) for k in exports}
        os.environ.update(exports)
        aws.clear_cache()
        try:
            create_endpoint(f"{churn_bundle}.tar.gz", "churn-local", {"AllTraffic": 1.0})
            deadline = time.monotonic() + 120  # created through the plane: Creating until /ping passes
            while aws.client("sagemaker").describe_endpoint(EndpointName="churn-local")["EndpointStatus"] != \
                    "InService":
                assert time.monotonic() < deadline
                time.sleep(0.2)
            body = aws.client("sagemaker-runtime").invoke_endpoint(
                EndpointName="churn-local", ContentType="application/json", Body=json.dumps(holdout_records[0]))
            assert len(json.loads(body["Body"].read())["predictions"]) == 1
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            aws.clear_cache()
    finally:
        down = mlship("local", "down")
    assert down.returncode == 0
    gateway_pid = state["services"]["plane"]["pid"]
    for _ in range(300):  # wait (bounded) for the process to go away
        if not _running(gateway_pid):
            break
        time.sleep(0.1)
    assert not _running(gateway_pid)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan is reaped by PID 1, which may be slow in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return is_alive(pid) and state != "Z"
