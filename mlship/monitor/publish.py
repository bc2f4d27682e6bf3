"""Outputs of a monitor run: CloudWatch metrics (EMF or PutMetricData), EventBridge events, S3 reports."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

EVENT_SOURCE = "mlship.monitor"
HISTORY_LIMIT = 500


@dataclass
class Metric:
    """One CloudWatch datum with its dimensions (Model and Version always, Feature for some)."""

    name: str
    value: float
    unit: str = "None"
    dimensions: dict[str, str] = field(default_factory=dict)


def publish_metrics(metrics: list[Metric], namespace: str, mode: str) -> dict[str, Any]:
    """Publish as EMF lines on stdout (``emf``: CloudWatch extracts them from Lambda logs), through
    PutMetricData (``api``: e.g. against the local AWS), ``both`` or ``none``."""
    out: dict[str, Any] = {"mode": mode, "count": len(metrics)}
    if mode in ("emf", "both"):
        out["emf_lines"] = _emit_emf(metrics, namespace)
    if mode in ("api", "both"):
        out["api_calls"] = _put_metric_data(metrics, namespace)
    return out


def _emit_emf(metrics: list[Metric], namespace: str) -> int:
    """Powertools' EMF serialiser, one metric set per distinct dimension set (a private provider:
    Powertools' ``Metrics`` shares its state process-wide, e.g. with the predict handler's)."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    groups: dict[tuple[tuple[str, str], ...], list[Metric]] = {}
    for m in metrics:
        groups.setdefault(tuple(sorted(m.dimensions.items())), []).append(m)
    lines = 0
    for dims, items in groups.items():
        emf = AmazonCloudWatchEMFProvider(namespace=namespace, service="", metric_set={}, dimension_set={},
                                          metadata_set={}, default_dimensions={})
        for key, value in dims:
            emf.add_dimension(name=key, value=value)
        for m in items:
            emf.add_metric(name=m.name, unit=m.unit if m.unit != "None" else "NoUnit", value=m.value)
        print(json.dumps(emf.serialize_metric_set(), separators=(",", ":")), file=sys.stdout, flush=True)
        lines += 1
    return lines


def _put_metric_data(metrics: list[Metric], namespace: str) -> int:
    from mlship.aws import client

    cw = client("cloudwatch")
    data = [{"MetricName": m.name, "Value": float(m.value), "Unit": m.unit,
             "Dimensions": [{"Name": k, "Value": v} for k, v in m.dimensions.items()]} for m in metrics]
    calls = 0
    for i in range(0, len(data), 20):
        cw.put_metric_data(Namespace=namespace, MetricData=data[i:i + 20])
        calls += 1
    return calls


def put_events(events: list[dict[str, Any]], bus: str) -> list[str]:
    """Send events (``{"detail_type": ..., "detail": {...}}``) with source ``mlship.monitor``."""
    if not events:
        return []
    from mlship.aws import client

    entries = [{"Source": EVENT_SOURCE, "DetailType": e["detail_type"], "Detail": json.dumps(e["detail"]),
                "EventBusName": bus} for e in events]
    resp = client("events").put_events(Entries=entries)
    if resp.get("FailedEntryCount"):
        failed = [e.get("ErrorMessage") for e in resp.get("Entries", []) if e.get("ErrorCode")]
        raise RuntimeError(f"EventBridge rejected {resp['FailedEntryCount']} event(s): {failed}")
    return [e.get("EventId", "") for e in resp.get("Entries", [])]


def report_prefix(prefix: str, model: str, version: str) -> str:
    return f"{prefix.strip('/')}/model={model}/version={version}"


def read_history(bucket: str, base: str) -> list[dict[str, Any]]:
    from mlship.aws import client

    s3 = client("s3")
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{base}/history.json")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return []
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable history starts a new one
        if "NoSuchKey" in str(exc) or "Not Found" in str(exc) or "404" in str(exc):
            return []
        raise
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return []
    return data if isinstance(data, list) else []


def write_reports(bucket: str, base: str, stamp: str, report: dict[str, Any], html_text: str,
                  history: list[dict[str, Any]]) -> dict[str, str]:
    """Write report.json + report.html under a timestamped key, plus latest.* and history.json."""
    from mlship.aws import client

    s3 = client("s3")
    body = json.dumps(report, indent=2, default=str).encode()
    page = html_text.encode()
    keys = {"json": f"{base}/{stamp}/report.json", "html": f"{base}/{stamp}/report.html"}
    s3.put_object(Bucket=bucket, Key=keys["json"], Body=body, ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=keys["html"], Body=page, ContentType="text/html; charset=utf-8")
    s3.put_object(Bucket=bucket, Key=f"{base}/latest.json", Body=body, ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=f"{base}/latest.html", Body=page, ContentType="text/html; charset=utf-8")
    s3.put_object(Bucket=bucket, Key=f"{base}/history.json",
                  Body=json.dumps(history[-HISTORY_LIMIT:]).encode(), ContentType="application/json")
    return {k: f"s3://{bucket}/{v}" for k, v in keys.items()}
