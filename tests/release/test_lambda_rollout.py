"""``mlship rollout lambda`` end to end on the local control plane: CodeDeploy shifts a real alias.

A moto server holds the function, its versions and alias, the CodeDeploy application and group
and the CloudWatch alarms; the plane runs the predict handler of each version as a real process,
routes ``NAME:live`` by the alias' weights, publishes ``AWS/Lambda`` metrics, evaluates the group's
alarms and runs the deployment (time scale 0.01: a 5-minute canary bakes for 3 s). The driver is
the same code that runs against AWS, with plain boto3 clients pointed at the plane.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from local.test_plane_lambda import (
    create_predict_function,
    failing_zip,
    golden_inputs,
    make_role,
    predict_env,
    upload_bundle,
)

from mlship.release.function import FunctionRollout, FunctionTarget, judge_shift
from mlship.release.models import ResolvedModel

SERVICES = ("mlship.local.plane.lambdas:LambdaService", "mlship.local.plane.codedeploy:CodeDeployService")
CANARY = "CodeDeployDefault.LambdaCanary10Percent5Minutes"


@pytest.fixture(scope="module")
def churn_bundle_v2(tmp_path_factory: pytest.TempPathFactory, churn_split: tuple[Any, Any], churn_model: Any,
                    signing_keys: Path) -> Path:
    """Version 2 of the churn model (same pipeline, its own signed bundle)."""
    from mlship.evaluation.export import export_bundle

    out = tmp_path_factory.mktemp("bundles-v2") / "churn-2"
    return export_bundle(churn_model, churn_split[1], "churned", out, name="churn", version="2",
                         sensitive="gender", private_key=signing_keys / "mlship.key", description="version 2")


@dataclass
class Rehearsal:
    """A plane in front of moto with a predict function whose ``live`` alias is on model version 1."""

    plane: Any
    moto: str
    function: str
    target: FunctionTarget
    v1: ResolvedModel
    v2: ResolvedModel
    alarms: list[str]
    rows: list[dict[str, Any]]

    def client(self, service: str, via_plane: bool = True) -> Any:
        return boto3.client(service, endpoint_url=self.plane.url if via_plane else self.moto, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def driver(self) -> FunctionRollout:
        return FunctionRollout(self.client("lambda"), self.client("codedeploy"), self.client("cloudwatch", False),
                               poll_seconds=0.1)

    def alias(self) -> dict[str, Any]:
        return self.client("lambda").get_alias(FunctionName=self.function, Name="live")


def _alarms(cloudwatch: Any, function: str) -> list[str]:
    """The stack's two rollback alarms on the live alias (mlship/cdk/predict.py), 60 s periods."""
    dims = [{"Name": "FunctionName", "Value": function}, {"Name": "Resource", "Value": f"{function}:live"}]
    common = {"Namespace": "AWS/Lambda", "Dimensions": dims, "Period": 60, "EvaluationPeriods": 2,
              "DatapointsToAlarm": 2, "TreatMissingData": "notBreaching"}
    cloudwatch.put_metric_alarm(AlarmName=f"{function}-errors", MetricName="Errors", Statistic="Sum", Threshold=1,
                                ComparisonOperator="GreaterThanOrEqualToThreshold", **common)
    cloudwatch.put_metric_alarm(AlarmName=f"{function}-latency", MetricName="Duration", ExtendedStatistic="p99",
                                Threshold=30_000, ComparisonOperator="GreaterThanThreshold", **common)
    return [f"{function}-errors", f"{function}-latency"]


def _deployment_group(codedeploy: Any, name: str, role: str, alarms: list[str]) -> None:
    codedeploy.create_application(applicationName=name, computePlatform="Lambda")
    codedeploy.create_deployment_group(
        applicationName=name, deploymentGroupName=name, serviceRoleArn=role, deploymentConfigName=CANARY,
        deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        alarmConfiguration={"enabled": True, "alarms": [{"name": a} for a in alarms]},
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]})


