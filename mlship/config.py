"""The typed mlship configuration, shared by the CDK stacks and the ``mlship`` CLI.

One :class:`MlshipConfig` per environment (pydantic only, no aws_cdk: the CLI reads the same
configuration the stacks deploy, without synthesizing). Sources, later ones win:

1. built-in defaults per environment (:data:`ENV_DEFAULTS`: dev, staging, prod);
2. ``cdk.json`` context ``mlship`` -> ``{"common": {...}, "environments": {"dev": {...}, ...}}``;
3. a config file given with ``-c config=path.json`` (same shape as one environment);
4. single overrides ``-c mlship:endpoint.image_uri=...`` (dotted path, value parsed as JSON when
   it parses, else kept as a string).

:func:`load_config` takes CDK context (the app); :func:`load_project_config` reads ``cdk.json``
(the CLI). :class:`ReleaseNames` (``cfg.names``) is the one place resource names come from.
Unknown keys and bad values raise :class:`ConfigError` listing every problem with its path.

Example:
    >>> cfg = load_config("dev", {})
    >>> cfg.names.endpoint_name, cfg.names.deployed_bundle_parameter
    ('mlship-dev-churn', '/mlship/dev/churn/deployed/bundle-uri')
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlship.errors import MlshipError
from mlship.release.policy import (
    CapacitySize,
    EndpointRollout,
    LambdaRollout,
    endpoint_rollout_problems,
    lambda_rollout_problems,
)

ENVIRONMENTS = ("dev", "staging", "prod")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
_SERVERLESS_MEMORY = (1024, 2048, 3072, 4096, 5120, 6144)
LOG_RETENTION_DAYS = {1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
                      30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
                      150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
                      545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
                      2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
                      3653: "TEN_YEARS"}


_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_LAMBDA_ALIAS = re.compile(r"^(?![0-9]+$)[a-zA-Z0-9_-]{1,128}$")
# The registry's grammar (mlship.registry.store): model names, aliases and versions.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REGISTRY_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_PINNED = re.compile(r"^(mlship://(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127})/(?P<version>[A-Za-z0-9][A-Za-z0-9._-]{0,127})"
                     r"|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+\.tar\.gz)$")


def iana_zone(name: str) -> Any:
    """The ``zoneinfo.ZoneInfo`` called ``name``; ValueError naming it when there is none."""
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found (a KeyError), malformed, a folder of zones
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None


def _extra_env(value: dict[str, str], reserved: tuple[str, ...]) -> dict[str, str]:
    for key in value:
        if not _ENV_NAME.match(key) or key.startswith("AWS_"):
            raise ValueError(f"{key!r} is not an allowed environment variable name")
        if key in reserved:
            raise ValueError(f"{key} is set by the stack from the rest of the config")
    return value


PREDICT_ENV = ("MODEL_URI", "MLSHIP_MODEL_NAME", "MLSHIP_MODEL_VERSION", "MLSHIP_REGISTRY_BUCKET", "RECORDS_BUCKET",
               "RECORDS_PREFIX", "PREDICT_BACKEND", "SAGEMAKER_ENDPOINT_NAME", "MLSHIP_PUBLIC_KEY", "MAX_BODY_BYTES",
               "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "CAPTURE_MODE", "CAPTURE_SAMPLING_PERCENTAGE")
MONITOR_ENV = ("MODEL_URI", "MLSHIP_REGISTRY_BUCKET", "RECORDS_BUCKET", "RECORDS_PREFIX", "LABELS_PREFIX",
               "REPORTS_BUCKET", "REPORTS_PREFIX", "EVENT_BUS_NAME", "WINDOW_HOURS", "SENSITIVE_ATTRIBUTE",
               "MLSHIP_PUBLIC_KEY", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
               "SPARK_APPLICATION_ID", "SPARK_JOB_ROLE_ARN", "SPARK_ENTRY_POINT", "SPARK_SUBMIT_PARAMETERS",
               "SPARK_ABOVE_BYTES")


def _pinned_uri(value: str | None) -> str | None:
    """A bundle pinned in the config: one concrete registry version or one S3 tarball, never an alias."""
    if value is None or _PINNED.match(value):
        return value
    if value.startswith("mlship://") and "@" in value:
        raise ValueError(f"{value!r} is a registry alias, which each cold start would resolve anew: serving "
                         "resources pin a concrete version. Leave it unset to serve the version the last "
                         "`mlship rollout` deployed, or pin mlship://NAME/VERSION")
    raise ValueError(f"{value!r}: pin mlship://NAME/VERSION or s3://BUCKET/KEY.tar.gz")


def _log_days(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(f"{value} days: CloudWatch Logs retention is one of {sorted(LOG_RETENTION_DAYS)}")
    return value


class ConfigError(MlshipError, ValueError):
    """The configuration is invalid; ``problems`` lists each one as ``path: message``."""

    kind = "config"

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
    model_uri: str | None = None  # a pinned bundle for this variant only (default: the deployed model)

    _pin = field_validator("model_uri")(classmethod(lambda cls, v: _pinned_uri(v)))

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
    name: str | None = None  # the endpoint's name; default {prefix}-{env}-{model.name} (63 characters at most)
    image_uri: str | None = None  # an existing ECR image; None builds the repo's Dockerfile
    variants: list[VariantConfig] = Field(default_factory=lambda: [VariantConfig()])
    serverless: ServerlessConfig | None = None  # replaces `variants` with one serverless variant
    shadow: VariantConfig | None = None  # optional shadow variant (gets a copy of the traffic)
    data_capture: DataCaptureConfig = Field(default_factory=DataCaptureConfig)
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig)
    rollout: EndpointRollout = Field(default_factory=lambda: EndpointRollout(
        strategy="CANARY", canary=CapacitySize(value=10)))
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)

    @field_validator("name")
    @classmethod
    def _endpoint_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENDPOINT_NAME.match(value):
            raise ValueError(f"{value!r}: SageMaker endpoint names are letters, digits and hyphens, at most 63")
        return value

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
        """How many alarms the DeploymentConfig lists (5XX, latency, model quality, performance degraded)."""
        return len(ENDPOINT_ALARMS)


class CaptureConfig(_Strict):
    """Inference capture of the predict Lambda: ``log`` (default) is one stdout line per captured request,
    delivered by a log subscription filter and Firehose (no network call on the request path); ``s3`` is
    the old synchronous PutObject per request (opt-in); ``enabled: false`` captures nothing."""

    enabled: bool = True
    mode: Literal["log", "s3"] = "log"
    sampling_percentage: float = Field(100.0, ge=0, le=100)  # like SageMaker's InitialSamplingPercentage
    buffer_seconds: int = Field(300, ge=60, le=900)  # Firehose buffering (dynamic partitioning needs >= 60)
    buffer_mb: int = Field(128, ge=64, le=128)  # dynamic partitioning needs >= 64 MB

    @model_validator(mode="after")
    def _sampled(self) -> CaptureConfig:
        if self.enabled and self.sampling_percentage == 0:
            raise ValueError("sampling_percentage 0 captures nothing: set enabled=false instead")
        return self

    def environment(self) -> dict[str, str]:
        """The predict function's variables for this capture."""
        mode = self.mode if self.enabled else "off"
        return {"CAPTURE_MODE": mode, "CAPTURE_SAMPLING_PERCENTAGE": f"{self.sampling_percentage:g}"}


