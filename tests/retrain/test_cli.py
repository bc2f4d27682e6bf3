"""``mlship retrain run`` and ``status`` as a user runs them (real processes against a moto
server): the same event three times and another inside the cooldown give one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3

from mlship.retrain.pipeline import STEPS

REPO = Path(__file__).resolve().parents[2]
BUCKET = "retrain-cli"


def _mlship(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlship", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)


def _event(start: str) -> dict[str, Any]:
    return {"id": f"evt-{start}", "detail-type": "DriftDetected", "source": "mlship.monitoring",
            "detail": {"model": {"name": "churn", "version": "1"}, "share": 0.7, "drifted_features": ["age"],
                       "window": {"start": start, "end": "2026-12-01T11:00:00+00:00"}}}


def test_one_run_per_trigger_and_status(moto_env, churn_bundle, tmp_path):
    from mlship.local.datasets import make_churn
    from mlship.registry.store import Registry

    boto3.client("s3", endpoint_url=moto_env["AWS_ENDPOINT_URL"], region_name="us-east-1").create_bucket(Bucket=BUCKET)
    registry = Registry(BUCKET, sagemaker=False)
    record, _ = registry.register(churn_bundle)
    registry.set_alias("churn", "champion", record.version, reason="first")
    make_churn(2000, seed=5, shift=0.8).to_parquet(tmp_path / "fresh.parquet")
    (tmp_path / "gate.json").write_text(json.dumps({"metrics": {"roc_auc": {"min": 0.5, "min_improvement": -0.1}},
                                                    "bootstrap": 0}))
    event = tmp_path / "event.json"
    event.write_text(json.dumps(_event("2026-12-01T10:00:00+00:00")))
    common = ["--model", "churn", "--thresholds", str(tmp_path / "gate.json"), "--data",
              str(tmp_path / "fresh.parquet"), "--trainer", "mlship.local.train:train_pipeline", "--bucket", BUCKET,
              "--release", "none"]
    runs = [_mlship(moto_env, "retrain", "run", "--event", str(event), *common) for _ in range(3)]
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert "succeeded (v2)" in runs[0].stdout and all(r.stdout.startswith("duplicate:") for r in runs[1:])
    for step in STEPS:
        assert step in runs[0].stdout
    event.write_text(json.dumps(_event("2026-12-01T10:30:00+00:00")))
    later = _mlship(moto_env, "retrain", "run", "--event", str(event), *common)
    assert later.returncode == 0 and later.stdout.startswith("cooldown:"), later.stdout
    status = _mlship(moto_env, "retrain", "status", "--model", "churn", "--bucket", BUCKET)
    assert status.returncode == 0 and "succeeded" in status.stdout and "cooldown" in status.stdout
    assert registry.get_alias("churn", "challenger").version == "2"


def test_bad_input_is_one_error_line(moto_env, tmp_path):
    (tmp_path / "gate.json").write_text(json.dumps({"metrics": {"roc_auc": {"min": 0.5}}}))
    (tmp_path / "bad.json").write_text(json.dumps({"detail-type": "ScaleUp", "detail": {}}))
    for args in (["--reason", "x", "--event", str(tmp_path / "bad.json")], ["--event", str(tmp_path / "bad.json")],
                 ["--event", str(tmp_path / "missing.json")]):
        done = _mlship(moto_env, "retrain", "run", *args, "-t", str(tmp_path / "gate.json"), "--bucket", BUCKET)
        assert done.returncode == 2 and done.stderr.startswith("error:") and "Traceback" not in done.stderr, done.stderr


def _signing_key_in_ssm(endpoint: str, name: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()).decode()
    boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1").put_parameter(
        Name=name, Value=pem, Type="SecureString")


def test_the_state_machine_protocol_one_process_per_step(moto_env, churn_bundle, tmp_path):
    """What each SageMaker job of the AWS state machine runs: ``retrain step NAME`` in a fresh
    process, the configuration from a baked-in cdk.json, the state handed on through S3 and the
    outcome as the first word of the exit message."""
    from mlship.local.datasets import make_churn
    from mlship.registry.store import Registry
    from mlship.retrain.pipeline import CLAIM_STEP

    s3 = boto3.client("s3", endpoint_url=moto_env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    s3.create_bucket(Bucket="retrain-steps")
    registry = Registry("retrain-steps", sagemaker=False)
    registry.set_alias("churn", "champion", registry.register(churn_bundle)[0].version, reason="first")
    make_churn(2000, seed=6, shift=0.8).to_parquet(tmp_path / "fresh.parquet")
    (tmp_path / "gate.json").write_text(json.dumps({"metrics": {"roc_auc": {"min": 0.5, "min_improvement": -0.1}},
                                                    "bootstrap": 0}))
    retrain = {"trainer": "mlship.local.train:train_pipeline", "data_uri": str(tmp_path / "fresh.parquet"),
               "gate": json.loads((tmp_path / "gate.json").read_text()), "release": "none", "from_records": False,
               "signing_key_parameter": "/mlship/signing-key"}
    _signing_key_in_ssm(moto_env["AWS_ENDPOINT_URL"], "/mlship/signing-key")
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"env": "prod", "mlship": {
        "common": {"model": {"name": "churn"}, "retrain": retrain}}}}))
    s3.put_object(Bucket="retrain-steps", Key="events/e1.json", Body=json.dumps(_event("2026-12-01T09:00:00+00:00")))
    env = {**moto_env, "MLSHIP_CDK_JSON": str(tmp_path / "cdk.json"), "MLSHIP_REGISTRY_BUCKET": "retrain-steps"}
    message = tmp_path / "message"

    def step(name: str, run_id: str, *extra: str) -> tuple[int, str]:
        done = _mlship(env, "retrain", "step", name, "--run-id", run_id, "--message-file", str(message), *extra)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, message.read_text()

    claimed = step(CLAIM_STEP, "exec-1", "--event", "s3://retrain-steps/events/e1.json")
    assert claimed[0] == 0 and claimed[1].startswith("ok claim: run exec-1 started"), claimed
    outcomes = [step(name, "exec-1") for name in STEPS]
    assert [(code, text.split()[0]) for code, text in outcomes] == [(0, "ok")] * len(STEPS), outcomes
    assert registry.get_alias("churn", "challenger").version == "2"
    from mlship.runtime.sources import open_bundle

    assert open_bundle(registry.bundle_uri("churn", "2")).is_signed  # with the key from SSM
    again = step(CLAIM_STEP, "exec-2", "--event", "s3://retrain-steps/events/e1.json")
    assert again[0] == 0 and again[1].startswith("skipped claim: duplicate"), again
    orphan = step("train", "exec-3")
    assert orphan[0] == 2 and orphan[1].startswith("failed train: no run exec-3"), orphan
    assert (tmp_path / "failure").read_text() == orphan[1]  # the job's FailureReason
