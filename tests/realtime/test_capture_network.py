"""No network call while a request is answered, in the deployed configuration with capture on.

``DEPLOYED_ENV`` is what the API stack sets (``tests/stacks/test_capture_stack.py`` checks the
synthesized function's variables against it) plus what Lambda sets. The bundle is served from S3
(in-process moto), so the first, cold invocation downloads it; the 500 warm invocations after it
must make no botocore request at all (``Endpoint.make_request`` is counted: it runs for every
request, also those moto answers in process) and open no socket.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import botocore.endpoint
import pytest

from realtime.helpers import LambdaContext, http_v2_event

BUCKET = "mlship-dev-data"
WARM_INVOCATIONS = 500

# The api stack's variables (mlship/cdk/predict.py), with this test's bucket and bundle key.
DEPLOYED_ENV = {
    "MLSHIP_MODEL_NAME": "churn", "MLSHIP_MODEL_VERSION": "1", "MLSHIP_REGISTRY_BUCKET": BUCKET,
    "PREDICT_BACKEND": "onnx", "MAX_BODY_BYTES": "1000000", "POWERTOOLS_SERVICE_NAME": "mlship-predict",
    "POWERTOOLS_METRICS_NAMESPACE": "mlship", "CAPTURE_MODE": "log", "CAPTURE_SAMPLING_PERCENTAGE": "100",
}
LAMBDA_ENV = {"AWS_LAMBDA_FUNCTION_VERSION": "3", "AWS_REGION": "us-east-1"}


class Counter:
    """botocore requests and socket connections made while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.requests: list[str] = []
        self.connections: list[Any] = []
        make_request, connect = botocore.endpoint.Endpoint.make_request, socket.socket.connect

        def counted_request(endpoint: Any, operation_model: Any, request_dict: Any) -> Any:
            self.requests.append(operation_model.name)
            return make_request(endpoint, operation_model, request_dict)

        def counted_connect(sock: socket.socket, address: Any) -> Any:
            self.connections.append(address)
            return connect(sock, address)

        monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", counted_request)
        monkeypatch.setattr(socket.socket, "connect", counted_connect)


@pytest.fixture
def deployed(handler: Any, aws: None, churn_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlship.aws.clients import client

    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(churn_bundle.parent / f"{churn_bundle.name}.tar.gz"), BUCKET, "bundles/churn-1.tar.gz")
    monkeypatch.setenv("MODEL_URI", f"s3://{BUCKET}/bundles/churn-1.tar.gz")
    monkeypatch.setenv("RECORDS_BUCKET", BUCKET)
    monkeypatch.setenv("RECORDS_PREFIX", "inference-records")
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(churn_bundle.parent / "capture-network-cache"))
    for name, value in {**DEPLOYED_ENV, **LAMBDA_ENV}.items():
        monkeypatch.setenv(name, value)
    handler.reset()
    return handler


def test_warm_invocations_make_no_network_call(deployed, holdout_records, monkeypatch, capsys):
    counter = Counter(monkeypatch)
    context = LambdaContext()
    context.invoked_function_arn += ":live"
    cold = deployed.handler(http_v2_event(json.dumps(holdout_records[0])), context)
    assert cold["statusCode"] == 200
    assert "GetObject" in counter.requests  # the cold start downloads the bundle: the counter sees moto's calls
    counter.requests.clear()
    counter.connections.clear()
    capsys.readouterr()
    for i in range(WARM_INVOCATIONS):
        resp = deployed.handler(http_v2_event(json.dumps(holdout_records[i % len(holdout_records)])), context)
        assert resp["statusCode"] == 200
    assert counter.requests == [] and counter.connections == []
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"capture"')]
    assert len(lines) == WARM_INVOCATIONS  # capture was on for every one of them
    assert {(doc["variant"], doc["alias"]) for doc in lines} == {("3", "live")}