class ApiConfig(_Strict):
    """The predict Lambda and how clients reach it."""

    kind: Literal["function_url", "api_gateway"] = "function_url"
    function_name: str | None = None  # default {prefix}-{env}-predict
    alias: str = "live"  # the alias clients call and CodeDeploy shifts
    backend: Literal["onnx", "sagemaker"] = "onnx"
    memory_mb: int = Field(1024, ge=128, le=10240)
    timeout_seconds: int = Field(15, ge=1, le=900)
    max_body_bytes: int = Field(1_000_000, ge=1024, le=6_291_456)
    throttle_rate_per_second: float = Field(100, gt=0)
    throttle_burst: int = Field(200, ge=1)
    reserved_concurrency: int | None = Field(None, ge=1)
    rollout: LambdaRollout = Field(default_factory=LambdaRollout)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    log_retention_days: int = 30
    environment: dict[str, str] = Field(default_factory=dict)  # extra variables, e.g. ORT_THREADS

    _days = field_validator("log_retention_days")(classmethod(lambda cls, v: _log_days(v)))
    _env = field_validator("environment")(classmethod(lambda cls, v: _extra_env(v, PREDICT_ENV)))

    @field_validator("function_name")
    @classmethod
    def _function_name(cls, value: str | None) -> str | None:
        if value is not None and not _FUNCTION_NAME.match(value):
            raise ValueError(f"{value!r}: Lambda function names are letters, digits, '-' and '_', at most 64")
        return value

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        if not _LAMBDA_ALIAS.match(value):
            raise ValueError(f"{value!r}: Lambda alias names are letters, digits, '-' and '_' (not only digits), "
                             "at most 128")
        return value


