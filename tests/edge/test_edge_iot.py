"""Publishing through S3 + AWS IoT Jobs (moto), the agent's job channel, and the device fleet."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from botocore.stub import ANY, Stubber
from mlship.edge.agent.device import Device
from mlship.edge.agent.iot import PLACEHOLDER, IotJobs, apply_job
from mlship.edge.publish import MAX_DOCUMENT_BYTES, PublishError, publish, status
from mlship.edge.simulator import Fleet

from mlship.aws.clients import client

ROLE = "arn:aws:iam::123456789012:role/mlship-test-edge-presign"


@pytest.fixture
def bucket(moto_env) -> str:
    name = f"edge-{uuid.uuid4().hex[:12]}"
    client("s3").create_bucket(Bucket=name)
    return name


def test_publish_uploads_and_creates_a_job_for_the_group(bucket, versioned) -> None:
    env = f"t{uuid.uuid4().hex[:6]}"
    with pytest.raises(PublishError, match="thing group mlship-.*-devices not found"):
        publish(versioned("2.0.0"), bucket=bucket, env=env, role_arn=ROLE)
    out = publish(versioned("2.0.0"), bucket=bucket, env=env, role_arn=ROLE, create_group=True)
    assert out["s3_uri"] == f"s3://{bucket}/edge-packages/churn-mlp/2.0.0/churn-mlp-2.0.0-fp32.edge.tar.gz"
    head = client("s3").head_object(Bucket=bucket, Key=out["s3_uri"].split("/", 3)[3])
    assert head["Metadata"]["sha256"] == out["sha256"]
    iot = client("iot")
    job = iot.describe_job(jobId=out["job_id"])["job"]
    group_arn = iot.describe_thing_group(thingGroupName=f"mlship-{env}-devices")["thingGroupArn"]
    assert job["targets"] == [group_arn] and job["targetSelection"] == "CONTINUOUS"
    assert job["presignedUrlConfig"]["roleArn"] == ROLE
    document = json.loads(iot.get_job_document(jobId=out["job_id"])["document"])
    package = document["package"]
    assert (
        package["url"] == f"{PLACEHOLDER}https://s3.amazonaws.com/{bucket}/edge-packages/churn-mlp/2.0.0/"
        "churn-mlp-2.0.0-fp32.edge.tar.gz}"
    )
    assert package["sha256"] == out["sha256"] and package["version"] == "2.0.0" and package["signature"]
    assert out["document_bytes"] < MAX_DOCUMENT_BYTES
    info = status(out["job_id"])
    assert info["status"] in ("QUEUED", "IN_PROGRESS") and info["executions"]


def test_publish_uses_the_rollout_template_when_present(bucket, versioned) -> None:
    env = f"t{uuid.uuid4().hex[:6]}"
    iot = client("iot")
    iot.create_thing_group(thingGroupName=f"mlship-{env}-devices")
    iot.create_job_template(
        jobTemplateId=f"mlship-{env}-model-rollout",
        description="rollout",
        document=json.dumps({"operation": "template"}),
    )
    out = publish(versioned("2.0.0"), bucket=bucket, env=env, role_arn=ROLE)
    assert out["job_template"] == f"mlship-{env}-model-rollout"


def test_publish_refuses_a_plain_bundle(bucket, mlp_bundle, tmp_path) -> None:
    from mlship.runtime.archive import pack_bundle

    tar = pack_bundle(mlp_bundle, tmp_path / "plain.tar.gz")
    with pytest.raises(PublishError, match="not an edge package"):
        publish(tar, bucket=bucket, role_arn=ROLE, create_group=True)


def test_agent_takes_the_job_and_reports_through_iot_jobs(bucket, versioned, device: Device) -> None:
    """The job comes from moto (publish), the download from moto's S3 over HTTP; the IoT Jobs data-plane
    calls (StartNextPendingJobExecution, UpdateJobExecution) go through botocore's Stubber because moto
    does not implement iot-jobs-data."""
    env = f"t{uuid.uuid4().hex[:6]}"
    out = publish(versioned("2.0.0"), bucket=bucket, env=env, role_arn=ROLE, create_group=True)
    document = json.loads(client("iot").get_job_document(jobId=out["job_id"])["document"])
    key = out["s3_uri"].split("/", 3)[3]
    # what AWS IoT does for each device: substitute the placeholder with a presigned URL
    document["package"]["url"] = client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}
    )
    import boto3

    jobs_client = boto3.client("iot-jobs-data", region_name="us-east-1", endpoint_url="https://example.invalid")
    stub = Stubber(jobs_client)
    stub.add_response(
        "start_next_pending_job_execution",
        {
            "execution": {
                "jobId": out["job_id"],
                "thingName": "dev-1",
                "status": "IN_PROGRESS",
                "jobDocument": json.dumps(document),
                "versionNumber": 1,
            }
        },
        {"thingName": "dev-1", "statusDetails": {"agent": "mlship"}},
    )
    stub.add_response(
        "update_job_execution",
        {"executionState": {"status": "IN_PROGRESS"}},
        {"jobId": out["job_id"], "thingName": "dev-1", "status": "IN_PROGRESS", "statusDetails": ANY},
    )
    stub.add_response(
        "update_job_execution",
        {"executionState": {"status": "SUCCEEDED"}},
        {"jobId": out["job_id"], "thingName": "dev-1", "status": "SUCCEEDED", "statusDetails": ANY},
    )
    jobs = IotJobs("dev-1", client=jobs_client)
    device.reporter = jobs.reporter(device)
    with stub:
        job = jobs.next_job()
        result = apply_job(device, job)
        stub.assert_no_pending_responses()
    assert result.outcome == "installed", result.reason
    assert device.status()["current"]["version"] == "2.0.0"
    assert device.status()["job"]["job_id"] == out["job_id"]


def test_rejected_job_is_reported_as_rejected(device: Device, versioned) -> None:
    import boto3

    jobs_client = boto3.client("iot-jobs-data", region_name="us-east-1", endpoint_url="https://example.invalid")
    stub = Stubber(jobs_client)  # moto has no iot-jobs-data: see the test above
    stub.add_response(
        "update_job_execution",
        {"executionState": {"status": "REJECTED"}},
        {"jobId": "j1", "thingName": "dev-1", "status": "REJECTED", "statusDetails": ANY},
    )
    device.reporter = IotJobs("dev-1", client=jobs_client).reporter(device)
    doc = {
        "operation": "mlship.install",
        "package": {"url": f"{PLACEHOLDER}https://s3.amazonaws.com/b/k}}", "version": "9.0.0"},
    }
    with stub:
        result = apply_job(device, {"job_id": "j1", "thing": "dev-1", "document": doc})
        stub.assert_no_pending_responses()
    assert result.outcome == "rejected" and "placeholder was not substituted" in result.reason
    assert device.status()["last_update"]["outcome"] == "rejected"


def test_fleet_with_an_offline_device(bucket, tmp_path: Path, signing_keys, versioned, golden_inputs) -> None:
    env = f"t{uuid.uuid4().hex[:6]}"
    fleet = Fleet(
        tmp_path / "fleet",
        [signing_keys / "mlship.pub"],
        n=3,
        offline=(2,),
        env=env,
        prefix=f"sim{uuid.uuid4().hex[:4]}",
    )
    fleet.register()
    publish(versioned("1.0.0"), bucket=bucket, env=env, role_arn=ROLE)
    outcomes = fleet.deliver_jobs()
    assert [r.outcome for _, _, r in outcomes] == ["installed", "installed"]
    assert fleet.deliver_jobs() == []  # each job once per device
    offline = fleet.devices[2]
    assert offline.device.current_dir() is None  # never saw the IoT job
    assert [r.outcome for _, r in fleet.sideload(versioned("1.0.0"))] == ["installed"]
    publish(versioned("1.1.0"), bucket=bucket, env=env, role_arn=ROLE)
    assert [r.outcome for _, _, r in fleet.deliver_jobs()] == ["installed", "installed"]
    rows = fleet.table()
    assert [r["version"] for r in rows] == ["1.1.0", "1.1.0", "1.0.0"]
    for sim in fleet.devices:
        assert sim.device.predict(golden_inputs).model_version == ("1.0.0" if not sim.online else "1.1.0")
    assert {r["status"] for r in fleet.reports} == {"IN_PROGRESS", "SUCCEEDED"}


def test_cli_status_of_an_unknown_job_is_one_line(moto_env) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "mlship", "edge", "status", "no-such-job"],
        cwd=repo,
        env=moto_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read job no-such-job")
