"""The CLI in a subprocess, end to end, against a moto server on localhost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import joblib
import pytest


def _cli(*args: str, env: dict[str, str], cwd: Path | None = None, check: bool = True):
    proc = subprocess.run([sys.executable, "-m", "mlship", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"mlship {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def cli_env(moto_server, tmp_path) -> dict[str, str]:
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_server, MLSHIP_CACHE_DIR=str(tmp_path / "cache"))
    return env


def test_keygen_export_verify_upload_predict(tmp_path, cli_env, churn_model, churn_split, moto_server):
    model_path = tmp_path / "model.joblib"
    joblib.dump(churn_model, model_path)
    holdout = tmp_path / "holdout.parquet"
    churn_split[1].to_parquet(holdout)

    _cli("keygen", "--out", str(tmp_path / "keys"), env=cli_env)
    assert oct((tmp_path / "keys" / "mlship.key").stat().st_mode & 0o777) == "0o600"
    again = _cli("keygen", "--out", str(tmp_path / "keys"), env=cli_env, check=False)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr

    out = _cli("export", str(model_path), str(holdout), "--out", str(tmp_path / "churn"), "--name", "churn",
               "--version", "7", "--label", "churned", "--key", str(tmp_path / "keys" / "mlship.key"), env=cli_env)
    assert "bundle churn:7 written" in out.stdout and "roc_auc=" in out.stdout
    verified = _cli("verify", str(tmp_path / "churn.tar.gz"), "--public-key", str(tmp_path / "keys" / "mlship.pub"),
                    env=cli_env)
    assert "signature valid" in verified.stdout and "golden examples pass" in verified.stdout

    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="cli-e2e")
    _cli("upload", str(tmp_path / "churn"), "s3://cli-e2e/models/churn/7/bundle.tar.gz", env=cli_env)
    assert s3.head_object(Bucket="cli-e2e", Key="models/churn/7/bundle.tar.gz")["ContentLength"] > 1000

    records = churn_split[1].drop(columns=["churned"]).head(3).to_dict(orient="records")
    (tmp_path / "in.json").write_text(json.dumps({"instances": records}))
    predicted = _cli("predict", "s3://cli-e2e/models/churn/7/bundle.tar.gz", str(tmp_path / "in.json"),
                     "--public-key", str(tmp_path / "keys" / "mlship.pub"), env=cli_env)
    body = json.loads(predicted.stdout)
    assert body["model"] == {"name": "churn", "version": "7"} and len(body["predictions"]) == 3

    records[1]["contract"] = "weekly"
    (tmp_path / "bad.json").write_text(json.dumps(records))
    bad = _cli("predict", str(tmp_path / "churn"), str(tmp_path / "bad.json"), env=cli_env, check=False)
    assert bad.returncode == 1
    assert "row 1, field 'contract': unknown category 'weekly'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_errors_are_one_line_and_non_zero(tmp_path, cli_env):
    cases = [
        (("verify", str(tmp_path / "nope")), "bundle not found"),
        (("predict", "s3://no-such-bucket/x.tar.gz", str(tmp_path / "x.json")), "cannot read"),
        (("export", str(tmp_path / "m.joblib"), str(tmp_path / "h.csv"), "--out", str(tmp_path / "o"),
          "--name", "x"), "model file not found"),
        (("inspect", str(tmp_path / "nope")), "bundle not found"),
    ]
    for args, expected in cases:
        proc = _cli(*args, env=cli_env, check=False)
        assert proc.returncode != 0, args
        assert expected in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_missing_s3_bundle_names_the_uri(tmp_path, cli_env):
    (tmp_path / "x.json").write_text("{}")
    proc = _cli("predict", "s3://no-such-bucket/x.tar.gz", str(tmp_path / "x.json"), env=cli_env, check=False)
    assert proc.returncode == 1
    assert "cannot download bundle s3://no-such-bucket/x.tar.gz" in proc.stderr


def test_local_up_status_down(tmp_path):
    from mlship.local.environment import free_port

    env = dict(os.environ, MLSHIP_STATE_DIR=str(tmp_path / "state"))
    env.pop("AWS_ENDPOINT_URL", None)
    port = str(free_port())
    try:
        up = _cli("local", "up", "--port", port, env=env)
        assert f"http://localhost:{port}" in up.stdout
        status = json.loads(_cli("local", "status", env=env).stdout)
        exports = _cli("local", "env", env=env).stdout
        assert f"export AWS_ENDPOINT_URL=http://localhost:{port}" in exports
        s3 = boto3.client("s3", endpoint_url=status["endpoint_url"], region_name="us-east-1")
        s3.create_bucket(Bucket="local-up-check")
        assert "local-up-check" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        _cli("local", "down", env=env, check=False)
    assert _cli("local", "status", env=env, check=False).returncode == 1
