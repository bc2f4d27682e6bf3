"""``mlship serve`` over real HTTP: the SageMaker inference contract, as a real process."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtime.helpers import REPO, GateProxy, ServeProcess, check_csv, csv_text, golden_failing_copy, request


@pytest.fixture(scope="module")
def served(churn_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(churn_bundle, workers=2, extra=["--max-body-bytes", "20000"],
                      log_path=tmp_path_factory.mktemp("serve") / "serve.log") as proc:
        yield proc


def _check(answer: dict, expected: Any) -> None:
    assert answer["predictions"] == expected.labels.tolist()
    np.testing.assert_allclose(np.asarray(answer["probabilities"]), expected.probabilities, rtol=0, atol=1e-7)
    assert answer["model"] == {"name": "churn", "version": "1"}


def test_ping_is_503_until_the_model_is_loaded(churn_bundle, moto_env, tmp_path, holdout_records, predictor):
    """The bundle comes from S3 through a gate that holds every request: while it is closed the
    model cannot load, so /ping must answer 503; once opened, 200."""
    from mlship.aws.clients import client

    client("s3").create_bucket(Bucket="serve-gate")
    client("s3").upload_file(f"{churn_bundle}.tar.gz", "serve-gate", "churn/1/model.tar.gz")
    gate = GateProxy(moto_env["AWS_ENDPOINT_URL"])
    proc = ServeProcess("s3://serve-gate/churn/1/model.tar.gz",
                        env={"AWS_ENDPOINT_URL": gate.url, "MLSHIP_CACHE_DIR": str(tmp_path / "cache")},
                        log_path=tmp_path / "serve.log")
    try:
        proc.wait_listening()
        status, body = request("GET", f"{proc.url}/ping")
        assert (status, body["status"]) == (503, "loading")
        gate.open()
        proc.wait_ready()
        status, body = request("GET", f"{proc.url}/ping")
        assert status == 200 and body["model"]["name"] == "churn"
        status, answer = request("POST", f"{proc.url}/invocations", json.dumps(holdout_records[:3]).encode(),
                                 {"Content-Type": "application/json"})
        assert status == 200
        _check(answer, predictor.predict(holdout_records[:3]))
    finally:
        proc.stop()
        gate.close()


def test_failed_golden_check_keeps_ping_503(churn_bundle, tmp_path, holdout_records):
    bad = golden_failing_copy(churn_bundle, tmp_path / "bad")
    proc = ServeProcess(bad, log_path=tmp_path / "serve.log")
    try:
        proc.wait_listening()
        for _ in range(200):  # until the (failing) load has finished
            status, body = request("GET", f"{proc.url}/ping")
            if body["status"] != "loading":
                break
        assert (status, body["status"]) == (503, "failed")
        assert "golden" in body["reason"]
        status, answer = request("POST", f"{proc.url}/invocations", json.dumps(holdout_records[0]).encode(),
                                 {"Content-Type": "application/json"})
        assert status == 503 and "golden" in answer["reason"]
    finally:
        proc.stop()


@pytest.mark.parametrize("header", [True, False])
def test_csv_with_and_without_header(served, holdout_records, feature_names, predictor, header):
    body = csv_text(holdout_records[:25], feature_names, header=header).encode()
    status, answer = request("POST", f"{served.url}/invocations", body, {"Content-Type": "text/csv"})
    assert status == 200, answer
    _check(answer, predictor.predict(holdout_records[:25]))


def test_json_instances_and_inference_id(served, holdout_records, predictor):
    body = json.dumps({"instances": holdout_records[:10]}).encode()
    status, answer = request("POST", f"{served.url}/invocations", body,
                             {"Content-Type": "application/json", "X-Amzn-SageMaker-Inference-Id": "inf-42"})
    assert status == 200
    _check(answer, predictor.predict(holdout_records[:10]))
    assert answer["request_id"] == "inf-42"


@pytest.mark.parametrize(("method", "path", "body", "ctype", "status", "kind"), [
    ("POST", "/invocations", b"<a/>", "application/xml", 415, "unsupported_media_type"),
    ("POST", "/invocations", b"x" * 20001, "text/csv", 413, "too_large"),
    ("GET", "/invocations", b"", None, 405, "method_not_allowed"),
    ("POST", "/ping", b"", None, 405, "method_not_allowed"),
    ("POST", "/invocations", b'{"instances": [', "application/json", 400, "malformed"),
    ("POST", "/invocations", b'{"age": NaN}', "application/json", 400, "malformed"),
    ("POST", "/invocations", b"", "text/csv", 400, "empty"),
])
def test_refusals(served, method, path, body, ctype, status, kind):
    got, answer = request(method, f"{served.url}{path}", body, {"Content-Type": ctype} if ctype else {})
    assert got == status, answer
    if status == 400:
        assert kind in {e["kind"] for e in answer["errors"]}
    else:
        assert answer["kind"] == kind


def test_field_errors_over_http(served, holdout_records):
    rec = dict(holdout_records[0], contract="weekly")
    status, answer = request("POST", f"{served.url}/invocations", json.dumps(rec).encode(),
                             {"Content-Type": "application/json"})
    assert status == 400
    assert answer["errors"][0]["field"] == "contract" and answer["errors"][0]["kind"] == "unknown_category"


def test_unknown_route_is_404_and_execution_parameters(served):
    assert request("GET", f"{served.url}/nope")[0] == 404
    status, params = request("GET", f"{served.url}/execution-parameters")
    assert status == 200 and params["BatchStrategy"] == "MULTI_RECORD"


def test_sigterm_lets_in_flight_requests_finish(churn_bundle, tmp_path, holdout_records, feature_names):
    """Large requests are sent, then SIGTERM: every request already sent gets its full answer,
    at least one of them after the signal, and the server exits cleanly."""
    proc = ServeProcess(churn_bundle, workers=2, extra=["--max-body-bytes", str(64 * 1024 * 1024)],
                        log_path=tmp_path / "serve.log")
    proc.wait_ready()
    rows = holdout_records * 300  # 15,000 rows: parsing and validation take a while
    body = csv_text(rows, feature_names, header=True).encode()
    sent = threading.Barrier(4)
    results: list[tuple[int, int, bool]] = []
    signalled = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=120)
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
        sent.wait()  # the whole body has been handed to the server
        resp = conn.getresponse()
        data = json.loads(resp.read())
        results.append((resp.status, len(data.get("predictions", [])), signalled.is_set()))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    sent.wait()
    proc.proc.send_signal(signal.SIGTERM)
    signalled.set()
    for t in threads:
        t.join(120)
    code = proc.proc.wait(60)
    assert [(s, n) for s, n, _ in results] == [(200, len(rows))] * 3, proc.log()
    assert any(after for _, _, after in results), "every answer arrived before SIGTERM: nothing was in flight"
    assert code == 0, proc.log()
    assert "Shutting down" in proc.log()


def test_cli_invoke_against_serve(served, tmp_path, holdout_records):
    good = tmp_path / "req.json"
    good.write_text(json.dumps({"instances": holdout_records[:2]}))
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "mlship", "invoke", str(good), "--url", f"{served.url}/invocations"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"predictions"' in done.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"age": "x"}))
    done = subprocess.run([sys.executable, "-m", "mlship", "invoke", str(bad), "--url", f"{served.url}/invocations"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["error: HTTP 400: invalid input"]
    assert "Traceback" not in done.stderr


def test_serve_imports_no_training_stack(churn_bundle):
    code = ("import sys; import mlship.serving.server, mlship.serving.app, mlship.runtime.predictor;"
            "bad = [m for m in ('sklearn', 'pandas', 'pyspark', 'sagemaker', 'aws_cdk') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_tarball_model_dir_like_sagemaker(churn_bundle, tmp_path, holdout_records):
    """SageMaker extracts model.tar.gz into /opt/ml/model: the bundle directory itself."""
    model_dir = tmp_path / "opt" / "ml" / "model"
    shutil.unpack_archive(f"{churn_bundle}.tar.gz", model_dir, "gztar")
    with ServeProcess(model_dir, log_path=tmp_path / "serve.log") as proc:
        status, _ = request("POST", f"{proc.url}/invocations", json.dumps(holdout_records[0]).encode(),
                            {"Content-Type": "application/json"})
        assert status == 200


def test_sagemaker_data_capture_of_serve_answers_reads_as_records(served, holdout_records, feature_names):
    """What SageMaker data capture stores for a call to this container parses into records."""
    import base64

    from mlship.runtime.records import parse_line

    body = csv_text(holdout_records[:4], feature_names, header=False)
    status, answer = request("POST", f"{served.url}/invocations", body.encode(), {"Content-Type": "text/csv"})
    assert status == 200
    line = json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "encoding": "BASE64",
                              "data": base64.b64encode(body.encode()).decode()},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "encoding": "JSON",
                               "data": json.dumps(answer)}},
        "eventMetadata": {"eventId": "evt-1", "inferenceTime": "2026-11-23T10:00:00Z"}, "eventVersion": "0"})
    records = parse_line(line, feature_names)
    assert [r["outputs"]["prediction"] for r in records] == answer["predictions"]
    assert [r["outputs"]["probabilities"] for r in records] == answer["probabilities"]
    assert records[0]["model"] == {"name": "churn", "version": "1"} and records[0]["request_id"] == "evt-1"
    assert records[2]["inputs"]["contract"] == holdout_records[2]["contract"]
    assert records[2]["inputs"]["tenure_months"] == holdout_records[2]["tenure_months"]


def test_serve_answers_csv_when_asked(served: Any, holdout_records: list[dict[str, Any]],
                                      feature_names: list[str], predictor: Any) -> None:
    body = csv_text(holdout_records[:12], feature_names, header=False).encode()
    status, text = request("POST", f"{served.url}/invocations", body,
                           {"Content-Type": "text/csv", "Accept": "text/csv"})
    assert status == 200 and isinstance(text, str), text
    check_csv(text, predictor.predict(holdout_records[:12]))
    status, answer = request("POST", f"{served.url}/invocations", body,
                             {"Content-Type": "text/csv", "Accept": "application/xml"})
    assert status == 406 and answer["kind"] == "not_acceptable", answer
    status, answer = request("POST", f"{served.url}/invocations", b"age\nold\n",
                             {"Content-Type": "text/csv", "Accept": "text/csv"})
    assert status == 400 and answer["errors"], answer  # errors are JSON whatever was accepted


def test_cli_serve_takes_the_bundle_as_argument_or_model_option(churn_bundle, tmp_path):
    """The README's `mlship serve --model DIR` and `mlship serve DIR` both serve the bundle."""
    for how in (["--model", str(churn_bundle)], [str(churn_bundle)]):
        with ServeProcess(None, command=["-m", "mlship", "serve", *how], log_path=tmp_path / "cli-serve.log") as proc:
            assert request("GET", f"{proc.url}/ping")[1]["model"]["name"] == "churn"
    done = subprocess.run([sys.executable, "-m", "mlship", "serve", str(churn_bundle), "--model", "other"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: two bundles given ({churn_bundle} and --model other): give one"]


@pytest.mark.parametrize(("variable", "value"), [("SAGEMAKER_MODEL_SERVER_WORKERS", "many"),
                                                 ("SAGEMAKER_BIND_TO_PORT", "70000"),
                                                 ("RECORDS_FLUSH_SECONDS", "0")])
def test_a_bad_variable_stops_serve_with_one_error_line(churn_bundle, variable, value):
    """Both entry points (the container's ``python -m mlship.serving`` and ``mlship serve``)
    refuse before listening, naming the variable."""
    env = {**os.environ, variable: value}
    for command in (["-m", "mlship.serving", "serve"], ["-m", "mlship", "serve"]):
        done = subprocess.run([sys.executable, *command, "--model", str(churn_bundle), "--port", "1"],
                              capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert lines[0].startswith(f"error: environment variable {variable}={value!r} is invalid"), lines


def test_model_uri_is_the_default_bundle(churn_bundle, tmp_path):
    with ServeProcess(None, command=["-m", "mlship.serving", "serve"], env={"MODEL_URI": str(churn_bundle)},
                      log_path=tmp_path / "serve.log") as proc:
        assert request("GET", f"{proc.url}/ping")[1]["model"]["name"] == "churn"


def test_docs_list_every_serve_setting_with_its_default():
    from mlship.serving.settings import ServeSettings

    doc = (REPO / "docs" / "realtime.md").read_text()
    for row in ServeSettings.describe():
        default = f"`{row.default}`" if row.default else "unset"
        assert f"| `{row.env}` | {default} | {row.description} |" in doc, row
