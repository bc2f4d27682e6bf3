"""The monitor Lambda against moto: records in S3 -> metrics, reports, events (SQS-targeted rule)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlship.aws.clients import client
from mlship.runtime.predictor import Predictor
from monitoring.helpers import drain, event_queue, put_labels, send_traffic


@dataclass
class LambdaContext:
    """The Lambda runtime's context object (only its attributes; no runtime exists here)."""

    function_name: str = "mlship-monitor"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlship-monitor"
    aws_request_id: str = "req-1"


@pytest.fixture
def env(aws: None, churn_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    bucket = f"mlship-mon-{suffix}"
    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    tarball = Path(f"{churn_bundle}.tar.gz")
    s3.upload_file(str(tarball), bucket, "bundles/churn-1.tar.gz")
    for key, value in {"MODEL_URI": f"s3://{bucket}/bundles/churn-1.tar.gz", "RECORDS_BUCKET": bucket,
                       "REPORTS_BUCKET": bucket, "WINDOW_HOURS": "1", "METRICS_MODE": "both",
                       "POWERTOOLS_METRICS_NAMESPACE": "mlship", "EVENT_BUS_NAME": "default"}.items():
        monkeypatch.setenv(key, value)
    return {"bucket": bucket, "s3": s3, "queue": event_queue(suffix),
            "predictor": Predictor.load(churn_bundle)}


def _metric_values(name: str, dims: dict[str, str]) -> list[float]:
    cw = client("cloudwatch")
    now = datetime.now(UTC)
    resp = cw.get_metric_statistics(Namespace="mlship", MetricName=name,
                                    Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
                                    StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5),
                                    Period=60, Statistics=["Maximum"])
    return [p["Maximum"] for p in resp["Datapoints"]]


