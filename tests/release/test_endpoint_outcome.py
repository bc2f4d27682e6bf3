"""The endpoint rollout driver against botocore's SageMaker and CloudWatch service models (Stubber).

moto implements neither ``UpdateEndpoint`` nor deployment progress nor alarm history, so the five
terminal cases are scripted with ``botocore.stub.Stubber``: every request the driver makes and
every answer it reads is validated against the real service model.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from mlship.release.endpoint import EndpointRollout, ModelSpec, RolloutError, prepare_config, resource_name
from mlship.release.policy import CapacitySize
from mlship.release.policy import EndpointRollout as RolloutPolicy
from release.helpers import ALARMS, ENDPOINT, NEW, OK, OLD, T0, Clock, describe


def _alarms(states: dict[str, str]) -> dict[str, Any]:
    return {"MetricAlarms": [{"AlarmName": name, "StateValue": state} for name, state in states.items()]}


@pytest.fixture
def clients() -> tuple[Any, Any]:
    kw = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    return boto3.client("sagemaker", **kw), boto3.client("cloudwatch", **kw)


def _script(clients: tuple[Any, Any], steps: list[tuple[dict, dict[str, str]]],
            history: dict[str, list[str]] | None = None) -> tuple[Stubber, Stubber]:
    sm, cw = Stubber(clients[0]), Stubber(clients[1])
    for answer, states in steps:
        sm.add_response("describe_endpoint", answer, {"EndpointName": ENDPOINT})
        cw.add_response("describe_alarms", _alarms(states), {"AlarmNames": ALARMS})
    for name in ALARMS if history is not None else []:
        items = [{"AlarmName": name, "HistoryItemType": "StateUpdate", "Timestamp": T0,
                  "HistoryData": json.dumps({"newState": {"stateValue": s}})} for s in history.get(name, [])]
        cw.add_response("describe_alarm_history", {"AlarmHistoryItems": items},
                        {"AlarmName": name, "HistoryItemType": "StateUpdate", "StartDate": ANY})
    sm.activate()
    cw.activate()
    return sm, cw


def _follow(clients: tuple[Any, Any], timeout: float = 3600) -> Any:
    clock = Clock()
    driver = EndpointRollout(*clients, poll_seconds=30, clock=clock, sleep=clock.sleep)
    seen: list[Any] = []
    outcome = driver.follow(ENDPOINT, NEW, ALARMS, timeout, on_phase=seen.append)
    assert outcome.phases == seen
    return outcome




def test_success_needs_the_new_config_and_nothing_pending(clients):
    stubs = _script(clients, [
        (describe("Updating", OLD, green=["Creating"]), OK),
        (describe("Updating", OLD, green=["ActivatingTraffic"]), OK),
        (describe("Updating", OLD, green=["Baking"]), OK),
        (describe("InService", NEW), OK),
    ])
    outcome = _follow(clients)
    assert (outcome.outcome, outcome.ok, outcome.reason, outcome.alarm) == ("succeeded", True, "", None)
    assert [p.variants.get("green:AllTraffic", {}).get("status") for p in outcome.phases] == [
        ["Creating"], ["ActivatingTraffic"], ["Baking"], None]
    assert json.loads(outcome.to_json())["outcome"] == "succeeded"
    for stub in stubs:
        stub.assert_no_pending_responses()


def test_alarm_rollback_names_the_alarm(clients):
    reason = f"Alarm {ALARMS[0]} in ALARM state; rolling back the deployment"
    _script(clients, [
        (describe("Updating", OLD, green=["Baking"]), OK),
        (describe("RollingBack", OLD, green=["Deleting"]), {ALARMS[0]: "ALARM", ALARMS[1]: "OK"}),
        (describe("InService", OLD, reason=reason), {ALARMS[0]: "ALARM", ALARMS[1]: "OK"}),
    ], history={ALARMS[0]: ["ALARM"]})
    outcome = _follow(clients)
    assert (outcome.outcome, outcome.ok, outcome.alarm) == ("rolled_back", False, ALARMS[0])
    assert "ALARM" in outcome.reason
    assert [p.endpoint_status for p in outcome.phases] == ["Updating", "RollingBack", "InService"]


def test_rollback_with_an_empty_failure_reason_is_still_a_rollback(clients):
    """The waiter's blind spot: InService, no FailureReason, but on the OLD configuration."""
    _script(clients, [
        (describe("Updating", OLD, green=["Baking"]), OK),
        (describe("InService", OLD), OK),  # the alarm is OK again by now
    ], history={ALARMS[1]: ["ALARM", "OK"]})
    outcome = _follow(clients)
    assert outcome.outcome == "rolled_back" and not outcome.ok
    assert OLD in outcome.reason and NEW in outcome.reason
    assert outcome.alarm == ALARMS[1]  # found in the alarm history


