"""The verdict of a rollout, decided from what the service reports about the endpoint.

A waiter is not a verdict: boto3's ``endpoint_in_service`` succeeds on any ``InService``, and after
an automatic rollback SageMaker leaves the endpoint ``InService`` on its *old* configuration
(terraform-provider-aws #39099, #46663, #48997). A rollout here **succeeded** only when the endpoint
is ``InService`` on the new configuration with no deployment pending and no failure reason; an
endpoint back on the old configuration was **rolled back** (naming the alarm that fired when one
did), ``Failed`` / ``UpdateRollbackFailed`` is **failed**, and running out of time is **timeout**.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Verdict = Literal["succeeded", "rolled_back", "failed", "timeout", "in_progress"]
TERMINAL_FAILURES = ("Failed", "UpdateRollbackFailed")
IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "OutOfService")


@dataclass
class Phase:
    """One observed state of the endpoint: its status, the variants' phases and traffic, alarms."""

    at: float  # seconds since the rollout started
    endpoint_status: str
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    alarms: dict[str, str] = field(default_factory=dict)

    def key(self) -> tuple[Any, ...]:
        """What makes two observations the same phase (times excluded)."""
        return (self.endpoint_status, json.dumps(self.variants, sort_keys=True),
                json.dumps(self.alarms, sort_keys=True))


@dataclass
class RolloutOutcome:
    """The outcome document of ``mlship rollout`` (``--json``)."""

    outcome: Verdict
    endpoint: str
    endpoint_config: str
    model_version: str | None = None
    previous_version: str | None = None
    reason: str = ""
    alarm: str | None = None
    phases: list[Phase] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _variant_states(variants: list[dict[str, Any]], prefix: str = "") -> dict[str, dict[str, Any]]:
    return {f"{prefix}{v['VariantName']}": {"weight": v.get("CurrentWeight"),
                                            "instances": v.get("CurrentInstanceCount"),
                                            "status": [s.get("Status") for s in v.get("VariantStatus", [])]}
            for v in variants}


def observe(describe: dict[str, Any], at: float, alarms: dict[str, str] | None = None) -> Phase:
    """A :class:`Phase` from a ``DescribeEndpoint`` answer (the new fleet's variants as ``green:NAME``)."""
    variants = _variant_states(describe.get("ProductionVariants", []))
    pending = describe.get("PendingDeploymentSummary") or {}
    variants.update(_variant_states(pending.get("ProductionVariants", []), "green:"))
    return Phase(round(at, 3), describe.get("EndpointStatus", "Unknown"), variants, dict(alarms or {}))


def judge(describe: dict[str, Any], target_config: str) -> tuple[Verdict, str]:
    """The verdict of one ``DescribeEndpoint`` answer for an update to ``target_config``.

    ``in_progress`` while SageMaker is still working; otherwise terminal with a reason.
    """
    status = describe.get("EndpointStatus", "")
    reason = describe.get("FailureReason") or ""
    current = describe.get("EndpointConfigName", "")
    if status in TERMINAL_FAILURES:
        return "failed", reason or f"the endpoint is {status}"
    if status != "InService":
        return "in_progress", ""
    if describe.get("PendingDeploymentSummary"):
        return "in_progress", ""
    if current != target_config:
        why = reason or f"the endpoint is InService on {current}, not on {target_config}: SageMaker rolled it back"
        return "rolled_back", why
    if reason:
        return "rolled_back", reason
    return "succeeded", ""


def fired_alarm(reason: str, alarm_states: dict[str, str], history: dict[str, bool] | None = None) -> str | None:
    """The rollback alarm to blame: one named in the failure reason, one in ALARM now, or one
    whose history shows it went to ALARM during the rollout."""
    for name in alarm_states:
        if name and name in reason:
            return name
    for name, state in alarm_states.items():
        if state == "ALARM":
            return name
    for name, went in (history or {}).items():
        if went:
            return name
    return None
