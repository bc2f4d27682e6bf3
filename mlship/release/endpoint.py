"""Drive a SageMaker blue/green endpoint update and follow it to its verdict.

:func:`prepare_config` builds a model and an endpoint configuration for one concrete registry
version (same variant names as the live configuration, so traffic shifts between fleets of the
same variants); :meth:`EndpointRollout.start` calls ``UpdateEndpoint`` with a ``DeploymentConfig``
(blue/green traffic routing and automatic rollback on alarms); :meth:`EndpointRollout.follow`
polls ``DescribeEndpoint`` and ``DescribeAlarms``, records each phase, and decides the outcome with
:func:`mlship.release.outcome.judge` (never with the ``endpoint_in_service`` waiter).

:func:`shadow_config` builds the configuration of a shadow deployment: the live production variants
unchanged (same models, weights and counts) plus one shadow variant pinned to a registry version,
with data capture on; or, to remove the shadow, the live configuration without it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlship.errors import MlshipError
from mlship.release.alarms import alarm_states, went_to_alarm
from mlship.release.outcome import Phase, RolloutOutcome, fired_alarm, judge, observe
from mlship.release.policy import EndpointRollout as RolloutPolicy

_NAME_CHARS = re.compile(r"[^A-Za-z0-9-]+")
CAPTURE_PREFIX = "data-capture/"  # the stacks' data-capture prefix in the data bucket (mlship.cdk.names)


class RolloutError(MlshipError):
    """A rollout that cannot start (bad input, an endpoint already updating, a missing resource)."""

    kind = "rollout"


@dataclass(frozen=True)
class ModelSpec:
    """The model a new configuration serves: one registry version, its bundle and its container.

    ``image_uri`` / ``role_arn`` default to the live model's (same container, new model data).
    """

    name: str
    version: str
    bundle_uri: str  # s3://.../bundle.tar.gz
    image_uri: str | None = None
    role_arn: str | None = None
    environment: dict[str, str] = field(default_factory=dict)

    def container(self, image_uri: str) -> dict[str, Any]:
        """The ``PrimaryContainer``: the bundle, pinned by name and version in the environment."""
        env = {**self.environment, "MLSHIP_MODEL_NAME": self.name, "MLSHIP_MODEL_VERSION": self.version}
        return {"Image": image_uri, "ModelDataUrl": self.bundle_uri, "Environment": env}


@dataclass(frozen=True)
class VariantShape:
    """The production variant of an endpoint created by a first rollout."""

    name: str = "AllTraffic"
    instance_type: str = "ml.m5.large"
    instance_count: int = 1


def resource_name(endpoint: str, version: str, stamp: str) -> str:
    """A SageMaker name (63 chars, letters, digits, '-') that says which version it serves."""
    cleaned = _NAME_CHARS.sub("-", f"{endpoint}-v{version}").strip("-")
    return f"{cleaned[: 62 - len(stamp)]}-{stamp}"


def prepare_config(sagemaker: Any, endpoint: str, model: ModelSpec, *, stamp: str | None = None) -> str:
    """Create a model and an endpoint configuration for ``model`` shaped like the live one; return its name."""
    stamp = stamp or datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    live = sagemaker.describe_endpoint(EndpointName=endpoint)
    current = sagemaker.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
    name = resource_name(endpoint, model.version, stamp)
    image, role = model.image_uri, model.role_arn
    if image is None or role is None:
        live_model = sagemaker.describe_model(ModelName=current["ProductionVariants"][0]["ModelName"])
        image = image or _container(live_model).get("Image")
        role = role or live_model.get("ExecutionRoleArn")
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer=model.container(image))
    variants = [{**_variant_settings(v), "ModelName": name} for v in current["ProductionVariants"]]
    extra = {k: current[k] for k in ("DataCaptureConfig", "KmsKeyId", "ShadowProductionVariants") if current.get(k)}
    if "ShadowProductionVariants" in extra:  # the shadow keeps serving its own pinned version
        extra["ShadowProductionVariants"] = [{**_variant_settings(v), "ModelName": v["ModelName"]}
                                             for v in extra["ShadowProductionVariants"]]
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants, **extra)
    return name


def default_capture(bucket: str, model_name: str, sampling_percentage: int = 100) -> dict[str, Any]:
    """A ``DataCaptureConfig`` as the endpoint stack writes it (input and output, JSON and CSV as text)."""
    return {"EnableCapture": True, "InitialSamplingPercentage": sampling_percentage,
            "DestinationS3Uri": f"s3://{bucket}/{CAPTURE_PREFIX}{model_name}",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"], "CsvContentTypes": ["text/csv"]}}


def shadow_config(sagemaker: Any, endpoint: str, model: ModelSpec | None, *, variant: str = "shadow",
                  capture: dict[str, Any] | None = None, instance_type: str | None = None,
                  stamp: str | None = None) -> str:
    """The live configuration with a shadow variant serving ``model`` (None: without any shadow).

    The production variants keep their models; data capture is the live one switched on, else
    ``capture``. Returns the new configuration's name.
    """
    stamp = stamp or datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    live = sagemaker.describe_endpoint(EndpointName=endpoint)
    current = sagemaker.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
    production = [{**_variant_settings(v), "ModelName": v["ModelName"]} for v in current["ProductionVariants"]]
    extra: dict[str, Any] = {k: current[k] for k in ("DataCaptureConfig", "KmsKeyId") if current.get(k)}
    if model is None:
        name = f"{_NAME_CHARS.sub('-', endpoint)[: 62 - len(stamp) - 10]}-noshadow-{stamp}"
    else:
        name = resource_name(f"{endpoint}-shadow", model.version, stamp)
        live_model = sagemaker.describe_model(ModelName=production[0]["ModelName"])
        image = model.image_uri or _container(live_model).get("Image")
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=model.role_arn or live_model.get("ExecutionRoleArn"),
                               PrimaryContainer=model.container(image))
        first = production[0]
        extra["ShadowProductionVariants"] = [{
            "VariantName": variant, "ModelName": name, "InitialInstanceCount": first.get("InitialInstanceCount", 1),
            "InstanceType": instance_type or first.get("InstanceType", "ml.m5.large"),
            "InitialVariantWeight": sum(float(v.get("InitialVariantWeight", 1.0)) for v in production)}]
        if extra.get("DataCaptureConfig"):
            extra["DataCaptureConfig"] = {**extra["DataCaptureConfig"], "EnableCapture": True}
        elif capture is not None:
            extra["DataCaptureConfig"] = capture
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=production, **extra)
    return name


def live_shadow(sagemaker: Any, config_name: str) -> tuple[str, str | None] | None:
    """``(variant, model version)`` of a configuration's shadow variant, None when it has none."""
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    shadows = config.get("ShadowProductionVariants") or []
    if not shadows:
        return None
    model = sagemaker.describe_model(ModelName=shadows[0]["ModelName"])
    return shadows[0]["VariantName"], (_container(model).get("Environment") or {}).get("MLSHIP_MODEL_VERSION")


