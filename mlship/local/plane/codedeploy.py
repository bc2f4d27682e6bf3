"""CodeDeploy Lambda deployments that run: the alias is shifted step by step and rolled back on alarms.

moto records CodeDeploy applications, groups and deployments, but a deployment stays
``Created`` forever, a group's ``alarmConfiguration`` is dropped, and deployment configurations
(``GetDeploymentConfig``, ``CreateDeploymentConfig``) are not implemented. This service:

* keeps each group's ``alarmConfiguration`` (``CreateDeploymentGroup``) and returns it in
  ``GetDeploymentGroup``; answers the deployment-configuration calls itself (the predefined
  ``CodeDeployDefault.Lambda*`` configurations and custom ones);
* runs ``CreateDeployment`` for a Lambda group: the AppSpec (``AppSpecContent``, ``String`` or an
  S3 object; JSON or YAML) names the function, alias, ``CurrentVersion`` and ``TargetVersion``; the
  deployment is created in moto (IDs, ``ListDeployments``), then a thread shifts the alias with
  ``UpdateAlias`` ``RoutingConfig`` in the configuration's steps (``TimeBasedCanary``,
  ``TimeBasedLinear``, ``AllAtOnce``), waiting each interval (time-scaled) while it evaluates the
  group's alarms (:class:`mlship.local.plane.metrics.AlarmEvaluator`). An alarm in ``ALARM`` stops
  the deployment (``Stopped``, ``errorInformation`` ``ALARM_ACTIVE`` naming the alarms) and, with
  ``DEPLOYMENT_STOP_ON_ALARM`` in the group's automatic rollback, puts the alias back on
  ``CurrentVersion`` through a rollback deployment (``rollbackInfo``); otherwise the alias ends fully
  on ``TargetVersion`` and the deployment ``Succeeded``;
* answers ``GetDeployment`` / ``BatchGetDeployments`` / ``ListDeployments`` from that state,
  refuses a second deployment while the group has an active one
  (``DeploymentLimitExceededException``) and implements ``StopDeployment``.

Not run: lifecycle hooks (``BeforeAllowTraffic`` / ``AfterAllowTraffic``) are recorded, not invoked.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlship.local.plane.context import PlaneContext
from mlship.local.plane.http import AwsRequest, AwsResponse, Service, forward

log = logging.getLogger("mlship.local.plane.codedeploy")
PREFIX = "CodeDeploy_20141006."
ACTIVE = ("Created", "Queued", "InProgress", "Baking", "Ready")


def _canary(percent: int, minutes: int) -> dict[str, Any]:
    return {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": percent, "canaryInterval": minutes}}


def _linear(percent: int, minutes: int) -> dict[str, Any]:
    return {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": percent, "linearInterval": minutes}}


# CodeDeploy user guide, "Deployment configurations on an AWS Lambda compute platform"
PREDEFINED: dict[str, dict[str, Any]] = {
    "CodeDeployDefault.LambdaAllAtOnce": {"type": "AllAtOnce"},
    **{f"CodeDeployDefault.LambdaCanary10Percent{m}Minutes": _canary(10, m) for m in (5, 10, 15, 30)},
    "CodeDeployDefault.LambdaLinear10PercentEvery1Minute": _linear(10, 1),
    **{f"CodeDeployDefault.LambdaLinear10PercentEvery{m}Minutes": _linear(10, m) for m in (2, 3, 10)},
}
# moto's default for a group created without a configuration; Lambda's own default is AllAtOnce
_NON_LAMBDA_DEFAULTS = ("CodeDeployDefault.OneAtATime", "CodeDeployDefault.AllAtOnce", "CodeDeployDefault.HalfAtATime")


class DeploymentRefused(Exception):
    """A request CodeDeploy answers with an error (its code and HTTP status)."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.status = code, status


def traffic_steps(routing: dict[str, Any]) -> list[tuple[float, float]]:
    """``(share of traffic on the target, minutes to wait after it)`` for a ``trafficRoutingConfig``."""
    kind = routing.get("type", "AllAtOnce")
    if kind == "TimeBasedCanary":
        canary = routing.get("timeBasedCanary") or {}
        return [(int(canary.get("canaryPercentage", 10)) / 100.0, float(canary.get("canaryInterval", 5))), (1.0, 0.0)]
    if kind == "TimeBasedLinear":
        linear = routing.get("timeBasedLinear") or {}
        percent, interval = int(linear.get("linearPercentage", 10)), float(linear.get("linearInterval", 1))
        shares = [p / 100.0 for p in range(percent, 100, max(percent, 1))]
        return [(share, interval) for share in shares] + [(1.0, 0.0)]
    return [(1.0, 0.0)]


