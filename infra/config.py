"""Typed configuration of the mlship CDK app: one :class:`MlshipConfig` per environment.

Import-light (pydantic only, no aws_cdk): tests and ``mlship`` commands validate configs without
synthesizing. Sources, later ones win:

1. built-in defaults per environment (:data:`ENV_DEFAULTS`: dev, staging, prod);
2. ``cdk.json`` context ``mlship`` -> ``{"environments": {"dev": {...}, ...}}``;
3. a config file given with ``-c config=path.json`` (same shape as one environment);
4. single overrides ``-c mlship:endpoint.image_uri=...`` (dotted path, value parsed as JSON when
   it parses, else kept as a string).

Unknown keys and bad values raise :class:`ConfigError` listing every problem with its path.

Example:
    >>> cfg = load_config("dev", {})
    >>> cfg.endpoint.rollout.strategy
    'ALL_AT_ONCE'
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlship.release.policy import (
    CapacitySize,
    EndpointRollout,
    LambdaRollout,
    endpoint_rollout_problems,
    lambda_rollout_problems,
)

ENVIRONMENTS = ("dev", "staging", "prod")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_SERVERLESS_MEMORY = (1024, 2048, 3072, 4096, 5120, 6144)
LOG_RETENTION_DAYS = {1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
                      30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
                      150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
                      545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
                      2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
                      3653: "TEN_YEARS"}


_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _extra_env(value: dict[str, str], reserved: tuple[str, ...]) -> dict[str, str]:
    for key in value:
        if not _ENV_NAME.match(key) or key.startswith("AWS_"):
            raise ValueError(f"{key!r} is not an allowed environment variable name")
        if key in reserved:
            raise ValueError(f"{key} is set by the stack from the rest of the config")
    return value


PREDICT_ENV = ("MODEL_URI", "MLSHIP_REGISTRY_BUCKET", "RECORDS_BUCKET", "RECORDS_PREFIX", "PREDICT_BACKEND",
               "SAGEMAKER_ENDPOINT_NAME", "MLSHIP_PUBLIC_KEY", "MAX_BODY_BYTES", "POWERTOOLS_SERVICE_NAME",
               "POWERTOOLS_METRICS_NAMESPACE")
MONITOR_ENV = ("MODEL_URI", "MLSHIP_REGISTRY_BUCKET", "RECORDS_BUCKET", "RECORDS_PREFIX", "LABELS_PREFIX",
               "REPORTS_BUCKET", "REPORTS_PREFIX", "EVENT_BUS_NAME", "WINDOW_HOURS", "SENSITIVE_ATTRIBUTE",
               "MLSHIP_PUBLIC_KEY", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE")


def _log_days(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(f"{value} days: CloudWatch Logs retention is one of {sorted(LOG_RETENTION_DAYS)}")
    return value


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists each one as ``path: message``."""

    def __init__(self, env: str, problems: list[str]) -> None:
        self.env = env
        self.problems = problems
        super().__init__(f"invalid mlship config for environment {env!r}:\n  - " + "\n  - ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Strict):
    """The data bucket (bundles, records, batch I/O, reports) and its access-log bucket."""

    records_retention_days: int = Field(90, ge=1, le=3650)
    reports_retention_days: int = Field(365, ge=1, le=3650)
    batch_output_retention_days: int = Field(30, ge=1, le=3650)
    noncurrent_version_days: int = Field(30, ge=1, le=3650)
    access_log_retention_days: int = Field(90, ge=1, le=3650)
    infrequent_access_after_days: int = Field(30, ge=30, le=3650)
    destroy_on_delete: bool = False


class VariantConfig(_Strict):
    """One production variant of the SageMaker endpoint (instance-backed)."""

    name: str = "blue"
    weight: float = Field(1.0, gt=0, le=1000)
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(1, ge=1, le=100)
    model_uri: str | None = None  # defaults to model.uri

    @field_validator("instance_type")
    @classmethod
    def _ml_instance(cls, value: str) -> str:
        if not re.match(r"^ml\.[a-z0-9]+\.[a-z0-9]+$", value):
            raise ValueError(f"{value!r} is not a SageMaker instance type (e.g. ml.m5.large)")
        return value


class ServerlessConfig(_Strict):
    """A serverless variant (``ServerlessConfig``): no instances, scales to zero."""

    memory_size_mb: int = 2048
    max_concurrency: int = Field(5, ge=1, le=200)
    provisioned_concurrency: int | None = Field(None, ge=1, le=200)

    @field_validator("memory_size_mb")
    @classmethod
    def _memory(cls, value: int) -> int:
        if value not in _SERVERLESS_MEMORY:
            raise ValueError(f"{value} MB: SageMaker serverless allows {', '.join(map(str, _SERVERLESS_MEMORY))}")
        return value


class AutoscalingConfig(_Strict):
    """Target tracking on ``SageMakerVariantInvocationsPerInstance``."""

    enabled: bool = True
    min_instances: int = Field(1, ge=1, le=100)
    max_instances: int = Field(4, ge=1, le=100)
    invocations_per_instance: int = Field(200, ge=1, le=100_000)  # per minute
    scale_in_cooldown_seconds: int = Field(300, ge=0, le=3600)
    scale_out_cooldown_seconds: int = Field(60, ge=0, le=3600)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min_instances > self.max_instances:
            raise ValueError(f"min_instances={self.min_instances} > max_instances={self.max_instances}")
        return self


class AlarmsConfig(_Strict):
    """Rollback alarms read by SageMaker (and CodeDeploy for the Lambda alias)."""

    error_5xx_threshold: int = Field(5, ge=1)  # invocation 5XX errors per period
    model_latency_p99_ms: int = Field(500, ge=1)  # SageMaker ModelLatency p99 (ms)
    model_quality_metric: str = "ModelQuality"  # published by the monitor (namespace mlship)
    model_quality_min: float = Field(0.7, ge=0, le=1)
    lambda_error_threshold: int = Field(5, ge=1)
    lambda_p99_ms: int = Field(1000, ge=1)
    period_seconds: int = 60
    evaluation_periods: int = Field(3, ge=1, le=100)

    @field_validator("period_seconds")
    @classmethod
    def _period(cls, value: int) -> int:
        if value not in (10, 30) and (value < 60 or value % 60):
            raise ValueError(f"{value}: CloudWatch periods are 10, 30 or a multiple of 60 seconds")
        return value


class DataCaptureConfig(_Strict):
    enabled: bool = True
    sampling_percentage: int = Field(100, ge=0, le=100)


class EndpointConfig(_Strict):
    """The SageMaker endpoint serving ``mlship serve`` with blue/green deployments."""

    enabled: bool = True
    image_uri: str | None = None  # an existing ECR image; None builds the repo's Dockerfile
    variants: list[VariantConfig] = Field(default_factory=lambda: [VariantConfig()])
    serverless: ServerlessConfig | None = None  # replaces `variants` with one serverless variant
    shadow: VariantConfig | None = None  # optional shadow variant (gets a copy of the traffic)
    data_capture: DataCaptureConfig = Field(default_factory=DataCaptureConfig)
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig)
    rollout: EndpointRollout = Field(default_factory=lambda: EndpointRollout(
        strategy="CANARY", canary=CapacitySize(value=10)))
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)

    @field_validator("image_uri")
    @classmethod
    def _ecr_uri(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/.+", value):
            raise ValueError(f"{value!r} is not an ECR image URI (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG)")
        return value

    @model_validator(mode="after")
    def _variants(self) -> EndpointConfig:
        names = [v.name for v in self.variants] + ([self.shadow.name] if self.shadow else [])
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if not self.variants:
            raise ValueError("at least one production variant is required")
        for name in names:
            if not re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", name):
                raise ValueError(f"variant name {name!r}: letters, digits and hyphens, at most 63")
        if self.serverless is not None:
            if len(self.variants) > 1:
                raise ValueError("a serverless endpoint has exactly one variant")
            if self.shadow is not None:
                raise ValueError("shadow variants need instance-backed variants, not serverless")
            if self.data_capture.enabled:
                raise ValueError("SageMaker serverless endpoints do not support data capture: "
                                 "set data_capture.enabled=false (the predict Lambda writes inference records)")
        return self

    def capacity(self) -> int:
        """Instances behind the first production variant (what canary/linear sizes refer to)."""
        return 1 if self.serverless is not None else self.variants[0].instance_count

    def rollback_alarm_count(self) -> int:
        """How many alarms the DeploymentConfig lists (5XX, latency, model quality)."""
        return 3


class ApiConfig(_Strict):
    """The predict Lambda and how clients reach it."""

    kind: Literal["function_url", "api_gateway"] = "function_url"
    backend: Literal["onnx", "sagemaker"] = "onnx"
    memory_mb: int = Field(1024, ge=128, le=10240)
    timeout_seconds: int = Field(15, ge=1, le=900)
    max_body_bytes: int = Field(1_000_000, ge=1024, le=6_291_456)
    throttle_rate_per_second: float = Field(100, gt=0)
    throttle_burst: int = Field(200, ge=1)
    reserved_concurrency: int | None = Field(None, ge=1)
    rollout: LambdaRollout = Field(default_factory=LambdaRollout)
    log_retention_days: int = 30
    environment: dict[str, str] = Field(default_factory=dict)  # extra variables, e.g. ORT_THREADS

    _days = field_validator("log_retention_days")(classmethod(lambda cls, v: _log_days(v)))
    _env = field_validator("environment")(classmethod(lambda cls, v: _extra_env(v, PREDICT_ENV)))


class MonitoringConfig(_Strict):
    schedule: str = "rate(1 hour)"
    window_hours: int = Field(1, ge=1, le=24 * 31)
    sensitive_attribute: str | None = None
    alarm_email: str | None = None
    memory_mb: int = Field(1024, ge=128, le=10240)
    timeout_seconds: int = Field(300, ge=1, le=900)
    log_retention_days: int = 30
    # extra variables read by mlship.monitoring.config (PRIMARY_METRIC, DRIFT_THRESHOLDS, RECORDS_LAYOUT, ...)
    environment: dict[str, str] = Field(default_factory=dict)

    _days = field_validator("log_retention_days")(classmethod(lambda cls, v: _log_days(v)))
    _env = field_validator("environment")(classmethod(lambda cls, v: _extra_env(v, MONITOR_ENV)))

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not re.match(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$", value):
            raise ValueError(f"{value!r}: use rate(N unit) or cron(...)")
        return value

    @field_validator("alarm_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


class BatchConfig(_Strict):
    enabled: bool = True
    schedule: str = "cron(0 3 * * ? *)"  # EventBridge Scheduler expression, UTC
    schedule_timezone: str = "UTC"
    release_label: str = "emr-7.5.0"  # batch.emr.DEFAULT_RELEASE
    input_prefix: str = "batch/input/"
    output_prefix: str = "batch/output/"
    format: Literal["parquet", "csv"] = "parquet"
    max_vcpu: int = Field(16, ge=1, le=4000)
    max_memory_gb: int = Field(64, ge=1, le=16000)
    idle_timeout_minutes: int = Field(15, ge=1, le=10080)
    # Worker wheels (batch.emr.build_deps_archive): an s3:// URI or a local .tar.gz; or set
    # build_dependencies=true to build it at synth time (pip downloads manylinux wheels).
    dependencies_archive: str | None = None
    build_dependencies: bool = False

    @field_validator("dependencies_archive")
    @classmethod
    def _archive(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith(".tar.gz"):
            raise ValueError(f"{value!r}: the dependencies archive is a .tar.gz (mlship-batch-deps.tar.gz)")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not re.match(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\)|at\(.+\))$", value):
            raise ValueError(f"{value!r}: use rate(...), cron(...) or at(...)")
        return value

    @field_validator("release_label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not re.match(r"^emr-[67]\.\d+\.\d+$", value):
            raise ValueError(f"{value!r}: EMR Serverless release labels look like emr-7.9.0")
        return value


class EdgeConfig(_Strict):
    enabled: bool = True
    packages_prefix: str = "edge-packages/"
    rollout_max_per_minute: int = Field(10, ge=1, le=1000)
    abort_failure_percent: float = Field(10.0, gt=0, le=100)
    abort_min_executed: int = Field(5, ge=1)
    in_progress_timeout_minutes: int = Field(60, ge=1, le=10080)


class ModelConfig(_Strict):
    name: str = "churn"
    uri: str = "mlship://churn@prod"  # bundle the targets serve (registry alias or s3://)
    model_data_url: str | None = None  # s3://.../bundle.tar.gz for SageMaker ModelDataUrl
    public_key_pem: str | None = None  # verify bundle signatures in the serving paths

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if not re.match(r"^(mlship://[A-Za-z0-9_.-]+([@/][A-Za-z0-9_.-]+)?|s3://[a-z0-9.-]{3,63}/.+)$", value):
            raise ValueError(f"{value!r}: use mlship://NAME@ALIAS, mlship://NAME/VERSION or s3://BUCKET/KEY")
        return value

    @field_validator("model_data_url")
    @classmethod
    def _s3(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^s3://[a-z0-9.-]{3,63}/.+\.tar\.gz$", value):
            raise ValueError(f"{value!r}: SageMaker ModelDataUrl must be s3://BUCKET/KEY.tar.gz")
        return value


class AssetsConfig(_Strict):
    # "build": mlship.deploy.lambda_asset.build_lambda_asset (dependencies + core); "source": functions/<name> only
    lambda_code: Literal["build", "source"] = "build"


class MlshipConfig(_Strict):
    """Everything one environment of the CDK app needs."""

    env: Literal["dev", "staging", "prod"]
    prefix: str = "mlship"
    account: str | None = None  # default: CDK_DEFAULT_ACCOUNT
    region: str | None = None  # default: CDK_DEFAULT_REGION
    tags: dict[str, str] = Field(default_factory=dict)
    model: ModelConfig = Field(default_factory=ModelConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    edge: EdgeConfig = Field(default_factory=EdgeConfig)
    assets: AssetsConfig = Field(default_factory=AssetsConfig)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r}: lower-case letters, digits and hyphens, starting with a letter")
        return value

    @field_validator("account")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^\d{12}$", value):
            raise ValueError(f"{value!r} is not a 12-digit AWS account id")
        return value

    @model_validator(mode="after")
    def _rollouts(self) -> MlshipConfig:
        problems = []
        if self.endpoint.enabled:
            problems += endpoint_rollout_problems(
                self.endpoint.rollout, instance_count=self.endpoint.capacity(),
                alarm_count=self.endpoint.rollback_alarm_count(),
                serverless=self.endpoint.serverless is not None)
        problems += lambda_rollout_problems(self.api.rollout)
        if self.api.backend == "sagemaker" and not self.endpoint.enabled:
            problems.append("api.backend=sagemaker needs endpoint.enabled=true")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def name(self) -> str:
        """Resource-name stem, e.g. ``mlship-dev``."""
        return f"{self.prefix}-{self.env}"

    @property
    def stack_prefix(self) -> str:
        """Stack-name stem, e.g. ``Mlship-dev``."""
        return f"{self.prefix.capitalize()}-{self.env}"


# Defaults per environment: dev is cheap (serverless endpoint, short retention, destroyable),
# prod is cautious (two instances, linear shifting, long retention).
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "dev": {
        "storage": {"records_retention_days": 14, "reports_retention_days": 30, "destroy_on_delete": True},
        "endpoint": {"serverless": {"memory_size_mb": 2048, "max_concurrency": 5},
                     "data_capture": {"enabled": False}, "rollout": {"strategy": "ALL_AT_ONCE"}},
        "api": {"rollout": {"strategy": "ALL_AT_ONCE"}},
    },
    "staging": {
        "endpoint": {"rollout": {"strategy": "CANARY", "canary": {"value": 50}, "wait_interval_seconds": 300}},
        "api": {"rollout": {"strategy": "CANARY", "percentage": 10, "interval_minutes": 5}},
    },
    "prod": {
        "storage": {"records_retention_days": 365, "reports_retention_days": 730},
        "endpoint": {"variants": [{"name": "blue", "instance_count": 2, "instance_type": "ml.m5.large"}],
                     "autoscaling": {"min_instances": 2, "max_instances": 8},
                     "rollout": {"strategy": "LINEAR", "linear_step": {"value": 50},
                                 "wait_interval_seconds": 600, "termination_wait_seconds": 600,
                                 "maximum_execution_timeout_seconds": 7200}},
        "api": {"kind": "api_gateway", "rollout": {"strategy": "LINEAR", "percentage": 10,
                                                   "interval_minutes": 3}},
    },
}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``extra``; nested dicts merge, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse_value(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = doc
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError("?", [f"{dotted}: {key} is not a section"])
    node[keys[-1]] = value


def _format_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        if path:
            out.append(f"{path}: {msg}")
        else:  # model-level checks already name their fields
            out.extend(msg.split("; "))
    return out


def build_config(env: str, data: dict[str, Any]) -> MlshipConfig:
    """Validate one environment's settings (merged over its defaults) into a config."""
    if env not in ENVIRONMENTS:
        raise ConfigError(env, [f"env: unknown environment {env!r}; use one of {', '.join(ENVIRONMENTS)}"])
    defaults = copy.deepcopy(ENV_DEFAULTS[env])
    for section in ("endpoint", "api"):  # a new strategy replaces the default rollout, not merges
        if "strategy" in ((data.get(section) or {}).get("rollout") or {}):
            defaults.get(section, {}).pop("rollout", None)
    merged = deep_merge(defaults, data)
    merged["env"] = env
    try:
        return MlshipConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(env, _format_errors(exc)) from None


def load_config(env: str, context: dict[str, Any], base_dir: Path | None = None) -> MlshipConfig:
    """The config of ``env`` from CDK context (``cdk.json`` + ``-c`` options), see module docstring."""
    section = context.get("mlship") or {}
    if isinstance(section, str):
        section = json.loads(section)
    unknown = set(section) - {"environments", "common"}
    if unknown:
        raise ConfigError(env, [f"mlship.{k}: unknown key (use mlship.common or mlship.environments)"
                                for k in sorted(unknown)])
    envs = section.get("environments") or {}
    bad_envs = set(envs) - set(ENVIRONMENTS)
    if bad_envs:
        raise ConfigError(env, [f"mlship.environments.{k}: unknown environment" for k in sorted(bad_envs)])
    data = deep_merge(section.get("common") or {}, envs.get(env) or {})
    config_file = context.get("config")
    if config_file:
        path = Path(config_file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ConfigError(env, [f"config: file {path} does not exist"])
        try:
            data = deep_merge(data, json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ConfigError(env, [f"config: {path} is not valid JSON ({exc})"]) from None
    for key in sorted(context):
        if key.startswith("mlship:"):
            _set_path(data, key.removeprefix("mlship:"), _parse_value(context[key]))
    return build_config(env, data)
