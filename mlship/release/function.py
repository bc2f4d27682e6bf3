"""Drive a Lambda alias shift with CodeDeploy and follow it to its verdict.

:meth:`FunctionRollout.check` refuses, before any change, a function, alias or deployment group
that does not exist and an alias that is already shifting (a deployment in progress).
:meth:`FunctionRollout.publish` pins the model: it sets the model's variables (``MODEL_URI`` = the
version's immutable bundle, ``MLSHIP_MODEL_NAME``, ``MLSHIP_MODEL_VERSION``) on ``$LATEST``, waits
for the update and publishes a version, so each function version serves exactly one model version
(never an alias resolved at cold start). :meth:`FunctionRollout.start` creates a CodeDeploy
deployment with an AppSpec moving the alias from its current version to the new one, in the
group's deployment configuration and with its rollback alarms; :meth:`FunctionRollout.follow`
polls ``GetDeployment`` and the alias until the end.

The verdict is read from the alias, not from the deployment status alone: **succeeded** only when
the deployment ``Succeeded`` and the alias points wholly at the new version; a stopped or failed
deployment whose alias is back on the old version was **rolled_back** (naming the alarm); any other
end is **failed**; running out of time is **timeout**.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlship.local.plane.fleet import FAULT_VARIABLE
from mlship.release.alarms import alarm_states, went_to_alarm
from mlship.release.endpoint import RolloutError
from mlship.release.models import ResolvedModel
from mlship.release.outcome import Phase, RolloutOutcome, Verdict, fired_alarm

ACTIVE = ["Created", "Queued", "InProgress", "Baking", "Ready"]
TERMINAL = ("Succeeded", "Failed", "Stopped")
_MISSING_GROUP = ("ApplicationDoesNotExistException", "DeploymentGroupDoesNotExistException",
                  "ApplicationNameRequiredException", "DeploymentGroupNameRequiredException")


@dataclass(frozen=True)
class FunctionTarget:
    """Which alias of which function, shifted by which CodeDeploy application and group."""

    function: str
    alias: str
    application: str
    deployment_group: str

    @property
    def label(self) -> str:
        return f"{self.function}:{self.alias}"


@dataclass
class Preflight:
    """What :meth:`FunctionRollout.check` found: the live version and its model, the group's alarms."""

    current_version: str
    previous_model_version: str | None
    live_model_uri: str | None
    latest_environment: dict[str, str]
    alarms: list[str]


@dataclass
class FunctionOutcome(RolloutOutcome):
    """The outcome document of ``mlship rollout lambda``: ``endpoint`` is ``function:alias`` and
    ``endpoint_config`` ``function:version`` (the published version)."""

    deployment_id: str | None = None
    function_version: str | None = None
    previous_function_version: str | None = None


def model_environment(base: dict[str, str], model: ResolvedModel,
                      extra: dict[str, str] | None = None) -> dict[str, str]:
    """The function's variables with the model pinned to one concrete version (and ``extra``); a
    rehearsal fault of an earlier rollout is never carried over."""
    kept = {k: v for k, v in base.items() if k != FAULT_VARIABLE}
    return {**kept, "MODEL_URI": model.bundle_uri, "MLSHIP_MODEL_NAME": model.name,
            "MLSHIP_MODEL_VERSION": model.version, **(extra or {})}


