"""The prediction Lambda with real-shaped events (REST v1, HTTP API v2, Function URL, direct)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.helpers import LambdaContext, csv_text, golden_failing_copy, http_v2_event, rest_v1_event

EVENT_KINDS = ("rest-v1", "http-v2", "function-url")


def make_event(kind: str, body: Any, content_type: str | None = "application/json", **kw: Any) -> dict:
    if kind == "rest-v1":
        return rest_v1_event(body, content_type, **kw)
    return http_v2_event(body, content_type, function_url=kind == "function-url", **kw)


def call(handler: Any, event: Any) -> tuple[int, dict]:
    resp = handler.handler(event, LambdaContext())
    if "headers" in resp:
        assert resp["headers"]["Content-Type"] == "application/json"
        return resp["statusCode"], json.loads(resp["body"])
    status = resp.pop("statusCode")
    return status, resp


def assert_same_prediction(body: dict, expected: Any) -> None:
    assert body["predictions"] == expected.labels.tolist()
    np.testing.assert_allclose(np.asarray(body["probabilities"]), expected.probabilities, rtol=0, atol=1e-7)
    assert body["model"] == {"name": "churn", "version": "1"}
    assert body["classes"] == [0, 1]


# ---------------------------------------------------------------------------- success paths
@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.parametrize("b64", [False, True])
def test_json_batch_matches_the_predictor(handler, predictor, holdout_records, kind, b64):
    body = json.dumps({"instances": holdout_records[:20]})
    status, answer = call(handler, make_event(kind, body, b64=b64))
    assert status == 200, answer
    assert_same_prediction(answer, predictor.predict(holdout_records[:20]))
    assert answer["request_id"] in ("c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "JKJaXmPLvHcESHA=")


@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("b64", [False, True])
def test_csv_with_and_without_header(handler, predictor, holdout_records, feature_names, kind, header, b64):
    body = csv_text(holdout_records[:15], feature_names, header=header)
    status, answer = call(handler, make_event(kind, body, "text/csv; charset=utf-8", b64=b64))
    assert status == 200, answer
    assert_same_prediction(answer, predictor.predict(holdout_records[:15]))


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_single_record_and_bare_list(handler, predictor, holdout_records, kind):
    status, answer = call(handler, make_event(kind, json.dumps(holdout_records[3])))
    assert status == 200
    assert_same_prediction(answer, predictor.predict([holdout_records[3]]))
    status, answer = call(handler, make_event(kind, json.dumps(holdout_records[:4])))
    assert status == 200
    assert_same_prediction(answer, predictor.predict(holdout_records[:4]))


def test_direct_invocation_shapes(handler, predictor, holdout_records, feature_names):
    status, answer = call(handler, {"instances": holdout_records[:5]})
    assert status == 200
    assert_same_prediction(answer, predictor.predict(holdout_records[:5]))
    assert answer["request_id"] == LambdaContext().aws_request_id
    status, answer = call(handler, holdout_records[0])
    assert status == 200 and len(answer["predictions"]) == 1
    envelope = {"body": csv_text(holdout_records[:3], feature_names, header=False), "contentType": "text/csv"}
    status, answer = call(handler, envelope)
    assert status == 200
    assert_same_prediction(answer, predictor.predict(holdout_records[:3]))
    b64 = {"body": base64.b64encode(json.dumps(holdout_records[:2]).encode()).decode(),
           "contentType": "application/json", "isBase64Encoded": True}
    assert call(handler, b64)[0] == 200


def test_missing_content_type_is_sniffed(handler, holdout_records, feature_names):
    assert call(handler, rest_v1_event(json.dumps(holdout_records[:2]), None))[0] == 200
    assert call(handler, rest_v1_event(csv_text(holdout_records[:2], feature_names), None))[0] == 200


def test_health_route(handler):
    status, answer = call(handler, rest_v1_event(None, None, method="GET", path="/health"))
    assert status == 200
    assert answer["model"]["name"] == "churn" and answer["model"]["backend"] == "onnx"


# ---------------------------------------------------------------------------- bad input
def _rec(holdout_records: list[dict], **changes: Any) -> dict:
    rec = dict(holdout_records[0])
    for k, v in changes.items():
        if v is KeyError:
            rec.pop(k)
        else:
            rec[k] = v
    return rec


def bad_inputs(records: list[dict], names: list[str]) -> list[tuple[str, Any, str | None, dict, int, str]]:
    """(id, body, content type, event options, expected status, expected kind) for each bad input."""
    good_csv = csv_text(records[:2], names)
    return [
        ("malformed-json", '{"instances": [', "application/json", {}, 400, "malformed"),
        ("missing-field", json.dumps(_rec(records, age=KeyError)), "application/json", {}, 400, "missing_field"),
        ("extra-field", json.dumps(_rec(records, shoe_size=42)), "application/json", {}, 400, "unexpected_field"),
        ("wrong-type", json.dumps(_rec(records, age="old")), "application/json", {}, 400, "wrong_type"),
        ("bool-for-number", json.dumps(_rec(records, monthly_charges=True)), "application/json", {}, 400,
         "wrong_type"),
        ("fraction-for-integer", json.dumps(_rec(records, support_calls=1.5)), "application/json", {}, 400,
         "wrong_type"),
        ("nan-literal", json.dumps(_rec(records, monthly_charges=float("nan"))), "application/json", {}, 400,
         "malformed"),
        ("infinity-literal", json.dumps(_rec(records, total_charges=float("inf"))), "application/json", {}, 400,
         "malformed"),
        ("null-not-nullable", json.dumps(_rec(records, age=None)), "application/json", {}, 400,
         "null_not_allowed"),
        ("unknown-category", json.dumps(_rec(records, contract="weekly")), "application/json", {}, 400,
         "unknown_category"),
        ("empty-body", "", "application/json", {}, 400, "empty"),
        ("empty-instances", '{"instances": []}', "application/json", {}, 400, "empty"),
        ("instances-not-list", '{"instances": {"a": 1}}', "application/json", {}, 400, "malformed"),
        ("json-scalar", "42", "application/json", {}, 400, "malformed"),
        ("row-not-object", '{"instances": [[1, 2, 3]]}', "application/json", {}, 400, "wrong_type"),
        ("csv-wrong-arity", "1,2,3\n", "text/csv", {}, 400, "wrong_arity"),
        ("csv-header-missing-column", good_csv.replace("gender", "sex", 1), "text/csv", {}, 400,
         "missing_field"),
        ("bad-base64", "not base64!!", "application/json", {"b64": True}, 400, "malformed"),
        ("not-utf8", base64.b64encode(b"\xff\xfe{}").decode(), "application/json", {"b64": "raw"}, 400,
         "malformed"),
        ("unsupported-type", "<xml/>", "application/xml", {}, 415, "unsupported_media_type"),
        ("form-encoded", "a=1", "application/x-www-form-urlencoded", {}, 415, "unsupported_media_type"),
        ("wrong-method-get", None, None, {"method": "GET"}, 405, "method_not_allowed"),
        ("wrong-method-put", json.dumps(records[0]), "application/json", {"method": "PUT"}, 405,
         "method_not_allowed"),
        ("too-large", json.dumps({"instances": records * 40}), "application/json", {}, 413, "too_large"),
    ]


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_bad_inputs_get_the_right_status_and_message(handler, holdout_records, feature_names, kind, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", str(16 * 1024))
    cases = bad_inputs(holdout_records, feature_names)
    assert len(cases) >= 10
    for case_id, body, ctype, options, want_status, want_kind in cases:
        options = dict(options)
        raw_b64 = options.get("b64") == "raw"
        if raw_b64:  # body is already base64 of arbitrary bytes
            options["b64"] = False
        event = make_event(kind, body, ctype, **options)
        if raw_b64:
            event["isBase64Encoded"] = True
        status, answer = call(handler, event)
        assert status == want_status, (case_id, answer)
        text = json.dumps(answer)
        assert "Traceback" not in text and 'File "' not in text, case_id
        if want_status == 400:
            kinds = {e["kind"] for e in answer["errors"]}
            assert want_kind in kinds, (case_id, answer)
            assert all(e["message"] for e in answer["errors"]), case_id
        else:
            assert answer["kind"] == want_kind, (case_id, answer)
            assert answer["error"], case_id


def test_field_errors_name_the_row_and_field(handler, holdout_records):
    rows = [holdout_records[0], _rec(holdout_records, age="old", contract="weekly")]
    status, answer = call(handler, rest_v1_event(json.dumps({"instances": rows})))
    assert status == 400
    got = {(e["row"], e["field"], e["kind"]) for e in answer["errors"]}
    assert got == {(1, "age", "wrong_type"), (1, "contract", "unknown_category")}
    assert "weekly" in json.dumps(answer)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                                   lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=16), c,
                                                                                         max_size=10),
                                   max_leaves=30).map(lambda d: json.dumps(d).encode())),
       ctype=st.sampled_from([None, "application/json", "text/csv", "text/plain", "application/json; charset=x",
                              ""]),
       method=st.sampled_from(["POST", "POST", "GET", "DELETE"]),
       b64=st.booleans(), kind=st.sampled_from(EVENT_KINDS))
def test_property_no_input_causes_a_5xx(handler, body, ctype, method, b64, kind):
    event = make_event(kind, base64.b64encode(body).decode() if b64 else body.decode("utf-8", "replace"),
                       ctype, method=method)
    event["isBase64Encoded"] = b64
    status, answer = call(handler, event)
    assert status < 500, answer
    assert "Traceback" not in json.dumps(answer)


def test_property_style_field_values_never_5xx(handler, holdout_records):
    """Every field set to every awkward JSON value: always 200 or 400."""
    awkward = [None, "", " ", "NaN", "1e309", -1, 10**30, 1e-300, [], {}, True, "é", "0x10"]
    for name in holdout_records[0]:
        for value in awkward:
            status, answer = call(handler, rest_v1_event(json.dumps(_rec(holdout_records, **{name: value}))))
            assert status in (200, 400), (name, value, answer)


# ---------------------------------------------------------------------------- model unavailable
def test_golden_failure_answers_503_and_keeps_failing_fast(handler, churn_bundle, tmp_path, monkeypatch,
                                                           holdout_records):
    bad = golden_failing_copy(churn_bundle, tmp_path / "bad")
    monkeypatch.setenv("MODEL_URI", str(bad))
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 503
    assert answer["kind"] == "model_unavailable" and "golden" in answer["reason"]
    # fix the bundle on disk: a failed function does not retry a deterministic failure
    shutil.rmtree(bad)
    shutil.copytree(churn_bundle, bad)
    status, again = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 503 and again["reason"] == answer["reason"]
    assert call(handler, rest_v1_event(None, None, method="GET", path="/health"))[0] == 503


def test_tampered_bundle_and_wrong_key_answer_503(handler, churn_bundle, tmp_path, monkeypatch, holdout_records):
    from mlship.runtime.signing import generate_keypair

    tampered = tmp_path / "tampered"
    shutil.copytree(churn_bundle, tampered)
    with open(tampered / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    monkeypatch.setenv("MODEL_URI", str(tampered))
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 503 and "model.onnx" in answer["reason"]

    handler.reset()
    generate_keypair(tmp_path / "other")
    monkeypatch.setenv("MODEL_URI", str(churn_bundle))
    monkeypatch.setenv("MLSHIP_PUBLIC_KEY", (tmp_path / "other" / "mlship.pub").read_text())
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 503 and "signature" in answer["reason"]


def test_right_public_key_serves(handler, signing_keys, monkeypatch, holdout_records):
    monkeypatch.setenv("MLSHIP_PUBLIC_KEY", (signing_keys / "mlship.pub").read_text())
    assert call(handler, rest_v1_event(json.dumps(holdout_records[0])))[0] == 200


def test_missing_model_uri_is_503(handler, monkeypatch, holdout_records):
    monkeypatch.delenv("MODEL_URI")
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 503 and "MODEL_URI" in answer["reason"]


# ---------------------------------------------------------------------------- observability
def _emf(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_metrics_in_emf_with_model_dimensions(handler, holdout_records, capsys):
    capsys.readouterr()
    call(handler, rest_v1_event(json.dumps({"instances": holdout_records[:7]})))
    call(handler, rest_v1_event(json.dumps(_rec(holdout_records, contract="weekly"))))
    blobs = _emf(capsys.readouterr().out)
    main = [b for b in blobs if "Latency" in b]
    assert len(main) == 2
    assert main[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Model", "Version"]]
    assert main[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "mlship"
    assert (main[0]["Model"], main[0]["Version"], main[0]["Rows"]) == ("churn", "1", 7.0)
    assert main[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "Latency", "Unit": "Milliseconds"},
                                                                  {"Name": "Rows", "Unit": "Count"}]
    assert main[0]["Latency"] > 0 and isinstance(main[0]["_aws"]["Timestamp"], int)
    errors = [b for b in blobs if "Errors" in b]
    assert len(errors) == 1
    assert errors[0]["ErrorKind"] == "validation"
    assert errors[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Model", "Version", "ErrorKind"]]


def test_structured_logs_carry_the_request_id(handler, holdout_records):
    import io

    # Powertools' handler holds the stdout of import time: read its stream directly
    buf = io.StringIO()
    old = handler.logger.registered_handler.setStream(buf)
    try:
        call(handler, rest_v1_event(json.dumps(_rec(holdout_records, age="x"))))
    finally:
        handler.logger.registered_handler.setStream(old)
    logs = [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith('{"level"')]
    refused = [entry for entry in logs if entry["message"] == "request refused"]
    assert refused and refused[0]["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert refused[0]["function_name"] == "mlship-predict" and refused[0]["status"] == 400


# ---------------------------------------------------------------------------- inference records
def _capture_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"capture"')]


def test_capture_is_one_stdout_line_per_request_with_variant_and_alias(handler, monkeypatch, holdout_records,
                                                                       capsys):
    """The default (log) capture: one line per answered request, read back by the record parser."""
    from mlship.runtime.records import parse_line

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")
    rows = holdout_records[:6]
    context = LambdaContext()
    context.invoked_function_arn += ":live"
    resp = handler.handler(http_v2_event(json.dumps({"instances": rows})), context)
    answer = json.loads(resp["body"])
    assert call(handler, http_v2_event(json.dumps(_rec(holdout_records, age="x"))))[0] == 400  # not captured
    lines = _capture_lines(capsys.readouterr().out)
    assert len(lines) == 1
    records = parse_line(json.dumps(lines[0]))
    assert [r["row"] for r in records] == list(range(6))
    assert {r["request_id"] for r in records} == {"JKJaXmPLvHcESHA="}
    assert all(r["variant"] == "7" and r["alias"] == "live" and r["source"] == "lambda" for r in records)
    assert all(r["model"] == {"name": "churn", "version": "1"} for r in records)
    for rec, label, probs in zip(records, answer["predictions"], answer["probabilities"], strict=True):
        assert rec["outputs"] == {"prediction": label, "probabilities": probs}


@pytest.mark.parametrize(("mode", "percentage"), [("off", "100"), ("log", "0")])
def test_capture_off_or_sampled_out_writes_nothing(handler, monkeypatch, holdout_records, capsys, mode, percentage):
    monkeypatch.setenv("CAPTURE_MODE", mode)
    monkeypatch.setenv("CAPTURE_SAMPLING_PERCENTAGE", percentage)
    for _ in range(5):
        assert call(handler, rest_v1_event(json.dumps(holdout_records[0])))[0] == 200
    assert _capture_lines(capsys.readouterr().out) == []


def test_sampling_captures_about_its_share(handler, monkeypatch, holdout_records, capsys):
    monkeypatch.setenv("CAPTURE_SAMPLING_PERCENTAGE", "25")
    for _ in range(400):
        assert call(handler, rest_v1_event(json.dumps(holdout_records[0])))[0] == 200
    captured = len(_capture_lines(capsys.readouterr().out))
    assert 50 <= captured <= 150  # binomial(400, 0.25): mean 100, sd 8.7


def test_a_broken_stdout_never_fails_the_answer(handler, holdout_records, monkeypatch):
    class Broken:
        def write(self, _text: str) -> int:
            raise OSError("stdout is gone")

        def flush(self) -> None: ...

    monkeypatch.setattr(sys, "stdout", Broken())
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 200 and len(answer["predictions"]) == 1


def test_capture_and_metrics_are_one_write_and_one_flush(handler, holdout_records, monkeypatch):
    """One write per request (capture line, then EMF), flushed before the answer: Lambda may
    freeze the process after it, and each write to Lambda's stdout is a system call."""
    class Counting(io.StringIO):
        writes = flushes = 0

        def write(self, text: str) -> int:
            Counting.writes += 1
            return super().write(text)

        def flush(self) -> None:
            Counting.flushes += 1

    out = Counting()
    monkeypatch.setattr(sys, "stdout", out)
    assert call(handler, rest_v1_event(json.dumps(holdout_records[0])))[0] == 200
    lines = out.getvalue().splitlines()
    assert (Counting.writes, Counting.flushes) == (1, 1)
    assert json.loads(lines[0])["capture"] == "mlship/2" and '"_aws"' in lines[1]


