"""Monitor Lambda: scheduled (EventBridge) every hour; adapts the event and calls the core.

Reads the latest window of inference records from S3, computes drift, performance with late
labels and fairness (``mlship.monitoring.run_monitor``), publishes CloudWatch metrics as EMF,
writes JSON + HTML reports to S3 and sends ``DriftDetected`` / ``PerformanceDegraded`` events.
Configuration: environment variables (``mlship.monitoring.settings.MonitorSettings``), validated
before any work; a bad one is logged naming the variable and fails the invocation (the
MonitorErrors alarm fires) instead of producing a report.
An event may override the run time with ``{"time": "2026-11-23T10:00:00Z"}`` (EventBridge
scheduled events carry it) and the window with ``{"window_hours": 6}``. A run that would read more
than ``SPARK_ABOVE_BYTES`` is started as an EMR Serverless job run instead (with
``SPARK_APPLICATION_ID``; the summary's ``spark_job`` names it), which publishes the run.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from mlship.monitoring import MonitorConfig, run_monitor
from mlship.monitoring.settings import MonitorSettings
from mlship.monitoring.window import parse_time
from mlship.runtime.settings import SettingsError

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "mlship-monitor"))


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    """Run one monitoring pass; returns a summary (verdicts, events sent, report locations)."""
    event = event or {}
    config = _config()
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    overrides = {**detail, **{k: v for k, v in event.items() if k in ("window_hours", "now")}}
    if overrides.get("window_hours"):
        config.window_hours = float(overrides["window_hours"])
    now = parse_time(overrides.get("now")) or parse_time(event.get("time")) or datetime.now(UTC)
    result = run_monitor(config, now=now, progress=logger.info)
    summary = result.summary()
    logger.info("monitor run complete", extra={"summary": summary})
    return {"statusCode": 200, **summary}


def _config() -> MonitorConfig:
    """This run's configuration, read from the environment before any work (a few microseconds)."""
    try:
        return MonitorSettings.from_env().to_config()
    except SettingsError as exc:
        logger.error("monitor configuration is invalid", extra={"variable": exc.variable, "reason": str(exc)})
        raise
