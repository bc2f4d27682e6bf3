"""``mlship serve``'s environment, validated once at start-up: ``ServeSettings.from_env()``.

SageMaker starts the container with these variables (``SAGEMAKER_*``); the records variables
match the prediction Lambda's. Command-line options win over the variables they overlap
(``--model`` over ``MODEL_URI``, ``--port`` over ``SAGEMAKER_BIND_TO_PORT``, ``--workers`` over
``SAGEMAKER_MODEL_SERVER_WORKERS``). A bad value stops the server before it listens, with a
:class:`~mlship.runtime.settings.SettingsError` naming the variable.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlship.runtime.records import DEFAULT_PREFIX
from mlship.runtime.settings import BaseSettingsMixin

DEFAULT_MODEL_DIR = "/opt/ml/model"  # where SageMaker extracts ModelDataUrl


class ServeSettings(BaseSettingsMixin, BaseSettings):
    """What a ``mlship serve`` process reads from its environment."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    model_uri: str = Field(DEFAULT_MODEL_DIR, alias="MODEL_URI",
                           description="bundle to serve: directory, .tar.gz, s3:// or mlship:// URI")
    bind_port: int | None = Field(None, alias="SAGEMAKER_BIND_TO_PORT", ge=1, le=65535,
                                  description="port to listen on when --port is left at 8080")
    workers: int = Field(0, alias="SAGEMAKER_MODEL_SERVER_WORKERS", ge=0,
                         description="worker processes when --workers is 0 (0: one per CPU)")
    timeout: int = Field(0, alias="SAGEMAKER_MODEL_SERVER_TIMEOUT", ge=0,
                         description="seconds a request (and the wait for the model) may take (0: 60)")
    public_key: str | None = Field(None, alias="MLSHIP_PUBLIC_KEY",
                                   description="PEM public key (or a path): makes the bundle signature mandatory")
    records_bucket: str | None = Field(None, alias="RECORDS_BUCKET",
                                       description="bucket for inference records (unset: none)")
    records_prefix: str = Field(DEFAULT_PREFIX, alias="RECORDS_PREFIX", description="key prefix of the records")
    records_flush_seconds: float = Field(5.0, alias="RECORDS_FLUSH_SECONDS", gt=0, allow_inf_nan=False,
                                         description="seconds between writes of buffered records")

    def public_key_source(self) -> str | None:
        """The key as ``Predictor.load`` takes it: PEM text, a path, or None."""
        return self.public_key or None
