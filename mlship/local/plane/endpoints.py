"""One endpoint's life on the plane: creation, blue/green updates, and what ``DescribeEndpoint`` reports.

The update follows the SageMaker developer guide ("Blue/Green deployments", "Auto-Rollback
Configuration and Monitoring"): the green fleet of the new configuration is provisioned next to the
blue one and must pass health checks; traffic moves in the policy's steps (all at once, a canary
then the rest, or linear steps), each followed by a baking period of ``WaitIntervalInSeconds``
during which the rollback alarms are watched; after the last shift the blue fleet is kept for
``TerminationWaitInSeconds`` (alarms still watched) and then terminated. An alarm in ``ALARM``
moves all traffic back to blue and ends the update ``InService`` on the old configuration with a
``FailureReason``; a green fleet that fails its health checks ends it the same way. Waits are
multiplied by the plane's time scale.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mlship.local.plane.container import ServiceError
from mlship.local.plane.fleet import Fleet, fleet_from_config

log = logging.getLogger("mlship.local.plane.endpoints")


class RolledBack(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a deployment to roll it back, with SageMaker's failure reason."""


@dataclass
class Deployment:
    """The update in progress: its green fleet, traffic share and each variant's phases."""

    config_name: str
    green: Fleet
    policy: dict[str, Any]
    alarms: list[str]
    started: float = field(default_factory=time.time)
    share: float = 0.0  # of the traffic on the green fleet
    statuses: list[dict[str, Any]] = field(default_factory=list)

    def phase(self, status: str, message: str = "") -> None:
        self.statuses = [{"Status": status, "StatusMessage": message, "StartTime": time.time()}]


@dataclass
class EndpointState:
    """What the plane knows of one endpoint."""

    name: str
    arn: str
    config_name: str
    blue: Fleet
    status: str = "Creating"
    failure_reason: str = ""
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)
    last_deployment_config: dict[str, Any] | None = None
    deployment: Deployment | None = None
    blue_statuses: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def set_status(self, status: str, failure_reason: str | None = None) -> None:
        with self.lock:
            self.status, self.modified = status, time.time()
            if failure_reason is not None:
                self.failure_reason = failure_reason

    def route(self, target: str | None) -> tuple[Fleet, Any]:
        """The fleet and variant for one request (green with the deployment's share)."""
        with self.lock:
            deployment = self.deployment
            fleet = self.blue
            if deployment is not None and deployment.share > 0 and \
                    (deployment.share >= 1.0 or deployment.green._random.random() < deployment.share):
                fleet = deployment.green
            variant = fleet.choose(target)
            fleet.acquire()
            return fleet, variant

    def describe(self) -> dict[str, Any]:
        """The ``DescribeEndpoint`` answer."""
        with self.lock:
            deployment = self.deployment
            blue_share = 1.0 - (deployment.share if deployment else 0.0)
            answer: dict[str, Any] = {
                "EndpointName": self.name, "EndpointArn": self.arn, "EndpointConfigName": self.config_name,
                "EndpointStatus": self.status, "CreationTime": self.created, "LastModifiedTime": self.modified,
                "ProductionVariants": [_variant_summary(v, blue_share, self.blue_statuses)
                                       for v in self.blue.variants]}
            if self.blue.shadows:
                answer["ShadowProductionVariants"] = [_variant_summary(v, 1.0, self.blue_statuses)
                                                      for v in self.blue.shadows]
            if self.failure_reason:
                answer["FailureReason"] = self.failure_reason
            if self.last_deployment_config:
                answer["LastDeploymentConfig"] = self.last_deployment_config
            if deployment is not None:
                answer["PendingDeploymentSummary"] = {
                    "EndpointConfigName": deployment.config_name, "StartTime": deployment.started,
                    "ProductionVariants": [_variant_summary(v, deployment.share, deployment.statuses)
                                           for v in deployment.green.variants]}
                if deployment.green.shadows:
                    answer["PendingDeploymentSummary"]["ShadowProductionVariants"] = [
                        _variant_summary(v, 1.0, deployment.statuses) for v in deployment.green.shadows]
            return answer


def _variant_summary(variant: Any, share: float, statuses: list[dict[str, Any]]) -> dict[str, Any]:
    summary = {"VariantName": variant.name, "CurrentWeight": round(variant.weight * share, 6),
               "DesiredWeight": variant.weight, "CurrentInstanceCount": variant.instance_count,
               "DesiredInstanceCount": variant.instance_count}
    if variant.instance_type:
        summary["InstanceType"] = variant.instance_type
    if statuses:
        summary["VariantStatus"] = statuses
    return summary


