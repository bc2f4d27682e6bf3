"""`mlship local` end to end: real moto (and control plane) processes, the CLI in subprocesses,
one per-user state home shared by commands run from different directories."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from local.helpers import LocalCli, group_members, plane_available, wait_gone
from mlship.local.environment import free_port, is_alive

needs_plane = pytest.mark.skipif(not plane_available(), reason="the control plane's services are not in this checkout")


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[LocalCli]:
    local = LocalCli(tmp_path / "home")
    try:
        yield local
    finally:
        local.run("down")


def _buckets(url: str) -> set[str]:
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    return {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}


def test_up_in_one_directory_env_status_down_from_another(cli: LocalCli, tmp_path: Path) -> None:
    first, elsewhere = tmp_path / "project", tmp_path / "other" / "deep" / "sub"
    first.mkdir()
    elsewhere.mkdir(parents=True)
    port = free_port()
    up = cli.ok("up", "--port", str(port), "--no-plane", "--bucket", "extra-bucket", cwd=first)
    assert f"local AWS running at http://localhost:{port}" in up.stdout
    assert not (first / ".mlship").exists()  # nothing written to the current directory

    exports = cli.exports(cwd=elsewhere)
    assert exports["AWS_ENDPOINT_URL"] == f"http://localhost:{port}"
    assert "AWS_ENDPOINT_URL_SAGEMAKER" not in exports  # no plane
    data_bucket = exports["MLSHIP_REGISTRY_BUCKET"]
    assert data_bucket == "mlship-dev-data-123456789012-us-east-1"
    assert f"bucket s3://{data_bucket} (created)" in up.stdout and "s3://extra-bucket (created)" in up.stdout
    assert {data_bucket, "extra-bucket"} <= _buckets(exports["AWS_ENDPOINT_URL"])

    status = cli.ok("status", cwd=elsewhere)
    assert '"running": true' in status.stdout
    moto_pid = cli.state()["moto"]["pid"]
    down = cli.ok("down", cwd=elsewhere)
    assert down.stdout.strip() == "stopped"
    assert wait_gone(moto_pid)
    assert cli.run("status").returncode == 1
    assert not (cli.home / "local.json").exists()
    assert cli.ok("down").stdout.strip() == "nothing was running"


def test_up_twice_is_idempotent_and_adds_buckets(cli: LocalCli) -> None:
    port = free_port()
    cli.ok("up", "--port", str(port), "--no-plane")
    pid = cli.state()["moto"]["pid"]
    again = cli.ok("up", "--port", str(free_port()), "--no-plane", "--bucket", "later-bucket")
    assert f"local AWS already running at http://localhost:{port}" in again.stdout
    assert "--port" in again.stdout and "ignored" in again.stdout
    assert cli.state()["moto"]["pid"] == pid
    assert "later-bucket" in cli.state()["buckets"]
    assert "later-bucket" in _buckets(f"http://localhost:{port}")


def test_concurrent_ups_start_one_server(cli: LocalCli) -> None:
    port = str(free_port())
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda _: cli.run("up", "--port", port, "--no-plane"), range(2)))
    assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
    assert sorted("already running" in d.stdout for d in done) == [False, True]


def test_taken_moto_port_exits_2_and_records_nothing(cli: LocalCli) -> None:
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli.run("up", "--port", str(port), "--no-plane")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert f"port {port}" in done.stderr and "--port" in done.stderr and "Traceback" not in done.stderr
    assert not (cli.home / "local.json").exists()
    assert cli.run("status").returncode == 1


def test_taken_plane_port_exits_2_before_moto_starts(cli: LocalCli) -> None:
    moto_port = free_port()
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        plane_port = taken.getsockname()[1]
        done = cli.run("up", "--port", str(moto_port), "--plane-port", str(plane_port))
    assert done.returncode == 2
    assert f"port {plane_port}" in done.stderr and "--plane-port" in done.stderr
    assert not (cli.home / "local.json").exists()
    with socket.socket() as probe:  # moto never started on its port
        assert probe.connect_ex(("localhost", moto_port)) != 0


def test_bad_bucket_name_exits_2_before_starting(cli: LocalCli) -> None:
    done = cli.run("up", "--port", str(free_port()), "--no-plane", "--bucket", "Not_A_Bucket")
    assert done.returncode == 2 and "not a valid S3 bucket name" in done.stderr
    assert not (cli.home / "local.json").exists()


def test_stale_state_is_cleaned_up(cli: LocalCli) -> None:
    cli.ok("up", "--port", str(free_port()), "--no-plane")
    pid = cli.state()["moto"]["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    status = cli.run("status")
    assert status.returncode == 1 and "not running" in status.stdout
    assert not (cli.home / "local.json").exists()
    assert cli.run("env").returncode == 1

    cli.ok("up", "--port", str(free_port()), "--no-plane")
    pid = cli.state()["moto"]["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    restarted = cli.ok("up", "--port", str(free_port()), "--no-plane")  # up itself notices the stale state
    assert "removed the state of a local AWS that had stopped" in restarted.stdout
    assert is_alive(cli.state()["moto"]["pid"])


@needs_plane
def test_up_starts_the_plane_and_down_stops_it(cli: LocalCli, tmp_path: Path) -> None:
    moto_port, plane_port = free_port(), free_port()
    up = cli.ok("up", "--port", str(moto_port), "--plane-port", str(plane_port), "--time-scale", "0.02")
    assert f"control plane at http://localhost:{plane_port}" in up.stdout
    plane = cli.state()["services"]["plane"]
    assert plane["time_scale"] == 0.02
    exports = cli.exports(cwd=tmp_path)
    assert exports["AWS_ENDPOINT_URL"] == f"http://localhost:{moto_port}"
    for service in ("SAGEMAKER", "SAGEMAKER_RUNTIME", "LAMBDA", "CODEDEPLOY"):
        assert exports[f"AWS_ENDPOINT_URL_{service}"] == f"http://localhost:{plane_port}"
    with urllib.request.urlopen(f"{plane['url']}/ping", timeout=5) as answer:  # noqa: S310 - local
        assert answer.status == 200
    sagemaker = boto3.client("sagemaker", endpoint_url=exports["AWS_ENDPOINT_URL_SAGEMAKER"],
                             region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    assert sagemaker.list_models()["Models"] == []  # passed through to moto
    again = cli.ok("up", "--port", str(moto_port), "--time-scale", "1")
    assert "already running" in again.stdout and "--time-scale 1 ignored" in again.stdout
    assert cli.state()["services"]["plane"]["pid"] == plane["pid"]
    moto_pid = cli.state()["moto"]["pid"]
    cli.ok("down")
    assert wait_gone(plane["pid"]) and wait_gone(moto_pid)


@needs_plane
def test_dead_plane_is_restarted_by_up(cli: LocalCli) -> None:
    port = str(free_port())
    cli.ok("up", "--port", port)
    plane = cli.state()["services"]["plane"]
    os.killpg(plane["pid"], signal.SIGKILL)
    assert wait_gone(plane["pid"])
    status = cli.ok("status")
    assert '"running": false' in status.stdout
    cli.ok("up", "--port", port)
    revived = cli.state()["services"]["plane"]
    assert revived["pid"] != plane["pid"] and is_alive(revived["pid"])
    with urllib.request.urlopen(f"{revived['url']}/ping", timeout=5) as answer:  # noqa: S310 - local
        assert answer.status == 200


@needs_plane
def test_down_stops_the_serve_processes_the_plane_started(cli: LocalCli, churn_bundle: Path) -> None:
    """An endpoint created through the plane runs `mlship serve` processes in the plane's process
    group; `mlship local down` leaves none of them behind."""
    cli.ok("up", "--port", str(free_port()), "--time-scale", "0.01")
    exports, plane_pid = cli.exports(), cli.state()["services"]["plane"]["pid"]
    kw = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", endpoint_url=exports["AWS_ENDPOINT_URL"], **kw)
    s3.upload_file(f"{churn_bundle}.tar.gz", exports["MLSHIP_REGISTRY_BUCKET"], "models/churn/1/bundle.tar.gz")
    sagemaker = boto3.client("sagemaker", endpoint_url=exports["AWS_ENDPOINT_URL_SAGEMAKER"], **kw)
    sagemaker.create_model(ModelName="churn-1", ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
                           PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlship:1",
                                             "ModelDataUrl": f"s3://{exports['MLSHIP_REGISTRY_BUCKET']}/"
                                                             "models/churn/1/bundle.tar.gz"})
    sagemaker.create_endpoint_config(EndpointConfigName="churn-1", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "churn-1", "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}])
    sagemaker.create_endpoint(EndpointName="churn", EndpointConfigName="churn-1")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="churn", WaiterConfig={"Delay": 1})
    children = [pid for pid in group_members(plane_pid) if pid != plane_pid]
    assert children, "the plane started no serve process"
    cli.ok("down")
    assert all(wait_gone(pid) for pid in [plane_pid, *children])
    assert group_members(plane_pid) == []


def test_up_creates_the_data_bucket_the_project_configuration_names(cli: LocalCli, tmp_path: Path) -> None:
    project = tmp_path / "acme"
    (project / "notebooks").mkdir(parents=True)
    (project / "cdk.json").write_text(json.dumps({"app": "python app.py", "context": {
        "env": "staging", "mlship": {"common": {"prefix": "acme", "model": {"name": "fraud"}}}}}))
    cli.ok("up", "--port", str(free_port()), "--no-plane", cwd=project / "notebooks")
    exports = cli.exports(cwd=tmp_path)
    assert exports["MLSHIP_REGISTRY_BUCKET"] == "acme-staging-data-123456789012-us-east-1"
    again = cli.ok("up", "--no-plane", "--env", "prod", cwd=project)  # another environment of the project
    assert "bucket s3://acme-prod-data-123456789012-us-east-1 (created)" in again.stdout
    assert {"acme-staging-data-123456789012-us-east-1", "acme-prod-data-123456789012-us-east-1"} <= \
        _buckets(exports["AWS_ENDPOINT_URL"])


def test_an_invalid_configuration_still_starts_without_a_data_bucket(cli: LocalCli, tmp_path: Path) -> None:
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"mlship": {"common": {"prefix": "Bad_Prefix"}}}}))
    done = cli.ok("up", "--port", str(free_port()), "--no-plane", cwd=tmp_path)
    assert "warning: invalid mlship config" in done.stderr and "prefix" in done.stderr
    assert "MLSHIP_REGISTRY_BUCKET" not in cli.exports()


def test_no_data_bucket_records_the_name_and_leaves_the_bucket_to_the_stacks(cli: LocalCli, tmp_path: Path) -> None:
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"mlship": {"common": {"prefix": "acme"}}}}))
    done = cli.ok("up", "--port", str(free_port()), "--no-plane", "--no-data-bucket", cwd=tmp_path)
    bucket = "acme-dev-data-123456789012-us-east-1"
    assert f"data bucket s3://{bucket}: not created" in done.stdout
    exports = cli.exports()
    assert exports["MLSHIP_REGISTRY_BUCKET"] == bucket  # where `mlship register` writes once the stack made it
    assert bucket not in _buckets(exports["AWS_ENDPOINT_URL"])


def test_deploy_refuses_without_a_local_aws_a_project_or_a_well_formed_context(cli: LocalCli, tmp_path: Path) -> None:
    not_running = cli.run("deploy", cwd=tmp_path)
    assert not_running.returncode == 2 and "local AWS is not running" in not_running.stderr
    cli.ok("up", "--port", str(free_port()), "--no-plane", cwd=tmp_path)
    no_project = cli.run("deploy", cwd=tmp_path)
    assert no_project.returncode == 2 and "no cdk.json with an mlship context" in no_project.stderr
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"mlship": {"common": {"model": {"name": "fraud"}}}}}))
    for bad, problem in ((["-c", "mlship:api.memory_mb"], "expected KEY=VALUE"),
                         (["-c", "mlship:api.memory_mb=12"], "api.memory_mb"),
                         (["--env", "qa"], "unknown environment 'qa'")):
        done = cli.run("deploy", *bad, cwd=tmp_path)
        assert done.returncode == 2 and problem in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    unpinned = cli.run("deploy", cwd=tmp_path)  # stops before the CDK CLI: the serving stacks would fail
    assert unpinned.returncode == 1
    assert "no deployed model for environment 'dev'" in unpinned.stderr
    assert "mlship rollout pin --model fraud/VERSION --env dev" in unpinned.stderr


def test_deploy_names_a_broken_cdk_json_instead_of_a_traceback(cli: LocalCli, tmp_path: Path) -> None:
    cli.ok("up", "--port", str(free_port()), "--no-plane", cwd=tmp_path)
    for text in ('{"context": {"mlship": ', '["not", "an", "object"]'):
        (tmp_path / "cdk.json").write_text(text)
        done = cli.run("deploy", cwd=tmp_path)
        assert done.returncode == 2 and "cdk.json" in done.stderr and "Traceback" not in done.stderr, done.stderr