def test_s3_mode_is_the_opt_in_put_per_request(handler, aws, monkeypatch, holdout_records):
    from mlship.aws.clients import client
    from mlship.aws.records import read_records

    client("s3").create_bucket(Bucket="records-rt")
    monkeypatch.setenv("CAPTURE_MODE", "s3")
    monkeypatch.setenv("RECORDS_BUCKET", "records-rt")
    rows = holdout_records[:6]
    status, answer = call(handler, http_v2_event(json.dumps({"instances": rows})))
    assert status == 200
    status, _ = call(handler, http_v2_event(json.dumps(_rec(holdout_records, age="x"))))
    assert status == 400  # refused requests are not inference records
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket="records-rt")["Contents"]]
    assert len(keys) == 1
    assert keys[0].startswith("inference-records/model=churn/version=1/date=") and keys[0].endswith(".jsonl.gz")
    records = list(read_records("records-rt", "inference-records/"))
    assert [r["row"] for r in records] == list(range(6))
    assert {r["request_id"] for r in records} == {"JKJaXmPLvHcESHA="}
    assert all(r["source"] == "lambda" and r["model"] == {"name": "churn", "version": "1"} for r in records)
    assert all("variant" in r and r["alias"] is None for r in records)
    for rec, row, label, probs in zip(records, rows, answer["predictions"], answer["probabilities"], strict=True):
        assert rec["outputs"] == {"prediction": label, "probabilities": probs}
        for name, value in row.items():
            if isinstance(value, float):
                assert rec["inputs"][name] == pytest.approx(value, rel=1e-6)
            else:
                assert rec["inputs"][name] == value


