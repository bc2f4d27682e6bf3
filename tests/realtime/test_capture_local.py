"""Capture end to end, locally: the plane's Lambda → its log lines in moto's CloudWatch Logs → the
log group's subscription filter → moto's Firehose → gzip'd objects in S3 that the record reader
and the monitor read, with the answering version (``variant``) and the alias in every record.

moto's Firehose writes what CloudWatch Logs sends (gzip'd subscription envelopes, every line of
the group: moto does not apply filter patterns or Firehose's dynamic partitioning and processors)
under ``PREFIX/YYYY/MM/DD/HH/``: the monitor reads that layout as ``capture``; in AWS the stack's
processors extract the capture lines into ``model=/version=/date=/hour=``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from local.test_plane_lambda import LAMBDA, create_predict_function, golden_inputs, make_role, upload_bundle

from mlship.cdk.capture import FILTER_PATTERN

BUCKET = "capture-local"
PREFIX = "inference-records/"
FUNCTION = "capture-predict"
STREAM = "capture-predict-records"


def _client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def capture_chain(moto: str, role: str) -> None:
    """The API stack's chain, in moto: bucket, delivery stream, the log group and its subscription."""
    _client("s3", moto).create_bucket(Bucket=BUCKET)
    firehose = _client("firehose", moto)
    arn = firehose.create_delivery_stream(
        DeliveryStreamName=STREAM, DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={"RoleARN": role, "BucketARN": f"arn:aws:s3:::{BUCKET}",
                                            "Prefix": PREFIX, "CompressionFormat": "GZIP"})["DeliveryStreamARN"]
    logs = _client("logs", moto)
    group = f"/aws/lambda/{FUNCTION}"
    logs.create_log_group(logGroupName=group)
    logs.put_subscription_filter(logGroupName=group, filterName="capture", filterPattern=FILTER_PATTERN,
                                 destinationArn=arn, roleArn=role)


@pytest.fixture
def plane(moto_server: str, churn_bundle: Path, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    from mlship.local.plane.server import ControlPlane

    with ControlPlane(moto_server, log_dir=tmp_path / "plane", time_scale=0.01, services=(LAMBDA,)) as started:
        yield started, upload_bundle(moto_server, churn_bundle)


def _invoke_alias(lam: Any, rows: list[dict[str, Any]], count: int) -> list[str]:
    """``count`` invocations of ``FUNCTION:live``; the versions that answered."""
    versions = []
    for i in range(count):
        payload = json.dumps({"instances": [rows[i % len(rows)], rows[(i + 1) % len(rows)]]}).encode()
        response = lam.invoke(FunctionName=f"{FUNCTION}:live", Payload=payload)
        body = json.loads(response["Payload"].read())
        assert "FunctionError" not in response and body["statusCode"] == 200, body
        versions.append(response["ExecutedVersion"])
    return versions


def test_captured_requests_reach_s3_through_logs_and_firehose(plane, moto_server, moto_env, churn_bundle):
    from mlship.aws.records import read_records
    from mlship.monitoring.config import LAYOUT_CAPTURE
    from mlship.monitoring.window import Window, hour_prefixes, iter_window_records

    started, bundle_uri = plane
    role = make_role(moto_server)
    capture_chain(moto_server, role)
    lam = _client("lambda", started.url)
    create_predict_function(lam, FUNCTION, role, bundle_uri, CAPTURE_MODE="log")
    one = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": {
        "MODEL_URI": bundle_uri, "POWERTOOLS_METRICS_NAMESPACE": "mlship-test", "MARK": "two"}})
    two = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=one,
                     RoutingConfig={"AdditionalVersionWeights": {two: 0.5}})
    rows = golden_inputs(churn_bundle)
    versions = _invoke_alias(lam, rows, 16)
    assert set(versions) == {one, two}  # 16 tosses of a fair coin: both sides, except 2 in 65,536 runs

    records = list(read_records(BUCKET, PREFIX))
    assert len(records) == 32 and len({r["request_id"] for r in records}) == 16
    assert all(r["model"] == {"name": "churn", "version": "1"} and r["alias"] == "live" for r in records)
    by_request = {r["request_id"]: r["variant"] for r in records}
    assert sorted(by_request.values()) == sorted(versions)  # each record names the version that answered
    assert all(r["outputs"]["prediction"] in (0, 1) for r in records)
    sent = [[rows[i % len(rows)], rows[(i + 1) % len(rows)]] for i in range(len(rows))]  # as _invoke_alias
    for request_id in by_request:  # each row's inputs are what the client sent, in order
        assert [r["inputs"] for r in records if r["request_id"] == request_id] in sent

    now = datetime.now(UTC)
    window = Window(now - timedelta(hours=1), now + timedelta(minutes=1))
    prefixes = hour_prefixes(PREFIX, "churn", "1", window, LAYOUT_CAPTURE)
    monitored = list(iter_window_records(BUCKET, prefixes, window))
    assert len(monitored) == 32 and {r["variant"] for r in monitored} == {one, two}