@dataclass(frozen=True)
class AliasTarget:
    """What a Lambda AppSpec deploys: one function's alias, from one version to another."""

    function: str
    alias: str
    current: str
    target: str


def parse_appspec(text: str) -> AliasTarget:
    """The ``AWS::Lambda::Function`` resource of an AppSpec (JSON or YAML); raises ``DeploymentRefused``."""
    import yaml

    try:
        doc = yaml.safe_load(text)  # JSON is YAML
    except (yaml.YAMLError, RecursionError) as exc:
        raise DeploymentRefused("InvalidRevisionException", f"the AppSpec is neither JSON nor YAML: {exc}") from None
    resources = doc.get("Resources") if isinstance(doc, dict) else None
    if not isinstance(resources, list) or len(resources) != 1:
        raise DeploymentRefused("InvalidRevisionException", "the AppSpec must list exactly one resource in Resources")
    entry = resources[0]
    if isinstance(entry, dict) and len(entry) == 1 and isinstance(next(iter(entry.values())), dict):
        entry = next(iter(entry.values()))  # {logicalId: {Type, Properties}}
    props = entry.get("Properties", entry) if isinstance(entry, dict) else {}
    props = props if isinstance(props, dict) else {}
    missing = [k for k in ("Name", "Alias", "CurrentVersion", "TargetVersion") if not props.get(k)]
    if missing:
        raise DeploymentRefused("InvalidRevisionException",
                                f"the AppSpec's Lambda resource lacks {', '.join(missing)}")
    return AliasTarget(str(props["Name"]), str(props["Alias"]), str(props["CurrentVersion"]),
                       str(props["TargetVersion"]))


