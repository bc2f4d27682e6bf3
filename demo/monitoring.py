"""Demo step: traffic through the prediction Lambda, then shifted traffic; the monitor Lambda finds
the drift, publishes metrics to the local CloudWatch, sends an event and writes its reports."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import types
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.table import Table

from demo.context import DemoContext
from mlship.aws.clients import client
from mlship.local.datasets import CHURN_LABEL, make_churn

ROWS_PER_REQUEST = 100


def _context(name: str) -> Any:
    """The attributes of a Lambda context object (the handlers run in-process here)."""
    return types.SimpleNamespace(function_name=name, memory_limit_in_mb=1024, aws_request_id=uuid.uuid4().hex,
                                 invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}")


def _send(predict: Any, df: Any, features: list[str]) -> list[dict[str, Any]]:
    """POST the rows to the prediction Lambda in requests; return the late labels to deliver."""
    labels = []
    for start in range(0, len(df), ROWS_PER_REQUEST):
        chunk = df.iloc[start:start + ROWS_PER_REQUEST]
        ctx = _context("mlship-predict")
        rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
                for rec in chunk[features].to_dict("records")]  # missing values are JSON nulls
        event = {"body": json.dumps({"instances": rows}), "contentType": "application/json"}
        with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF lines
            answer = predict(event, ctx)
        if answer["statusCode"] != 200:
            raise RuntimeError(f"prediction Lambda answered {answer['statusCode']}: {answer}")
        labels += [{"request_id": ctx.aws_request_id, "row": i, "label": int(y)}
                   for i, y in enumerate(chunk[CHURN_LABEL].tolist())]
    return labels


def _put_labels(bucket: str, labels: list[dict[str, Any]], part: str) -> None:
    body = "\n".join(json.dumps(x) for x in labels).encode()
    client("s3").put_object(Bucket=bucket, Key=f"labels/model=churn/{part}.jsonl", Body=body)


def _event_queue() -> str:
    sqs, events = client("sqs"), client("events")
    url = sqs.create_queue(QueueName="mlship-monitor-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="mlship-monitor-alarms", EventPattern=json.dumps({"source": ["mlship.monitoring"]}))
    events.put_targets(Rule="mlship-monitor-alarms", Targets=[{"Id": "alarms-queue", "Arn": arn}])
    return url


EVENT_FIELDS = {"DriftDetected": ("model", "share", "drifted_features"),
                "AttributionDrift": ("model", "value", "top_fields"),
                "PerformanceDegraded": ("model", "metric", "value", "reference")}


def _verdict_table(out: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    for col in ("rows", "dataset drift", "drift share", "drifted features", "prediction drift", "quality", "events"):
        table.add_column(col)
    perf = out.get("performance") or {}
    quality = f"{perf.get('primary_metric')} {perf['value']:.3f} (holdout {perf['reference']:.3f})" \
        if perf.get("value") is not None else "no labels yet"
    verdict = {True: "[red]YES[/]", False: "no"}.get(out["dataset_drift"], f"no verdict ({out.get('drift_reason')})")
    share = "-" if out["share"] is None else f"{out['share']:.0%}"
    prediction = {True: "yes", False: "no"}.get(out["prediction_drift"], "not computed")
    table.add_row(str(out["rows"]), verdict, share, ", ".join(out["drifted_features"] or []) or "-", prediction,
                  quality, ", ".join(out["events"]) or "-")
    return table


def run(ctx: DemoContext) -> None:
    ctx.step("Monitoring: drift, performance with late labels, fairness -> CloudWatch, EventBridge, reports")
    con = ctx.console
    bundle_uri = ctx.data.get("bundle_uri") or str(ctx.data["bundle_tar"])
    # CAPTURE_MODE=s3: the Lambda writes its inference records to the bucket itself; deployed, the
    # default (log) capture reaches the same prefix through the log subscription and Firehose
    os.environ.update({"MODEL_URI": bundle_uri, "RECORDS_BUCKET": ctx.bucket, "REPORTS_BUCKET": ctx.bucket,
                       "CAPTURE_MODE": "s3",
                       "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "mlship",
                       "METRICS_MODE": "api", "WINDOW_HOURS": "1", "EVENT_BUS_NAME": "default"})
    con.print("METRICS_MODE=api: locally the monitor puts its metrics with PutMetricData; in AWS it prints EMF "
              "lines that CloudWatch turns into the same metrics")
    from functions.monitor import handler as monitor_module
    from functions.predict import handler as predict_module

    monitor = monitor_module.handler
    for module in (predict_module, monitor_module):  # keep the demo output to what a user should see
        module.logger.setLevel("WARNING")

    predict_module.reset()  # pick up this step's configuration
    features = predict_module.load_backend(force=True).predictor.schema.names
    queue = _event_queue()

    normal = make_churn(2000, seed=101)
    labels = _send(predict_module.handler, normal, features)
    con.print(f"sent {len(normal)} rows of normal traffic through the prediction Lambda "
              f"({len(normal) // ROWS_PER_REQUEST} requests); records in s3://{ctx.bucket}/inference-records/")
    _put_labels(ctx.bucket, labels[:1500], "normal")
    con.print(f"delivered 1,500 late ground-truth labels to s3://{ctx.bucket}/labels/model=churn/")
    first = monitor({}, _context("mlship-monitor"))
    con.print(_verdict_table(first, "monitor run 1: normal traffic"))

    mark = datetime.now(UTC)
    shifted = make_churn(3000, seed=202, shift=1.0)
    shifted_labels = _send(predict_module.handler, shifted, features)
    _put_labels(ctx.bucket, shifted_labels, "shifted")
    con.print(f"sent {len(shifted)} rows of shifted traffic (higher charges, more support calls, more "
              "month-to-month contracts) and their labels")
    end = datetime.now(UTC) + timedelta(seconds=1)
    hours = (end - mark).total_seconds() / 3600
    second = monitor({"now": end.isoformat(), "window_hours": hours}, _context("mlship-monitor"))
    con.print(_verdict_table(second, "monitor run 2: the window of shifted traffic"))
    con.print(f"{len(second['drifted_features'])} of 9 features drifted (dataset drift needs half of them, "
              "configurable with DRIFT_THRESHOLDS) and the prediction distribution drifted: the monitor sends "
              "DriftDetected. At 3,000 rows effect sizes decide (normalised Wasserstein, Jensen-Shannon), "
              "not p-values.")

    cw = client("cloudwatch")
    dims = [{"Name": "Model", "Value": "churn"}, {"Name": "Version", "Value": "1"}]
    table = Table(title="metrics in the local CloudWatch (namespace mlship, Model=churn, Version=1)")
    table.add_column("metric")
    table.add_column("latest")
    now = datetime.now(UTC)
    for name in ("DriftShare", "DatasetDrift", "PredictionDrift", "ModelQuality", "PerformanceDegraded",
                 "DemographicParityDifference", "Rows"):
        points = cw.get_metric_statistics(Namespace="mlship", MetricName=name, Dimensions=dims,
                                          StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5),
                                          Period=60, Statistics=["Maximum"])["Datapoints"]
        table.add_row(name, ", ".join(f"{p['Maximum']:.3f}" for p in points) or "-")
    per_feature = {d["Value"] for m in cw.list_metrics(Namespace="mlship", MetricName="FeatureDrift")["Metrics"]
                   for d in m["Dimensions"] if d["Name"] == "Feature"}
    table.add_row("FeatureDrift", f"one series per Feature: {', '.join(sorted(per_feature))}")
    con.print(table)

    sqs = client("sqs")
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    for msg in received:
        event = json.loads(msg["Body"])
        if event.get("detail-type") == "DriftDetected":
            ctx.data["drift_event"] = event  # the retraining step's trigger
        shown = EVENT_FIELDS.get(event["detail-type"], ("model",))
        con.print(f"EventBridge -> SQS: [bold]{event['detail-type']}[/] from {event['source']}: "
                  f"{json.dumps({k: event['detail'].get(k) for k in shown})}")
    if not received:
        con.print("[yellow]no event received")

    reports = second["reports"]
    local = ctx.workdir / "monitoring"
    local.mkdir(exist_ok=True)
    key = reports["html"].split(f"s3://{ctx.bucket}/", 1)[1]
    client("s3").download_file(ctx.bucket, key, str(local / "report.html"))
    con.print(f"reports: {reports['json']} and {reports['html']}")
    con.print(f"HTML report (histograms, drift over time, performance, fairness): {local / 'report.html'}")
    ctx.data["monitoring_report"] = local / "report.html"
