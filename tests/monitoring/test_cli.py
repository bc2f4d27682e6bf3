"""`mlship drift` and `mlship monitor run` through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlship.cli import app


def _mlship(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlship", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=cwd)


def test_drift_between_two_datasets(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 20_000
    ref = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.integers(0, 50, n), "c": rng.choice(["x", "y"], n)})
    cur = pd.DataFrame({"a": rng.normal(0.5, 1, n), "b": rng.integers(0, 50, n), "c": rng.choice(["x", "y"], n)})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_parquet(tmp_path / "cur.parquet")
    out = tmp_path / "report"
    proc = CliRunner().invoke(app, ["drift", str(tmp_path / "ref.csv"), str(tmp_path / "cur.parquet"), "--out",
                                    str(out), "--batch-rows", "3000", "--fail-on-drift", "--thresholds",
                                    '{"share": 0.3}'])
    assert proc.exit_code == 3, proc.output
    report = json.loads((out / "report.json").read_text())
    assert report["drift"]["drifted_features"] == ["a"]
    assert report["drift"]["rows"] == n
    page = (out / "report.html").read_text()
    assert page.count('<svg class="chart"') == 3  # one histogram per feature, drawn inline
    assert "1/3 features drifted" in proc.stdout


def test_drift_against_a_bundle_and_errors(tmp_path: Path, churn_bundle: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    from mlship.local.datasets import make_churn

    monkeypatch.chdir(tmp_path)  # the failing runs have no --out: they must leave no reports/ folder behind
    make_churn(3000, seed=5, shift=1.0).to_csv(tmp_path / "shifted.csv", index=False)
    runner = CliRunner()
    res = runner.invoke(app, ["drift", str(churn_bundle), str(tmp_path / "shifted.csv"), "--out",
                              str(tmp_path / "r"), "--exclude", "churned"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "monthly_charges" in report["drift"]["drifted_features"]
    assert "age" not in report["drift"]["drifted_features"]

    bad = _mlship("drift", str(churn_bundle), str(tmp_path / "missing.csv"), cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error:") and "Traceback" not in bad.stderr
    bad = runner.invoke(app, ["drift", str(churn_bundle), str(tmp_path / "shifted.csv"), "--thresholds",
                              '{"nope": 1}'])
    assert bad.exit_code == 1 and "unknown drift threshold" in bad.stderr
    assert not list((tmp_path / "reports" / "drift").iterdir())


def test_monitor_run_against_local_aws(moto_env: dict, churn_bundle: Path, tmp_path: Path) -> None:
    from mlship.aws.clients import client
    from mlship.runtime.predictor import Predictor
    from monitoring.helpers import send_traffic

    bucket = f"mlship-cli-{uuid.uuid4().hex[:8]}"
    client("s3").create_bucket(Bucket=bucket)
    send_traffic(Predictor.load(churn_bundle), bucket, 1500, seed=21, shift=1.0)
    proc = CliRunner().invoke(app, ["monitor", "run", "--model", str(churn_bundle), "--records-bucket", bucket,
                                    "--out", str(tmp_path / "out")], env=moto_env)
    assert proc.exit_code == 0, proc.output
    summary = json.loads(proc.stdout[proc.stdout.index("{\n"):])
    assert summary["rows"] == 1500 and "DriftDetected" in summary["events"]
    assert (tmp_path / "out" / "report.html").is_file()
    cw = client("cloudwatch")
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="mlship",
                                                      Dimensions=[{"Name": "Model", "Value": "churn"}])["Metrics"]}
    assert {"DriftShare", "FeatureDrift", "PerformanceDegraded", "Rows"} <= names
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=bucket, Prefix="monitoring/")["Contents"]]
    assert any(k.endswith("report.html") for k in keys)

    missing = CliRunner().invoke(app, ["monitor", "run", "--model", str(churn_bundle), "--records-bucket",
                                       "no-such-bucket-x"], env=moto_env)
    assert missing.exit_code == 1 and "NoSuchBucket" in missing.stderr
    # progress lines, then one error line; no traceback
    assert missing.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in missing.stderr
