"""The control plane's Lambda service: real handler processes behind boto3's ``lambda.invoke``.

A moto server holds the functions, versions and aliases; the plane runs the repository's
predict handler (deployed as a zip through the plane, or found in ``functions/``) as real
local processes and routes alias traffic by its weights.
"""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20).map(json.dumps)))
def test_appspec_parser_answers_any_text_with_a_target_or_a_refusal(text: str) -> None:
    from mlship.local.plane.codedeploy import AliasTarget, DeploymentRefused, parse_appspec

    try:
        assert isinstance(parse_appspec(text), AliasTarget)
    except DeploymentRefused as exc:
        assert exc.code == "InvalidRevisionException"


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


def test_a_deleted_and_recreated_function_runs_its_new_code(plane: Plane) -> None:
    lam = plane.client("lambda")
    lam.create_function(FunctionName="plane-reused", Runtime="python3.12", Role=plane.role,
                        Handler="handler.handler", Code={"ZipFile": failing_zip("first")})
    lam.publish_version(FunctionName="plane-reused")
    assert invoke(lam, "plane-reused", {}, Qualifier="1")[0]["errorMessage"] == "first"
    lam.delete_function(FunctionName="plane-reused")
    lam.create_function(FunctionName="plane-reused", Runtime="python3.12", Role=plane.role,
                        Handler="handler.handler", Code={"ZipFile": failing_zip("second")})
    lam.publish_version(FunctionName="plane-reused")
    assert invoke(lam, "plane-reused", {}, Qualifier="1")[0]["errorMessage"] == "second"

def test_rehearsal_faults_in_a_versions_variables(plane: Plane) -> None:
    """``MLSHIP_LOCAL_FAULT`` on a version: injected function errors, delay, crash; the handler never sees it."""
    lam = plane.client("lambda")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("handler.py", "import os\ndef handler(event, context):\n"
                                  "    return {'fault': os.environ.get('MLSHIP_LOCAL_FAULT')}\n")
    lam.create_function(FunctionName="plane-faults", Runtime="python3.12", Role=plane.role,
                        Handler="handler.handler", Code={"ZipFile": buffer.getvalue()})
    versions = {}
    for fault in ("errors=1", "latency=300ms", "crash"):
        lam.update_function_configuration(FunctionName="plane-faults",
                                          Environment={"Variables": {"MLSHIP_LOCAL_FAULT": fault}})
        versions[fault] = lam.publish_version(FunctionName="plane-faults")["Version"]
    body, response = invoke(lam, "plane-faults", {}, Qualifier=versions["errors=1"])
    assert response["FunctionError"] == "Unhandled" and body["errorType"] == "MlshipLocalFault"
    body, response = invoke(lam, "plane-faults", {}, Qualifier=versions["latency=300ms"])
    assert body == {"fault": None} and "FunctionError" not in response
    dims = {"FunctionName": "plane-faults", "Resource": f"plane-faults:{versions['latency=300ms']}"}
    assert plane.plane.context.metrics.values("AWS/Lambda", "Duration", dims, 0, float("inf"))[0] >= 300
    body, response = invoke(lam, "plane-faults", {}, Qualifier=versions["crash"])
    assert response["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.ExitError"

# ---------------------------------------------------------------------------------- CodeDeploy
def ok_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("handler.py", "import os\ndef handler(event, context):\n"
                                  "    return {'version': os.environ['AWS_LAMBDA_FUNCTION_VERSION']}\n")
    return buffer.getvalue()


@pytest.fixture
def deploy_plane(moto_server: str, tmp_path: Path) -> Iterator[Plane]:
    from mlship.local.plane.server import ControlPlane

    services = (LAMBDA, "mlship.local.plane.codedeploy:CodeDeployService")
    with ControlPlane(moto_server, log_dir=tmp_path / "plane", time_scale=0.01, services=services) as started:
        yield Plane(started, moto_server, "", make_role(moto_server))


def _two_versions(plane: Plane, name: str) -> Any:
    lam = plane.client("lambda")
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=plane.role, Handler="handler.handler",
                        Code={"ZipFile": ok_zip()}, Environment={"Variables": {"STEP": "1"}})
    lam.publish_version(FunctionName=name)
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"STEP": "2"}})
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    return lam


