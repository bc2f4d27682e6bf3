"""The plane's metrics and alarm evaluation: CloudWatch's rules (user guide, "Evaluating an alarm")
on the plane's datapoints, states set in moto, and datapoints published to moto's CloudWatch."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from mlship.local.plane.metrics import AlarmEvaluator, MetricStore, evaluate_alarm

ALARM = {"ComparisonOperator": "GreaterThanThreshold", "Threshold": 0.1, "Statistic": "Average",
         "EvaluationPeriods": 3, "DatapointsToAlarm": 2}


@pytest.mark.parametrize("periods, missing, current, state", [
    ([[0.0], [0.5], [0.5]], "missing", "OK", "ALARM"),  # 2 of 3 breaching
    ([[0.0], [0.0], [0.5]], "missing", "OK", "OK"),  # 1 of 3: DatapointsToAlarm is 2
    ([[], [], []], "missing", "OK", "INSUFFICIENT_DATA"),
    ([[], [], []], "ignore", "ALARM", "ALARM"),  # the state is kept
    ([[], [], []], "notBreaching", "ALARM", "OK"),
    ([[], [], []], "breaching", "OK", "ALARM"),
    ([[], [0.5], []], "breaching", "OK", "ALARM"),  # missing counts as breaching
    ([[], [0.5], []], "notBreaching", "OK", "OK"),
])
def test_cloudwatch_rules(periods: list, missing: str, current: str, state: str) -> None:
    assert evaluate_alarm({**ALARM, "TreatMissingData": missing}, periods, current).state == state


def test_extended_statistic_is_a_percentile() -> None:
    alarm = {**ALARM, "Statistic": None, "ExtendedStatistic": "p99", "Threshold": 400_000,
             "EvaluationPeriods": 1, "DatapointsToAlarm": 1}
    fast = [1000.0] * 99 + [500_000.0]  # one slow call in a hundred: p99 interpolates below it
    assert evaluate_alarm(alarm, [fast], "OK").state == "OK"
    assert evaluate_alarm(alarm, [[1000.0] * 90 + [500_000.0] * 10], "OK").state == "ALARM"


@given(st.lists(st.lists(st.floats(0, 1, allow_nan=False), max_size=5), min_size=1, max_size=6),
       st.sampled_from(["missing", "notBreaching", "breaching", "ignore"]))
def test_any_datapoints_give_a_cloudwatch_state(periods: list, missing: str) -> None:
    result = evaluate_alarm({**ALARM, "EvaluationPeriods": len(periods), "DatapointsToAlarm": 1,
                             "TreatMissingData": missing}, periods, "OK")
    assert result.state in ("OK", "ALARM", "INSUFFICIENT_DATA")
    assert len(result.datapoints) == len(periods)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Context:
    metrics: Any
    time_scale: float = 0.01

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name="us-east-1")


@mock_aws
def test_evaluator_uses_scaled_complete_periods_and_sets_the_state_in_moto(tmp_path: Path) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    dims = [{"Name": "EndpointName", "Value": "e"}, {"Name": "VariantName", "Value": "v"}]
    cloudwatch.put_metric_alarm(AlarmName="e-5xx", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
                                Dimensions=dims, Statistic="Average", Period=60, EvaluationPeriods=2,
                                DatapointsToAlarm=1, Threshold=0.01, ComparisonOperator="GreaterThanThreshold",
                                TreatMissingData="notBreaching")
    clock = Clock()
    store = MetricStore(clock=clock)
    evaluator = AlarmEvaluator(Context(store))
    key = {"EndpointName": "e", "VariantName": "v"}
    for _ in range(50):
        store.record("AWS/SageMaker", "Invocation5XXErrors", key, 0)
    clock.now += 0.7  # one scaled 60 s period (0.6 s) complete, no errors
    assert evaluator.evaluate(["e-5xx"]) == {"e-5xx": "OK"}
    store.record("AWS/SageMaker", "Invocation5XXErrors", key, 1)  # in the current, incomplete period
    assert evaluator.evaluate(["e-5xx"]) == {"e-5xx": "OK"}
    clock.now += 0.6
    assert evaluator.evaluate(["e-5xx"]) == {"e-5xx": "ALARM"}
    found = cloudwatch.describe_alarms(AlarmNames=["e-5xx"])["MetricAlarms"][0]
    assert found["StateValue"] == "ALARM" and "Threshold Crossed" in found["StateReason"]
    clock.now += 1.3  # two clean (empty) periods: not breaching
    assert evaluator.evaluate(["e-5xx"]) == {"e-5xx": "OK"}


@mock_aws
def test_datapoints_reach_cloudwatch_as_values_and_counts() -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    store = MetricStore(lambda ns, data: cloudwatch.put_metric_data(Namespace=ns, MetricData=data), flush_seconds=60)
    key = {"EndpointName": "e", "VariantName": "v"}
    for i in range(400):
        store.record("AWS/SageMaker", "Invocation5XXErrors", key, i % 4 == 0, "Count")
        store.record("AWS/SageMaker", "ModelLatency", key, 1000 + i, "Microseconds")
    store.close()
    now = dt.datetime.now(dt.UTC)
    dims = [{"Name": k, "Value": v} for k, v in key.items()]
    errors = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors", Dimensions=dims, Period=60,
        StartTime=now - dt.timedelta(minutes=5), EndTime=now + dt.timedelta(minutes=1),
        Statistics=["SampleCount", "Sum"])["Datapoints"]
    assert sum(d["SampleCount"] for d in errors) == 400 and sum(d["Sum"] for d in errors) == 100
    latency = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName="ModelLatency", Dimensions=dims, Period=60,
        StartTime=now - dt.timedelta(minutes=5), EndTime=now + dt.timedelta(minutes=1),
        Statistics=["SampleCount", "Maximum"])["Datapoints"]
    assert sum(d["SampleCount"] for d in latency) == 400 and max(d["Maximum"] for d in latency) == 1399
