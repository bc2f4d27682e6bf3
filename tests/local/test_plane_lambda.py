"""The control plane's Lambda service: real handler processes behind boto3's ``lambda.invoke``.

A moto server holds the functions, versions and aliases; the plane runs the repository's
predict handler (deployed as a zip through the plane, or found in ``functions/``) as real
local processes and routes alias traffic by its weights.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlship.local.plane.lambdas import REPO, split_function, zip_directory

LAMBDA = "mlship.local.plane.lambdas:LambdaService"
BUCKET = "plane-lambda-bundles"


@dataclass
class Plane:
    """A started control plane, its clients and the S3 URI of the churn bundle."""

    plane: Any
    moto: str
    bundle_uri: str
    role: str

    def client(self, service: str, via_plane: bool = True) -> Any:
        return boto3.client(service, endpoint_url=self.plane.url if via_plane else self.moto,
                            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def golden_inputs(bundle: Path) -> list[dict[str, Any]]:
    """The bundle's golden input records (real rows of the holdout)."""
    return json.loads((bundle / "golden.json").read_text())["inputs"]


def upload_bundle(moto: str, bundle: Path, bucket: str = BUCKET) -> str:
    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)
    archive = bundle.parent / f"{bundle.name}.tar.gz"
    key = f"bundles/{archive.name}"
    s3.upload_file(str(archive), bucket, key)
    return f"s3://{bucket}/{key}"


def make_role(moto: str) -> str:
    iam = boto3.client("iam", endpoint_url=moto, region_name="us-east-1")
    try:
        return iam.get_role(RoleName="plane-lambda")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName="plane-lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]


def predict_env(bundle_uri: str, **extra: str) -> dict[str, str]:
    return {"MODEL_URI": bundle_uri, "POWERTOOLS_METRICS_NAMESPACE": "mlship-test", **extra}


def create_predict_function(lam: Any, name: str, role: str, bundle_uri: str, **extra_env: str) -> dict[str, Any]:
    """The predict handler deployed as Lambda's asset lays it out (functions/predict/*.py at the zip root)."""
    return lam.create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.handler", Timeout=60,
        MemorySize=1024, Code={"ZipFile": zip_directory(REPO / "functions" / "predict")},
        Environment={"Variables": predict_env(bundle_uri, **extra_env)})


def failing_zip(message: str = "the new code is broken") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("handler.py", f"def handler(event, context):\n    raise RuntimeError({message!r})\n")
    return buffer.getvalue()


