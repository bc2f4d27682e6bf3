"""``mlship loadtest --register`` attaches the report to a registry version (moto S3), and the
promotion gate judges a ``loadtest`` SLO against the newest attached report."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadtest.helpers import StallServer
from mlship.cli import app
from mlship.evaluation.gate import (
    LOADTEST_RATE_CHECK,
    LoadTestLimits,
    latest_loadtest,
    loadtest_checks,
    parse_thresholds,
    promote,
)


@pytest.fixture
def registry(moto_env: dict[str, str], churn_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlship.aws.clients import client
    from mlship.registry.store import Registry

    bucket = f"mlship-lt-{uuid.uuid4().hex[:10]}"
    client("s3").create_bucket(Bucket=bucket)
    monkeypatch.setenv("MLSHIP_REGISTRY_BUCKET", bucket)
    reg = Registry(bucket, sagemaker=False)
    reg.register(churn_bundle)
    return reg


def _loadtest(url: str, tmp_path: Path, *extra: str) -> Any:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"instances": [{"x": 1}]}))
    return CliRunner().invoke(app, ["loadtest", url, "--body", str(body), "--rates", "20,40", "--step-duration", "1",
                                    "--warmup", "0", "--p99-ms", "2000", "--no-stress", "--out",
                                    str(tmp_path / "out"), *extra])


def test_register_attaches_the_report_and_the_gate_requires_its_slo(registry: Any, churn_split: Any,
                                                                     tmp_path: Path) -> None:
    with StallServer(stall=0) as server:
        result = _loadtest(server.url, tmp_path, "--register", "churn/1")
    assert result.exit_code == 0, result.output
    where = result.output.strip().splitlines()[-1]
    assert where.startswith(f"attached: s3://{registry.bucket}/models/churn/1/loadtests/") and where.endswith(".json")
    report = latest_loadtest(registry, "churn", "1")
    assert report["model"] == {"name": "churn", "version": "1"} and report["knee"]["target_rps"] == 40
    holdout = churn_split[1].head(600)
    too_fast = parse_thresholds({"loadtest": {"p99_ms": 2000, "min_rps": 1000}, "bootstrap": 0})
    refused = promote(registry, "churn", "1", holdout, too_fast)
    assert not refused.gate.passed and refused.moved is None and registry.get_alias("churn", "challenger") is None
    failed = refused.gate.failures
    assert [c.name for c in failed] == [LOADTEST_RATE_CHECK] and 35 <= failed[0].value <= 41
    assert failed[0].describe().startswith(f"{LOADTEST_RATE_CHECK}: ") and ">= 1000" in failed[0].describe()
    enough = parse_thresholds({"loadtest": {"p99_ms": 2000, "error_rate": 0.0, "min_rps": 30}, "bootstrap": 0})
    passed = promote(registry, "churn", "1", holdout, enough)
    assert passed.gate.passed and passed.moved.version == "1"
    assert {c.name for c in passed.gate.checks} >= {"loadtest p99 (ms)", "loadtest error rate", LOADTEST_RATE_CHECK}


def test_the_gate_refuses_a_version_without_a_report(registry: Any) -> None:
    checks = loadtest_checks(latest_loadtest(registry, "churn", "1"), LoadTestLimits(p99_ms=50, min_rps=10))
    assert [c.passed for c in checks] == [False, False]
    assert "no load-test report attached" in checks[0].note


def test_the_judged_step_is_the_fastest_meeting_the_gates_own_limits() -> None:
    def step(rate: float, p99: float, errors: float) -> dict[str, Any]:
        return {"target_rps": rate, "achieved_rps": rate, "latency_ms": {"p99": p99}, "error_rate": errors}

    report = {"id": "x", "steps": [step(50, 10, 0), step(100, 40, 0), step(200, 90, 0.0), step(400, 900, 0.2)]}
    checks = {c.name: c for c in loadtest_checks(report, LoadTestLimits(p99_ms=50, min_rps=150))}
    assert checks[LOADTEST_RATE_CHECK].value == 100 and not checks[LOADTEST_RATE_CHECK].passed
    assert checks["loadtest p99 (ms)"].passed and checks["loadtest p99 (ms)"].value == 40
    loose = {c.name: c for c in loadtest_checks(report, LoadTestLimits(p99_ms=100, min_rps=150))}
    assert loose[LOADTEST_RATE_CHECK].passed and loose[LOADTEST_RATE_CHECK].value == 200
    none = loadtest_checks(report, LoadTestLimits(p99_ms=5))
    assert not any(c.passed for c in none) and none[0].value == 10  # the lowest step shows why


def test_registering_to_a_missing_version_is_refused_before_any_request(registry: Any, tmp_path: Path) -> None:
    with StallServer(stall=0) as server:
        result = _loadtest(server.url, tmp_path, "--register", "churn/9")
    assert result.exit_code == 2 and "error:" in result.output and server.requests == 0
