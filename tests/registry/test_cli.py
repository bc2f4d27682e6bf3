"""The registry CLI against a moto server: in-process (typer's CliRunner) for most commands, and
separate processes where it matters (the race between processes, a refused promotion's exit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def cli_env(moto_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from mlship.aws.clients import client

    bucket = f"mlship-cli-{uuid.uuid4().hex[:10]}"
    client("s3").create_bucket(Bucket=bucket)
    extra = {"MLSHIP_REGISTRY_BUCKET": bucket, "MLSHIP_USER": "ci-bot"}
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    return {**moto_env, **extra}


def mlship(env: dict[str, str], *args: Any) -> Any:
    """Run the CLI in this process (the environment is already ``env``: see ``moto_env``)."""
    from typer.testing import CliRunner

    from mlship.cli import app

    assert os.environ["MLSHIP_REGISTRY_BUCKET"] == env["MLSHIP_REGISTRY_BUCKET"]
    return CliRunner().invoke(app, [str(a) for a in args])


def mlship_process(env: dict[str, str], *args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlship", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_register_list_show_alias(cli_env: dict[str, str], churn_bundle: Path, logreg_bundle: Path,
                                  signing_keys: Path) -> None:
    out = mlship(cli_env, "register", logreg_bundle, "--public-key", signing_keys / "mlship.pub")
    assert out.exit_code == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: bundle verification failed: signature.json is missing")
    assert mlship(cli_env, "register", f"{churn_bundle}.tar.gz").exit_code == 0
    again = mlship(cli_env, "register", churn_bundle)
    assert again.exit_code == 0 and "already registered (same content)" in again.stdout
    assert mlship(cli_env, "register", logreg_bundle).exit_code == 0
    listed = json.loads(mlship(cli_env, "models", "list", "--json").stdout)
    assert listed == [{"name": "churn", "versions": ["1", "2"], "aliases": {}, "latest": "2", "status": {}}]
    moved = mlship(cli_env, "alias", "set", "churn", "champion", "1", "--reason", "first")
    assert moved.exit_code == 0 and "(unset) -> 1" in moved.stdout
    assert mlship(cli_env, "alias", "get", "churn", "champion").stdout.strip() == "1"
    shown = json.loads(mlship(cli_env, "models", "show", "churn", "--json").stdout)
    assert shown["approval"] == {"1": "PendingManualApproval", "2": "PendingManualApproval"}
    assert shown["aliases"]["champion"]["updated_by"] == "ci-bot"
    missing = mlship(cli_env, "alias", "get", "churn", "challenger")
    assert missing.exit_code == 1 and missing.stderr.strip() == "error: alias churn@challenger is not set"


def test_alias_race_between_processes(cli_env: dict[str, str], churn_bundle: Path, logreg_bundle: Path,
                                      versions: Any, atomic_s3_conditions: None) -> None:
    """Two processes move the same alias away from the same version: exactly one succeeds."""
    for bundle in (churn_bundle, logreg_bundle, versions("3")):
        assert mlship(cli_env, "register", bundle, "--no-sagemaker").exit_code == 0
    assert mlship(cli_env, "alias", "set", "churn", "champion", "1").exit_code == 0
    procs = [subprocess.Popen([sys.executable, "-m", "mlship", "alias", "set", "churn", "champion", v,
                               "--expect", "1", "--reason", f"process {v}"], env=cli_env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for v in ("2", "3")]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert sorted(r[0] for r in results) == [0, 1], results
    loser = next(r for r in results if r[0] == 1)
    assert "not 1: nothing changed" in loser[2] and "Traceback" not in loser[2]
    winner = "2" if results[0][0] == 0 else "3"
    history = json.loads(mlship(cli_env, "alias", "history", "churn", "champion", "--json").stdout)
    assert [(h["generation"], h["previous"], h["version"]) for h in history] == [(1, None, "1"), (2, "1", winner)]
    assert mlship(cli_env, "alias", "get", "churn", "champion").stdout.strip() == winner


def _write_thresholds(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_promote_refusal_then_pass(cli_env: dict[str, str], churn_bundle: Path, logreg_bundle: Path,
                                   holdout: Any, tmp_path: Path) -> None:
    data = tmp_path / "holdout.csv"
    holdout.to_csv(data, index=False)
    for bundle in (churn_bundle, logreg_bundle):
        assert mlship(cli_env, "register", bundle).exit_code == 0
    assert mlship(cli_env, "alias", "set", "churn", "champion", "1").exit_code == 0
    strict = _write_thresholds(tmp_path / "strict.json", {
        "metrics": {"roc_auc": {"min": 0.7, "min_improvement": 0.5}},
        "fairness": {"attribute": "gender", "demographic_parity_difference": 0.3}, "bootstrap": 10})
    refused = mlship_process(cli_env, "promote", "churn", "2", "--data", data, "-t", strict, "--out", tmp_path / "r1")
    assert refused.returncode == 1, refused.stderr
    assert "refused: 1 of 3 checks failed (roc_auc improvement:" in refused.stderr
    assert "nothing changed" in refused.stderr and "Traceback" not in refused.stderr
    assert "roc_auc improvement" in refused.stdout and "demographic_parity_difference" in refused.stdout
    assert mlship(cli_env, "alias", "get", "churn", "champion").stdout.strip() == "1"
    assert (tmp_path / "r1" / "gate.html").is_file()
    ok = _write_thresholds(tmp_path / "ok.yaml", {"metrics": {"roc_auc": {"min": 0.7, "min_improvement": 0.0}},
                                                  "bootstrap": 10})
    passed = mlship(cli_env, "promote", "churn", "2", "--data", data, "-t", ok, "--reason", "better AUC",
                    "--out", tmp_path / "r2")
    assert passed.exit_code == 0, passed.stderr
    assert "promoted: churn@challenger (unset) -> 2 (generation 1; gated against churn@champion 1)" in passed.stdout
    assert mlship(cli_env, "alias", "get", "churn", "champion").stdout.strip() == "1"  # only a rollout moves it
    shown = json.loads(mlship(cli_env, "models", "show", "churn", "2", "--json").stdout)
    assert shown["approval"] == "Approved" and shown["aliases"] == ["challenger"]
    assert shown["status"] is None and shown["rollouts"] == []
    evaluated = mlship(cli_env, "evaluate", "mlship://churn@challenger", "--data", data, "--slice", "contract",
                       "--sensitive", "gender", "--bootstrap", "20", "--out", tmp_path / "ev")
    assert evaluated.exit_code == 0, evaluated.stderr
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["model"]["version"] == "2" and report["fairness"]["attribute"] == "gender"
    bad = mlship(cli_env, "promote", "churn", "1", "--data", data, "-t", tmp_path / "nope.yaml")
    assert bad.exit_code == 1 and bad.stderr.strip() == f"error: thresholds file not found: {tmp_path / 'nope.yaml'}"


def test_rollouts_in_models_show_list_and_alias_history(cli_env: dict[str, str], churn_bundle: Path,
                                                        logreg_bundle: Path, versions: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """v2 rolled out and became champion; v3's rollout was rolled back by an alarm: champion stayed 2."""
    from mlship.registry.store import Registry

    monkeypatch.setenv("COLUMNS", "250")  # rich wraps table cells at the terminal width
    for bundle in (churn_bundle, logreg_bundle, versions("3")):
        assert mlship(cli_env, "register", bundle, "--no-sagemaker").exit_code == 0
    reg = Registry(sagemaker=False)
    reg.set_alias("churn", "champion", "1", expect=None, reason="first model")
    reg.record_rollout("churn", "2", outcome="succeeded", target="endpoint:mlship-dev-churn", previous_version="1")
    reg.promote_after_rollout("churn", "2", expected_previous="1")
    reg.record_rollout("churn", "3", outcome="rolled_back", target="endpoint:mlship-dev-churn", previous_version="2",
                       alarm="mlship-dev-churn-5xx", reason="traffic returned to churn-2 config")

    shown = mlship(cli_env, "models", "show", "churn", "3")
    assert shown.exit_code == 0, shown.stderr
    assert "status: rolled_back" in shown.stdout
    assert "rolled_back" in shown.stdout and "mlship-dev-churn-5xx" in shown.stdout
    assert "traffic returned to churn-2 config" in shown.stdout and "ci-bot" in shown.stdout
    as_json = json.loads(mlship(cli_env, "models", "show", "churn", "3", "--json").stdout)
    assert as_json["status"] == "rolled_back" and as_json["aliases"] == []
    assert [(r["outcome"], r["alarm"], r["previous_version"]) for r in as_json["rollouts"]] == [
        ("rolled_back", "mlship-dev-churn-5xx", "2")]
    assert "status: - (never rolled out)" in mlship(cli_env, "models", "show", "churn", "1").stdout
    table = mlship(cli_env, "models", "show", "churn").stdout
    assert "deployed" in table and "rolled_back" in table
    listed = json.loads(mlship(cli_env, "models", "list", "--json").stdout)
    assert listed[0]["status"] == {"2": "deployed", "3": "rolled_back"}
    assert "2 deployed, 3 rolled_back" in mlship(cli_env, "models", "list").stdout

    history = mlship(cli_env, "alias", "history", "churn", "champion")
    assert history.exit_code == 0, history.stderr
    line = "v3 rollout rolled_back on endpoint:mlship-dev-churn (alarm mlship-dev-churn-5xx): champion stayed 2"
    assert line in history.stdout
    assert history.stdout.index("rollout succeeded on endpoint:mlship-dev-churn") < history.stdout.index(line)
    entries = json.loads(mlship(cli_env, "alias", "history", "churn", "champion", "--json").stdout)
    assert [(e["kind"], e.get("generation"), e["version"]) for e in entries] == [
        ("move", 1, "1"), ("move", 2, "2"), ("rollout", None, "3")]
    assert entries[-1]["alias_version"] == "2" and entries[-1]["summary"].startswith(line)
    assert mlship(cli_env, "alias", "get", "churn", "champion").stdout.strip() == "2"