@pytest.fixture
def rehearsal(request: pytest.FixtureRequest, moto_server: str, churn_bundle: Path, churn_bundle_v2: Path,
              tmp_path: Path) -> Iterator[Rehearsal]:
    from mlship.local.plane.server import ControlPlane

    readable = re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name.removeprefix("test_"))[:40]
    function = f"rollout-{readable}-{hashlib.sha1(request.node.name.encode()).hexdigest()[:6]}"
    with ControlPlane(moto_server, log_dir=tmp_path / "plane", time_scale=0.01, services=SERVICES) as plane:
        uri1, uri2 = upload_bundle(moto_server, churn_bundle), upload_bundle(moto_server, churn_bundle_v2)
        v1, v2 = ResolvedModel("churn", "1", uri1), ResolvedModel("churn", "2", uri2)
        role = make_role(moto_server)
        made = Rehearsal(plane, moto_server, function, FunctionTarget(function, "live", function, function), v1, v2,
                         [], golden_inputs(churn_bundle)[:2])
        lam = made.client("lambda")
        create_predict_function(lam, function, role, uri1, MLSHIP_MODEL_NAME="churn", MLSHIP_MODEL_VERSION="1")
        first = lam.publish_version(FunctionName=function)["Version"]
        lam.create_alias(FunctionName=function, Name="live", FunctionVersion=first)
        made.alarms = _alarms(made.client("cloudwatch", via_plane=False), function)
        _deployment_group(made.client("codedeploy"), function, role, made.alarms)
        yield made


@dataclass
class Traffic:
    """A client calling ``NAME:live`` without pause, counting answers by executed version."""

    lam: Any
    name: str
    rows: list[dict[str, Any]]
    ok: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                response = self.lam.invoke(FunctionName=f"{self.name}:live",
                                           Payload=json.dumps({"instances": self.rows}).encode())
                body = json.loads(response["Payload"].read() or b"null")
            except Exception as exc:  # noqa: BLE001 - a failed call is a failed request, never a dead client
                self.failed[f"client error {type(exc).__name__}"] += 1
                continue
            version = response["ExecutedVersion"]
            if "FunctionError" in response or body.get("statusCode") != 200:
                self.failed[version] += 1
            else:
                self.ok[version] += 1
                self.models[body["model"]["version"]] += 1

    def __enter__(self) -> Traffic:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        while not self.ok and not self.failed and self.thread.is_alive():  # the first answer: v1 is warm
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def test_canary_succeeds_with_no_failed_request(rehearsal: Rehearsal) -> None:
    phases: list[Any] = []
    with Traffic(rehearsal.client("lambda"), rehearsal.function, rehearsal.rows) as traffic:
        outcome = rehearsal.driver().run(rehearsal.target, rehearsal.v2, 120, on_phase=phases.append)
        time.sleep(0.5)  # traffic after the shift reaches the new version only
        after = Counter(traffic.ok)
        time.sleep(0.5)
    assert outcome.outcome == "succeeded", outcome.reason
    assert (outcome.model_version, outcome.previous_version) == ("2", "1")
    assert (outcome.previous_function_version, outcome.function_version) == ("1", "2")
    assert outcome.endpoint == f"{rehearsal.function}:live" and outcome.deployment_id
    assert sum(traffic.failed.values()) == 0
    assert traffic.ok["1"] > 0 and traffic.ok["2"] > 0 and set(traffic.models) == {"1", "2"}
    assert traffic.ok["1"] == after["1"]  # nothing reached version 1 once the alias moved
    assert rehearsal.alias()["FunctionVersion"] == "2"
    assert not rehearsal.alias()["RoutingConfig"].get("AdditionalVersionWeights")
    shares = [p.variants.get("version 2", {}).get("weight") for p in phases]
    assert 0.1 in shares and shares[-1] == 1.0  # the canary step, then all traffic
    info = rehearsal.client("codedeploy").get_deployment(deploymentId=outcome.deployment_id)["deploymentInfo"]
    assert info["status"] == "Succeeded" and info["deploymentOverview"]["Succeeded"] == 1
    json.loads(outcome.to_json())  # the --json document