def invoke(lam: Any, name: str, payload: Any, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(decoded payload, response) of one RequestResponse invocation."""
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kw)
    return json.loads(response["Payload"].read() or b"null"), response


@pytest.fixture
def plane(moto_server: str, churn_bundle: Path, tmp_path: Path) -> Iterator[Plane]:
    from mlship.local.plane.server import ControlPlane

    with ControlPlane(moto_server, log_dir=tmp_path / "plane", time_scale=0.01, services=(LAMBDA,)) as started:
        yield Plane(started, moto_server, upload_bundle(moto_server, churn_bundle), make_role(moto_server))


def test_split_function_names() -> None:
    assert split_function("fn", None) == ("fn", None)
    assert split_function("fn:live", None) == ("fn", "live")
    assert split_function("arn:aws:lambda:us-east-1:123456789012:function:fn:7", None) == ("fn", "7")
    assert split_function("123456789012:function:fn", "live") == ("fn", "live")


def test_invoke_runs_the_deployed_predict_handler(plane: Plane, churn_bundle: Path) -> None:
    lam = plane.client("lambda")
    create_predict_function(lam, "plane-predict-zip", plane.role, plane.bundle_uri)
    rows = golden_inputs(churn_bundle)[:3]
    body, response = invoke(lam, "plane-predict-zip", {"instances": rows}, LogType="Tail")
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert body["statusCode"] == 200 and len(body["predictions"]) == 3
    assert body["model"]["name"] == "churn" and body["model"]["version"] == "1"
    assert base64.b64decode(response["LogResult"])  # the handler's own log lines come back
    # the same warm process answers again, by ARN this time
    arn = lam.get_function(FunctionName="plane-predict-zip")["Configuration"]["FunctionArn"]
    body, _ = invoke(lam, arn, {"instances": rows[:1]})
    assert len(body["predictions"]) == 1


def test_alias_weights_route_both_versions(plane: Plane, churn_bundle: Path) -> None:
    lam = plane.client("lambda")
    create_predict_function(lam, "plane-predict-weights", plane.role, plane.bundle_uri, MARK="one")
    v1 = lam.publish_version(FunctionName="plane-predict-weights")["Version"]
    lam.update_function_configuration(FunctionName="plane-predict-weights",
                                      Environment={"Variables": predict_env(plane.bundle_uri, MARK="two")})
    v2 = lam.publish_version(FunctionName="plane-predict-weights")["Version"]
    lam.create_alias(FunctionName="plane-predict-weights", Name="live", FunctionVersion=v1,
                     RoutingConfig={"AdditionalVersionWeights": {v2: 0.5}})
    rows = golden_inputs(churn_bundle)[:1]
    seen: dict[str, int] = {}
    for _ in range(40):
        body, response = invoke(lam, "plane-predict-weights:live", {"instances": rows})
        assert body["statusCode"] == 200
        seen[response["ExecutedVersion"]] = seen.get(response["ExecutedVersion"], 0) + 1
    assert set(seen) == {v1, v2}  # P(one version never picked in 40 draws at 50%) = 2 * 0.5**40
    lam.update_alias(FunctionName="plane-predict-weights", Name="live", FunctionVersion=v2,
                     RoutingConfig={"AdditionalVersionWeights": {}})
    assert {invoke(lam, "plane-predict-weights", rows[0], Qualifier="live")[1]["ExecutedVersion"]
            for _ in range(5)} == {v2}
    store = plane.plane.context.metrics
    dims = {"FunctionName": "plane-predict-weights", "Resource": "plane-predict-weights:live"}
    assert sum(store.values("AWS/Lambda", "Invocations", dims, 0, float("inf"))) == 45
    assert sum(store.values("AWS/Lambda", "Errors", dims, 0, float("inf"))) == 0
    per_version = {**dims, "ExecutedVersion": v1}
    assert sum(store.values("AWS/Lambda", "Invocations", per_version, 0, float("inf"))) == seen[v1]


def test_handler_exception_is_an_unhandled_function_error(plane: Plane) -> None:
    lam = plane.client("lambda")
    lam.create_function(FunctionName="plane-broken", Runtime="python3.12", Role=plane.role,
                        Handler="handler.handler", Code={"ZipFile": failing_zip()})
    body, response = invoke(lam, "plane-broken", {"x": 1})
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "RuntimeError" and body["errorMessage"] == "the new code is broken"
    assert body["stackTrace"]
    store = plane.plane.context.metrics
    assert store.values("AWS/Lambda", "Errors", {"FunctionName": "plane-broken"}, 0, float("inf")) == [1.0]


def test_unknown_function_alias_or_version_is_resource_not_found(plane: Plane) -> None:
    lam = plane.client("lambda")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="plane-no-such-function", Payload=b"{}")
    lam.create_function(FunctionName="plane-exists", Runtime="python3.12", Role=plane.role,
                        Handler="handler.handler", Code={"ZipFile": failing_zip()})
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="plane-exists:nope", Payload=b"{}")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="plane-exists", Qualifier="42", Payload=b"{}")


def test_code_unknown_to_the_plane_runs_from_the_repository(plane: Plane, churn_bundle: Path) -> None:
    """A function created in moto directly (the plane never saw its zip) runs functions/<dir>."""
    moto_lambda = plane.client("lambda", via_plane=False)
    moto_lambda.create_function(FunctionName="mlship-repo-predict", Runtime="python3.12", Role=plane.role,
                                Handler="handler.handler", Timeout=60, Code={"ZipFile": failing_zip()},
                                Environment={"Variables": predict_env(plane.bundle_uri)})
    body, response = invoke(plane.client("lambda"), "mlship-repo-predict",
                            {"instances": golden_inputs(churn_bundle)[:2]})
    assert "FunctionError" not in response and len(body["predictions"]) == 2
    moto_lambda.create_function(FunctionName="plane-unknown", Runtime="python3.12", Role=plane.role,
                                Handler="handler.handler", Code={"ZipFile": failing_zip()})
    body, response = invoke(plane.client("lambda"), "plane-unknown", {})
    assert response["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.ImportModuleError"
    assert "functions/<dir>" in body["errorMessage"]


def test_timeout_and_crash_are_reported_like_lambda(plane: Plane) -> None:
    lam = plane.client("lambda")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("handler.py", "import os, time\n"
                                  "def handler(event, context):\n"
                                  "    if event.get('crash'):\n        os._exit(3)\n"
                                  "    time.sleep(event.get('sleep', 0))\n"
                                  "    return {'left': context.get_remaining_time_in_millis() > 0}\n")
    lam.create_function(FunctionName="plane-slow", Runtime="python3.12", Role=plane.role, Timeout=1,
                        Handler="handler.handler", Code={"ZipFile": buffer.getvalue()})
    assert invoke(lam, "plane-slow", {})[0] == {"left": True}
    body, response = invoke(lam, "plane-slow", {"sleep": 5})
    assert response["FunctionError"] == "Unhandled" and body["errorType"] == "Sandbox.Timedout"
    body, response = invoke(lam, "plane-slow", {"crash": True})
    assert response["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.ExitError"
    assert invoke(lam, "plane-slow", {})[0] == {"left": True}  # a fresh environment after the crash
