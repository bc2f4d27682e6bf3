"""Typed props of the mlship constructs.

Every construct reads one environment's settings (:class:`mlship.config.MlshipConfig`, from
``cdk.json`` context through :func:`mlship.cdk.app.settings_from_context`, or built in code with
:func:`mlship.config.build_config`). Its props name the :class:`RegistryRef` it stores in and
the one settings section it owns, which overrides the environment's: a section object replaces
it, a mapping (``{"memory_mb": 1024}``) is merged over it. The props validate when they are
created, so a wrong value fails in the app with a :class:`~mlship.config.ConfigError` that names
the field and, for a wrongly shaped section, shows an example.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from mlship.config import (
    ApiConfig,
    BatchConfig,
    EdgeConfig,
    EndpointConfig,
    MlshipConfig,
    MonitoringConfig,
    RetrainConfig,
    StorageConfig,
    with_sections,
)

Section = BaseModel | Mapping[str, Any]


@runtime_checkable
class RegistryRef(Protocol):
    """What a construct needs of the model registry: the environment's settings and the data key.

    :class:`mlship.cdk.ModelRegistry` is one; :class:`ImportedRegistry` names one deployed elsewhere.
    """

    @property
    def settings(self) -> MlshipConfig: ...

    @property
    def key_arn(self) -> str: ...


@dataclass(frozen=True)
class ImportedRegistry:
    """A registry created by another app or stack: its settings and the ARN of its KMS key."""

    settings: MlshipConfig
    key_arn: str

    def __post_init__(self) -> None:
        if not isinstance(self.settings, MlshipConfig):
            raise TypeError(f"settings must be an MlshipConfig, not {type(self.settings).__name__}")
        if not isinstance(self.key_arn, str) or not self.key_arn:
            raise TypeError("key_arn must be the ARN (or a CDK token) of the registry's KMS key")


def _with_section(settings: MlshipConfig, name: str, value: Section | None) -> MlshipConfig:
    """``settings`` with section ``name`` replaced or updated by ``value`` (None: unchanged)."""
    if value is None:
        return settings
    return with_sections(settings, {name: dict(value) if isinstance(value, Mapping) else value})


@dataclass(frozen=True)
class _ConstructProps:
    """The registry a construct uses; ``settings`` is the environment with this construct's section
    (the field named by ``SECTION``) applied."""

    SECTION: ClassVar[str]
    registry: RegistryRef
    settings: MlshipConfig = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.registry, RegistryRef):
            raise TypeError(f"registry must be a ModelRegistry or an ImportedRegistry, not {type(self.registry)}")
        object.__setattr__(self, "settings", _with_section(self.registry.settings, self.SECTION,
                                                           getattr(self, self.SECTION)))

    @property
    def key_arn(self) -> str:
        """The registry's data key (bucket objects, logs, volumes)."""
        return self.registry.key_arn


@dataclass(frozen=True)
class ModelRegistryProps:
    """The environment to create storage for, and its ``storage`` section (retention, removal)."""

    settings: MlshipConfig
    storage: StorageConfig | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.settings, MlshipConfig):
            raise TypeError("settings must be an MlshipConfig (mlship.cdk.settings_from_context or "
                            f"mlship.config.build_config), not {type(self.settings).__name__}")
        object.__setattr__(self, "settings", _with_section(self.settings, "storage", self.storage))


@dataclass(frozen=True)
class PredictFunctionProps(_ConstructProps):
    """The predict Lambda: ``api`` (memory, capture, rollout, Function URL or API Gateway)."""

    SECTION: ClassVar[str] = "api"
    api: ApiConfig | Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ModelEndpointProps(_ConstructProps):
    """The SageMaker endpoint: ``endpoint`` (variants, shadow, serverless, rollout, alarms)."""

    SECTION: ClassVar[str] = "endpoint"
    endpoint: EndpointConfig | Mapping[str, Any] | None = None


@dataclass(frozen=True)
class BatchScoringProps(_ConstructProps):
    """The EMR Serverless application and schedule: ``batch``."""

    SECTION: ClassVar[str] = "batch"
    batch: BatchConfig | Mapping[str, Any] | None = None


@dataclass(frozen=True)
class EdgeFleetProps(_ConstructProps):
    """The IoT thing group, device access and rollout job template: ``edge``."""

    SECTION: ClassVar[str] = "edge"
    edge: EdgeConfig | Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ModelMonitorProps(_ConstructProps):
    """The scheduled monitor Lambda and its alarms: ``monitoring``."""

    SECTION: ClassVar[str] = "monitoring"
    monitoring: MonitoringConfig | Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RetrainingPipelineProps(_ConstructProps):
    """The retraining state machine: ``retrain``; ``endpoint_role_arn`` lets its release step
    create SageMaker models with the endpoint's execution role (:attr:`ModelEndpoint.role`)."""

    SECTION: ClassVar[str] = "retrain"
    retrain: RetrainConfig | Mapping[str, Any] | None = None
    endpoint_role_arn: str | None = None