class MonitorSparkConfig(_Strict):
    """The monitor's Spark job for large windows (docs/monitoring.md, "Windows that outgrow one Lambda")."""

    application_id: str = Field(pattern=r"^[0-9a-z]{1,64}$")
    job_role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    entry_point: str = Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+\.py$")
    submit_parameters: str = ""
    above_bytes: int | None = Field(None, ge=0)  # None: the monitor's default (256 MiB)


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
    # windows over spark_above_bytes (stored) go to this EMR Serverless application as a Spark job;
    # `mlship batch monitor-artifacts` uploads the job and prints the entry point and parameters
    spark: MonitorSparkConfig | None = None

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
    # A schedule starts one EMR Serverless job run per tick, scoring one logical date's partition
    # (input_prefix/date=YYYY-MM-DD/: the tick's date in schedule_timezone minus date_offset_days);
    # it needs the workers' Python environment (dependencies_archive or build_dependencies).
    scheduled: bool = True
    schedule: str = "cron(0 3 * * ? *)"  # EventBridge Scheduler expression
    schedule_timezone: str = "UTC"
    date_offset_days: int = Field(1, ge=0, le=31)
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

    @field_validator("schedule_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        iana_zone(value)
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
    """The model an environment serves and the registry aliases its release loop moves."""

    name: str = "churn"
    # Escape hatch: pin the served bundle in the config (mlship://NAME/VERSION or s3://...tar.gz).
    # Unset (the default), the stacks serve what the last rollout deployed (the SSM parameters).
    uri: str | None = None
    model_data_url: str | None = None  # s3://.../bundle.tar.gz: a pinned tarball (wins over uri's location)
    public_key_pem: str | None = None  # verify bundle signatures in the serving paths
    champion_alias: str = "champion"  # moved by a successful rollout; what batch and the monitor load
    challenger_alias: str = "challenger"  # moved by `mlship promote` (the offline gate)

    _pin = field_validator("uri")(classmethod(lambda cls, v: _pinned_uri(v)))

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _MODEL_NAME.match(value):
            raise ValueError(f"{value!r}: registry model names are letters, digits, '.', '_' or '-', at most 128")
        return value

    @field_validator("champion_alias", "challenger_alias")
    @classmethod
    def _registry_alias(cls, value: str) -> str:
        if not _REGISTRY_ALIAS.match(value):
            raise ValueError(f"{value!r}: registry aliases start with a letter (letters, digits, '_', '-'; at most 64)")
        return value

    @field_validator("model_data_url")
    @classmethod
    def _s3(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^s3://[a-z0-9.-]{3,63}/.+\.tar\.gz$", value):
            raise ValueError(f"{value!r}: SageMaker ModelDataUrl must be s3://BUCKET/KEY.tar.gz")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.champion_alias == self.challenger_alias:
            raise ValueError(f"champion_alias and challenger_alias are both {self.champion_alias!r}")
        match = _PINNED.match(self.uri or "")
        if match and match["name"] and match["name"] != self.name:
            raise ValueError(f"uri {self.uri!r} names model {match['name']!r}, not {self.name!r} (model.name)")
        return self

    @property
    def pinned_version(self) -> str | None:
        """The version ``uri`` pins (``mlship://NAME/VERSION``), else None."""
        match = _PINNED.match(self.uri or "")
        return match["version"] if match else None


_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class RetrainConfig(_Strict):
    """Continuous training of the model (``mlship retrain``): the user's trainer and its fresh data."""

    trainer: str | None = None  # package.module:function, a labelled DataFrame -> a fitted estimator
    label: str = "churned"  # the label column of the fresh data
    data_uri: str | None = None  # labelled Parquet/CSV: s3://BUCKET/PREFIX/ or a local path
    from_records: bool = True  # also the served inference records joined with late labels
    window_hours: float = Field(168.0, gt=0)  # the records' window
    min_rows: int = Field(500, ge=10)  # fewer fresh labelled rows stop the run before training
    cooldown_hours: float = Field(6.0, ge=0)  # a later trigger within it is recorded and skipped
    thresholds: str | None = None  # the gate's thresholds file (.yaml/.json); `retrain run -t` overrides
    gate: dict[str, Any] | None = None  # or the thresholds inline (the file's content), e.g. in cdk.json
    signing_key_parameter: str | None = None  # an SSM SecureString with the Ed25519 PEM that signs the bundles
    # the export's ONNX parity check (mlship.evaluation.export.ParityPolicy): a failing challenger stops the run
    parity_tolerance: float = Field(1e-4, gt=0)
    parity_max_share_over: float = Field(0.005, ge=0, le=1)
    # where a challenger that passed the gate goes: `mlship rollout ... --model` (canary) or --shadow
    release: Literal["shadow", "canary", "none"] = "canary"
    release_target: Literal["endpoint", "lambda"] | None = None  # None: the endpoint when enabled, else the Lambda
    release_args: list[str] = Field(default_factory=list)  # extra `mlship rollout` options (e.g. --wait 600)
    # AWS (the Retrain stack): a Step Functions state machine started by the monitor's events
    enabled: bool = False  # synthesize the Retrain stack
    schedule: str | None = None  # also retrain on a schedule: rate(30 days) or cron(...)
    code_dir: str | None = None  # the trainer's code, copied into the retraining image (default: none extra)
    framework_version: str = "1.4-2-py312"  # the SageMaker scikit-learn image it builds on (Python >= 3.11)
    training_instance_type: str = "ml.m5.xlarge"  # the SageMaker training job of the train step
    step_instance_type: str = "ml.t3.medium"  # the SageMaker processing jobs of the other steps
    max_step_seconds: int = Field(3600, ge=60, le=86400)  # each job's stopping condition (the release: x4)

    @field_validator("trainer")
    @classmethod
    def _entry_point(cls, value: str | None) -> str | None:
        if value is not None and not _ENTRY_POINT.match(value):
            raise ValueError(f"{value!r}: a trainer is package.module:function")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(rate|cron)\(.+\)$", value):
            raise ValueError(f"{value!r}: a schedule is rate(...) or cron(...) (EventBridge syntax)")
        return value


class AssetsConfig(_Strict):
    # "build": mlship.deploy.lambda_asset.build_lambda_asset (dependencies + core); "source": functions/<name> only
    lambda_code: Literal["build", "source"] = "build"


class MlshipConfig(_Strict):
    """Everything one environment of the CDK app needs."""

    env: str  # dev, staging, prod, or any environment declared under mlship.environments
    profile: Literal["dev", "staging", "prod"] = "dev"  # whose defaults the environment starts from
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
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)

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
        if self.endpoint.name is None and not _ENDPOINT_NAME.match(self.names.endpoint_name):
            problems.append(f"endpoint.name: the default {self.names.endpoint_name!r} (from prefix, env and "
                            "model.name) is not a SageMaker endpoint name (set endpoint.name)")
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

    @property
    def names(self) -> ReleaseNames:
        """The physical names of this environment's resources (what the stacks create and output)."""
        return ReleaseNames(self)


# Defaults per environment: dev is cheap (serverless endpoint, short retention, destroyable),
# prod is cautious (two instances, linear shifting, long retention).
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "dev": {
        "storage": {"records_retention_days": 14, "reports_retention_days": 30, "destroy_on_delete": True},
        "endpoint": {"serverless": {"memory_size_mb": 2048, "max_concurrency": 5},
                     "data_capture": {"enabled": False}, "rollout": {"strategy": "ALL_AT_ONCE"}},
        "api": {"rollout": {"strategy": "ALL_AT_ONCE"}},
        "batch": {"scheduled": False},  # dev scores on demand (mlship batch submit); no worker archive needed
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


def _set_path(env: str, doc: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = doc
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(env, [f"{dotted}: {key} is not a section"])
    node[keys[-1]] = value


def _example(class_name: str) -> str | None:
    """A JSON example of a settings section (its defaults, ``<type>`` for required fields)."""
    found: list[type[BaseModel]] = [BaseModel]
    seen: dict[str, type[BaseModel]] = {}
    while found:
        for sub in found.pop().__subclasses__():
            if sub.__module__.startswith("mlship."):
                seen.setdefault(sub.__name__, sub)
            found.append(sub)
    model = seen.get(class_name)
    if model is None:
        return None
    fields = {name: (f"<{getattr(f.annotation, '__name__', f.annotation)}>" if f.is_required() else f.default)
              for name, f in model.model_fields.items() if f.is_required() or not callable(f.default_factory)}
    return json.dumps(fields, default=str)


def _format_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] in ("model_type", "dict_type") and (example := _example(err.get("ctx", {}).get(
                "class_name", ""))):
            msg = f"expected an object like {example}, not {err['input']!r}"
        if path:
            out.append(f"{path}: {msg}")
        else:  # model-level checks already name their fields
            out.extend(msg.split("; "))
    return out


def replaces_rollout(override: Any) -> bool:
    """Whether a section override names a rollout ``strategy``: its rollout then replaces the
    base's instead of merging into it (another strategy's fields would not validate)."""
    return "strategy" in _mapping(_mapping(override).get("rollout"))


def merge_section(base: dict[str, Any], override: Any) -> Any:
    """``override`` merged over the settings section ``base`` (see :func:`replaces_rollout`); a
    non-mapping ``override`` is returned as is, for pydantic to name the shape it wanted."""
    if not isinstance(override, dict):
        return override
    kept = {k: v for k, v in base.items() if not (k == "rollout" and replaces_rollout(override))}
    return deep_merge(kept, override)


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a dict, else empty (pydantic then names the wrongly typed section)."""
    return value if isinstance(value, dict) else {}


def build_config(env: str, data: dict[str, Any]) -> MlshipConfig:
    """Validate one environment's settings (merged over the defaults of its ``profile``: dev,
    staging or prod; by default the environment's own name, else dev) into a config."""
    if not _ENVIRONMENT.match(env):
        raise ConfigError(env, [f"env: {env!r} is not an environment name (lower-case letters, digits and "
                                "hyphens, starting with a letter, at most 16)"])
    profile = data.get("profile", env if env in ENVIRONMENTS else "dev")
    if profile not in ENVIRONMENTS:
        raise ConfigError(env, [f"profile: {profile!r} is not one of {', '.join(ENVIRONMENTS)} (the defaults "
                                "an environment starts from)"])
    defaults = copy.deepcopy(ENV_DEFAULTS[profile])
    for section in ("endpoint", "api"):
        if replaces_rollout(data.get(section)):
            defaults.get(section, {}).pop("rollout", None)
    merged = deep_merge(defaults, data)
    merged["env"], merged["profile"] = env, profile
    try:
        return MlshipConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(env, _format_errors(exc)) from None


def _section(env: str, context: dict[str, Any]) -> dict[str, Any]:
    """The ``mlship`` context section, checked for shape (a JSON string from ``-c mlship=...`` too)."""
    section = context.get("mlship") or {}
    if isinstance(section, str):
        try:
            section = json.loads(section)
        except json.JSONDecodeError as exc:
            raise ConfigError(env, [f"mlship: not valid JSON ({exc})"]) from None
    if not isinstance(section, dict):
        raise ConfigError(env, ["mlship: must be an object with common and environments"])
    problems = [f"mlship.{k}: unknown key (use mlship.common or mlship.environments)"
                for k in sorted(set(section) - {"environments", "common"})]
    envs = section.get("environments") or {}
    if not isinstance(envs, dict):
        problems.append("mlship.environments: must be an object keyed by environment")
        envs = {}
    problems += [f"mlship.environments.{k}: not an environment name (lower-case letters, digits and hyphens, "
                 "starting with a letter, at most 16)" for k in sorted(envs) if not _ENVIRONMENT.match(str(k))]
    if env not in ENVIRONMENTS and env not in envs:
        problems.append(f"env: unknown environment {env!r}; use one of {', '.join(ENVIRONMENTS)} or declare it "
                        "under mlship.environments (with \"profile\": dev, staging or prod for its defaults)")
    for where, value in [("mlship.common", section.get("common")), *((f"mlship.environments.{k}", v)
                                                                      for k, v in envs.items())]:
        if value is not None and not isinstance(value, dict):
            problems.append(f"{where}: must be an object")
    if problems:
        raise ConfigError(env, problems)
    return deep_merge(section.get("common") or {}, envs.get(env) or {})


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for names the OS refuses (too long, NUL bytes)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _config_file(env: str, name: Any, base_dir: Path | None) -> dict[str, Any]:
    if not isinstance(name, str):
        raise ConfigError(env, [f"config: {name!r} is not a file name"])
    path = Path(name)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not _is_file(path):
        raise ConfigError(env, [f"config: file {path} does not exist"])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(env, [f"config: {path} is not valid JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise ConfigError(env, [f"config: {path} must hold a JSON object (one environment's settings)"])
    return data


def load_config(env: str, context: dict[str, Any], base_dir: Path | None = None) -> MlshipConfig:
    """The config of ``env`` from CDK context (``cdk.json`` + ``-c`` options), see module docstring."""
    data = _section(env, context)
    if context.get("config"):
        data = deep_merge(data, _config_file(env, context["config"], base_dir))
    for key in sorted(context):
        if key.startswith("mlship:"):
            _set_path(env, data, key.removeprefix("mlship:"), _parse_value(context[key]))
    return build_config(env, data)


SECTIONS = ("model", "storage", "endpoint", "api", "monitoring", "batch", "edge", "assets", "retrain")


def with_sections(cfg: MlshipConfig, sections: dict[str, BaseModel | dict[str, Any]]) -> MlshipConfig:
    """``cfg`` with some sections replaced (a section object) or updated (a mapping, merged over it;
    a ``rollout`` that names a ``strategy`` replaces the section's rollout instead of merging).

    The result is validated as a whole (the cross-section checks run again); problems raise
    :class:`ConfigError` naming the field, and a wrongly shaped section shows an example.
    """
    data = cfg.model_dump(mode="json")
    for name, value in sections.items():
        if name not in SECTIONS:
            raise ConfigError(cfg.env, [f"{name}: not a settings section (one of {', '.join(SECTIONS)})"])
        data[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else merge_section(data[name], value)
    try:
        return MlshipConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(cfg.env, _format_errors(exc)) from None


# The endpoint's rollback alarms (key -> name suffix) and the predict alias' CodeDeploy alarms.
ENDPOINT_ALARMS = {"errors_5xx": "endpoint-5xx", "latency_p99": "endpoint-latency",
                   "model_quality": "model-quality", "performance_degraded": "performance-degraded"}
LAMBDA_ALARMS = {"errors": "predict-errors", "duration_p99": "predict-latency"}
REGISTRY_BUNDLE = "models/{name}/{version}/bundle.tar.gz"  # mlship.registry.store's layout (no prefix)


@dataclass(frozen=True)
class PinnedModel:
    """A bundle the configuration pins (the escape hatch): the stacks serve it instead of the parameters."""

    bundle_uri: str  # s3://.../bundle.tar.gz: SageMaker's ModelDataUrl and the Lambda's MODEL_URI
    version: str | None  # None when only an S3 tarball is pinned
    name: str | None = None  # the registry model a variant's mlship:// pin names (else model.name)


@dataclass(frozen=True)
class ReleaseNames:
    """Physical names of one environment's resources, computed from its config alone.

    Pure strings: values only AWS knows (account, region) are parameters, so the stacks pass CDK
    tokens and the CLI passes real values.
    """

    cfg: MlshipConfig

    @property
    def stem(self) -> str:
        """``{prefix}-{env}``, the start of every name."""
        return self.cfg.name

    def bucket(self, account: str, region: str) -> str:
        """The data bucket: bundles/registry, inference records, batch I/O, reports."""
        return f"{self.stem}-data-{account}-{region}"

    def log_bucket(self, account: str, region: str) -> str:
        """The server-access-log bucket of the data bucket."""
        return f"{self.stem}-access-logs-{account}-{region}"

    @property
    def endpoint_name(self) -> str:
        """``endpoint.name``, else ``{prefix}-{env}-{model.name}`` cut to SageMaker's 63 characters."""
        return self.cfg.endpoint.name or f"{self.stem}-{self.cfg.model.name}"[:63].rstrip("-")

    @property
    def function_name(self) -> str:
        """``api.function_name``, else ``{prefix}-{env}-predict``."""
        return self.cfg.api.function_name or f"{self.stem}-predict"

    @property
    def function_alias(self) -> str:
        """The predict alias clients call and CodeDeploy shifts (``api.alias``, default ``live``)."""
        return self.cfg.api.alias

    @property
    def monitor_function_name(self) -> str:
        """The scheduled monitor Lambda."""
        return f"{self.stem}-monitor"

    @property
    def codedeploy_application(self) -> str:
        """The CodeDeploy application the Api stack creates for the predict alias."""
        return f"{self.stem}-predict"

    @property
    def codedeploy_deployment_group(self) -> str:
        """Its deployment group (alias, traffic shifting, alarms, automatic rollback)."""
        return f"{self.stem}-predict"

    def alarm(self, suffix: str) -> str:
        """The CloudWatch alarm ``{prefix}-{env}-{suffix}``."""
        return f"{self.stem}-{suffix}"

    @property
    def endpoint_alarms(self) -> dict[str, str]:
        """The endpoint's rollback alarms by role (``errors_5xx``, ``latency_p99``, ``model_quality``, ...)."""
        return {key: self.alarm(suffix) for key, suffix in ENDPOINT_ALARMS.items()}

    @property
    def lambda_alarms(self) -> dict[str, str]:
        """The alarms CodeDeploy watches while it shifts the predict alias (``errors``, ``duration_p99``)."""
        return {key: self.alarm(suffix) for key, suffix in LAMBDA_ALARMS.items()}

    @property
    def deployed_parameter_path(self) -> str:
        """The SSM path holding the deployed-model parameters (written only by ``mlship rollout``)."""
        return f"/{self.cfg.prefix}/{self.cfg.env}/{self.cfg.model.name}/deployed/"

    @property
    def deployed_bundle_parameter(self) -> str:
        """SSM parameter a successful rollout writes: the ``s3://.../bundle.tar.gz`` it deployed."""
        return self.deployed_parameter_path + "bundle-uri"

    @property
    def deployed_version_parameter(self) -> str:
        """SSM parameter a successful rollout writes: the registry version it deployed."""
        return self.deployed_parameter_path + "version"

    @property
    def champion_uri(self) -> str:
        """The registry URI of the champion (what batch jobs and the monitor resolve when they run)."""
        return f"mlship://{self.cfg.model.name}@{self.cfg.model.champion_alias}"

    @property
    def topic(self) -> str:
        """The SNS topic every alarm notifies."""
        return f"{self.stem}-alarms"

    def log_group(self, function: str) -> str:
        """The log group of the Lambda function called ``function``."""
        return f"/aws/lambda/{function}"

    @property
    def thing_group(self) -> str:
        """The IoT thing group of the edge devices."""
        return f"{self.stem}-devices"

    @property
    def job_template(self) -> str:
        """The IoT job template of edge model rollouts."""
        return f"{self.stem}-model-rollout"

    def pinned_model(self, bucket: str, uri: str | None = None) -> PinnedModel | None:
        """The bundle pinned by ``uri`` (a variant's) or the model section, in the data ``bucket``; None
        means "serve the deployed parameters".

        Precedence: a variant's ``model_uri``; then ``model.model_data_url`` (its tarball, with the
        version of ``model.uri`` when that names one); then ``model.uri``; then the parameters.
        """
        model = self.cfg.model
        if uri is None and model.model_data_url:
            return PinnedModel(model.model_data_url, model.pinned_version)
        uri = uri or model.uri
        match = _PINNED.match(uri or "")
        if not match:
            return None
        if not match["name"]:
            return PinnedModel(match[0], None)
        key = REGISTRY_BUNDLE.format(name=match["name"], version=match["version"])
        return PinnedModel(f"s3://{bucket}/{key}", match["version"], match["name"])

    def outputs(self) -> dict[str, Any]:
        """Every name the CLI needs, as one JSON-ready document (the stacks output the same values)."""
        return {"endpoint_name": self.endpoint_name, "function_name": self.function_name,
                "function_alias": self.function_alias, "codedeploy_application": self.codedeploy_application,
                "codedeploy_deployment_group": self.codedeploy_deployment_group,
                "endpoint_alarms": self.endpoint_alarms, "lambda_alarms": self.lambda_alarms,
                "deployed_bundle_parameter": self.deployed_bundle_parameter,
                "deployed_version_parameter": self.deployed_version_parameter,
                "champion_alias": self.cfg.model.champion_alias,
                "challenger_alias": self.cfg.model.challenger_alias}


CDK_JSON_ENV = "MLSHIP_CDK_JSON"


def project_cdk_json(cdk_json: Path | None = None) -> Path | None:
    """The ``cdk.json`` to read: ``cdk_json``, else ``$MLSHIP_CDK_JSON``, else ``./cdk.json`` if it exists."""
    if cdk_json is not None:
        return Path(cdk_json)
    if os.environ.get(CDK_JSON_ENV):
        return Path(os.environ[CDK_JSON_ENV])
    local = Path.cwd() / "cdk.json"
    return local if local.is_file() else None


def load_project_config(env: str | None = None, cdk_json: Path | None = None,
                        overrides: dict[str, str] | None = None) -> MlshipConfig:
    """The config of ``env`` as the CDK app builds it from ``cdk.json`` (see :func:`project_cdk_json`).

    ``env`` defaults to the context's ``env``, then ``dev``. Without a ``cdk.json`` the built-in
    defaults apply; a named file that is missing or unreadable raises :class:`ConfigError`.
    ``overrides`` are context values as ``cdk -c KEY=VALUE`` gives them (``env``, ``mlship:a.b``).
    """
    path = project_cdk_json(cdk_json)
    if path is None:
        return load_config(env or (overrides or {}).get("env") or "dev", dict(overrides or {}))
    label = env or "?"
    if not _is_file(path):
        source = "" if cdk_json is not None else f" (from ${CDK_JSON_ENV})"
        raise ConfigError(label, [f"cdk.json: file {path}{source} does not exist"])
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(label, [f"cdk.json: {path} is not readable JSON ({exc})"]) from None
    context = doc.get("context", {}) if isinstance(doc, dict) else None
    if not isinstance(context, dict):
        raise ConfigError(label, [f"cdk.json: {path} must be an object whose \"context\" is an object"])
    context = {**context, **(overrides or {})}
    chosen = env or context.get("env") or "dev"
    if not isinstance(chosen, str):
        raise ConfigError(str(chosen), [f"env: {chosen!r} in {path} is not an environment name"])
    return load_config(chosen, context, base_dir=path.parent)
