"""The CDK app's configuration: a re-export of :mod:`mlship.config` (the CLI reads the same one)."""

from mlship.config import (  # noqa: F401  (re-exported for infra code and its tests)
    ENDPOINT_ALARMS,
    ENV_DEFAULTS,
    ENVIRONMENTS,
    LAMBDA_ALARMS,
    LOG_RETENTION_DAYS,
    MONITOR_ENV,
    PREDICT_ENV,
    ApiConfig,
    ConfigError,
    EndpointConfig,
    MlshipConfig,
    ModelConfig,
    PinnedModel,
    ReleaseNames,
    VariantConfig,
    build_config,
    deep_merge,
    load_config,
)
