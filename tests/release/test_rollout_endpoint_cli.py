"""``mlship rollout endpoint`` end to end on the local control plane: the registry lifecycle, the
verdicts, the deployed-model parameters, and every refusal before a change (exit 2)."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from release.plane import ROLE, BackgroundClient, plane_clients, served_version

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlship-serve:1"


def mlship(*args: Any) -> Any:
    from typer.testing import CliRunner

    from mlship.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _errors(out: Any) -> list[str]:
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    assert out.exception is None or isinstance(out.exception, SystemExit)
    return [line for line in out.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def registry(plane: Any, versioned_bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> Any:
    """A registry bucket with churn 1, 2, 3 registered; challenger -> 2; the built-in defaults but a
    p99 latency alarm at 30 s: on a loaded 2-core CI machine a local container's p99 can pass the
    default 500 ms and roll a healthy canary back; these tests judge rollbacks on the 5xx alarm."""
    from mlship.aws import clients as aws
    from mlship.registry.store import Registry

    bucket = f"registry-{uuid.uuid4().hex[:8]}"
    aws.client("s3").create_bucket(Bucket=bucket)
    monkeypatch.setenv("MLSHIP_REGISTRY_BUCKET", bucket)
    monkeypatch.setenv("MLSHIP_SAGEMAKER_ROLE", ROLE)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"mlship:endpoint.alarms.model_latency_p99_ms": 30000}}))
    reg = Registry(bucket, sagemaker=False)
    for tarball in versioned_bundles.values():
        reg.register(str(tarball).removesuffix(".tar.gz"))
    reg.set_alias("churn", "challenger", "2", reason="gate passed")
    return reg


def _rollout(endpoint: str, model: str, *extra: Any) -> Any:
    return mlship("rollout", "endpoint", "--endpoint", endpoint, "--model", model, "--image", IMAGE,
                  "--poll", "0.1", "--timeout", "120", *extra)


CANARY = ("--strategy", "canary", "--size", "50", "--wait", "600", "--termination-wait", "60")


def test_first_rollout_creates_then_canary_moves_champion_then_errors_roll_back(
        plane: Any, moto_server: str, registry: Any, record: dict) -> None:
    clients = plane_clients(plane, moto_server)
    created = _rollout("churn-cli", "churn/1")
    assert created.exit_code == 0, created.stderr
    assert registry.get_alias("churn", "champion").version == "1"

    with BackgroundClient(clients["runtime"], "churn-cli", record) as background:
        out = _rollout("churn-cli", "churn@challenger", *CANARY, "--json")
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["outcome"], doc["model_version"], doc["previous_version"]) == ("succeeded", "2", "1")
    assert background.failures == [] and set(background.versions) == {"1", "2"}
    assert registry.get_alias("churn", "champion").version == "2"
    from mlship.aws import clients as aws

    parameters = {p["Name"]: p["Value"] for p in aws.client("ssm").get_parameters_by_path(
        Path="/mlship/dev/churn/deployed/")["Parameters"]}
    assert parameters["/mlship/dev/churn/deployed/version"] == "2"
    assert parameters["/mlship/dev/churn/deployed/bundle-uri"].endswith("models/churn/2/bundle.tar.gz")

    with BackgroundClient(clients["runtime"], "churn-cli", record):  # the alarm needs traffic to see
        failed = _rollout("churn-cli", "churn/3", *CANARY, "--fault", "errors=0.5", "--json")
    assert failed.exit_code == 1
    doc = json.loads(failed.stdout)
    assert doc["outcome"] == "rolled_back" and doc["alarm"] == "churn-cli-blue-5xx-rate"
    assert _errors(failed) and "rolled_back" in _errors(failed)[0] and "churn-cli-blue-5xx-rate" in failed.stderr
    assert registry.get_alias("churn", "champion").version == "2"
    assert registry.version_status("churn", "3") == "rolled_back"
    assert served_version(clients["runtime"], "churn-cli", record) == "2"
    assert aws.client("ssm").get_parameter(Name="/mlship/dev/churn/deployed/version")["Parameter"]["Value"] == "2"


BAD_INPUT = [
    (("--model", "churn/9"), "version 9 is not registered"),
    (("--model", "churn@nothing"), "alias churn@nothing is not set"),
    (("--model", "nothing-here/1"), "is not registered"),
    (("--model", "not a reference"), "use NAME/VERSION"),
    (("--model", "churn/1", "--strategy", "canary", "--size", "60"), "at most 50%"),
    (("--model", "churn/1", "--strategy", "linear", "--size", "5"), "10-50%"),
    (("--model", "churn/1", "--strategy", "sideways"), "--strategy"),
    (("--model", "churn/1", "--alarm", "no-such-alarm"), "no-such-alarm do not exist"),
    (("--model", "churn/1", "--fault", "errors=2"), "errors takes a share"),
    (("--model", "churn/1", "--fault", "meltdown"), "use errors=SHARE"),
    (("--model", "churn/1", "--wait", "4000", "--strategy", "canary"), "0-3600"),
    (("--model", "churn/1", "--timeout", "0"), "must be positive"),
]


def test_bad_input_is_refused_before_any_change(plane: Any, moto_server: str, registry: Any) -> None:
    """Each case: exit 2, one error line naming the problem, no endpoint configuration created."""
    from mlship.aws import clients as aws

    assert _rollout("churn-bad", "churn/1").exit_code == 0
    before = aws.client("sagemaker").list_endpoint_configs()["EndpointConfigs"]
    for args, message in BAD_INPUT:
        out = mlship("rollout", "endpoint", "--endpoint", "churn-bad", "--poll", "0.1", *args)
        assert out.exit_code == 2, (args, out.stderr)
        errors = _errors(out)
        assert len(errors) == 1 and message in errors[0], (args, out.stderr)
    assert aws.client("sagemaker").list_endpoint_configs()["EndpointConfigs"] == before
    assert aws.client("sagemaker").describe_endpoint(EndpointName="churn-bad")["EndpointStatus"] == "InService"


def test_a_bundle_that_fails_verification_is_refused(plane: Any, registry: Any, versioned_bundles: dict,
                                                     tmp_path: Path) -> None:
    from mlship.aws import clients as aws

    bundle = tmp_path / "tampered"
    shutil.copytree(str(versioned_bundles["2"]).removesuffix(".tar.gz"), bundle)
    (bundle / "golden.json").write_text((bundle / "golden.json").read_text().replace("0", "1", 1))
    from mlship.runtime.archive import pack_bundle

    tarball = pack_bundle(bundle, tmp_path / "tampered.tar.gz")
    aws.client("s3").upload_file(str(tarball), registry.bucket, "loose/tampered.tar.gz")
    out = _rollout("churn-tampered", f"s3://{registry.bucket}/loose/tampered.tar.gz")
    assert out.exit_code == 2
    assert "golden.json: sha256 does not match" in _errors(out)[0]
    # the same bytes behind a registered version (the registry object replaced in S3)
    aws.client("s3").upload_file(str(tarball), registry.bucket, "models/churn/2/bundle.tar.gz")
    out = _rollout("churn-tampered", "churn/2")
    assert out.exit_code == 2
    assert "churn/2" in _errors(out)[0] and "cannot be deployed" in _errors(out)[0]
    with pytest.raises(Exception, match="Could not find endpoint"):
        aws.client("sagemaker").describe_endpoint(EndpointName="churn-tampered")


def test_a_second_rollout_while_one_runs_is_refused(plane: Any, registry: Any) -> None:
    assert _rollout("churn-busy", "churn/1").exit_code == 0
    results: dict[str, Any] = {}
    first = threading.Thread(target=lambda: results.setdefault("first", _rollout(
        "churn-busy", "churn/2", "--strategy", "canary", "--size", "10", "--wait", "1500")))
    first.start()
    from mlship.aws import clients as aws

    sm = aws.client("sagemaker")
    import time

    deadline = time.monotonic() + 60
    while sm.describe_endpoint(EndpointName="churn-busy")["EndpointStatus"] != "Updating":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = _rollout("churn-busy", "churn/3")
    first.join(120)
    assert second.exit_code == 2
    assert "update in progress" in _errors(second)[0]
    assert results["first"].exit_code == 0, results["first"].stderr


def test_pin_writes_the_deployed_parameters_without_moving_champion(plane: Any, registry: Any) -> None:
    from mlship.aws import clients as aws

    ssm = aws.client("ssm")
    for model, version in (("churn/3", "3"), ("churn@challenger", "2")):
        out = mlship("rollout", "pin", "--model", model)
        assert out.exit_code == 0, out.stderr
        assert ssm.get_parameter(Name="/mlship/dev/churn/deployed/version")["Parameter"]["Value"] == version
        assert ssm.get_parameter(Name="/mlship/dev/churn/deployed/bundle-uri")["Parameter"]["Value"].endswith(
            f"models/churn/{version}/bundle.tar.gz")
    assert registry.get_alias("churn", "champion") is None
    refused = mlship("rollout", "pin", "--model", "churn/77")
    assert refused.exit_code == 2 and "not registered" in _errors(refused)[0]


def test_watch_follows_an_update_started_elsewhere_to_the_same_verdicts(
        plane: Any, moto_server: str, registry: Any, record: dict) -> None:
    """An update started with plain boto3 (as cdk deploy would) is judged by `mlship rollout watch`."""
    from mlship.aws import clients as aws
    from mlship.release.endpoint import ModelSpec, prepare_config
    from mlship.release.policy import CapacitySize
    from mlship.release.policy import EndpointRollout as RolloutPolicy

    assert _rollout("churn-watch", "churn/1").exit_code == 0  # creates the endpoint and its default alarms
    sm, clients = aws.client("sagemaker"), plane_clients(plane, moto_server)
    alarms = ["churn-watch-blue-5xx-rate", "churn-watch-blue-p99-latency"]
    policy = RolloutPolicy(strategy="CANARY", canary=CapacitySize(value=50), wait_interval_seconds=600,
                           termination_wait_seconds=60).deployment_config(alarms)
    for version, fault, code, outcome in (("2", None, 0, "succeeded"), ("3", "errors=0.5", 1, "rolled_back")):
        spec = ModelSpec("churn", version, registry.bundle_uri("churn", version),
                         environment={"MLSHIP_LOCAL_FAULT": fault} if fault else {})
        config = prepare_config(sm, "churn-watch", spec)
        with BackgroundClient(clients["runtime"], "churn-watch", record):
            sm.update_endpoint(EndpointName="churn-watch", EndpointConfigName=config, DeploymentConfig=policy)
            out = mlship("rollout", "watch", "--endpoint", "churn-watch", "--poll", "0.1", "--json")
        assert out.exit_code == code, out.stderr
        doc = json.loads(out.stdout)
        assert doc["outcome"] == outcome and doc["endpoint_config"] == config
        if fault:
            assert doc["alarm"] == "churn-watch-blue-5xx-rate"
    assert served_version(clients["runtime"], "churn-watch", record) == "2"


def test_a_first_rollout_whose_containers_crash_is_failed(plane: Any, registry: Any) -> None:
    out = _rollout("churn-crash", "churn/1", "--fault", "crash", "--json")
    assert out.exit_code == 1
    doc = json.loads(out.stdout)
    assert doc["outcome"] == "failed" and "ping health check" in doc["reason"]
    assert registry.get_alias("churn", "champion") is None
    assert registry.version_status("churn", "1") == "failed"
