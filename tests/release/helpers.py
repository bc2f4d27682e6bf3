"""Scripted SageMaker answers and a fake clock for the release tests (Stubber: moto lacks deployments)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

ENDPOINT, OLD, NEW = "mlship-dev-churn", "churn-v1-cfg", "churn-v2-cfg"
ALARMS = ["mlship-dev-churn-5xx", "mlship-dev-churn-p99"]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OK = dict.fromkeys(ALARMS, "OK")


def variant(statuses: list[str], weight: float = 1.0) -> dict[str, Any]:
    """One production variant of a DescribeEndpoint answer, in the given VariantStatus phases."""
    return {"VariantName": "AllTraffic", "CurrentWeight": weight, "DesiredWeight": weight,
            "CurrentInstanceCount": 2, "DesiredInstanceCount": 2,
            "VariantStatus": [{"Status": s, "StartTime": T0} for s in statuses]}


def describe(status: str, config: str, *, green: list[str] | None = None, reason: str = "") -> dict[str, Any]:
    """A DescribeEndpoint answer; ``green`` puts a pending deployment of NEW in those phases."""
    doc: dict[str, Any] = {
        "EndpointName": ENDPOINT, "EndpointArn": f"arn:aws:sagemaker:us-east-1:1:endpoint/{ENDPOINT}",
        "EndpointConfigName": config, "EndpointStatus": status, "CreationTime": T0, "LastModifiedTime": T0,
        "ProductionVariants": [variant([])],
        "LastDeploymentConfig": {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in ALARMS]}}}
    if green is not None:
        doc["PendingDeploymentSummary"] = {"EndpointConfigName": NEW, "StartTime": T0,
                                           "ProductionVariants": [variant(green, 0.0)]}
    if reason:
        doc["FailureReason"] = reason
    return doc


class Clock:
    """A fake clock: the driver's sleeps advance it (no real waiting in tests)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