def appspec(target: FunctionTarget, current: str, new: str) -> str:
    """The AppSpec (JSON) that shifts ``target``'s alias from version ``current`` to ``new``."""
    doc = {"version": 0.0, "Resources": [{target.function: {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": target.function, "Alias": target.alias, "CurrentVersion": current, "TargetVersion": new}}}]}
    return json.dumps(doc, sort_keys=True)


def _code(exc: Exception) -> str:
    return (getattr(exc, "response", {}) or {}).get("Error", {}).get("Code", "")


def _message(exc: Exception) -> str:
    error = (getattr(exc, "response", {}) or {}).get("Error", {})
    return " ".join(str(error.get("Message") or exc).split())


def _weights(alias: dict[str, Any]) -> dict[str, float]:
    """Traffic share by version of a ``GetAlias`` answer."""
    extra = {str(k): float(v) for k, v in ((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or
                                           {}).items()}
    return {str(alias["FunctionVersion"]): round(1.0 - sum(extra.values()), 6), **extra}


def judge_shift(info: dict[str, Any], weights: dict[str, float], current: str, new: str,
                rollback_active: bool = False) -> tuple[Verdict, str]:
    """The verdict of a ``GetDeployment`` answer and the alias' weights for a shift ``current`` -> ``new``."""
    status = info.get("status", "")
    error = info.get("errorInformation") or {}
    reason = " ".join(str(error.get("message") or "").split())
    if status not in TERMINAL or rollback_active:
        return "in_progress", ""
    if status == "Succeeded":
        if weights == {new: 1.0}:
            return "succeeded", ""
        return "failed", f"CodeDeploy reports Succeeded but the alias routes {weights}, not all traffic to {new}"
    if weights == {current: 1.0}:
        why = reason or (info.get("rollbackInfo") or {}).get("rollbackMessage") or \
            f"the deployment {status.lower()} and traffic is back on version {current}"
        return "rolled_back", why
    code = f" ({error['code']})" if error.get("code") else ""
    return "failed", f"the deployment is {status}{code} with the alias routing {weights}: {reason}".rstrip(": ")


class FunctionRollout:
    """One CodeDeploy shift of one Lambda alias, from the pinned version to its verdict."""

    def __init__(self, lam: Any, codedeploy: Any, cloudwatch: Any, *, poll_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 waiter_delay: int = 1):
        self.lam, self.codedeploy, self.cloudwatch = lam, codedeploy, cloudwatch
        self.poll_seconds, self.clock, self.sleep, self.waiter_delay = poll_seconds, clock, sleep, waiter_delay

    # ------------------------------------------------------------------ before any change
    def check(self, target: FunctionTarget) -> Preflight:
        """Every check that needs no change; raises :class:`RolloutError` naming the problem."""
        from botocore.exceptions import ClientError

        try:
            self.lam.get_function(FunctionName=target.function)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
            raise RolloutError(f"function {target.function} does not exist: {_message(exc)}") from None
        try:
            alias = self.lam.get_alias(FunctionName=target.function, Name=target.alias)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
            raise RolloutError(f"alias {target.label} does not exist: {_message(exc)}") from None
        if len(_weights(alias)) > 1:
            raise RolloutError(f"alias {target.label} is shifting traffic ({_weights(alias)}): a deployment is in "
                               "progress; wait for it to end before starting another")
        group = self._group(target)
        active = self.codedeploy.list_deployments(applicationName=target.application,
                                                  deploymentGroupName=target.deployment_group,
                                                  includeOnlyStatuses=ACTIVE).get("deployments", [])
        if active:
            raise RolloutError(f"deployment group {target.deployment_group} has an active deployment "
                               f"({', '.join(active)}): wait for it to end before starting another")
        current = str(alias["FunctionVersion"])
        live_env = self._environment(target.function, current)
        alarm_config = group.get("alarmConfiguration") or {}
        alarms = [a["name"] for a in alarm_config.get("alarms", []) if a.get("name")] \
            if alarm_config.get("enabled") else []
        missing = sorted(set(alarms) - set(alarm_states(self.cloudwatch, alarms)))
        if missing:  # CodeDeploy would fail the deployment (ALARM_CONFIG) after the version is published
            raise RolloutError(f"deployment group {target.deployment_group} watches alarm(s) that do not exist: "
                               f"{', '.join(missing)}")
        return Preflight(current, live_env.get("MLSHIP_MODEL_VERSION"), live_env.get("MODEL_URI"),
                         self._environment(target.function, "$LATEST"), alarms)

    def _group(self, target: FunctionTarget) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            group = self.codedeploy.get_deployment_group(applicationName=target.application,
                                                         deploymentGroupName=target.deployment_group)
        except ClientError as exc:
            if _code(exc) not in _MISSING_GROUP:
                raise
            raise RolloutError(f"deployment group {target.application}/{target.deployment_group} does not exist: "
                               f"{_message(exc)}") from None
        info = group["deploymentGroupInfo"]
        if info.get("computePlatform") not in (None, "Lambda"):
            raise RolloutError(f"deployment group {target.deployment_group} deploys to {info['computePlatform']}, "
                               "not to Lambda")
        return info

    def _environment(self, function: str, qualifier: str) -> dict[str, str]:
        config = self.lam.get_function_configuration(FunctionName=function, Qualifier=qualifier)
        return dict((config.get("Environment") or {}).get("Variables") or {})

    # ------------------------------------------------------------------ changes
    def publish(self, target: FunctionTarget, model: ResolvedModel, preflight: Preflight,
                extra_env: dict[str, str] | None = None) -> str:
        """Pin ``model`` on ``$LATEST`` and publish a version; return the version number."""
        env = model_environment(preflight.latest_environment, model, extra_env)
        waiter = self.lam.get_waiter("function_updated_v2")
        config = {"Delay": self.waiter_delay, "MaxAttempts": 300}
        waiter.wait(FunctionName=target.function, WaiterConfig=config)  # an update in progress is refused
        self.lam.update_function_configuration(FunctionName=target.function, Environment={"Variables": env})
        waiter.wait(FunctionName=target.function, WaiterConfig=config)
        published = self.lam.publish_version(FunctionName=target.function,
                                             Description=f"mlship model {model.ref}"[:256])
        version = str(published["Version"])
        pinned = (published.get("Environment") or {}).get("Variables") or {}
        if pinned.get("MODEL_URI") != model.bundle_uri:  # someone changed $LATEST between our update and publish
            raise RolloutError(f"version {version} of {target.function} serves {pinned.get('MODEL_URI')}, not "
                               f"{model.bundle_uri}: $LATEST changed during the rollout; nothing was shifted")
        return version

    def start(self, target: FunctionTarget, current: str, new: str, model: ResolvedModel,
              deployment_config: str | None = None) -> str:
        """``CreateDeployment`` shifting the alias from ``current`` to ``new``; return the deployment ID."""
        content = appspec(target, current, new)
        extra = {"deploymentConfigName": deployment_config} if deployment_config else {}
        created = self.codedeploy.create_deployment(
            applicationName=target.application, deploymentGroupName=target.deployment_group,
            revision={"revisionType": "AppSpecContent",
                      "appSpecContent": {"content": content, "sha256": hashlib.sha256(content.encode()).hexdigest()}},
            description=f"mlship rollout of {model.ref} to {target.label} (version {current} -> {new})"[:1000],
            **extra)
        return str(created["deploymentId"])

    # ------------------------------------------------------------------ following
    def _observe(self, target: FunctionTarget, deployment_id: str, at: float,
                 alarms: list[str]) -> tuple[dict[str, Any], dict[str, float], Phase, bool]:
        info = self.codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        weights = _weights(self.lam.get_alias(FunctionName=target.function, Name=target.alias))
        states = alarm_states(self.cloudwatch, alarms)
        phase = Phase(round(at, 3), str(info.get("status", "Unknown")),
                      {f"version {v}": {"weight": w, "status": []} for v, w in sorted(weights.items())}, states)
        rollback_id = (info.get("rollbackInfo") or {}).get("rollbackDeploymentId")
        rollback_active = False
        if rollback_id and info.get("status") in TERMINAL:
            rollback = self.codedeploy.get_deployment(deploymentId=rollback_id)["deploymentInfo"]
            rollback_active = rollback.get("status") not in TERMINAL
        return info, weights, phase, rollback_active

    def follow(self, target: FunctionTarget, deployment_id: str, current: str, new: str, alarms: list[str],
               timeout_seconds: float, on_phase: Callable[[Phase], None] | None = None) -> FunctionOutcome:
        """Poll the deployment and the alias until the shift ends (or ``timeout_seconds`` pass)."""
        started, wall_start = self.clock(), datetime.now(UTC)
        phases: list[Phase] = []
        outcome = FunctionOutcome("timeout", target.label, f"{target.function}:{new}", deployment_id=deployment_id,
                                  function_version=new, previous_function_version=current, phases=phases)
        while True:
            info, weights, phase, rollback_active = self._observe(target, deployment_id, self.clock() - started,
                                                                  alarms)
            if not phases or phase.key() != phases[-1].key():
                phases.append(phase)
                if on_phase is not None:
                    on_phase(phase)
            verdict, reason = judge_shift(info, weights, current, new, rollback_active)
            if verdict != "in_progress":
                outcome.outcome, outcome.reason = verdict, reason
                if verdict != "succeeded":
                    # the history only when neither the reason nor a state names the alarm (one call per alarm)
                    outcome.alarm = fired_alarm(reason, phase.alarms) or \
                        fired_alarm(reason, phase.alarms, went_to_alarm(self.cloudwatch, alarms, wall_start))
                return outcome
            if self.clock() - started >= timeout_seconds:
                outcome.reason = (f"deployment {deployment_id} still {info.get('status')} after "
                                  f"{timeout_seconds:.0f} s (alias routes {weights})")
                return outcome
            self.sleep(self.poll_seconds)

    # ------------------------------------------------------------------ all of it
    def run(self, target: FunctionTarget, model: ResolvedModel, timeout_seconds: float, *,
            preflight: Preflight | None = None, deployment_config: str | None = None,
            on_phase: Callable[[Phase], None] | None = None,
            on_start: Callable[[str, str, str], None] | None = None,
            extra_env: dict[str, str] | None = None) -> FunctionOutcome:
        """Check, pin, publish, deploy and follow; ``on_start(deployment_id, current, new)`` once started.

        ``extra_env``: more variables for the new version (a rehearsal's ``MLSHIP_LOCAL_FAULT``).
        """
        preflight = preflight or self.check(target)
        if preflight.live_model_uri == model.bundle_uri and not extra_env:
            return FunctionOutcome("succeeded", target.label, f"{target.function}:{preflight.current_version}",
                                   model_version=model.version, previous_version=preflight.previous_model_version,
                                   reason=f"{model.ref} is already live on {target.label} "
                                          f"(version {preflight.current_version}): nothing to shift",
                                   function_version=preflight.current_version,
                                   previous_function_version=preflight.current_version)
        new = self.publish(target, model, preflight, extra_env)
        deployment_id = self.start(target, preflight.current_version, new, model, deployment_config)
        if on_start is not None:
            on_start(deployment_id, preflight.current_version, new)
        outcome = self.follow(target, deployment_id, preflight.current_version, new, preflight.alarms,
                              timeout_seconds, on_phase)
        outcome.model_version, outcome.previous_version = model.version, preflight.previous_model_version
        return outcome
