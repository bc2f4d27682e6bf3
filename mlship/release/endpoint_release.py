"""``mlship rollout endpoint`` as a Python call: check everything, then create or update, then follow.

:meth:`EndpointRelease.prepare` refuses, before any change, an endpoint being updated, a traffic
policy outside SageMaker's limits, rollback alarms that do not exist and faults that are not for a
local rehearsal (:class:`~mlship.release.endpoint.RolloutError`). :meth:`EndpointRelease.run`
then creates the endpoint on first use, or builds a configuration for the new version and starts a
blue/green ``UpdateEndpoint``, and follows it to the verdict of :mod:`mlship.release.outcome`.

A shadow deployment (``shadow=True``) puts the version on a shadow variant of the live endpoint
instead (:func:`~mlship.release.endpoint.shadow_config`): the production variants and their
traffic stay as they are, the update is all at once with no baking, and the verdict is the same.
``clear_shadow=True`` removes the shadow variant the same way.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlship.local.plane.fleet import FAULT_VARIABLE, Fault, FaultError
from mlship.release.alarms import AlarmThresholds, default_alarm_names, ensure_default_alarms, missing_alarms
from mlship.release.endpoint import (
    EndpointRollout,
    ModelSpec,
    RolloutError,
    VariantShape,
    create_first_config,
    default_capture,
    live_shadow,
    live_version,
    prepare_config,
    shadow_config,
)
from mlship.release.models import ResolvedModel
from mlship.release.outcome import Phase, RolloutOutcome
from mlship.release.policy import EndpointRollout as RolloutPolicy
from mlship.release.policy import endpoint_rollout_problems

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass
class EndpointReleaseRequest:
    """What to roll out where, and how."""

    endpoint: str
    model: ResolvedModel | None  # None only with clear_shadow
    policy: RolloutPolicy
    alarms: list[str] = field(default_factory=list)  # explicit: must exist
    configured_alarms: list[str] = field(default_factory=list)  # from the configuration: used if they exist
    alarm_limits: AlarmThresholds = field(default_factory=AlarmThresholds)
    variant: VariantShape = field(default_factory=VariantShape)
    image_uri: str | None = None
    role_arn: str | None = None
    fault: str | None = None
    shadow: bool = False  # put the model on a shadow variant of the live endpoint (no traffic moves)
    clear_shadow: bool = False  # remove the live endpoint's shadow variant (``model`` unused)
    shadow_variant: str = "shadow"
    shadow_instance_type: str | None = None
    capture_bucket: str | None = None  # data capture for a shadow when the live configuration has none


@dataclass
class PreparedRelease:
    """A request that passed every check."""

    request: EndpointReleaseRequest
    live: dict[str, Any] | None  # DescribeEndpoint, None when the endpoint is created
    alarms: list[str]
    create_alarms: bool  # the default alarms are created when the run starts
    previous_version: str | None
    variant: str  # the production variant the default alarms watch
    previous_shadow: tuple[str, str | None] | None = None  # the live shadow (variant, version)


def is_local(service: str) -> bool:
    """Whether ``service``'s calls go to a local control plane (``AWS_ENDPOINT_URL_<SERVICE>``, else
    ``AWS_ENDPOINT_URL``, on localhost): faults are for rehearsals only."""
    url = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL") or ""
    return urllib.parse.urlsplit(url).hostname in _LOCAL_HOSTS


def check_fault(fault: str | None, service: str = "sagemaker") -> None:
    """Refuse a fault that does not parse, or one aimed at a real AWS account."""
    if not fault:
        return
    try:
        Fault.parse(fault)
    except FaultError as exc:
        raise RolloutError(str(exc)) from exc
    if not is_local(service):
        raise RolloutError("--fault is for rehearsals on the local control plane (mlship local up): "
                           f"AWS_ENDPOINT_URL_{service.upper()} does not point at localhost")


class EndpointRelease:
    """Checks, starts and follows one endpoint rollout."""

    def __init__(self, sagemaker: Any, cloudwatch: Any, *, poll_seconds: float = 15.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.sagemaker, self.cloudwatch = sagemaker, cloudwatch
        self.driver = EndpointRollout(sagemaker, cloudwatch, poll_seconds=poll_seconds, clock=clock, sleep=sleep)

    def _describe(self, endpoint: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        from mlship.aws.clients import error_code

        try:
            return self.sagemaker.describe_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            if error_code(exc) in ("ValidationException", "ResourceNotFound"):
                return None
            raise

    def prepare(self, request: EndpointReleaseRequest) -> PreparedRelease:
        """Every check, before any change; raise :class:`RolloutError` naming the problem."""
        check_fault(request.fault)
        if request.model is None and not request.clear_shadow:
            raise RolloutError("a rollout needs a model (only removing a shadow variant does not)")
        live = self._describe(request.endpoint)
        if live is not None and (live.get("EndpointStatus") != "InService" or live.get("PendingDeploymentSummary")):
            raise RolloutError(f"endpoint {request.endpoint} is {live.get('EndpointStatus')} with an update in "
                               "progress: follow it with `mlship rollout watch` and roll out when it ends")
        shadow_change = request.shadow or request.clear_shadow
        if live is None and shadow_change:
            raise RolloutError(f"endpoint {request.endpoint} does not exist yet: a shadow variant joins a live "
                               "endpoint (roll a production version out first)")
        variant = request.variant.name if live is None else _live_variant(live)
        alarms, create = self._alarms(request, variant)
        previous, shadow = None, None
        if live is not None:
            config = self.sagemaker.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
            production = config["ProductionVariants"]
            previous = live_version(self.sagemaker, live["EndpointConfigName"])
            shadow = live_shadow(self.sagemaker, live["EndpointConfigName"])
            _check_shadow_change(request, production, shadow)
            problems = endpoint_rollout_problems(
                shadow_policy(request.policy) if shadow_change else request.policy,
                instance_count=int(production[0].get("InitialInstanceCount") or 1), alarm_count=len(alarms),
                serverless="ServerlessConfig" in production[0])
            if problems:
                raise RolloutError("the rollout policy breaks SageMaker's limits: " + "; ".join(problems))
        return PreparedRelease(request, live, alarms, create, previous, variant, shadow)

    def _alarms(self, request: EndpointReleaseRequest, variant: str) -> tuple[list[str], bool]:
        """Explicit alarms (all must exist), else the configured ones that exist, else the defaults."""
        if request.alarms:
            missing = missing_alarms(self.cloudwatch, request.alarms)
            if missing:
                raise RolloutError(f"rollback alarm(s) {', '.join(missing)} do not exist in CloudWatch")
            return list(request.alarms), False
        missing = set(missing_alarms(self.cloudwatch, request.configured_alarms))
        existing = [a for a in request.configured_alarms if a not in missing]
        if existing:
            return existing, False
        return default_alarm_names(request.endpoint, variant), True

    def run(self, prepared: PreparedRelease, timeout_seconds: float,
            on_phase: Callable[[Phase], None] | None = None) -> RolloutOutcome:
        """Create or update the endpoint and follow it to its verdict."""
        request = prepared.request
        if prepared.create_alarms:
            ensure_default_alarms(self.cloudwatch, request.endpoint, prepared.variant, request.alarm_limits)
        model = request.model
        spec = None if model is None else ModelSpec(
            model.name, model.version, model.bundle_uri, request.image_uri, request.role_arn,
            {FAULT_VARIABLE: request.fault} if request.fault else {})
        previous = prepared.previous_version
        if prepared.live is None:
            assert spec is not None  # prepare() refused a missing model
            config = create_first_config(self.sagemaker, request.endpoint, spec, request.variant)
            self.sagemaker.create_endpoint(EndpointName=request.endpoint, EndpointConfigName=config)
        elif request.shadow or request.clear_shadow:
            capture = default_capture(request.capture_bucket, model.name) if request.capture_bucket and model else None
            config = shadow_config(self.sagemaker, request.endpoint, None if request.clear_shadow else spec,
                                   variant=request.shadow_variant, capture=capture,
                                   instance_type=request.shadow_instance_type)
            self.driver.start(request.endpoint, config, shadow_policy(request.policy), prepared.alarms)
            previous = prepared.previous_shadow[1] if prepared.previous_shadow else None
        else:
            assert spec is not None
            config = prepare_config(self.sagemaker, request.endpoint, spec)
            self.driver.start(request.endpoint, config, request.policy, prepared.alarms)
        outcome = self.driver.follow(request.endpoint, config, prepared.alarms, timeout_seconds, on_phase)
        outcome.model_version, outcome.previous_version = (model.version if model else None), previous
        return outcome


def endpoint_request(cfg: Any, model: ResolvedModel | None, policy: RolloutPolicy, *, endpoint: str | None = None,
                     alarms: list[str] | None = None, image: str | None = None, role: str | None = None,
                     instance_type: str | None = None, instance_count: int | None = None,
                     fault: str | None = None) -> EndpointReleaseRequest:
    """The request of a rollout to the configuration's endpoint (``cfg``: a MlshipConfig), with the
    configured rollback alarms, alarm limits, first variant and image unless given."""
    first = cfg.endpoint.variants[0]
    configured = cfg.names.endpoint_alarms
    return EndpointReleaseRequest(
        endpoint=endpoint or cfg.names.endpoint_name, model=model, policy=policy, alarms=list(alarms or []),
        configured_alarms=[configured[k] for k in ("errors_5xx", "latency_p99") if k in configured],
        alarm_limits=AlarmThresholds(p99_latency_ms=cfg.endpoint.alarms.model_latency_p99_ms,
                                     period_seconds=cfg.endpoint.alarms.period_seconds),
        variant=VariantShape(first.name, instance_type or first.instance_type, instance_count or first.instance_count),
        image_uri=image or cfg.endpoint.image_uri, role_arn=role or os.environ.get("MLSHIP_SAGEMAKER_ROLE"),
        fault=fault)


def shadow_policy(policy: RolloutPolicy) -> RolloutPolicy:
    """The update of a shadow change: all at once, no baking, no termination wait (production is unchanged)."""
    return policy.model_copy(update={"strategy": "ALL_AT_ONCE", "canary": None, "linear_step": None,
                                     "wait_interval_seconds": 0, "termination_wait_seconds": 0})


def _check_shadow_change(request: EndpointReleaseRequest, production: list[dict[str, Any]],
                         shadow: tuple[str, str | None] | None) -> None:
    """Refuse a shadow change SageMaker (or common sense) would refuse, before any change."""
    if request.clear_shadow and shadow is None:
        raise RolloutError(f"endpoint {request.endpoint} has no shadow variant to remove")
    if not request.shadow:
        return
    if "ServerlessConfig" in production[0]:
        raise RolloutError(f"endpoint {request.endpoint} is serverless: SageMaker has no shadow variants there")
    if request.shadow_variant in {v["VariantName"] for v in production}:
        raise RolloutError(f"shadow variant name {request.shadow_variant} is a production variant of "
                           f"{request.endpoint}")


def _live_variant(live: dict[str, Any]) -> str:
    variants = live.get("ProductionVariants") or [{}]
    return str(variants[0].get("VariantName", "AllTraffic"))
