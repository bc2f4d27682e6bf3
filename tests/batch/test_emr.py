"""`mlship batch submit|status` against moto's EMR Serverless and S3 (runs are recorded, nothing executes).

moto records job runs and reports SUCCESS at once without executing them (FACTS.md), so these tests
check what is sent to EMR Serverless and what is uploaded, not a remote Spark run.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlship.cli import app

ROLE = "arn:aws:iam::123456789012:role/mlship-batch"


@pytest.fixture
def bucket(aws: None) -> str:
    from mlship.aws.clients import client

    client("s3").create_bucket(Bucket="batch-emr-test")
    return "batch-emr-test"


def _submit(*extra: str) -> object:
    return CliRunner().invoke(app, ["batch", "submit", *extra])


def test_submit_uploads_the_job_and_starts_a_run_that_status_follows(bucket: str, churn_bundle: Path,
                                                                     tmp_path: Path) -> None:
    from mlship.aws.clients import client

    deps = tmp_path / "deps.tar.gz"
    deps.write_bytes(b"not really a tarball: only uploaded here")
    result = _submit("--model", str(churn_bundle), "--input", f"s3://{bucket}/in/", "--output",
                     f"s3://{bucket}/scores", "--run-id", "2026-11-23", "--artifacts", f"s3://{bucket}/artifacts",
                     "--role-arn", ROLE, "--deps-archive", str(deps), "--log-uri", f"s3://{bucket}/logs/")
    assert result.exit_code == 0, result.output
    submitted = json.loads(result.stdout.strip().splitlines()[0])
    s3 = client("s3")
    # every artifact the run refers to exists; the code zip holds the entry module and the core
    for uri in submitted["artifacts"].values():
        key = uri.split("/", 3)[3]
        s3.head_object(Bucket=bucket, Key=key)
    code_key = submitted["artifacts"]["code"].split("/", 3)[3]
    names = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=bucket, Key=code_key)["Body"].read())).namelist()
    assert {"mlship/batch/job.py", "mlship/batch/worker.py", "mlship/runtime/predictor.py",
            "mlship/runtime/schema.py"} <= set(names)
    assert not any(n.startswith(("tests/", "infra/")) for n in names)

    emr = client("emr-serverless")
    run = emr.get_job_run(applicationId=submitted["application_id"], jobRunId=submitted["job_run_id"])["jobRun"]
    spark_submit = run["jobDriver"]["sparkSubmit"]
    assert spark_submit["entryPoint"] == submitted["artifacts"]["entry_point"]
    assert spark_submit["entryPoint"].endswith("/score.py")
    args = spark_submit["entryPointArguments"]
    assert args[args.index("--model") + 1] == submitted["artifacts"]["model"]  # local bundle was uploaded
    assert args[args.index("--run-id") + 1] == "2026-11-23"
    assert args[args.index("--s3-mode") + 1] == "direct"
    params = spark_submit["sparkSubmitParameters"]
    assert f"spark.archives={submitted['artifacts']['deps']}#deps" in params
    assert f"spark.submit.pyFiles={submitted['artifacts']['code']}" in params
    assert "spark.executorEnv.PYTHONPATH=./deps" in params

    status = CliRunner().invoke(app, ["batch", "status", "--application-id", submitted["application_id"],
                                      "--job-run-id", submitted["job_run_id"], "--wait", "--interval", "0.1"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout.strip().splitlines()[-1])["state"] == "SUCCESS"


def test_submit_reuses_the_application_and_content_addressed_artifacts(bucket: str, churn_bundle: Path) -> None:
    common = ["--model", str(churn_bundle) + ".tar.gz", "--input", f"s3://{bucket}/in/", "--output",
              f"s3://{bucket}/out", "--artifacts", f"s3://{bucket}/art", "--role-arn", ROLE]
    one = json.loads(_submit(*common, "--run-id", "a").stdout.splitlines()[0])
    two = json.loads(_submit(*common, "--run-id", "b").stdout.splitlines()[0])
    assert one["application_id"] == two["application_id"]
    assert one["artifacts"]["code"] == two["artifacts"]["code"]
    assert one["artifacts"]["model"] == two["artifacts"]["model"]
    assert one["job_run_id"] != two["job_run_id"]


def test_submit_passes_the_drift_and_explain_choices_to_the_job(bucket: str, churn_bundle: Path) -> None:
    from mlship.batch.score import parse_args

    from mlship.aws.clients import client

    common = ["--model", str(churn_bundle) + ".tar.gz", "--input", f"s3://{bucket}/in/", "--output",
              f"s3://{bucket}/out", "--artifacts", f"s3://{bucket}/art", "--role-arn", ROLE]
    runs = {}
    for name, extra in (("default", []), ("chosen", ["--no-drift", "--explain"])):
        result = _submit(*common, "--run-id", name, *extra)
        assert result.exit_code == 0, result.output
        submitted = json.loads(result.stdout.splitlines()[0])
        run = client("emr-serverless").get_job_run(applicationId=submitted["application_id"],
                                                   jobRunId=submitted["job_run_id"])["jobRun"]
        runs[name] = parse_args(run["jobDriver"]["sparkSubmit"]["entryPointArguments"])
    assert (runs["default"].no_drift, runs["default"].explain) == (False, False)
    assert (runs["chosen"].no_drift, runs["chosen"].explain) == (True, True)  # what the entry point reads


def test_submit_refuses_local_input_and_status_names_unknown_runs(bucket: str, churn_bundle: Path) -> None:
    bad = _submit("--model", str(churn_bundle), "--input", "/data/in.parquet", "--output", f"s3://{bucket}/o",
                  "--run-id", "r", "--artifacts", f"s3://{bucket}/a", "--role-arn", ROLE)
    assert bad.exit_code == 1
    assert "--input must be an s3:// URI" in bad.output and "Traceback" not in bad.output
    missing = CliRunner().invoke(app, ["batch", "status", "--application-id", "00000000000000",
                                       "--job-run-id", "nope"])
    assert missing.exit_code == 1 and "cannot read job run nope" in missing.output


def test_direct_mode_commit_publishes_staged_spark_output(bucket: str) -> None:
    # On EMR the job writes Spark's output to an s3 staging prefix; boto3 then publishes it.
    from mlship.batch import storage

    from mlship.aws.clients import client

    s3 = client("s3")
    out = f"s3://{bucket}/scores"
    s3.put_object(Bucket=bucket, Key="scores/run_id=r/part-old.parquet", Body=b"old attempt")
    staging = storage.s3_staging_prefix(out, "r")
    prefix = staging.split("/", 3)[3]
    for key in ("data/status=scored/part-1.parquet", "data/status=quarantined/part-1.parquet", "data/_SUCCESS",
                "data/status=scored/.part-1.parquet.crc"):
        s3.put_object(Bucket=bucket, Key=prefix + key, Body=b"x")
    sources = storage.staged_keys(staging + "data")
    assert set(sources) == {"part-1.parquet", "_quarantine/part-1.parquet"}
    uri, replaced = storage.publish_s3(sources, out, "r", staging, summary={"run_id": "r"})
    assert uri == f"s3://{bucket}/scores/run_id=r/" and replaced is True
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="scores/")["Contents"]}
    assert keys == {"scores/run_id=r/part-1.parquet", "scores/run_id=r/_quarantine/part-1.parquet",
                    "scores/run_id=r/_summary.json", "scores/run_id=r/_SUCCESS"}


def test_monitor_artifacts_print_the_settings_that_submit_a_large_window(bucket: str, churn_bundle: Path,
                                                                         tmp_path: Path) -> None:
    """`mlship batch monitor-artifacts` uploads the monitor's job; a monitor configured with what it
    prints submits an over-threshold window to that entry point (moto records the run)."""
    from datetime import UTC, datetime

    from mlship.aws.clients import client
    from mlship.monitoring import MonitorConfig, run_monitor

    deps = tmp_path / "deps.tar.gz"
    deps.write_bytes(b"not really a tarball: only uploaded here")
    result = CliRunner().invoke(app, ["batch", "monitor-artifacts", "--artifacts", f"s3://{bucket}/art",
                                      "--deps-archive", str(deps), "--python", "/usr/bin/python3.11"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    settings, artifacts = printed["settings"], printed["artifacts"]
    assert settings["SPARK_ENTRY_POINT"] == artifacts["entry_point"]
    assert artifacts["entry_point"].endswith("/monitor_window.py")
    s3 = client("s3")
    code = s3.get_object(Bucket=bucket, Key=artifacts["code"].split("/", 3)[3])["Body"].read()
    names = zipfile.ZipFile(io.BytesIO(code)).namelist()
    assert {"mlship/batch/monitor_window.py", "mlship/monitoring/partial.py", "mlship/monitoring/run.py"} <= set(names)
    params = settings["SPARK_SUBMIT_PARAMETERS"]
    assert f"spark.submit.pyFiles={artifacts['code']}" in params and f"{artifacts['deps']}#deps" in params
    assert "spark.executorEnv.PYSPARK_PYTHON=/usr/bin/python3.11" in params

    s3.put_object(Bucket=bucket, Key="inference-records/model=churn/version=1/date=2026-12-01/hour=10/a.jsonl",
                  Body=b'{"request_id": "r", "row": 0, "time": "2026-12-01T10:30:00Z", "inputs": {}}\n')
    emr = client("emr-serverless")
    app_id = emr.create_application(name="mlship-monitor", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]
    config = MonitorConfig(model_uri=str(churn_bundle), records_bucket=bucket, spark_above_bytes=10,
                           spark_application_id=app_id, spark_job_role_arn=ROLE,
                           spark_entry_point=settings["SPARK_ENTRY_POINT"], spark_submit_parameters=params)
    job = run_monitor(config, now=datetime(2026, 12, 1, 11, tzinfo=UTC)).report["spark_job"]
    run = emr.get_job_run(applicationId=app_id, jobRunId=job["job_run_id"])["jobRun"]
    assert run["jobDriver"]["sparkSubmit"]["entryPoint"] == artifacts["entry_point"]
    assert run["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"] == params
