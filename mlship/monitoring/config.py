"""Monitor configuration: one typed object, built from the Lambda's settings or by the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlship.runtime.records import DEFAULT_PREFIX, LABELS_PREFIX

LAYOUT_MLSHIP = "mlship"  # PREFIX/model=NAME/version=V/date=YYYY-MM-DD/hour=HH/
LAYOUT_CAPTURE = "data-capture"  # SageMaker data capture: PREFIX/YYYY/MM/DD/HH/


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