def appspec_document(spec: AliasTarget) -> dict[str, Any]:
    """The AppSpec (version 0.0) that shifts ``spec.alias`` from ``spec.current`` to ``spec.target``."""
    return {"version": 0.0, "Resources": [{spec.function: {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": spec.function, "Alias": spec.alias, "CurrentVersion": spec.current, "TargetVersion": spec.target}}}]}


@dataclass
class Deployment:
    """The plane's state of one deployment it runs."""

    id: str
    application: str
    group: str
    config_name: str
    steps: list[tuple[float, float]]
    spec: AliasTarget
    alarms: list[str]
    rollback_events: list[str]
    creator: str = "user"
    status: str = "Created"
    started: float | None = None
    completed: float | None = None
    error: dict[str, str] | None = None
    rollback: dict[str, str] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    stop_rollback: bool = False

    def overlay(self, info: dict[str, Any]) -> dict[str, Any]:
        """moto's ``deploymentInfo`` with this deployment's real progress."""
        done = {"Succeeded": "Succeeded", "Failed": "Failed", "Stopped": "Failed"}.get(self.status)
        overview = dict.fromkeys(("Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Ready"), 0)
        overview[done or ("InProgress" if self.status == "InProgress" else "Pending")] = 1
        info.update({"status": self.status, "deploymentOverview": overview, "creator": self.creator,
                     "deploymentConfigName": self.config_name, "computePlatform": "Lambda"})
        for key, value in (("startTime", self.started), ("completeTime", self.completed),
                           ("errorInformation", self.error), ("rollbackInfo", self.rollback)):
            if value is not None:
                info[key] = value
            else:
                info.pop(key, None)
        return info


class AliasShift:
    """Runs one deployment: shift, bake while watching alarms, roll back or finish."""

    def __init__(self, context: PlaneContext, deployment: Deployment, lam: Any,
                 evaluate: Callable[[list[str]], dict[str, str]], on_rollback: Callable[[Deployment], str]):
        self.context, self.d, self.lam = context, deployment, lam
        self.evaluate, self.on_rollback = evaluate, on_rollback
        self.shifted = False

    def _route(self, share: float) -> None:
        spec = self.d.spec
        self.shifted = True
        if share >= 1.0:
            self.lam.update_alias(FunctionName=spec.function, Name=spec.alias, FunctionVersion=spec.target,
                                  RoutingConfig={"AdditionalVersionWeights": {}})
        else:
            self.lam.update_alias(FunctionName=spec.function, Name=spec.alias, FunctionVersion=spec.current,
                                  RoutingConfig={"AdditionalVersionWeights": {spec.target: round(share, 6)}})
        log.info("deployment %s: %s:%s has %.0f%% on version %s", self.d.id, spec.function, spec.alias,
                 share * 100, spec.target)

    def _fired(self) -> list[str]:
        if not self.d.alarms:
            return []
        try:
            states = self.evaluate(self.d.alarms)
        except Exception as exc:  # noqa: BLE001 - CodeDeploy fails a deployment whose alarms it cannot poll
            raise DeploymentRefused("ALARM_CONFIG", f"the alarms {', '.join(self.d.alarms)} cannot be read: {exc}") \
                from None
        missing = sorted(set(self.d.alarms) - set(states))
        if missing:
            raise DeploymentRefused("ALARM_CONFIG", f"The deployment failed because of an invalid alarm "
                                    f"configuration: the alarm(s) {', '.join(missing)} do not exist")
        return sorted(name for name, state in states.items() if state == "ALARM")

    def _bake(self, minutes: float) -> list[str] | None:
        """Wait ``minutes`` (scaled), checking alarms; the fired alarms, or ``None`` when stopped by a user."""
        deadline = time.monotonic() + self.context.scaled(minutes * 60.0)
        poll = min(max(self.context.scaled(10.0), 0.05), 5.0)
        while True:
            fired = self._fired()
            if fired:
                return fired
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            if self.d.stop.wait(min(poll, left)):
                return None

    def _check_start(self) -> None:
        spec = self.d.spec
        alias = self.lam.get_alias(FunctionName=spec.function, Name=spec.alias)
        if alias["FunctionVersion"] != spec.current:
            raise DeploymentRefused("INVALID_LAMBDA_CONFIGURATION", f"alias {spec.alias} of {spec.function} points "
                                    f"at version {alias['FunctionVersion']}, not at CurrentVersion {spec.current}")
        if (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights"):
            raise DeploymentRefused("INVALID_LAMBDA_CONFIGURATION",
                                    f"alias {spec.alias} of {spec.function} is already shifting traffic")
        self.lam.get_function_configuration(FunctionName=spec.function, Qualifier=spec.target)

    def run(self) -> None:
        """The deployment's thread."""
        d = self.d
        d.status, d.started = "InProgress", time.time()
        try:
            self._check_start()
            fired = self._fired()
            for share, minutes in d.steps:
                if fired or fired is None:
                    break
                self._route(share)
                fired = self._bake(minutes) if minutes else self._fired()
        except Exception as exc:  # noqa: BLE001 - a failed deployment is reported, never raised
            code = exc.code if isinstance(exc, DeploymentRefused) else "INVALID_LAMBDA_FUNCTION"
            self._end("Failed", {"code": code, "message": str(exc)}, "DEPLOYMENT_FAILURE" in d.rollback_events)
            return
        if fired is None:
            self._end("Stopped", {"code": "MANUAL_STOP", "message": "The deployment was stopped by a user"},
                      d.stop_rollback)
        elif fired:
            self._end("Stopped", {"code": "ALARM_ACTIVE", "message": (
                "One or more alarms have been activated according to the Amazon CloudWatch metrics you selected, "
                f"and the affected deployments have been stopped. Activated alarms: {', '.join(fired)}")},
                "DEPLOYMENT_STOP_ON_ALARM" in d.rollback_events)
        else:
            self._end("Succeeded", None, False)

    def _end(self, status: str, error: dict[str, str] | None, roll_back: bool) -> None:
        d = self.d
        if roll_back and self.shifted:
            try:
                self.lam.update_alias(FunctionName=d.spec.function, Name=d.spec.alias, FunctionVersion=d.spec.current,
                                      RoutingConfig={"AdditionalVersionWeights": {}})
                rollback_id = self.on_rollback(d)
                d.rollback = {"rollbackDeploymentId": rollback_id, "rollbackMessage": (
                    f"Deployment {d.id} was rolled back: alias {d.spec.alias} of {d.spec.function} is back on "
                    f"version {d.spec.current} (rollback deployment {rollback_id})")}
            except Exception as exc:  # noqa: BLE001 - a failed rollback is part of the answer
                log.exception("rollback of deployment %s failed", d.id)
                d.rollback = {"rollbackMessage": f"the rollback failed: {exc}"}
        d.error, d.completed, d.status = error, time.time(), status
        log.info("deployment %s %s%s", d.id, status, f": {error['message']}" if error else "")


def _config_info(name: str, routing: dict[str, Any], created: float = 0.0) -> dict[str, Any]:
    return {"deploymentConfigId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"codedeploy-config:{name}")),
            "deploymentConfigName": name, "computePlatform": "Lambda", "createTime": created,
            "trafficRoutingConfig": routing}


class CodeDeployService(Service):
    """Runs Lambda deployments; answers what moto lacks; passes the rest of CodeDeploy to moto."""

    def __init__(self, context: PlaneContext):
        self.context = context
        self.cd = context.client("codedeploy")
        self.lam = context.client("lambda")
        self._groups: dict[tuple[str, str], dict[str, Any]] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._deployments: dict[str, Deployment] = {}
        self._lock = threading.RLock()
        self._evaluator: Any = None

    def handle(self, request: AwsRequest) -> AwsResponse | None:
        if not request.target.startswith(PREFIX):
            return None
        operation = request.target[len(PREFIX):]
        handler = {
            "CreateDeploymentGroup": self.create_group, "GetDeploymentGroup": self.get_group,
            "CreateDeploymentConfig": self.create_config, "GetDeploymentConfig": self.get_config,
            "ListDeploymentConfigs": self.list_configs, "DeleteDeploymentConfig": self.delete_config,
            "CreateDeployment": self.create_deployment, "GetDeployment": self.get_deployment,
            "BatchGetDeployments": self.batch_get_deployments, "ListDeployments": self.list_deployments,
            "StopDeployment": self.stop_deployment}.get(operation)
        if handler is None:
            return None
        try:
            return handler(request)
        except DeploymentRefused as exc:
            return AwsResponse.error(exc.status, exc.code, str(exc))

    def _forward(self, request: AwsRequest) -> tuple[AwsResponse, dict[str, Any] | None]:
        answer = forward(self.context.upstream, request)
        return answer, (json.loads(answer.body or b"{}") if answer.status == 200 else None)

    # ------------------------------------------------------------------ groups and configurations
    def create_group(self, request: AwsRequest) -> AwsResponse:
        body = request.json()
        answer, doc = self._forward(request)
        if doc is not None:
            with self._lock:
                self._groups[(body.get("applicationName", ""), body.get("deploymentGroupName", ""))] = {
                    "alarmConfiguration": body.get("alarmConfiguration") or {}}
        return answer

    def get_group(self, request: AwsRequest) -> AwsResponse:
        body = request.json()
        answer, doc = self._forward(request)
        kept = self._groups.get((body.get("applicationName", ""), body.get("deploymentGroupName", "")))
        if doc is None or kept is None:
            return answer
        doc["deploymentGroupInfo"]["alarmConfiguration"] = kept["alarmConfiguration"]
        return AwsResponse.json(doc)

    def _routing(self, name: str | None) -> dict[str, Any]:
        if not name or name in _NON_LAMBDA_DEFAULTS:
            return PREDEFINED["CodeDeployDefault.LambdaAllAtOnce"]
        if name in PREDEFINED:
            return PREDEFINED[name]
        with self._lock:
            found = self._configs.get(name)
        if found is None:
            raise DeploymentRefused("DeploymentConfigDoesNotExistException",
                                    f"The deployment configuration {name} does not exist with the user or AWS account.")
        return found["trafficRoutingConfig"]

    def create_config(self, request: AwsRequest) -> AwsResponse:
        body = request.json()
        name = body.get("deploymentConfigName") or ""
        if not name:
            raise DeploymentRefused("DeploymentConfigNameRequiredException", "Deployment config name is required.")
        with self._lock:
            if name in PREDEFINED or name in self._configs:
                raise DeploymentRefused("DeploymentConfigAlreadyExistsException",
                                        f"The deployment configuration {name} already exists.")
            info = _config_info(name, body.get("trafficRoutingConfig") or {"type": "AllAtOnce"}, time.time())
            info["computePlatform"] = body.get("computePlatform") or "Server"
            self._configs[name] = info
        return AwsResponse.json({"deploymentConfigId": info["deploymentConfigId"]})

    def get_config(self, request: AwsRequest) -> AwsResponse:
        name = request.json().get("deploymentConfigName") or ""
        if name in PREDEFINED:
            return AwsResponse.json({"deploymentConfigInfo": _config_info(name, PREDEFINED[name])})
        with self._lock:
            found = self._configs.get(name)
        if found is None:
            raise DeploymentRefused("DeploymentConfigDoesNotExistException",
                                    f"The deployment configuration {name} does not exist with the user or AWS account.")
        return AwsResponse.json({"deploymentConfigInfo": found})

    def list_configs(self, request: AwsRequest) -> AwsResponse:  # noqa: ARG002
        with self._lock:
            names = sorted([*PREDEFINED, *self._configs])
        return AwsResponse.json({"deploymentConfigsList": names})

    def delete_config(self, request: AwsRequest) -> AwsResponse:
        name = request.json().get("deploymentConfigName") or ""
        if name in PREDEFINED:
            raise DeploymentRefused("InvalidOperationException",
                                    "A predefined deployment configuration cannot be deleted.")
        with self._lock:
            self._configs.pop(name, None)
        return AwsResponse.json({})

    # ------------------------------------------------------------------ deployments
    def _appspec_text(self, revision: dict[str, Any]) -> str:
        kind = revision.get("revisionType")
        if kind == "AppSpecContent":
            return str((revision.get("appSpecContent") or {}).get("content") or "")
        if kind == "String":
            return str((revision.get("string") or {}).get("content") or "")
        if kind == "S3":
            where = revision.get("s3Location") or {}
            extra = {"VersionId": where["version"]} if where.get("version") else {}
            try:
                got = self.context.client("s3").get_object(Bucket=where.get("bucket"), Key=where.get("key"), **extra)
            except Exception as exc:  # noqa: BLE001 - answered as CodeDeploy answers a missing revision
                raise DeploymentRefused("RevisionDoesNotExistException", f"cannot read the AppSpec: {exc}") from None
            return got["Body"].read().decode("utf-8")
        raise DeploymentRefused("InvalidRevisionException",
                                "a Lambda deployment takes an AppSpecContent, String or S3 revision")

    def _alarms_and_rollback(self, body: dict[str, Any], group: dict[str, Any]) -> tuple[list[str], list[str]]:
        with self._lock:
            kept = self._groups.get((body.get("applicationName", ""), body.get("deploymentGroupName", ""))) or {}
        alarm_config = body.get("overrideAlarmConfiguration") or kept.get("alarmConfiguration") or {}
        alarms = [a["name"] for a in alarm_config.get("alarms", []) if a.get("name")] \
            if alarm_config.get("enabled") else []
        rollback = body.get("autoRollbackConfiguration") or group.get("autoRollbackConfiguration") or {}
        return alarms, list(rollback.get("events") or []) if rollback.get("enabled") else []

    def create_deployment(self, request: AwsRequest) -> AwsResponse | None:
        """Create the deployment in moto, then shift the alias in a thread."""
        from botocore.exceptions import ClientError

        body = request.json()
        app, group_name = body.get("applicationName", ""), body.get("deploymentGroupName", "")
        try:
            group = self.cd.get_deployment_group(applicationName=app, deploymentGroupName=group_name)
        except ClientError:
            return None  # moto answers the missing application or group
        group_info = group["deploymentGroupInfo"]
        if group_info.get("computePlatform") != "Lambda":
            return None
        spec = parse_appspec(self._appspec_text(body.get("revision") or {}))
        config_name = body.get("deploymentConfigName") or group_info.get("deploymentConfigName")
        steps = traffic_steps(self._routing(config_name))
        if not config_name or config_name in _NON_LAMBDA_DEFAULTS:
            config_name = "CodeDeployDefault.LambdaAllAtOnce"
        alarms, rollback_events = self._alarms_and_rollback(body, group_info)
        with self._lock:
            for other in self._deployments.values():
                if (other.application, other.group) == (app, group_name) and other.status in ACTIVE:
                    raise DeploymentRefused("DeploymentLimitExceededException", f"The Deployment Group '{group_name}' "
                                            f"already has an active Deployment '{other.id}'")
            answer, doc = self._forward(request)
            if doc is None:
                return answer
            deployment = Deployment(doc["deploymentId"], app, group_name, config_name, steps, spec, alarms,
                                    rollback_events)
            self._deployments[deployment.id] = deployment
        runner = AliasShift(self.context, deployment, self.lam, self._evaluate, self._rollback_deployment)
        threading.Thread(target=runner.run, name=f"codedeploy-{deployment.id}", daemon=True).start()
        return answer

    def _evaluate(self, names: list[str]) -> dict[str, str]:
        if self._evaluator is None:
            from mlship.local.plane.metrics import AlarmEvaluator

            self._evaluator = AlarmEvaluator(self.context)
        return self._evaluator.evaluate(names)

    def _rollback_deployment(self, failed: Deployment) -> str:
        """The rollback deployment CodeDeploy creates (in moto, so its ID is listed), already done."""
        spec = failed.spec
        appspec = appspec_document(AliasTarget(spec.function, spec.alias, spec.target, spec.current))
        rollback_id = self.cd.create_deployment(
            applicationName=failed.application, deploymentGroupName=failed.group,
            deploymentConfigName="CodeDeployDefault.LambdaAllAtOnce",
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(appspec)}},
            description=f"rollback of {failed.id}")["deploymentId"]
        now = time.time()
        done = Deployment(rollback_id, failed.application, failed.group, "CodeDeployDefault.LambdaAllAtOnce",
                          [(1.0, 0.0)], AliasTarget(spec.function, spec.alias, spec.target, spec.current), [], [],
                          creator="codeDeployRollback", status="Succeeded", started=now, completed=now,
                          rollback={"rollbackTriggeringDeploymentId": failed.id})
        with self._lock:
            self._deployments[rollback_id] = done
        return rollback_id

    def _mine(self, deployment_id: str | None) -> Deployment | None:
        with self._lock:
            return self._deployments.get(deployment_id or "")

    def get_deployment(self, request: AwsRequest) -> AwsResponse:
        answer, doc = self._forward(request)
        deployment = self._mine(request.json().get("deploymentId"))
        if doc is None or deployment is None:
            return answer
        deployment.overlay(doc["deploymentInfo"])
        return AwsResponse.json(doc)

    def batch_get_deployments(self, request: AwsRequest) -> AwsResponse:
        answer, doc = self._forward(request)
        if doc is None:
            return answer
        for info in doc.get("deploymentsInfo", []):
            deployment = self._mine(info.get("deploymentId"))
            if deployment is not None:
                deployment.overlay(info)
        return AwsResponse.json(doc)

    def list_deployments(self, request: AwsRequest) -> AwsResponse:
        """moto filters by its own (always ``Created``) status: filter by the real one here."""
        import dataclasses

        body = request.json()
        statuses = body.pop("includeOnlyStatuses", None)
        answer, doc = self._forward(dataclasses.replace(request, body=json.dumps(body).encode()))
        if doc is None or not statuses:
            return answer

        def status(deployment_id: str) -> str:
            mine = self._mine(deployment_id)
            return mine.status if mine is not None else "Created"

        doc["deployments"] = [d for d in doc.get("deployments", []) if status(d) in statuses]
        return AwsResponse.json(doc)

    def stop_deployment(self, request: AwsRequest) -> AwsResponse | None:
        body = request.json()
        deployment = self._mine(body.get("deploymentId"))
        if deployment is None:
            return None
        if deployment.status not in ACTIVE:
            raise DeploymentRefused("DeploymentAlreadyCompletedException",
                                    f"The deployment {deployment.id} has already completed.")
        deployment.stop_rollback = bool(body.get("autoRollbackEnabled"))
        deployment.stop.set()
        return AwsResponse.json({"status": "Pending", "statusMessage": "The request to stop the deployment is pending"})

    def close(self) -> None:
        with self._lock:
            for deployment in self._deployments.values():
                deployment.stop.set()
