"""``mlship loadtest`` through the real CLI: exit 0 when a rate met the SLO, 1 when none did or the
target cannot be reached, 2 (one ``error:`` line, nothing sent) for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from loadtest.helpers import StallServer
from mlship.cli import app
from mlship.loadtest.errors import BadInput
from mlship.loadtest.targets import EndpointTarget, HttpTarget, LambdaTarget, is_loopback, parse_target


@pytest.fixture
def body(tmp_path: Path) -> Path:
    path = tmp_path / "body.json"
    path.write_text(json.dumps({"instances": [{"x": 1}]}))
    return path


def _run(*args: str) -> object:
    return CliRunner().invoke(app, ["loadtest", *args])


def test_a_non_loopback_url_is_refused_with_one_error_line(body: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mlship", "loadtest", "http://example.com/invocations", "--body",
                           str(body), "--rate", "10", "--p99-ms", "50"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to load-test example.com"), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "10"], "give the SLO"),
    (["--rate", "10", "--p99-ms", "50", "--model", "x"], "exactly one of --body"),
    (["--rates", "100,50", "--p99-ms", "50"], "must increase"),
    (["--rates", "10,a", "--p99-ms", "50"], "numbers separated by commas"),
    (["--rate", "10", "--p99-ms", "50", "--register", "churn"], "NAME/VERSION"),
    (["--rate", "10", "--p99-ms", "50", "--max-duration", "0"], "max duration must be > 0"),
    (["--rate", "10", "--p99-ms", "50", "--instance-type", "ml.nope"], "no price for instance type"),
    (["--start-rate", "1", "--step-rate", "1", "--max-rate", "500", "--p99-ms", "50"], "at most 50"),
])
def test_bad_input_exits_2(body: Path, args: list[str], message: str) -> None:
    result = _run("http://127.0.0.1:9/invocations", "--body", str(body), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_bad_body_file_or_thresholds_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = _run("http://127.0.0.1:9/", "--body", str(bad), "--rate", "10", "--p99-ms", "50")
    assert result.exit_code == 2 and "not valid JSON" in result.output
    thresholds = tmp_path / "t.json"
    thresholds.write_text(json.dumps({"metrics": {"roc_auc": {"min": 0.7}}}))
    good = tmp_path / "good.json"
    good.write_text("{}")
    result = _run("http://127.0.0.1:9/", "--body", str(good), "--rate", "10", "--thresholds", str(thresholds))
    assert result.exit_code == 2 and "has no loadtest section" in result.output


def test_an_unreachable_target_exits_1(body: Path, tmp_path: Path) -> None:
    from mlship.local.environment import free_port

    result = _run(f"http://127.0.0.1:{free_port()}/invocations", "--body", str(body), "--rate", "20",
                  "--step-duration", "0.5", "--warmup", "0", "--p99-ms", "50", "--out", str(tmp_path))
    assert result.exit_code == 1 and "answered no request" in result.output


def test_slo_met_exits_0_and_the_thresholds_file_gives_the_slo(body: Path, tmp_path: Path) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("loadtest:\n  p99_ms: 2000\n  error_rate: 0.0\n")
    with StallServer(stall=0) as server:
        result = _run(server.url, "--body", str(body), "--rates", "20,40", "--step-duration", "1", "--warmup", "0.5",
                      "--thresholds", str(thresholds), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "loadtest.json").read_text())
    assert report["slo"]["p99_ms"] == 2000 and report["slo"]["error_rate"] == 0.0
    assert [s["target_rps"] for s in report["steps"]] == [20, 40] and report["knee"]["target_rps"] == 40
    assert report["stress"]["target_rps"] == 60 and report["recovery"]["target_rps"] == 20
    assert "highest rate meeting the SLO" in result.output


def test_slo_missed_exits_1_and_the_closed_loop_is_shown(body: Path, tmp_path: Path) -> None:
    with StallServer(stall=1.0, period=10.0, first_stall_at=0.5) as server:
        server.restart()
        result = _run(server.url, "--body", str(body), "--rate", "40", "--step-duration", "2", "--warmup", "0",
                      "--p99-ms", "200", "--closed-loop", "--out", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "no rate met the SLO" in result.output and "closed loop 40/s" in result.output
    report = json.loads((tmp_path / "loadtest.json").read_text())
    assert report["steps"][0]["latency_ms"]["p99"] >= 500 and report["closed_loop"]["mode"] == "closed"


def test_every_run_stops_by_its_max_duration(body: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    with StallServer(stall=0) as server:
        result = _run(server.url, "--body", str(body), "--rates", "20,25,30,35,40", "--step-duration", "1",
                      "--warmup", "0", "--p99-ms", "5000", "--timeout", "1", "--max-duration", "2.5",
                      "--out", str(tmp_path))
    assert time.monotonic() - started < 30
    report = json.loads((tmp_path / "loadtest.json").read_text())
    assert report["stopped_by"] == "max duration" and len(report["steps"]) <= 2, result.output
    assert sum(s["elapsed_s"] for s in report["steps"]) <= 2.5


def test_the_target_forms() -> None:
    assert isinstance(parse_target("http://127.0.0.1:8080"), HttpTarget)
    assert parse_target("http://localhost:8080").url == "http://localhost:8080/invocations"
    assert parse_target("http://[::1]:5000/endpoints/x/invocations").url.endswith("/endpoints/x/invocations")
    assert isinstance(parse_target("https://abc123xyz.lambda-url.eu-west-1.on.aws/"), HttpTarget)
    assert isinstance(parse_target("endpoint:churn-prod"), EndpointTarget)
    fn = parse_target("lambda:mlship-predict:live")
    assert isinstance(fn, LambdaTarget) and (fn.name, fn.qualifier) == ("mlship-predict", "live")
    for bad in ("http://abc123xyz.lambda-url.eu-west-1.on.aws/", "https://10.0.0.1/", "ftp://127.0.0.1/",
                "endpoint:", "lambda:a b", "https://evil.on.aws.example.com/", "churn"):
        with pytest.raises(BadInput):
            parse_target(bad)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.builds(lambda h, p: f"http{'s' if p else ''}://{h}/x",
                                                    st.text(min_size=1, max_size=30), st.booleans())))
def test_no_input_reaches_a_host_off_loopback_unless_it_is_an_aws_https_front_door(text: str) -> None:
    import urllib.parse

    try:
        target = parse_target(text)
    except BadInput:
        return
    if isinstance(target, HttpTarget):
        parts = urllib.parse.urlsplit(target.url)
        assert is_loopback(parts.hostname) or (parts.scheme == "https" and parts.hostname.endswith(
            (".on.aws", ".amazonaws.com")))


def test_stress_reports_how_it_fails_and_the_recovery(body: Path, tmp_path: Path) -> None:
    """A target that sheds load: 2 requests in flight at 20 ms each (about 100/s), 503 beyond."""
    with StallServer(stall=0, capacity=2, service_time=0.02) as server:
        result = _run(server.url, "--body", str(body), "--rates", "20,200", "--step-duration", "1.5",
                      "--warmup", "0", "--p99-ms", "2000", "--error-rate", "0.05", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "loadtest.json").read_text())
    assert report["knee"]["target_rps"] == 20 and report["first_failing_rps"] == 200
    stress = report["stress"]
    assert stress["target_rps"] == 300 and stress["errors"]["status:503"] > 0.2 * stress["requests"]
    assert "rejected" in stress["failure_mode"] and "x 503" in stress["failure_mode"]
    recovery = report["recovery"]
    assert recovery["target_rps"] == 10 and recovery["verdict"]["recovered"], recovery
    assert "stress: rejected" in result.output and "recovery: recovered" in result.output