def test_s3_mode_needs_its_bucket(handler, monkeypatch, holdout_records):
    monkeypatch.setenv("CAPTURE_MODE", "s3")
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 503 and "RECORDS_BUCKET" in answer["reason"]


def test_record_write_failure_never_fails_the_request_and_is_counted(handler, aws, monkeypatch, holdout_records,
                                                                      caplog, capsys):
    monkeypatch.setenv("CAPTURE_MODE", "s3")
    monkeypatch.setenv("RECORDS_BUCKET", "no-such-bucket-rt")
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 200 and len(answer["predictions"]) == 1
    assert "could not write inference records" in caplog.text
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    counted = [doc for doc in emf if doc.get("CaptureErrors") == 1.0]
    assert counted and counted[0]["Model"] == "churn", emf
    assert {"Name": "CaptureErrors", "Unit": "Count"} in counted[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]


# ---------------------------------------------------------------------------- settings and the load lifecycle
@pytest.mark.parametrize(("variable", "value"), [("MAX_BODY_BYTES", "lots"), ("MAX_BODY_BYTES", "0"),
                                                 ("ORT_THREADS", "-1"), ("PREDICT_BACKEND", "tensorflow"),
                                                 ("MLSHIP_EAGER_LOAD", "maybe"), ("CAPTURE_MODE", "kafka"),
                                                 ("CAPTURE_SAMPLING_PERCENTAGE", "101")])