def test_update_rollback_failed_is_a_failure(clients):
    _script(clients, [
        (describe("RollingBack", OLD, green=["Deleting"]), {ALARMS[0]: "ALARM", ALARMS[1]: "OK"}),
        (describe("UpdateRollbackFailed", OLD, reason="could not restore the old fleet"), OK),
    ])
    outcome = _follow(clients)
    assert (outcome.outcome, outcome.reason) == ("failed", "could not restore the old fleet")


def test_a_rollout_that_does_not_end_is_a_timeout(clients):
    _script(clients, [(describe("Updating", OLD, green=["Baking"]), OK)] * 5)
    outcome = _follow(clients, timeout=120)
    assert outcome.outcome == "timeout" and "Updating" in outcome.reason
    assert len(outcome.phases) == 1  # the same phase is recorded once


def test_start_sends_a_valid_blue_green_update(clients):
    policy = RolloutPolicy(strategy="LINEAR", linear_step=CapacitySize(value=25), wait_interval_seconds=60,
                           termination_wait_seconds=30, maximum_execution_timeout_seconds=900)
    sm = Stubber(clients[0])
    sm.add_response("describe_endpoint", describe("InService", OLD), {"EndpointName": ENDPOINT})
    sm.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/x"}, {
        "EndpointName": ENDPOINT, "EndpointConfigName": NEW, "RetainAllVariantProperties": False,
        "DeploymentConfig": {"BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "LINEAR", "WaitIntervalInSeconds": 60,
                                            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}},
            "TerminationWaitInSeconds": 30, "MaximumExecutionTimeoutInSeconds": 900},
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in ALARMS]}}})
    sm.activate()
    EndpointRollout(*clients).start(ENDPOINT, NEW, policy, ALARMS)
    sm.assert_no_pending_responses()


def test_a_second_rollout_on_an_updating_endpoint_is_refused(clients):
    sm = Stubber(clients[0])
    sm.add_response("describe_endpoint", describe("Updating", OLD, green=["Baking"]), {"EndpointName": ENDPOINT})
    sm.activate()
    with pytest.raises(RolloutError, match="is Updating"):
        EndpointRollout(*clients).start(ENDPOINT, NEW, RolloutPolicy(canary=CapacitySize(value=10)), ALARMS)


def test_prepare_config_pins_the_version_and_keeps_the_variants(clients):
    sm = Stubber(clients[0])
    name = resource_name(ENDPOINT, "2.0.1", "20261201090000")
    assert name == "mlship-dev-churn-v2-0-1-20261201090000" and len(name) <= 63
    sm.add_response("describe_endpoint", describe("InService", OLD), {"EndpointName": ENDPOINT})
    variant = {"VariantName": "AllTraffic", "ModelName": "old", "InitialInstanceCount": 2,
               "InstanceType": "ml.c7i.large", "InitialVariantWeight": 1.0}
    capture = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": "s3://c/p",
               "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}
    sm.add_response("describe_endpoint_config", {
        "EndpointConfigName": OLD, "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:1:endpoint-config/x",
        "ProductionVariants": [variant], "DataCaptureConfig": capture, "CreationTime": T0},
        {"EndpointConfigName": OLD})
    spec = ModelSpec("churn", "2.0.1", "s3://reg/models/churn/2.0.1/bundle.tar.gz", "1.dkr.ecr/img:1",
                     "arn:aws:iam::1:role/sm")
    sm.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:1:model/x"}, {
        "ModelName": name, "ExecutionRoleArn": spec.role_arn,
        "PrimaryContainer": {"Image": spec.image_uri, "ModelDataUrl": spec.bundle_uri,
                             "Environment": {"MLSHIP_MODEL_NAME": "churn", "MLSHIP_MODEL_VERSION": "2.0.1"}}})
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:1:endpoint-config/y"},
                    {"EndpointConfigName": name, "ProductionVariants": [{**variant, "ModelName": name}],
                     "DataCaptureConfig": capture})
    sm.activate()
    assert prepare_config(clients[0], ENDPOINT, spec, stamp="20261201090000") == name
    sm.assert_no_pending_responses()