def test_yaml_appspec_linear_deployment_with_boto3_waiter(deploy_plane: Plane) -> None:
    """A custom linear configuration, a YAML AppSpec and boto3's own ``deployment_successful`` waiter."""
    name = "plane-deploy-linear"
    lam = _two_versions(deploy_plane, name)
    cd = deploy_plane.client("codedeploy")
    cd.create_deployment_config(deploymentConfigName="plane-linear-40", computePlatform="Lambda",
                                trafficRoutingConfig={"type": "TimeBasedLinear", "timeBasedLinear": {
                                    "linearPercentage": 40, "linearInterval": 1}})
    assert cd.get_deployment_config(deploymentConfigName="plane-linear-40")["deploymentConfigInfo"][
        "trafficRoutingConfig"]["timeBasedLinear"]["linearPercentage"] == 40
    predefined = cd.get_deployment_config(deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes")
    assert predefined["deploymentConfigInfo"]["trafficRoutingConfig"]["timeBasedCanary"]["canaryInterval"] == 5
    deploy_plane.client("cloudwatch", via_plane=False).put_metric_alarm(
        AlarmName=f"{name}-errors", Namespace="AWS/Lambda", MetricName="Errors", Statistic="Sum", Period=60,
        Dimensions=[{"Name": "FunctionName", "Value": name}, {"Name": "Resource", "Value": f"{name}:live"}],
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    cd.create_application(applicationName=name, computePlatform="Lambda")
    cd.create_deployment_group(applicationName=name, deploymentGroupName=name, serviceRoleArn=deploy_plane.role,
                               deploymentConfigName="plane-linear-40",
                               alarmConfiguration={"enabled": True, "alarms": [{"name": f"{name}-errors"}]})
    group = cd.get_deployment_group(applicationName=name, deploymentGroupName=name)["deploymentGroupInfo"]
    assert group["alarmConfiguration"]["alarms"] == [{"name": f"{name}-errors"}]  # moto drops it; the plane keeps it
    appspec = (f"version: 0.0\nResources:\n  - fn:\n      Type: AWS::Lambda::Function\n      Properties:\n"
               f"        Name: {name}\n        Alias: live\n        CurrentVersion: '1'\n        TargetVersion: '2'\n")
    deployment = cd.create_deployment(applicationName=name, deploymentGroupName=name, revision={
        "revisionType": "AppSpecContent", "appSpecContent": {"content": appspec}})["deploymentId"]
    seen = set()
    while cd.get_deployment(deploymentId=deployment)["deploymentInfo"]["status"] in ("Created", "InProgress"):
        seen.add(json.dumps(lam.get_alias(FunctionName=name, Name="live").get("RoutingConfig"), sort_keys=True))
        time.sleep(0.02)
    cd.get_waiter("deployment_successful").wait(deploymentId=deployment, WaiterConfig={"Delay": 1})
    assert {json.dumps({"AdditionalVersionWeights": {"2": w}}) for w in (0.4, 0.8)} <= seen  # both linear steps
    alias = lam.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == "2" and not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    assert invoke(lam, f"{name}:live", {})[0] == {"version": "2"}
    listed = cd.list_deployments(applicationName=name, deploymentGroupName=name,
                                 includeOnlyStatuses=["Succeeded"])["deployments"]
    assert listed == [deployment]


def test_deployment_that_cannot_start_fails_without_moving_the_alias(deploy_plane: Plane) -> None:
    name = "plane-deploy-bad"
    lam = _two_versions(deploy_plane, name)
    cd = deploy_plane.client("codedeploy")
    cd.create_application(applicationName=name, computePlatform="Lambda")
    cd.create_deployment_group(applicationName=name, deploymentGroupName=name, serviceRoleArn=deploy_plane.role,
                               autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]})
    wrong = {"version": 0.0, "Resources": [{"fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": name, "Alias": "live", "CurrentVersion": "2", "TargetVersion": "1"}}}]}
    deployment = cd.create_deployment(applicationName=name, deploymentGroupName=name, revision={
        "revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(wrong)}})["deploymentId"]
    with pytest.raises(Exception, match="Failed"):
        cd.get_waiter("deployment_successful").wait(deploymentId=deployment, WaiterConfig={"Delay": 1})
    info = cd.get_deployment(deploymentId=deployment)["deploymentInfo"]
    assert info["status"] == "Failed" and info["errorInformation"]["code"] == "INVALID_LAMBDA_CONFIGURATION"
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    cd.create_deployment_group(applicationName=name, deploymentGroupName=f"{name}-alarm",
                               serviceRoleArn=deploy_plane.role,
                               alarmConfiguration={"enabled": True, "alarms": [{"name": "plane-no-such-alarm"}]})
    right = {"version": 0.0, "Resources": [{"fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": name, "Alias": "live", "CurrentVersion": "1", "TargetVersion": "2"}}}]}
    missing = cd.create_deployment(applicationName=name, deploymentGroupName=f"{name}-alarm", revision={
        "revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(right)}})["deploymentId"]
    with pytest.raises(Exception, match="Failed"):
        cd.get_waiter("deployment_successful").wait(deploymentId=missing, WaiterConfig={"Delay": 1})
    info = cd.get_deployment(deploymentId=missing)["deploymentInfo"]
    assert info["errorInformation"]["code"] == "ALARM_CONFIG" and "plane-no-such-alarm" in info[
        "errorInformation"]["message"]
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    with pytest.raises(cd.exceptions.InvalidRevisionException):
        cd.create_deployment(applicationName=name, deploymentGroupName=name, revision={
            "revisionType": "AppSpecContent", "appSpecContent": {"content": "Resources: []"}})
    with pytest.raises(cd.exceptions.DeploymentConfigDoesNotExistException):
        cd.create_deployment(applicationName=name, deploymentGroupName=name, deploymentConfigName="nope",
                             revision={"revisionType": "AppSpecContent",
                                       "appSpecContent": {"content": json.dumps(wrong)}})