def test_a_bad_setting_answers_503_naming_the_variable(handler, monkeypatch, holdout_records, variable, value):
    monkeypatch.setenv(variable, value)
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 503 and answer["kind"] == "model_unavailable"
    assert f"{variable}={value!r}" in answer["reason"], answer
    status, answer = call(handler, rest_v1_event(None, None, method="GET", path="/health"))
    assert status == 503 and variable in answer["reason"]


def test_sagemaker_backend_needs_its_endpoint_name(handler, monkeypatch, holdout_records):
    monkeypatch.setenv("PREDICT_BACKEND", "SageMaker")  # the backend name is case-insensitive
    monkeypatch.delenv("SAGEMAKER_ENDPOINT_NAME", raising=False)
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 503 and "SAGEMAKER_ENDPOINT_NAME" in answer["reason"]


def test_a_transient_download_failure_is_retried_after_the_interval(handler, moto_env, churn_bundle, tmp_path,
                                                                      monkeypatch, holdout_records):
    """S3 unreachable at cold start (a closed port: a real connection refused), then back: the
    function answers 503 without retrying inside the interval, and serves once it has passed."""
    import time

    from mlship.aws import clients
    from mlship.local.environment import free_port

    clients.client("s3").create_bucket(Bucket="bundles-rt")
    clients.client("s3").upload_file(f"{churn_bundle}.tar.gz", "bundles-rt", "churn/1/model.tar.gz")
    monkeypatch.setenv("MODEL_URI", "s3://bundles-rt/churn/1/model.tar.gz")
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # one refused connection, not five with backoff
    monkeypatch.setattr(handler, "LOAD_RETRY_SECONDS", 2.0)
    attempts, real_open = [], handler.open_backend

    def counted_open(settings: Any) -> Any:
        attempts.append(1)
        return real_open(settings)

    monkeypatch.setattr(handler, "open_backend", counted_open)
    handler.reset()
    clients.clear_cache()
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    failed_at = time.monotonic()
    assert status == 503 and "cannot download bundle" in answer["reason"], answer
    status, _ = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 503 and len(attempts) == 1  # within the interval: the remembered failure
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_env["AWS_ENDPOINT_URL"])
    clients.clear_cache()
    time.sleep(max(0.0, failed_at + 2.1 - time.monotonic()))
    status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
    assert status == 200 and len(attempts) == 2, answer


