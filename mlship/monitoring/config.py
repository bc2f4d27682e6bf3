"""Monitor configuration: one typed object, read from the Lambda environment or built by the CLI."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from mlship.runtime.records import DEFAULT_PREFIX, LABELS_PREFIX

LAYOUT_MLSHIP = "mlship"  # PREFIX/model=NAME/version=V/date=YYYY-MM-DD/hour=HH/
LAYOUT_CAPTURE = "data-capture"  # SageMaker data capture: PREFIX/YYYY/MM/DD/HH/


@dataclass
class MonitorConfig:
    """Where the records, labels and reports live, and when to raise alarms.

    ``from_env`` reads the variables the infra stack sets (see docs/monitoring.md):
    MODEL_URI, RECORDS_BUCKET, RECORDS_PREFIX, LABELS_PREFIX, REPORTS_BUCKET, REPORTS_PREFIX,
    EVENT_BUS_NAME, WINDOW_HOURS, SENSITIVE_ATTRIBUTE, POWERTOOLS_METRICS_NAMESPACE, plus the
    optional LABEL_WINDOW_HOURS, RECORDS_LAYOUT, DRIFT_THRESHOLDS (JSON), PRIMARY_METRIC,
    PERFORMANCE_TOLERANCE, MIN_LABELLED_ROWS, FAIRNESS_THRESHOLD, METRICS_MODE.
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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> MonitorConfig:
        """Build from environment variables; raises ValueError naming a missing or bad variable."""
        env = dict(os.environ if env is None else env)
        missing = [k for k in ("MODEL_URI", "RECORDS_BUCKET") if not env.get(k)]
        if missing:
            raise ValueError(f"monitor configuration: missing environment variable(s) {', '.join(missing)}")
        try:
            thresholds = json.loads(env["DRIFT_THRESHOLDS"]) if env.get("DRIFT_THRESHOLDS") else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"DRIFT_THRESHOLDS is not valid JSON: {exc}") from None
        return cls(
            model_uri=env["MODEL_URI"], records_bucket=env["RECORDS_BUCKET"],
            reports_bucket=env.get("REPORTS_BUCKET") or env["RECORDS_BUCKET"],
            records_prefix=env.get("RECORDS_PREFIX") or DEFAULT_PREFIX,
            labels_prefix=env.get("LABELS_PREFIX") or LABELS_PREFIX,
            reports_prefix=env.get("REPORTS_PREFIX") or "monitoring",
            event_bus_name=env.get("EVENT_BUS_NAME") or "default",
            window_hours=_number(env, "WINDOW_HOURS", 1.0),
            label_window_hours=_number(env, "LABEL_WINDOW_HOURS", 24.0),
            sensitive_attribute=env.get("SENSITIVE_ATTRIBUTE") or None,
            namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or "mlship",
            layout=env.get("RECORDS_LAYOUT") or LAYOUT_MLSHIP,
            thresholds=thresholds,
            primary_metric=env.get("PRIMARY_METRIC") or None,
            performance_tolerance=_number(env, "PERFORMANCE_TOLERANCE", 0.05),
            min_labelled_rows=int(_number(env, "MIN_LABELLED_ROWS", 50)),
            fairness_threshold=_number(env, "FAIRNESS_THRESHOLD", 0.2),
            metrics_mode=env.get("METRICS_MODE") or "emf",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(env: dict[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {raw!r}") from None