def traffic_steps(policy: dict[str, Any], instance_count: int) -> list[float]:
    """The green fleet's traffic share after each shift of a ``TrafficRoutingConfiguration``."""
    routing = (policy.get("BlueGreenUpdatePolicy") or {}).get("TrafficRoutingConfiguration") or {}
    kind = routing.get("Type", "ALL_AT_ONCE")

    def share(size: dict[str, Any] | None) -> float:
        if not size:
            return 1.0
        if size.get("Type") == "INSTANCE_COUNT":
            return min(1.0, float(size.get("Value", 1)) / max(instance_count, 1))
        return min(1.0, float(size.get("Value", 100)) / 100.0)

    if kind == "CANARY":
        return [share(routing.get("CanarySize")), 1.0]
    if kind == "LINEAR":
        step = max(share(routing.get("LinearStepSize")), 0.01)
        steps, current = [], 0.0
        while current < 1.0 - 1e-9:
            current = min(1.0, current + step)
            steps.append(round(current, 6))
        return steps
    return [1.0]


class Deployer:
    """Runs one update of one endpoint to its end (in a thread of its own)."""

    def __init__(self, plane: Any, state: EndpointState, deployment: Deployment):
        self.plane, self.state, self.deployment = plane, state, deployment
        self.context = plane.context

    def run(self) -> None:
        """Provision green, shift and bake, then finish or roll back."""
        state, deployment = self.state, self.deployment
        try:
            deployment.phase("Creating", "provisioning the green fleet")
            try:
                deployment.green.start(**self.plane.fleet_options())
            except ServiceError as exc:
                raise RolledBack(f"the new fleet of {deployment.config_name} failed its health checks: {exc}") \
                    from exc
            self._shift_and_bake()
        except RolledBack as exc:
            self._roll_back(str(exc))
        except Exception as exc:  # noqa: BLE001 - the endpoint must end in a state, never hang Updating
            log.exception("update of %s failed", state.name)
            self._roll_back(f"the update failed: {type(exc).__name__}: {exc}")
        else:
            self._finish()

    def _shift_and_bake(self) -> None:
        deployment = self.deployment
        policy = deployment.policy.get("BlueGreenUpdatePolicy") or {}
        routing = policy.get("TrafficRoutingConfiguration") or {}
        wait = self.context.scaled(routing.get("WaitIntervalInSeconds", 0))
        deadline = time.monotonic() + self.context.scaled(policy.get("MaximumExecutionTimeoutInSeconds", 28800))
        steps = traffic_steps(deployment.policy, deployment.green.variants[0].instance_count)
        for index, share in enumerate(steps):
            with self.state.lock:
                deployment.share = share
            deployment.phase("ActivatingTraffic", f"{share:.0%} of the traffic on the new fleet")
            if index < len(steps) - 1 or len(steps) == 1:  # the last shift is followed by the termination wait
                deployment.phase("Baking", f"{share:.0%} of the traffic on the new fleet")
                self._bake(wait, deadline)
        termination = self.context.scaled(policy.get("TerminationWaitInSeconds", 0))
        deployment.phase("Baking", "all traffic on the new fleet; the old one is kept for the termination wait")
        self._bake(termination, deadline)

    def _bake(self, seconds: float, deadline: float) -> None:
        """Watch the rollback alarms (and the green containers) for ``seconds``."""
        end = time.monotonic() + seconds
        every = max(0.05, min(1.0, self.context.scaled(10)))
        while True:
            self._check()
            if time.monotonic() >= deadline:
                raise RolledBack("the deployment exceeded MaximumExecutionTimeoutInSeconds")
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(every, remaining))

    def _check(self) -> None:
        deployment = self.deployment
        if not deployment.green.healthy():
            raise RolledBack(f"an instance of the new fleet of {deployment.config_name} stopped")
        states = self.plane.alarms.evaluate(deployment.alarms) if deployment.alarms else {}
        fired = [name for name, value in states.items() if value == "ALARM"]
        if fired:
            raise RolledBack(f"Alarm(s) {', '.join(fired)} went to ALARM during the deployment: "
                             "SageMaker rolled the endpoint back to its previous configuration")

    def _roll_back(self, reason: str) -> None:
        state, deployment = self.state, self.deployment
        log.info("rolling back %s: %s", state.name, reason)
        state.set_status("RollingBack")
        with state.lock:
            deployment.share = 0.0
        deployment.phase("Deleting", "the new fleet is terminated")
        deployment.green.stop(drain_seconds=30)
        with state.lock:
            state.deployment = None
        state.set_status("InService", reason)

    def _finish(self) -> None:
        state, deployment = self.state, self.deployment
        with state.lock:
            old, state.blue = state.blue, deployment.green
            state.config_name, state.deployment = deployment.config_name, None
            state.blue_statuses = []
        self.plane.remember_config(state)
        old.stop(drain_seconds=30)
        state.set_status("InService", "")
        log.info("%s is InService on %s", state.name, state.config_name)


def new_state(sagemaker: Any, name: str, arn: str, config_name: str,
              shadow_variants: list[dict[str, Any]] | None = None) -> EndpointState:
    """An endpoint in ``Creating`` for ``config_name`` (its fleet not started yet)."""
    return EndpointState(name=name, arn=arn, config_name=config_name,
                         blue=fleet_from_config(sagemaker, config_name, shadow_variants))
