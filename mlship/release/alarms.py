"""Default rollback alarms for an endpoint variant: its 5XX error rate and its p99 model latency.

SageMaker emits ``Invocation5XXErrors`` as 0 or 1 per invocation, so its ``Average`` over a period
is the error rate (SageMaker developer guide, "Invocation metrics"); ``ModelLatency`` is in
microseconds. Both alarms treat missing data as not breaching: a quiet canary is not a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

NAMESPACE = "AWS/SageMaker"


@dataclass(frozen=True)
class AlarmThresholds:
    """Thresholds of the default rollback alarms."""

    error_rate: float = 0.01  # share of invocations answered 5XX
    p99_latency_ms: float = 500.0
    period_seconds: int = 60
    evaluation_periods: int = 2
    datapoints_to_alarm: int = 1


def default_alarm_names(endpoint: str, variant: str) -> list[str]:
    """The names :func:`default_alarms` gives (5XX rate first, then p99 latency)."""
    return [f"{endpoint}-{variant}-5xx-rate"[:255], f"{endpoint}-{variant}-p99-latency"[:255]]


def default_alarms(endpoint: str, variant: str, limits: AlarmThresholds | None = None) -> list[dict[str, Any]]:
    """``PutMetricAlarm`` arguments of the two default rollback alarms of one variant."""
    limits = limits or AlarmThresholds()
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    common = {"Namespace": NAMESPACE, "Dimensions": dims, "Period": limits.period_seconds,
              "EvaluationPeriods": limits.evaluation_periods, "DatapointsToAlarm": limits.datapoints_to_alarm,
              "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}
    errors, latency = default_alarm_names(endpoint, variant)
    return [
        {**common, "AlarmName": errors, "MetricName": "Invocation5XXErrors", "Statistic": "Average",
         "Threshold": limits.error_rate,
         "AlarmDescription": f"mlship rollback: {variant} of {endpoint} answers over "
                             f"{limits.error_rate:.1%} of invocations with a 5XX"},
        {**common, "AlarmName": latency, "MetricName": "ModelLatency", "ExtendedStatistic": "p99",
         "Threshold": limits.p99_latency_ms * 1000.0, "Unit": "Microseconds",
         "AlarmDescription": f"mlship rollback: p99 model latency of {variant} of {endpoint} "
                             f"over {limits.p99_latency_ms:g} ms"},
    ]


def missing_alarms(cloudwatch: Any, names: list[str]) -> list[str]:
    """Which of ``names`` CloudWatch does not have."""
    if not names:
        return []
    found = {a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNames=names).get("MetricAlarms", [])}
    return [name for name in names if name not in found]


def ensure_default_alarms(cloudwatch: Any, endpoint: str, variant: str,
                          limits: AlarmThresholds | None = None) -> list[str]:
    """Create (or update) the default rollback alarms of a variant; return their names."""
    specs = default_alarms(endpoint, variant, limits)
    for spec in specs:
        cloudwatch.put_metric_alarm(**spec)
    return [spec["AlarmName"] for spec in specs]


def alarm_states(cloudwatch: Any, names: list[str]) -> dict[str, str]:
    """The current state of each named alarm that exists (``DescribeAlarms``)."""
    if not names:
        return {}
    found = cloudwatch.describe_alarms(AlarmNames=list(names)).get("MetricAlarms", [])
    return {a["AlarmName"]: a["StateValue"] for a in found}


def _new_state(item: dict[str, Any]) -> str | None:
    """The state an alarm-history item moved to (from its JSON ``HistoryData``, not its summary text)."""
    try:
        return json.loads(item.get("HistoryData") or "{}").get("newState", {}).get("stateValue")
    except (ValueError, AttributeError):
        return None


def went_to_alarm(cloudwatch: Any, names: list[str], since: datetime) -> dict[str, bool]:
    """Which alarms went to ALARM since ``since`` (an alarm may be OK again by now); empty where
    CloudWatch keeps no history (moto has no ``DescribeAlarmHistory``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    went: dict[str, bool] = {}
    for name in names:
        try:
            items = cloudwatch.describe_alarm_history(
                AlarmName=name, HistoryItemType="StateUpdate", StartDate=since).get("AlarmHistoryItems", [])
        except (ClientError, BotoCoreError):
            return {}
        went[name] = any(_new_state(item) == "ALARM" for item in items)
    return went
