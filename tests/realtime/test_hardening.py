"""Regression tests for bad input that once escaped as a 500 or an exception (issue 11, items 1-4).

Each case was found by fuzzing the handler and ``mlship serve``; the generators that keep the
whole class closed are in ``test_fuzz.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from realtime.helpers import REPO, LambdaContext, ServeProcess, http_v2_event, request, rest_v1_event

HUGE_INT = "1" + "0" * 400


def _call(handler: Any, event: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    resp = handler.handler(event, LambdaContext())
    if "headers" in resp:
        return resp["statusCode"], json.loads(resp["body"]), resp
    return resp["statusCode"], {k: v for k, v in resp.items() if k != "statusCode"}, resp


def _with(record: dict[str, Any], field: str, raw_json_value: str) -> str:
    """A JSON body for ``record`` whose ``field`` holds ``raw_json_value`` verbatim."""
    body = json.dumps({**record, field: 0})
    return body.replace(f'"{field}": 0', f'"{field}": {raw_json_value}')


# ---------------------------------------------------------------------------- item 1 and 3: numbers
@pytest.mark.parametrize("raw", [HUGE_INT, "-" + HUGE_INT, "1e39", "-1e39", "1e308", "3.5e38"])
def test_numbers_beyond_float32_are_field_errors(handler, holdout_records, raw):
    status, body, _ = _call(handler, rest_v1_event(_with(holdout_records[0], "monthly_charges", raw)))
    assert status == 400, body
    assert body["errors"][0]["field"] == "monthly_charges"
    assert body["errors"][0]["kind"] == "out_of_range"


def test_float32_overflow_in_a_dataframe_is_refused(predictor, holdout_records):
    import pandas as pd

    from mlship.errors import ValidationError

    frame = pd.DataFrame([holdout_records[0], {**holdout_records[1], "monthly_charges": 1e39}])
    batch = predictor.schema.validate(frame)
    assert batch.valid.tolist() == [True, False]
    with pytest.raises(ValidationError) as caught:
        batch.raise_for_errors()
    assert caught.value.errors[0].kind == "out_of_range"


def test_largest_float32_is_still_accepted(handler, holdout_records):
    status, body, _ = _call(handler, rest_v1_event(_with(holdout_records[0], "monthly_charges", "3.4e38")))
    assert status == 200, body


# ---------------------------------------------------------------------------- item 2: nesting
@pytest.mark.parametrize("body", ["[" * 1000 + "]" * 1000, '{"instances": ' + "[" * 5000 + "]" * 5000 + "}",
                                  '{"monthly_charges": ' + "[" * 900 + "]" * 900 + "}"])
def test_deeply_nested_json_is_malformed(handler, body):
    status, answer, _ = _call(handler, rest_v1_event(body))
    assert status == 400, answer
    assert answer["errors"][0]["kind"] in ("malformed", "wrong_type", "missing_field", "unexpected_field")


# ---------------------------------------------------------------------------- item 4: event shapes
MALFORMED_EVENTS = [
    {"httpMethod": "POST", "requestContext": {}, "body": 12},
    {"httpMethod": 7, "requestContext": {}, "body": "{}"},
    {"httpMethod": "POST", "requestContext": "x", "body": "{}"},
    {"httpMethod": "POST", "requestContext": {}, "body": "{}", "headers": ["content-type"]},
    {"httpMethod": "POST", "requestContext": {}, "body": "{}", "headers": {"content-type": 5}},
    {"httpMethod": "POST", "requestContext": {"requestId": ["a"]}, "body": "{}"},
    {"httpMethod": "POST", "requestContext": {}, "body": "{}", "isBase64Encoded": "yes"},
    {"version": "2.0", "requestContext": {}, "body": "{}"},
    {"version": "2.0", "requestContext": {"http": "POST"}, "body": "{}"},
    {"version": "2.0", "requestContext": {"http": {"method": None}}, "body": "{}"},
    {"version": "2.0", "requestContext": {"http": {"method": "POST"}, "domainName": 3}, "body": "{}"},
    {"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "rawPath": 1, "body": "{}"},
    {"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "headers": "h", "body": "{}"},
    {"body": "{}", "contentType": 12},
    {"body": "{}", "isBase64Encoded": "true"},
]


@pytest.mark.parametrize("event", MALFORMED_EVENTS, ids=range(len(MALFORMED_EVENTS)))
def test_malformed_event_shapes_are_400(handler, event):
    status, body, resp = _call(handler, event)
    assert status == 400, body
    assert body["kind"] == "malformed_event"
    if "httpMethod" in event or event.get("version") == "2.0":  # API Gateway needs its response shape
        assert set(resp) >= {"statusCode", "headers", "body"}


# ---------------------------------------------------------------------------- item 3: non-finite outputs
@pytest.fixture
def nan_handler(handler: Any, nonfinite_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MODEL_URI", str(nonfinite_bundle))
    handler.reset()
    return handler


def test_nan_output_is_a_model_error_in_the_lambda(nan_handler, holdout_records, capsys):
    body = json.dumps({"instances": [holdout_records[0], {**holdout_records[1], "monthly_charges": 5000.0}]})
    capsys.readouterr()
    status, answer, resp = _call(nan_handler, http_v2_event(body))
    assert status == 500 and answer["kind"] == "model_error", answer
    json.loads(resp["body"], parse_constant=lambda c: pytest.fail(f"{c} in the body"))
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    kinds = [doc.get("ErrorKind") for doc in emitted if "Errors" in doc]
    assert kinds == ["model_error"]  # counted as a model failure, in the Errors metric
    status, answer, _ = _call(nan_handler, http_v2_event(json.dumps(holdout_records[0])))
    assert status == 200, answer  # finite rows of the same model still answer


def test_unencodable_answer_never_leaves_the_handler(handler):
    """A proxied endpoint's body may carry NaN (json.loads accepts it): the answer becomes a model error."""
    answer = handler.Answer(200, {"predictions": [float("nan")], "request_id": "r"})
    req = handler.Request("rest-v1", "POST", "/", b"", None, "r")
    resp = handler._response(req, answer, handler._render(answer))
    assert resp["statusCode"] == 500
    assert json.loads(resp["body"])["kind"] == "model_error"


@pytest.fixture(scope="module")
def nan_served(nonfinite_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(nonfinite_bundle, log_path=tmp_path_factory.mktemp("serve") / "serve.log") as proc:
        yield proc


def test_nan_output_is_a_model_error_over_http(nan_served, holdout_records):
    body = json.dumps({**holdout_records[1], "monthly_charges": 5000.0}).encode()
    status, answer = request("POST", f"{nan_served.url}/invocations", body, {"Content-Type": "application/json"})
    assert status == 500, answer
    assert isinstance(answer, dict) and answer["kind"] == "model_error"
    status, answer = request("POST", f"{nan_served.url}/invocations", json.dumps(holdout_records[1]).encode(),
                             {"Content-Type": "application/json"})
    assert status == 200, answer


def test_mlship_predict_refuses_nan_output(nonfinite_bundle, holdout_records, tmp_path):
    data = tmp_path / "in.json"
    data.write_text(json.dumps([{**holdout_records[1], "monthly_charges": 5000.0}]))
    done = subprocess.run([sys.executable, "-m", "mlship", "predict", str(nonfinite_bundle), str(data)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "NaN" not in done.stdout
    assert "error:" in done.stderr and "non-finite" in done.stderr
    assert "Traceback" not in done.stderr