def test_a_missing_s3_bundle_is_not_retried(handler, moto_env, tmp_path, monkeypatch, holdout_records):
    from mlship.aws import clients

    clients.client("s3").create_bucket(Bucket="bundles-missing")
    monkeypatch.setenv("MODEL_URI", "s3://bundles-missing/churn/1/model.tar.gz")
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(handler, "LOAD_RETRY_SECONDS", 0.0)
    handler.reset()
    for _ in range(2):
        status, answer = call(handler, rest_v1_event(json.dumps(holdout_records[0])))
        assert status == 503 and "cannot download bundle" in answer["reason"]
    from mlship.errors import BundleNotFound

    with pytest.raises(BundleNotFound):
        handler.service().lifecycle.load()


@pytest.mark.parametrize(("env", "loaded"), [({}, True), ({"MLSHIP_EAGER_LOAD": "false"}, False),
                                             ({"MAX_BODY_BYTES": "lots"}, False)])
def test_the_model_loads_during_init_inside_lambda(churn_bundle, env, loaded):
    """In Lambda (AWS_LAMBDA_FUNCTION_NAME set) the import loads the model; invalid settings do
    not fail the import: they are logged then, and requests answer 503."""
    import os
    import subprocess
    import sys

    from realtime.helpers import REPO

    code = ("from functions.predict import handler; h = handler.service().lifecycle.health();"
            "print('STATUS', h.status, h.reason)")
    environ = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "mlship-predict", "MODEL_URI": str(churn_bundle),
               "POWERTOOLS_TRACE_DISABLED": "1", **env}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=environ,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    status = next(line for line in done.stdout.splitlines() if line.startswith("STATUS")).split()[1]
    if loaded:
        assert status == "ok"
    elif "MAX_BODY_BYTES" in env:
        assert status == "failed" and "MAX_BODY_BYTES" in done.stdout  # logged at init, remembered
    else:
        assert status == "loading"  # not attempted yet: the first request loads


def test_docs_list_every_setting_with_its_default():
    """docs/realtime.md's table is checked against the settings classes (regenerate a row from
    describe() when a setting changes)."""
    from functions.predict.settings import InitSettings, PredictSettings
    from realtime.helpers import REPO

    doc = (REPO / "docs" / "realtime.md").read_text()
    for row in [*PredictSettings.describe(), *InitSettings.describe()]:
        default = f"`{row.default}`" if row.default else "unset"
        assert f"| `{row.env}` | {default} | {row.description} |" in doc, row
