"""The size threshold picks the path: the window's stored bytes (from the listing) against
``spark_above_bytes``; above it the run is submitted to EMR Serverless (moto records job runs)."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlship.aws.clients import client
from mlship.monitoring import MonitorConfig, run_monitor
from mlship.monitoring.submit import job_request, pinned_model_uri
from mlship.runtime.predictor import Predictor
from monitoring.helpers import put_labels, send_traffic

ROLE = "arn:aws:iam::123456789012:role/mlship-monitor-job"


@pytest.fixture
def setup(aws: None, churn_bundle: Path) -> dict[str, Any]:
    bucket = f"mlship-size-{uuid.uuid4().hex[:8]}"
    client("s3").create_bucket(Bucket=bucket)
    send_traffic(Predictor.load(churn_bundle), bucket, 200, seed=1)
    app = client("emr-serverless").create_application(name="mlship-monitor", releaseLabel="emr-7.5.0",
                                                      type="SPARK")["applicationId"]
    config = MonitorConfig(model_uri=str(churn_bundle), records_bucket=bucket, reports_bucket=bucket,
                           metrics_mode="none", emit_events=False, spark_application_id=app,
                           spark_job_role_arn=ROLE, spark_entry_point=f"s3://{bucket}/art/monitor_window.py",
                           spark_submit_parameters="--conf spark.submit.pyFiles=s3://b/code.zip")
    return {"bucket": bucket, "app": app, "config": config, "now": datetime.now(UTC) + timedelta(seconds=1)}


def _job_runs(app: str) -> list[dict[str, Any]]:
    emr = client("emr-serverless")
    try:
        return emr.list_job_runs(applicationId=app)["jobRuns"]
    except emr.exceptions.ResourceNotFoundException:  # moto 5.2.5: an application without runs is "not found"
        return []


def test_a_window_over_the_threshold_is_submitted_as_a_spark_job(setup: dict[str, Any], signing_keys: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config, now = replace(setup["config"], spark_above_bytes=100), setup["now"]
    monkeypatch.setenv("MLSHIP_PUBLIC_KEY", (signing_keys / "mlship.pub").read_text())  # the bundle's signer
    monkeypatch.delenv("MLSHIP_REGISTRY_BUCKET", raising=False)
    result = run_monitor(config, now=now)
    job = result.report["spark_job"]
    assert result.report["status"] == "submitted" and "drift" not in result.report  # the job computes it
    assert result.report["input"]["objects"] == 1 and result.report["input"]["bytes"] > 100
    assert result.summary()["spark_job"]["job_run_id"] == job["job_run_id"]
    assert not result.metrics and not result.events and not result.report_uris
    run = client("emr-serverless").get_job_run(applicationId=setup["app"], jobRunId=job["job_run_id"])["jobRun"]
    assert run["executionRole"] == ROLE
    spark_submit = run["jobDriver"]["sparkSubmit"]
    assert spark_submit["entryPoint"] == config.spark_entry_point
    assert spark_submit["sparkSubmitParameters"] == config.spark_submit_parameters
    args = spark_submit["entryPointArguments"]
    assert MonitorConfig(**json.loads(args[args.index("--config") + 1])) == config  # the whole run, as configured
    assert datetime.fromisoformat(args[args.index("--now") + 1]) == now
    # what the run reads from its environment goes along (the job runs elsewhere), what is unset does not
    assert args[args.index("--env") + 1] == f"MLSHIP_PUBLIC_KEY={os.environ['MLSHIP_PUBLIC_KEY']}"
    assert args.count("--env") == 1
    assert [r["id"] for r in _job_runs(setup["app"])] == [job["job_run_id"]]


def test_a_retried_submission_carries_the_same_client_token(setup: dict[str, Any]) -> None:
    """EMR Serverless returns the existing job run for a repeated client token (moto does not
    implement that idempotency, so the request itself is checked)."""
    config, now = setup["config"], setup["now"]
    token = job_request(config, now, "churn")["clientToken"]
    assert job_request(config, now, "churn")["clientToken"] == token
    assert job_request(config, now + timedelta(hours=1), "churn")["clientToken"] != token
    assert job_request(replace(config, window_hours=6), now, "churn")["clientToken"] != token


def test_a_window_under_the_threshold_is_read_here(setup: dict[str, Any]) -> None:
    result = run_monitor(setup["config"], now=setup["now"])  # the default threshold: 256 MiB
    assert result.report["drift"]["rows"] == 200 and "spark_job" not in result.report
    assert _job_runs(setup["app"]) == []


def test_over_the_threshold_without_an_application_the_window_is_read_here(setup: dict[str, Any]) -> None:
    config = replace(setup["config"], spark_above_bytes=100, spark_application_id=None)
    said: list[str] = []
    result = run_monitor(config, now=setup["now"], progress=said.append)
    assert result.report["drift"]["rows"] == 200
    assert any("no Spark application is configured" in line for line in said)
    assert _job_runs(setup["app"]) == []


def test_labels_to_join_count_the_label_windows_records_too(setup: dict[str, Any]) -> None:
    """With labels, a run also reads the label window's records (24 h) to join them: a window at the
    threshold on its own goes to Spark once there are labels."""
    bucket = setup["bucket"]
    s3 = client("s3")
    stored = sum(o["Size"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="inference-records/")["Contents"])
    config = replace(setup["config"], spark_above_bytes=stored)  # the window alone is not over it
    assert "spark_job" not in run_monitor(config, now=setup["now"]).report
    put_labels(s3, bucket, "churn", [{"request_id": "r", "row": 0, "label": 1}])
    result = run_monitor(config, now=setup["now"])
    assert result.report["status"] == "submitted" and result.report["input"]["bytes"] == stored
    assert result.report["input"]["bytes_to_read"] == 2 * stored  # the hour's records, in both windows


def test_an_alias_is_submitted_as_the_version_this_run_resolved() -> None:
    assert pinned_model_uri("mlship://churn@champion", "churn", "7") == "mlship://churn/7"
    assert pinned_model_uri("mlship://churn@champion?bucket=b", "churn", "7") == "mlship://churn/7?bucket=b"
    for fixed in ("mlship://churn/3", "s3://b/bundles/churn-1.tar.gz", "/tmp/bundles/churn@1"):
        assert pinned_model_uri(fixed, "churn", "7") == fixed
