"""The monitor Lambda's environment, validated once per run: ``MonitorSettings.from_env()``.

The infra stack sets these variables (see docs/monitoring.md); ``to_config`` turns them into
the ``MonitorConfig`` that ``run_monitor`` takes (the CLI builds that object from its options).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlship.monitoring.config import DEFAULT_SPARK_ABOVE_BYTES, LAYOUT_MLSHIP, MonitorConfig
from mlship.runtime.records import DEFAULT_PREFIX, LABELS_PREFIX
from mlship.runtime.settings import BaseSettingsMixin
from mlship.stats.drift import DriftThresholds


class MonitorSettings(BaseSettingsMixin, BaseSettings):
    """Where the records, labels and reports live, and when the monitor raises alarms."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    model_uri: str = Field(alias="MODEL_URI", description="bundle being monitored (its profile is the reference)")
    records_bucket: str = Field(alias="RECORDS_BUCKET", description="bucket holding the inference records")
    reports_bucket: str | None = Field(None, alias="REPORTS_BUCKET",
                                       description="bucket for the JSON + HTML reports (default: RECORDS_BUCKET)")
    records_prefix: str = Field(DEFAULT_PREFIX, alias="RECORDS_PREFIX", description="key prefix of the records")
    labels_prefix: str = Field(LABELS_PREFIX, alias="LABELS_PREFIX", description="key prefix of late labels")
    reports_prefix: str = Field("monitoring", alias="REPORTS_PREFIX", description="key prefix of the reports")
    event_bus_name: str = Field("default", alias="EVENT_BUS_NAME", description="bus for DriftDetected events")
    window_hours: float = Field(1.0, alias="WINDOW_HOURS", gt=0, description="hours of records per run")
    label_window_hours: float = Field(24.0, alias="LABEL_WINDOW_HOURS", gt=0,
                                      description="hours of records joined with late labels")
    sensitive_attribute: str | None = Field(None, alias="SENSITIVE_ATTRIBUTE",
                                            description="feature whose groups fairness compares")
    namespace: str = Field("mlship", alias="POWERTOOLS_METRICS_NAMESPACE", description="CloudWatch namespace")
    layout: Literal["mlship", "data-capture"] = Field(
        LAYOUT_MLSHIP, alias="RECORDS_LAYOUT", description="records key layout (mlship or SageMaker data capture)")
    thresholds: dict[str, Any] = Field(default_factory=dict, alias="DRIFT_THRESHOLDS",
                                       description="drift threshold overrides (JSON object)")
    primary_metric: str | None = Field(None, alias="PRIMARY_METRIC",
                                       description="metric the performance check compares (default: the bundle's)")
    performance_tolerance: float = Field(0.05, alias="PERFORMANCE_TOLERANCE", ge=0,
                                         description="allowed drop of the primary metric")
    min_labelled_rows: int = Field(50, alias="MIN_LABELLED_ROWS", ge=0,
                                   description="labelled rows needed before performance is judged")
    fairness_threshold: float = Field(0.2, alias="FAIRNESS_THRESHOLD", ge=0,
                                      description="largest allowed gap between groups")
    metrics_mode: Literal["emf", "api", "both", "none"] = Field(
        "emf", alias="METRICS_MODE", description="emf (log lines), api (PutMetricData), both or none")
    attribution_sample_rows: int = Field(500, alias="ATTRIBUTION_SAMPLE_ROWS", ge=0,
                                         description="window rows explained for attribution drift (0: off)")
    attribution_threshold: float = Field(0.05, alias="ATTRIBUTION_THRESHOLD", gt=0, le=1,
                                         description="total variation of the attribution shares that is drift")

    read_workers: int = Field(8, alias="READ_WORKERS", ge=1, le=64,
                              description="S3 objects of the window fetched at once (memory: this many objects)")
    spark_above_bytes: int | None = Field(
        DEFAULT_SPARK_ABOVE_BYTES, alias="SPARK_ABOVE_BYTES", ge=0,
        description="stored bytes a run would read (with labels: also the label window's) above which it "
                    "is submitted as a Spark job (with SPARK_APPLICATION_ID)")
    spark_job_role_arn: str | None = Field(None, alias="SPARK_JOB_ROLE_ARN",
                                           description="execution role of the monitor's Spark job runs")
    spark_entry_point: str | None = Field(None, alias="SPARK_ENTRY_POINT",
                                          description="s3:// URI of monitor_window.py (mlship batch monitor-artifacts)")
    spark_submit_parameters: str = Field("", alias="SPARK_SUBMIT_PARAMETERS",
                                         description="the job's sparkSubmitParameters (mlship batch monitor-artifacts)")
    # last of the Spark settings: its validator reads the others
    spark_application_id: str | None = Field(None, alias="SPARK_APPLICATION_ID",
                                             description="EMR Serverless application of large windows (unset: none)")

    @field_validator("spark_entry_point")
    @classmethod
    def _entry_point_s3(cls, value: str | None) -> str | None:
        if value and not value.startswith("s3://"):
            raise ValueError("an s3:// URI (EMR Serverless reads its entry point from S3)")
        return value

    @field_validator("spark_application_id")
    @classmethod
    def _spark_complete(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A Spark application needs its job role and entry point (refused here, not when a window grows)."""
        if value and not (info.data.get("spark_job_role_arn") and info.data.get("spark_entry_point")):
            raise ValueError("set together with SPARK_JOB_ROLE_ARN and SPARK_ENTRY_POINT")
        return value

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds_json(cls, value: Any) -> Any:
        """A JSON object whose keys ``DriftThresholds`` knows (checked here, not mid-run)."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"a JSON object ({exc})") from None
        if not isinstance(value, Mapping):
            raise ValueError("a JSON object")
        DriftThresholds.from_dict(value)
        return value

    def to_config(self) -> MonitorConfig:
        """The run configuration; the reports go to the records bucket unless told otherwise."""
        values = self.model_dump()
        values["reports_bucket"] = self.reports_bucket or self.records_bucket
        values["thresholds"] = dict(self.thresholds)
        return MonitorConfig(**values)
