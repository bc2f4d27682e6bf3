"""A fleet: the ``mlship serve`` processes behind one endpoint configuration, and faults to rehearse with.

A SageMaker blue/green update runs two fleets side by side (the blue one of the live configuration
and the green one of the new configuration); each fleet here is one local ``mlship serve`` per
production variant and per shadow variant (``ShadowProductionVariants``), started from the variant's
model (its container's ``MODEL_URI``, else its ``ModelDataUrl``) with the container's ``Environment``,
and healthy only when ``/ping`` answers 200. The fleet also carries its configuration's
``DataCaptureConfig`` (:class:`~mlship.local.plane.datacapture.CaptureSettings`).

Faults are for rehearsals: the container variable ``MLSHIP_LOCAL_FAULT`` (set by
``mlship rollout endpoint --fault``) makes the plane answer a share of the fleet's requests with
a 500 (``errors=0.2``), delay them (``latency=400ms``), or kill the containers as they start
(``crash``). The plane applies them in front of the container; a real container ignores the
variable.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError
from mlship.local.plane.container import ServeProcess, ServiceError
from mlship.local.plane.datacapture import CaptureSettings

FAULT_VARIABLE = "MLSHIP_LOCAL_FAULT"
_LATENCY = re.compile(r"^(?P<value>\d+(\.\d+)?)(?P<unit>ms|s)$")


class FaultError(MlshipError):
    """A fault specification the plane cannot apply."""

    kind = "fault"


@dataclass(frozen=True)
class Fault:
    """What to inject into one fleet's requests."""

    error_rate: float = 0.0
    latency_seconds: float = 0.0
    crash: bool = False

    @classmethod
    def parse(cls, text: str | None) -> Fault:
        """``errors=0.2``, ``latency=400ms``, ``crash``; several joined by ``,``."""
        fault = cls()
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            key, _, value = part.partition("=")
            fault = _apply(fault, key.strip(), value.strip(), part)
        return fault


def _apply(fault: Fault, key: str, value: str, part: str) -> Fault:
    if key == "crash" and not value:
        return Fault(fault.error_rate, fault.latency_seconds, True)
    if key == "errors":
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not 0.0 < rate <= 1.0:
            raise FaultError(f"fault {part!r}: errors takes a share of requests in (0, 1], e.g. errors=0.2")
        return Fault(rate, fault.latency_seconds, fault.crash)
    if key == "latency":
        match = _LATENCY.match(value)
        if not match:
            raise FaultError(f"fault {part!r}: latency takes a duration, e.g. latency=400ms or latency=2s")
        seconds = float(match["value"]) / (1000.0 if match["unit"] == "ms" else 1.0)
        return Fault(fault.error_rate, seconds, fault.crash)
    raise FaultError(f"fault {part!r}: use errors=SHARE, latency=DURATION or crash")


@dataclass
class FleetVariant:
    """One production variant of a fleet: its model, weight, container and its process."""

    name: str
    weight: float
    model_url: str
    environment: dict[str, str]
    instance_count: int = 1
    instance_type: str | None = None
    process: ServeProcess | None = None

    @property
    def fault(self) -> Fault:
        return Fault.parse(self.environment.get(FAULT_VARIABLE))


@dataclass
class Fleet:
    """The processes serving one endpoint configuration."""

    config_name: str
    variants: list[FleetVariant]
    shadows: list[FleetVariant] = field(default_factory=list)  # get a copy of the traffic, never answer it
    capture: CaptureSettings | None = None
    inflight: int = 0
    _random: random.Random = field(default_factory=random.Random)
    _idle: threading.Condition = field(default_factory=threading.Condition)

    def start(self, *, workers: int, log_dir: Path, ready_timeout: float) -> None:
        """Start every variant's container and wait until all are healthy; raise ServiceError if one is not."""
        try:
            for variant in self.variants + self.shadows:
                container_env = {k: v for k, v in variant.environment.items() if k != FAULT_VARIABLE}
                variant.process = ServeProcess(variant.model_url, container_env, workers=workers, log_dir=log_dir)
                if variant.fault.crash:
                    variant.process.proc.kill()  # the rehearsed crash: the container dies as it starts
            for variant in self.variants + self.shadows:
                assert variant.process is not None
                variant.process.wait_ready(ready_timeout)
        except ServiceError:
            self.stop(drain_seconds=0)
            raise

    def choose(self, target: str | None) -> FleetVariant:
        """The variant named ``target`` or one drawn by weight (raise ServiceError for an unknown name)."""
        if target:
            for variant in self.variants:
                if variant.name == target:
                    return variant
            raise ServiceError(400, "ValidationError", f"Target variant {target} not found: variants are "
                               f"{[v.name for v in self.variants]}")
        total = sum(max(v.weight, 0.0) for v in self.variants)
        pick = self._random.uniform(0, total)
        for variant in self.variants:
            pick -= max(variant.weight, 0.0)
            if pick <= 0:
                return variant
        return self.variants[-1]

    def acquire(self) -> None:
        with self._idle:
            self.inflight += 1

    def release(self) -> None:
        with self._idle:
            self.inflight -= 1
            self._idle.notify_all()

    def stop(self, drain_seconds: float = 30.0) -> None:
        """Wait for in-flight requests (at most ``drain_seconds``), then stop the containers."""
        deadline = time.monotonic() + drain_seconds
        with self._idle:
            while self.inflight > 0 and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
        for variant in self.variants + self.shadows:
            if variant.process is not None:
                variant.process.stop(10)

    def shadow_share(self, variant: FleetVariant) -> float:
        """The share of ``variant``'s requests copied to each shadow: the shadow's weight over the
        production variants' (SageMaker's shadow sampling), at most 1."""
        production = sum(max(v.weight, 0.0) for v in self.variants) or 1.0
        return min(1.0, max(self.shadows[0].weight, 0.0) / production) if self.shadows else 0.0

    def healthy(self) -> bool:
        """Every production container is still running (a dead shadow never rolls an update back)."""
        return all(v.process is not None and v.process.proc.poll() is None for v in self.variants)


def _fleet_variant(sagemaker: Any, spec: dict[str, Any]) -> FleetVariant:
    model = sagemaker.describe_model(ModelName=spec["ModelName"])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    environment = dict(container.get("Environment") or {})
    url = environment.get("MODEL_URI") or container.get("ModelDataUrl")
    if not url:
        raise ServiceError(400, "ValidationException",
                           f"model {spec['ModelName']} has no ModelDataUrl and no MODEL_URI")
    return FleetVariant(spec["VariantName"], float(spec.get("InitialVariantWeight", 1.0)), url, environment,
                        int(spec.get("InitialInstanceCount") or 1), spec.get("InstanceType"))


def fleet_from_config(sagemaker: Any, config_name: str, shadow_variants: list[dict[str, Any]] | None = None) -> Fleet:
    """A (not yet started) fleet for endpoint configuration ``config_name`` as moto records it.

    moto drops ``ShadowProductionVariants``: the plane keeps them itself and passes them here.
    """
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    variants = [_fleet_variant(sagemaker, spec) for spec in config.get("ProductionVariants", [])]
    shadow_specs = shadow_variants or config.get("ShadowProductionVariants") or []
    shadows = [_fleet_variant(sagemaker, spec) for spec in shadow_specs]
    return Fleet(config_name, variants, shadows, CaptureSettings.from_config(config.get("DataCaptureConfig")))