def test_alarm_on_errors_rolls_the_alias_back(rehearsal: Rehearsal) -> None:
    lam = rehearsal.client("lambda")
    lam.update_function_code(FunctionName=rehearsal.function, ZipFile=failing_zip())  # a broken code deploy
    # a custom configuration (the plane implements CreateDeploymentConfig, moto does not): a 50% canary
    # makes every 0.6 s alarm period see errors, whatever the client's pace
    rehearsal.client("codedeploy").create_deployment_config(
        deploymentConfigName=f"{rehearsal.function}-half", computePlatform="Lambda",
        trafficRoutingConfig={"type": "TimeBasedCanary",
                              "timeBasedCanary": {"canaryPercentage": 50, "canaryInterval": 5}})
    with Traffic(lam, rehearsal.function, rehearsal.rows) as traffic:
        outcome = rehearsal.driver().run(rehearsal.target, rehearsal.v2, 120,
                                         deployment_config=f"{rehearsal.function}-half")
        time.sleep(0.3)
        failed_at_end = sum(traffic.failed.values())
        time.sleep(0.5)
    assert outcome.outcome == "rolled_back", outcome.reason
    assert outcome.alarm == f"{rehearsal.function}-errors"
    assert "Activated alarms" in outcome.reason and outcome.alarm in outcome.reason
    assert set(traffic.failed) == {"2"} and traffic.ok["1"] > 0  # only the canary's requests failed
    assert sum(traffic.failed.values()) == failed_at_end  # none after the rollback
    assert rehearsal.alias()["FunctionVersion"] == "1"
    assert not rehearsal.alias()["RoutingConfig"].get("AdditionalVersionWeights")
    cd = rehearsal.client("codedeploy")
    info = cd.get_deployment(deploymentId=outcome.deployment_id)["deploymentInfo"]
    assert info["status"] == "Stopped" and info["errorInformation"]["code"] == "ALARM_ACTIVE"
    rollback = cd.get_deployment(deploymentId=info["rollbackInfo"]["rollbackDeploymentId"])["deploymentInfo"]
    assert rollback["status"] == "Succeeded" and rollback["creator"] == "codeDeployRollback"
    states = rehearsal.client("cloudwatch", False).describe_alarms(AlarmNames=rehearsal.alarms)["MetricAlarms"]
    assert {a["AlarmName"]: a["StateValue"] for a in states}[outcome.alarm] == "ALARM"


def test_bad_targets_are_refused_before_any_change(rehearsal: Rehearsal) -> None:
    from mlship.release.endpoint import RolloutError

    driver = rehearsal.driver()
    t = rehearsal.target
    rehearsal.client("codedeploy").create_deployment_group(
        applicationName=t.application, deploymentGroupName=f"{t.function}-typo",
        serviceRoleArn=make_role(rehearsal.moto),
        alarmConfiguration={"enabled": True, "alarms": [{"name": f"{t.function}-errros"}]})
    for bad, words in ((FunctionTarget("no-such-fn", "live", t.application, t.deployment_group), "function"),
                       (FunctionTarget(t.function, "nope", t.application, t.deployment_group), "alias"),
                       (FunctionTarget(t.function, "live", t.application, "no-group"), "deployment group"),
                       (FunctionTarget(t.function, "live", t.application, f"{t.function}-typo"),
                        "alarm.*do not exist: .*-errros")):
        with pytest.raises(RolloutError, match=words):
            driver.check(bad)
    versions = rehearsal.client("lambda").list_versions_by_function(FunctionName=t.function)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]  # nothing was published


def test_a_second_deployment_is_refused_and_a_slow_one_times_out(rehearsal: Rehearsal) -> None:
    from mlship.release.endpoint import RolloutError

    driver = rehearsal.driver()
    preflight = driver.check(rehearsal.target)
    new = driver.publish(rehearsal.target, rehearsal.v2, preflight)
    first = driver.start(rehearsal.target, preflight.current_version, new, rehearsal.v2)
    time.sleep(0.3)  # the canary step is on
    with pytest.raises(RolloutError, match="shifting traffic|active deployment"):
        driver.check(rehearsal.target)
    cd = rehearsal.client("codedeploy")
    with pytest.raises(cd.exceptions.DeploymentLimitExceededException):
        driver.start(rehearsal.target, preflight.current_version, new, rehearsal.v2)
    waited = driver.follow(rehearsal.target, first, preflight.current_version, new, [], 0.2)
    assert waited.outcome == "timeout" and "still InProgress" in waited.reason and not waited.ok
    cd.stop_deployment(deploymentId=first, autoRollbackEnabled=True)
    outcome = driver.follow(rehearsal.target, first, preflight.current_version, new, [], 60)
    assert outcome.outcome == "rolled_back" and rehearsal.alias()["FunctionVersion"] == "1"


