"""Outputs of a monitor run: CloudWatch metrics (EMF or PutMetricData), EventBridge events, S3 reports."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

EVENT_SOURCE = "mlship.monitoring"
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
    from mlship.aws.clients import client

    cw = client("cloudwatch")
    data = [{"MetricName": m.name, "Value": float(m.value), "Unit": m.unit,
             "Dimensions": [{"Name": k, "Value": v} for k, v in m.dimensions.items()]} for m in metrics]
    calls = 0
    for i in range(0, len(data), 20):
        cw.put_metric_data(Namespace=namespace, MetricData=data[i:i + 20])
        calls += 1
    return calls


def put_events(events: list[dict[str, Any]], bus: str, source: str = EVENT_SOURCE) -> list[str]:
    """Send events (``{"detail_type": ..., "detail": {...}}``) with ``source`` (the monitor's by default)."""
    if not events:
        return []
    from mlship.aws.clients import client

    entries = [{"Source": source, "DetailType": e["detail_type"], "Detail": json.dumps(e["detail"]),
                "EventBusName": bus} for e in events]
    resp = client("events").put_events(Entries=entries)
    if resp.get("FailedEntryCount"):
        failed = [e.get("ErrorMessage") for e in resp.get("Entries", []) if e.get("ErrorCode")]
        raise RuntimeError(f"EventBridge rejected {resp['FailedEntryCount']} event(s): {failed}")
    return [e.get("EventId", "") for e in resp.get("Entries", [])]


def report_prefix(prefix: str, model: str, version: str) -> str:
    return f"{prefix.strip('/')}/model={model}/version={version}"


def read_history(bucket: str, base: str) -> list[dict[str, Any]]:
    """The report history of one model version (oldest first; empty when there is none yet)."""
    return _read_history(bucket, base)[0]


def _read_history(bucket: str, base: str) -> tuple[list[dict[str, Any]], str | None]:
    """(entries, ETag of history.json or None when it does not exist yet)."""
    from mlship.aws.clients import client, get_if_exists

    obj = get_if_exists(client("s3"), bucket, f"{base}/history.json")
    if obj is None:  # a missing history starts a new one
        return [], None
    try:
        data = json.loads(obj["Body"].read())
    except json.JSONDecodeError:
        data = []  # an unreadable history is replaced (under the same condition) rather than blocking runs
    return (data if isinstance(data, list) else []), obj["ETag"]


def append_history(bucket: str, base: str, entry: dict[str, Any], attempts: int = 20) -> list[dict[str, Any]]:
    """Append one run to ``history.json`` without losing a concurrent run's entry.

    Read-modify-write under S3 conditional writes: ``If-Match`` the ETag we read (``If-None-Match: *``
    for the first entry); when another run wrote in between (412, or 409 for colliding writes),
    read again and retry after a jittered back-off. Returns the history as written.
    """
    from mlship.aws.clients import backoff, client, is_conflict, is_precondition_failure

    s3 = client("s3")
    for attempt in range(attempts):
        history, etag = _read_history(bucket, base)
        history = [*history, entry][-HISTORY_LIMIT:]
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            s3.put_object(Bucket=bucket, Key=f"{base}/history.json", Body=json.dumps(history).encode(),
                          ContentType="application/json", **condition)
            return history
        except Exception as exc:  # botocore ClientError
            if not (is_precondition_failure(exc) or is_conflict(exc)):
                raise
            backoff(attempt)
    raise RuntimeError(f"s3://{bucket}/{base}/history.json kept changing under {attempts} attempts to append")


def write_reports(bucket: str, base: str, stamp: str, report: dict[str, Any], html_text: str,
                  entry: dict[str, Any]) -> dict[str, str]:
    """Write report.json + report.html under a timestamped key, append ``entry`` to history.json
    (see :func:`append_history`), then point latest.* at this report."""
    from mlship.aws.clients import client

    s3 = client("s3")
    body = json.dumps(report, indent=2, default=str).encode()
    page = html_text.encode()
    keys = {"json": f"{base}/{stamp}/report.json", "html": f"{base}/{stamp}/report.html"}
    s3.put_object(Bucket=bucket, Key=keys["json"], Body=body, ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=keys["html"], Body=page, ContentType="text/html; charset=utf-8")
    append_history(bucket, base, entry)
    s3.put_object(Bucket=bucket, Key=f"{base}/latest.json", Body=body, ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=f"{base}/latest.html", Body=page, ContentType="text/html; charset=utf-8")
    return {k: f"s3://{bucket}/{v}" for k, v in keys.items()}
