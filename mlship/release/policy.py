"""Rollout settings for blue/green deployments, checked against the services' documented limits.

Import-light (pydantic only, no aws_cdk): the CDK stacks, ``mlship rollout`` and unit tests use
the same settings and the same checks.

SageMaker limits (API reference: TrafficRoutingConfig, BlueGreenUpdatePolicy, AutoRollbackConfig,
CapacitySize; developer guide: deployment guardrails):

* ``WaitIntervalInSeconds`` 0-3600; ``TerminationWaitInSeconds`` 0-3600;
  ``MaximumExecutionTimeoutInSeconds`` 600-28800 and larger than the total waiting time.
* canary size <= 50% of the variant's instance count; linear step 10-50% of it.
* 1-10 rollback alarms.

CodeDeploy (Lambda alias shifting): ``TimeBasedCanary``/``TimeBasedLinear`` take integer
percentages and minutes, and the API reference publishes no range; mlship requires a percentage
of 1-99 (a step must leave traffic on the old version) and an interval of at least 1 minute.

Example:
    >>> r = EndpointRollout(strategy="CANARY", canary=CapacitySize(value=10))
    >>> endpoint_rollout_problems(r, instance_count=2, alarm_count=3)
    []
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WAIT_MAX_S = 3600
TERMINATION_WAIT_MAX_S = 3600
MAX_EXECUTION_MIN_S = 600
MAX_EXECUTION_MAX_S = 28800
CANARY_MAX_PERCENT = 50
LINEAR_MIN_PERCENT = 10
LINEAR_MAX_PERCENT = 50
MAX_ROLLBACK_ALARMS = 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapacitySize(_Strict):
    """A SageMaker ``CapacitySize``: a share of the green fleet or a number of instances."""

    type: Literal["CAPACITY_PERCENT", "INSTANCE_COUNT"] = "CAPACITY_PERCENT"
    value: int = Field(ge=1)

    def percent_of(self, instance_count: int) -> float:
        """This size as a percentage of ``instance_count`` instances."""
        if self.type == "CAPACITY_PERCENT":
            return float(self.value)
        return 100.0 * self.value / max(instance_count, 1)


class EndpointRollout(_Strict):
    """SageMaker blue/green deployment settings (``DeploymentConfig.BlueGreenUpdatePolicy``)."""

    strategy: Literal["CANARY", "LINEAR", "ALL_AT_ONCE"] = "CANARY"
    canary: CapacitySize | None = None
    linear_step: CapacitySize | None = None
    wait_interval_seconds: int = 300
    termination_wait_seconds: int = 120
    maximum_execution_timeout_seconds: int = 3600

    def steps(self, instance_count: int) -> int:
        """How many traffic-shifting steps the deployment makes."""
        if self.strategy == "CANARY":
            return 2
        if self.strategy == "LINEAR" and self.linear_step is not None:
            return max(1, math.ceil(100.0 / max(self.linear_step.percent_of(instance_count), 1e-9)))
        return 1

    def deployment_config(self, alarm_names: list[str]) -> dict[str, Any]:
        """The ``DeploymentConfig`` of ``UpdateEndpoint`` (boto3 shape) for these settings."""
        routing: dict[str, Any] = {"Type": self.strategy, "WaitIntervalInSeconds": self.wait_interval_seconds}
        if self.strategy == "CANARY" and self.canary is not None:
            routing["CanarySize"] = {"Type": self.canary.type, "Value": self.canary.value}
        if self.strategy == "LINEAR" and self.linear_step is not None:
            routing["LinearStepSize"] = {"Type": self.linear_step.type, "Value": self.linear_step.value}
        config: dict[str, Any] = {"BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": self.termination_wait_seconds,
            "MaximumExecutionTimeoutInSeconds": self.maximum_execution_timeout_seconds}}
        if alarm_names:
            config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarm_names]}
        return config

    def total_wait_seconds(self, instance_count: int) -> int:
        """Baking time between steps plus the termination wait (must fit in the maximum time)."""
        return self.wait_interval_seconds * max(self.steps(instance_count) - 1, 0) + \
            self.termination_wait_seconds


class LambdaRollout(_Strict):
    """CodeDeploy traffic shifting of the predict function's ``live`` alias."""

    strategy: Literal["CANARY", "LINEAR", "ALL_AT_ONCE"] = "CANARY"
    percentage: int = 10
    interval_minutes: int = 5