def test_judge_reads_the_alias_not_only_the_status() -> None:
    succeeded = {"status": "Succeeded"}
    assert judge_shift(succeeded, {"2": 1.0}, "1", "2") == ("succeeded", "")
    assert judge_shift(succeeded, {"1": 1.0}, "1", "2")[0] == "failed"
    assert judge_shift({"status": "InProgress"}, {"1": 0.9, "2": 0.1}, "1", "2")[0] == "in_progress"
    stopped = {"status": "Stopped", "errorInformation": {"code": "ALARM_ACTIVE", "message": "Activated alarms: a"}}
    assert judge_shift(stopped, {"1": 1.0}, "1", "2") == ("rolled_back", "Activated alarms: a")
    assert judge_shift(stopped, {"1": 1.0}, "1", "2", rollback_active=True)[0] == "in_progress"
    assert judge_shift({"status": "Failed"}, {"1": 0.9, "2": 0.1}, "1", "2")[0] == "failed"


def test_predict_env_pins_one_version(rehearsal: Rehearsal) -> None:
    driver = rehearsal.driver()
    preflight = driver.check(rehearsal.target)
    new = driver.publish(rehearsal.target, rehearsal.v2, preflight)
    config = rehearsal.client("lambda").get_function_configuration(FunctionName=rehearsal.function, Qualifier=new)
    assert config["Environment"]["Variables"] == {**predict_env(rehearsal.v2.bundle_uri),
                                                  "MLSHIP_MODEL_NAME": "churn", "MLSHIP_MODEL_VERSION": "2"}


# ---------------------------------------------------------------------------------- the command