def create_first_config(sagemaker: Any, endpoint: str, model: ModelSpec, variant: VariantShape, *,
                        stamp: str | None = None) -> str:
    """A model and an endpoint configuration for an endpoint that does not exist yet; return its name."""
    if not model.image_uri or not model.role_arn:
        raise RolloutError(f"endpoint {endpoint} does not exist yet: creating it needs the serving image "
                           "(--image or endpoint.image_uri) and the SageMaker execution role (--role)")
    stamp = stamp or datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    name = resource_name(endpoint, model.version, stamp)
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=model.role_arn,
                           PrimaryContainer=model.container(model.image_uri))
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": variant.name, "ModelName": name, "InitialInstanceCount": variant.instance_count,
        "InstanceType": variant.instance_type, "InitialVariantWeight": 1.0}])
    return name


def _container(model: dict[str, Any]) -> dict[str, Any]:
    return model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]


def live_version(sagemaker: Any, config_name: str) -> str | None:
    """The model version an endpoint configuration serves (``MLSHIP_MODEL_VERSION`` of its first model)."""
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return (_container(model).get("Environment") or {}).get("MLSHIP_MODEL_VERSION")


def _variant_settings(variant: dict[str, Any]) -> dict[str, Any]:
    keep = ("VariantName", "InitialInstanceCount", "InstanceType", "InitialVariantWeight", "ServerlessConfig",
            "ContainerStartupHealthCheckTimeoutInSeconds", "ModelDataDownloadTimeoutInSeconds")
    return {k: variant[k] for k in keep if k in variant}


class EndpointRollout:
    """One blue/green update of one endpoint, from ``UpdateEndpoint`` to its verdict."""

    def __init__(self, sagemaker: Any, cloudwatch: Any, *, poll_seconds: float = 15.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.sagemaker, self.cloudwatch = sagemaker, cloudwatch
        self.poll_seconds, self.clock, self.sleep = poll_seconds, clock, sleep

    def start(self, endpoint: str, config: str, policy: RolloutPolicy, alarm_names: list[str]) -> None:
        """``UpdateEndpoint`` to ``config`` with blue/green routing and rollback on ``alarm_names``."""
        status = self.sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
        if status != "InService":
            raise RolloutError(f"endpoint {endpoint} is {status}: wait for the update in progress to end "
                               "(mlship rollout watch) before starting another")
        self.sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config,
                                       DeploymentConfig=policy.deployment_config(alarm_names),
                                       RetainAllVariantProperties=False)

    def follow(self, endpoint: str, config: str, alarm_names: list[str], timeout_seconds: float,
               on_phase: Callable[[Phase], None] | None = None) -> RolloutOutcome:
        """Poll until the update ends (or ``timeout_seconds`` pass) and decide its outcome."""
        started, wall_start = self.clock(), datetime.now(UTC)
        phases: list[Phase] = []
        while True:
            describe = self.sagemaker.describe_endpoint(EndpointName=endpoint)
            alarms = alarm_states(self.cloudwatch, alarm_names)
            phase = observe(describe, self.clock() - started, alarms)
            if not phases or phase.key() != phases[-1].key():
                phases.append(phase)
                if on_phase is not None:
                    on_phase(phase)
            verdict, reason = judge(describe, config)
            if verdict != "in_progress":
                alarm = None
                if verdict == "rolled_back":
                    history = went_to_alarm(self.cloudwatch, alarm_names, wall_start) \
                        if fired_alarm(reason, alarms) is None else {}
                    alarm = fired_alarm(reason, alarms, history)
                return RolloutOutcome(verdict, endpoint, config, reason=reason, alarm=alarm, phases=phases)
            if self.clock() - started >= timeout_seconds:
                return RolloutOutcome("timeout", endpoint, config, phases=phases,
                                      reason=f"still {describe.get('EndpointStatus')} after {timeout_seconds:.0f} s")
            self.sleep(self.poll_seconds)
