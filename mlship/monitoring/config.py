"""Monitor configuration: one typed object, built from the Lambda's settings or by the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlship.runtime.records import DEFAULT_PREFIX, LABELS_PREFIX

LAYOUT_MLSHIP = "mlship"  # PREFIX/model=NAME/version=V/date=YYYY-MM-DD/hour=HH/
LAYOUT_CAPTURE = "data-capture"  # SageMaker data capture: PREFIX/YYYY/MM/DD/HH/
# 256 MiB stored is about 5.5M records (a churn record gzips to ~49 bytes; bench/monitor_window.py):
# ~70 s at the 78k records/s one core reads here, ~2 min on the 0.58 vCPU of a 1024 MB Lambda, inside
# the monitor function's default 300 s timeout with room for the rest of the run. Larger windows go to
# Spark (when an application is configured): the bench's 10M-record window (486 MB) does.
DEFAULT_SPARK_ABOVE_BYTES = 256 << 20


@dataclass
class MonitorConfig:
    """Where the records, labels and reports live, and when to raise alarms.

    The monitor Lambda builds it from its environment with
    ``mlship.monitoring.settings.MonitorSettings.from_env().to_config()``; the CLI from its options.
    """

    model_uri: str
    records_bucket: str
    reports_bucket: str | None = None
    records_prefix: str = DEFAULT_PREFIX
    labels_prefix: str = LABELS_PREFIX
    reports_prefix: str = "monitoring"
    event_bus_name: str = "default"
    window_hours: float = 1.0
    label_window_hours: float = 24.0
    sensitive_attribute: str | None = None
    namespace: str = "mlship"
    layout: str = LAYOUT_MLSHIP
    thresholds: dict[str, Any] = field(default_factory=dict)
    primary_metric: str | None = None
    performance_tolerance: float = 0.05
    min_labelled_rows: int = 50
    fairness_threshold: float = 0.2
    metrics_mode: str = "emf"  # emf (Lambda: EMF lines on stdout) | api (PutMetricData) | both | none
    emit_events: bool = True
    batch_rows: int = 5000
    # attribution drift (mlship.monitoring.attribution): rows of the window explained, and the total
    # variation of the attribution shares that counts as drift (0.05: 3x the sampling noise of 500 rows)
    attribution_sample_rows: int = 500
    attribution_threshold: float = 0.05
    # reading a window: objects fetched at once (threads hide S3 latency; at most this many bodies
    # are held besides the one being parsed, so memory stays bounded by object size, not window size)
    read_workers: int = 8
    # above this many stored bytes (the listing's sizes, known before reading) the window is submitted
    # as a Spark job on EMR Serverless instead of read here; None: always here. See SPARK_ABOVE_BYTES.
    spark_above_bytes: int | None = DEFAULT_SPARK_ABOVE_BYTES
    spark_application_id: str | None = None
    spark_job_role_arn: str | None = None
    spark_entry_point: str | None = None  # s3:// URI of batch/monitor_window.py (mlship batch monitor-artifacts)
    spark_submit_parameters: str = ""  # the code zip and deps archive (printed by mlship batch monitor-artifacts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