@pytest.fixture
def cli_env(rehearsal: Rehearsal, churn_bundle: Path, churn_bundle_v2: Path, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The process pointed at the plane (Lambda, CodeDeploy) and moto (the rest); v1 and v2 registered;
    the built-in dev configuration (an empty cdk.json)."""
    from mlship.aws import clients
    from mlship.registry.store import Registry

    (tmp_path / "cdk.json").write_text('{"context": {}}')
    monkeypatch.setenv("MLSHIP_CDK_JSON", str(tmp_path / "cdk.json"))

    monkeypatch.setenv("AWS_ENDPOINT_URL", rehearsal.moto)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", rehearsal.plane.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CODEDEPLOY", rehearsal.plane.url)
    bucket = f"registry-{hashlib.sha1(rehearsal.function.encode()).hexdigest()[:12]}"  # one per test
    monkeypatch.setenv("MLSHIP_REGISTRY_BUCKET", bucket)
    clients.clear_cache()
    s3 = rehearsal.client("s3", via_plane=False)
    s3.create_bucket(Bucket=bucket)
    registry = Registry(bucket, sagemaker=False)
    registry.register(churn_bundle)
    registry.register(churn_bundle_v2)
    registry.set_alias("churn", "champion", "1", reason="test start")
    yield registry
    clients.clear_cache()


def _cli(rehearsal: Rehearsal, *args: str) -> Any:
    """``mlship rollout lambda ...`` in-process, against the target of ``rehearsal``."""
    from typer.testing import CliRunner

    from mlship.cli import app

    f = rehearsal.function
    out = CliRunner().invoke(app, ["rollout", "lambda", "--function", f, "--application", f, "--deployment-group", f,
                                   "--poll", "0.1", "--timeout", "120", *args])
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    return out


def test_command_succeeds_and_moves_the_champion(rehearsal: Rehearsal, cli_env: Any) -> None:
    from mlship.config import load_project_config

    out = _cli(rehearsal, "--model", "churn/2", "--json")
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["outcome"] == "succeeded" and doc["model_version"] == "2" and doc["previous_version"] == "1"
    assert doc["endpoint"] == f"{rehearsal.function}:live" and doc["deployment_id"]
    assert "deployment " in out.stderr and "version 2: 10%" in out.stderr  # the progress display
    assert cli_env.get_alias("churn", "champion").version == "2"
    names = load_project_config().names
    ssm = rehearsal.client("ssm", via_plane=False)
    assert ssm.get_parameter(Name=names.deployed_version_parameter)["Parameter"]["Value"] == "2"
    live = rehearsal.client("lambda").get_function_configuration(FunctionName=rehearsal.function, Qualifier="live")
    assert live["Environment"]["Variables"]["MODEL_URI"] == cli_env.bundle_uri("churn", "2")


def test_mlship_invoke_reaches_the_live_alias(rehearsal: Rehearsal, cli_env: Any, tmp_path: Path) -> None:
    """``mlship invoke --function NAME:live`` (its own code, unchanged) runs the handler locally."""
    from typer.testing import CliRunner

    from mlship.cli import app

    request = tmp_path / "request.json"
    request.write_text(json.dumps({"instances": rehearsal.rows}))
    out = CliRunner().invoke(app, ["invoke", str(request), "--function", f"{rehearsal.function}:live"])
    assert out.exit_code == 0, out.stderr
    answer = json.loads(out.stdout)
    assert len(answer["predictions"]) == len(rehearsal.rows) and answer["model"]["version"] == "1"


def test_command_rolled_back_exits_1_and_keeps_the_champion(rehearsal: Rehearsal, cli_env: Any) -> None:
    """A rehearsed fault (--fault errors=1) fires the alarm; the next rollout does not inherit it."""
    rehearsal.client("codedeploy").create_deployment_config(
        deploymentConfigName=f"{rehearsal.function}-half", computePlatform="Lambda",
        trafficRoutingConfig={"type": "TimeBasedCanary",
                              "timeBasedCanary": {"canaryPercentage": 50, "canaryInterval": 5}})
    with Traffic(rehearsal.client("lambda"), rehearsal.function, rehearsal.rows):
        out = _cli(rehearsal, "--model", "churn/2", "--deployment-config", f"{rehearsal.function}-half",
                   "--fault", "errors=1")  # every request to the new version fails (and none waits for its init)
    assert out.exit_code == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "rolled_back" in errors[0] and f"{rehearsal.function}-errors" in errors[0]
    assert cli_env.get_alias("churn", "champion").version == "1"
    assert rehearsal.alias()["FunctionVersion"] == "1"
    time.sleep(1.5)  # the alarm's two 0.6 s periods pass without errors: it is OK again
    again = _cli(rehearsal, "--model", "churn/2", "--deployment-config", "CodeDeployDefault.LambdaAllAtOnce")
    assert again.exit_code == 0, again.stderr
    live = rehearsal.client("lambda").get_function_configuration(FunctionName=rehearsal.function, Qualifier="live")
    assert "MLSHIP_LOCAL_FAULT" not in live["Environment"]["Variables"]
    assert cli_env.get_alias("churn", "champion").version == "2"


@pytest.mark.parametrize("case", ["no function", "no version", "wrong bundle", "bad fault", "fault on AWS"])
def test_command_refuses_bad_input_with_exit_2(rehearsal: Rehearsal, cli_env: Any, case: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--model", "churn/2"]
    if case == "bad fault":
        args += ["--fault", "errors=2"]
    elif case == "fault on AWS":
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", "https://lambda.us-east-1.amazonaws.com")
        args += ["--fault", "errors=0.2"]
    elif case == "no function":
        args += ["--function", "no-such-function"]
    elif case == "no version":
        args = ["--model", "churn/9"]
    else:  # the registered object is not the bundle of churn/2 (tampered storage)
        s3 = rehearsal.client("s3", via_plane=False)
        key = cli_env.bundle_uri("churn", "2").split("/", 3)[3]
        s3.copy_object(Bucket=cli_env.bucket, Key=key, CopySource={
            "Bucket": cli_env.bucket, "Key": cli_env.bundle_uri("churn", "1").split("/", 3)[3]})
    out = _cli(rehearsal, *args)
    assert out.exit_code == 2, out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
    versions = rehearsal.client("lambda").list_versions_by_function(FunctionName=rehearsal.function)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]  # nothing was published