def test_shifted_traffic_raises_drift_and_writes_reports(env: dict[str, Any], capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.monitor.handler import handler

    send_traffic(env["predictor"], env["bucket"], 3000, seed=11, shift=1.0)
    out = handler({"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext())
    assert out["statusCode"] == 200
    assert out["rows"] == 3000
    assert {"monthly_charges", "support_calls", "contract"} <= set(out["drifted_features"])
    assert "age" not in out["drifted_features"] and "gender" not in out["drifted_features"]
    assert out["prediction_drift"] is True
    # the shift moves the model's attributions too when the bundle stores their holdout baseline
    attribution = ["AttributionDrift"] if out["attribution_drift"]["drifted"] else []
    assert out["events"] == ["DriftDetected", *attribution]

    # CloudWatch: API datapoints in moto, dimensioned by model and version (and feature)
    dims = {"Model": "churn", "Version": "1"}
    assert _metric_values("DriftShare", dims) == [pytest.approx(out["share"])]
    assert _metric_values("FeatureDrift", {**dims, "Feature": "monthly_charges"})[0] >= 0.1
    assert _metric_values("PerformanceDegraded", dims) == [0.0]
    # ... and the EMF lines Lambda would turn into the same metrics
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    directives = [d for blob in emf for d in blob["_aws"]["CloudWatchMetrics"]]
    assert any(["Feature", "Model", "Version"] in d["Dimensions"] for d in directives)
    share_blob = next(b for b in emf if "DriftShare" in b)
    assert share_blob["Model"] == "churn" and share_blob["Version"] == "1"

    # reports in S3
    json_key = out["reports"]["json"].split(f"s3://{env['bucket']}/", 1)[1]
    report = json.loads(env["s3"].get_object(Bucket=env["bucket"], Key=json_key)["Body"].read())
    assert report["drift"]["features"]["monthly_charges"]["drifted"] is True
    html_key = out["reports"]["html"].split(f"s3://{env['bucket']}/", 1)[1]
    page = env["s3"].get_object(Bucket=env["bucket"], Key=html_key)["Body"].read().decode()
    assert page.count('<svg class="chart"') >= 10 and "monthly_charges" in page and "Drift over time" in page
    assert 'aria-label="Drift over time"' in page and "<img" not in page  # every chart inline SVG

    # the event reached the SQS queue through the rule
    events = drain(env["queue"])
    assert [e["detail-type"] for e in events] == ["DriftDetected", *attribution]
    assert events[0]["source"] == "mlship.monitoring"
    assert events[0]["detail"]["model"] == {"name": "churn", "version": "1"}
    assert "monthly_charges" in events[0]["detail"]["drifted_features"]


def test_unshifted_traffic_is_quiet_and_history_grows(env: dict[str, Any]) -> None:
    from functions.monitor.handler import handler

    send_traffic(env["predictor"], env["bucket"], 3000, seed=12)
    first = handler({}, LambdaContext())
    assert first["drifted_features"] == [] and first["events"] == []
    assert first["prediction_drift"] is False
    second = handler({"now": (datetime.now(UTC) + timedelta(seconds=2)).isoformat()}, LambdaContext())
    assert second["rows"] == 3000
    base = "monitoring/model=churn/version=1"
    history = json.loads(env["s3"].get_object(Bucket=env["bucket"], Key=f"{base}/history.json")["Body"].read())
    assert len(history) == 2
    assert drain(env["queue"]) == []


def test_late_labels_give_quality_and_degradation_event(env: dict[str, Any]) -> None:
    from functions.monitor.handler import handler

    truth = send_traffic(env["predictor"], env["bucket"], 1000, seed=13)
    # labels for 600 rows arrive late; 50 labels refer to requests that were never served
    put_labels(env["s3"], env["bucket"], "churn", truth[:600])
    put_labels(env["s3"], env["bucket"], "churn", [{"request_id": "unknown", "row": i, "label": 1}
                                                    for i in range(50)], key="part-1.jsonl")
    out = handler({}, LambdaContext())
    perf = out["performance"]
    assert perf["labelled_rows"] == 600
    assert perf["status"] == "ok" and out["events"] == []
    assert _metric_values("ModelQuality", {"Model": "churn", "Version": "1"}) == [pytest.approx(perf["value"])]

    # the same traffic with wrong labels: quality collapses, PerformanceDegraded fires
    flipped = [{**t, "label": 1 - t["label"]} for t in truth[:600]]
    put_labels(env["s3"], env["bucket"], "churn", flipped)
    out = handler({"now": (datetime.now(UTC) + timedelta(seconds=2)).isoformat()}, LambdaContext())
    assert out["performance"]["status"] == "degraded"
    assert out["performance"]["value"] < out["performance"]["reference"] - 0.05
    assert "PerformanceDegraded" in out["events"]
    types = [e["detail-type"] for e in drain(env["queue"])]
    assert "PerformanceDegraded" in types


def test_sagemaker_data_capture_layout(aws: None, churn_bundle: Path) -> None:
    """Records captured by a SageMaker endpoint (PREFIX/YYYY/MM/DD/HH/*.jsonl) are monitored too."""
    import base64

    from mlship.local.datasets import make_churn
    from mlship.monitoring import MonitorConfig, run_monitor

    bucket = f"mlship-cap-{uuid.uuid4().hex[:8]}"
    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    predictor = Predictor.load(churn_bundle)
    df = make_churn(600, seed=31, shift=1.0)
    now = datetime.now(UTC)
    lines = []
    for start in range(0, 600, 100):
        rows = df.iloc[start:start + 100][predictor.schema.names]
        inputs = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                  for r in rows.to_dict("records")]
        answer = predictor.predict(inputs).to_dict()
        lines.append(json.dumps({
            "captureData": {
                "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "encoding": "BASE64",
                                  "data": base64.b64encode(json.dumps({"instances": inputs}).encode()).decode()},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "encoding": "JSON",
                                   "data": json.dumps(answer)}},
            "eventMetadata": {"eventId": uuid.uuid4().hex, "inferenceTime": now.isoformat()},
            "eventVersion": "0"}))
    s3.put_object(Bucket=bucket, Key=f"capture/churn-endpoint/AllTraffic/{now:%Y/%m/%d/%H}/part.jsonl",
                  Body="\n".join(lines).encode())
    config = MonitorConfig(model_uri=str(churn_bundle), records_bucket=bucket, reports_bucket=None,
                           records_prefix="capture/churn-endpoint/AllTraffic", layout="data-capture",
                           metrics_mode="none", emit_events=False)
    result = run_monitor(config, now=now + timedelta(seconds=1))
    drift = result.report["drift"]
    assert drift["rows"] == 600
    assert "monthly_charges" in drift["drifted_features"] and "age" not in drift["drifted_features"]
    assert drift["features"]["monthly_charges"]["method"] == "ks"  # 600 rows: a p-value decides
    assert result.drift_detected