def endpoint_rollout_problems(rollout: EndpointRollout, *, instance_count: int, alarm_count: int,
                              serverless: bool = False) -> list[str]:
    """Every way ``rollout`` breaks SageMaker's documented limits (empty when valid)."""
    out: list[str] = []
    where = "endpoint.rollout"
    if not 0 <= rollout.wait_interval_seconds <= WAIT_MAX_S:
        out.append(f"{where}.wait_interval_seconds={rollout.wait_interval_seconds}: "
                   f"SageMaker allows 0-{WAIT_MAX_S} s")
    if not 0 <= rollout.termination_wait_seconds <= TERMINATION_WAIT_MAX_S:
        out.append(f"{where}.termination_wait_seconds={rollout.termination_wait_seconds}: "
                   f"SageMaker allows 0-{TERMINATION_WAIT_MAX_S} s")
    if not MAX_EXECUTION_MIN_S <= rollout.maximum_execution_timeout_seconds <= MAX_EXECUTION_MAX_S:
        out.append(f"{where}.maximum_execution_timeout_seconds={rollout.maximum_execution_timeout_seconds}: "
                   f"SageMaker allows {MAX_EXECUTION_MIN_S}-{MAX_EXECUTION_MAX_S} s")
    if rollout.strategy == "CANARY":
        if rollout.canary is None:
            out.append(f"{where}.canary is required when strategy is CANARY")
        else:
            if serverless and rollout.canary.type == "INSTANCE_COUNT":
                out.append(f"{where}.canary: a serverless variant has no instances; use CAPACITY_PERCENT")
            pct = rollout.canary.percent_of(instance_count)
            if pct > CANARY_MAX_PERCENT:
                out.append(f"{where}.canary={_size(rollout.canary)} is {pct:.0f}% of {instance_count} "
                           f"instance(s): SageMaker allows at most {CANARY_MAX_PERCENT}% of capacity")
        if rollout.linear_step is not None:
            out.append(f"{where}.linear_step is only used with strategy LINEAR")
    elif rollout.strategy == "LINEAR":
        if rollout.linear_step is None:
            out.append(f"{where}.linear_step is required when strategy is LINEAR")
        else:
            if serverless and rollout.linear_step.type == "INSTANCE_COUNT":
                out.append(f"{where}.linear_step: a serverless variant has no instances; "
                           "use CAPACITY_PERCENT")
            pct = rollout.linear_step.percent_of(instance_count)
            if not LINEAR_MIN_PERCENT <= pct <= LINEAR_MAX_PERCENT:
                out.append(f"{where}.linear_step={_size(rollout.linear_step)} is {pct:.0f}% of "
                           f"{instance_count} instance(s): SageMaker allows {LINEAR_MIN_PERCENT}-"
                           f"{LINEAR_MAX_PERCENT}% of capacity per step")
        if rollout.canary is not None:
            out.append(f"{where}.canary is only used with strategy CANARY")
    elif rollout.canary is not None or rollout.linear_step is not None:
        out.append(f"{where}: canary/linear_step are not used with strategy ALL_AT_ONCE")
    if not out and rollout.strategy != "ALL_AT_ONCE":
        total = rollout.total_wait_seconds(instance_count)
        if rollout.maximum_execution_timeout_seconds <= total:
            out.append(f"{where}.maximum_execution_timeout_seconds={rollout.maximum_execution_timeout_seconds}"
                       f" must exceed the total waiting time ({rollout.steps(instance_count) - 1} x "
                       f"wait_interval_seconds + termination_wait_seconds = {total} s)")
    if not 1 <= alarm_count <= MAX_ROLLBACK_ALARMS:
        out.append(f"endpoint.alarms: {alarm_count} rollback alarms; SageMaker allows 1-{MAX_ROLLBACK_ALARMS}")
    return out


def lambda_rollout_problems(rollout: LambdaRollout) -> list[str]:
    """Every problem with a CodeDeploy traffic-shifting setting (empty when valid)."""
    out: list[str] = []
    where = "api.rollout"
    if rollout.strategy == "ALL_AT_ONCE":
        return out
    if not 1 <= rollout.percentage <= 99:
        out.append(f"{where}.percentage={rollout.percentage}: a step must be 1-99% of traffic")
    if rollout.interval_minutes < 1:
        out.append(f"{where}.interval_minutes={rollout.interval_minutes}: must be at least 1 minute")
    return out


def _size(size: CapacitySize) -> str:
    return f"{size.value}{'%' if size.type == 'CAPACITY_PERCENT' else ' instance(s)'}"
