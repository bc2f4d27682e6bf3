"""Fuzz suite: generated bad requests through the Lambda handler and over real HTTP to ``mlship serve``.

3,000 requests through the handler (REST v1, HTTP API v2, Function URL, direct invocation and
malformed event shapes) and 1,000 over real sockets to a real ``mlship serve`` process. Asserted
for every one: no exception leaves the handler, no 5xx except ``model_error``, no stack trace or
Python exception text in a body, every JSON body strict JSON. The generators live in
``tests/fuzzing.py``; the single cases they once found are pinned in ``test_hardening.py``.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzzing import (
    ACCEPTS,
    CONTENT_TYPES,
    b64,
    check_body,
    check_status,
    fuzz_settings_profile,
    http_parts,
    json_values,
    request_bodies,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.helpers import LambdaContext, ServeProcess, http_v2_event, rest_v1_event

FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
RECORD = {"tenure_months": 12, "monthly_charges": 70.5, "total_charges": 846.0, "support_calls": 1, "age": 40,
          "contract": "month-to-month", "payment_method": "electronic-check", "internet_service": "fiber",
          "gender": "female"}


def _is_text(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _invoke(handler: Any, event: Any) -> None:
    resp = handler.handler(event, LambdaContext())  # an exception here fails the example
    assert isinstance(resp, dict) and isinstance(resp.get("statusCode"), int), resp
    if "headers" in resp:
        body = check_body(resp["body"], resp["headers"].get("Content-Type"))
    else:
        body = {k: v for k, v in resp.items() if k != "statusCode"}
        check_body(json.dumps(body, allow_nan=False), "application/json")
    check_status(resp["statusCode"], body)


def _http_event(kind: str, parts: dict[str, Any]) -> dict[str, Any]:
    body, ctype = parts["body"], parts["headers"].get("Content-Type")
    binary = not _is_text(body)
    if kind == "rest-v1":
        event = rest_v1_event(body, ctype, method=parts["method"], b64=binary, path=parts["path"])
    else:
        event = http_v2_event(body, ctype, method=parts["method"], b64=binary, function_url=kind == "function-url")
        event["rawPath"] = parts["path"]
    if "Accept" in parts["headers"]:
        event["headers"]["accept"] = parts["headers"]["Accept"]
    return event


@pytest.mark.parametrize("kind", ["rest-v1", "http-v2", "function-url"])
def test_http_events(handler, kind):
    @settings(max_examples=600, suppress_health_check=FIXTURES, **fuzz_settings_profile())
    @given(parts=http_parts(RECORD))
    def run(parts: dict[str, Any]) -> None:
        _invoke(handler, _http_event(kind, parts))

    run()


@settings(max_examples=600, suppress_health_check=FIXTURES, **fuzz_settings_profile())
@given(event=st.one_of(
    json_values(),
    request_bodies(RECORD).map(lambda body: {"body": b64(body), "isBase64Encoded": True}),
    st.builds(lambda body, ctype, flag: {"body": body, "contentType": ctype, "isBase64Encoded": flag},
              st.text(max_size=60) | json_values(4), st.sampled_from(CONTENT_TYPES) | json_values(2),
              st.booleans() | json_values(2)),
))
def test_direct_invocations(handler, event):
    _invoke(handler, event)


@st.composite
def malformed_events(draw: st.DrawFn) -> dict[str, Any]:
    """A real-shaped event with one or two of its fields (top level or requestContext) replaced."""
    kind = draw(st.sampled_from(["rest-v1", "http-v2", "function-url"]))
    event = _http_event(kind, {"method": "POST", "path": "/predict", "headers": {"Content-Type": "application/json",
                                                                                   "Accept": draw(st.sampled_from(
                                                                                       ACCEPTS[1:]))},
                               "body": json.dumps(RECORD).encode()})
    for _ in range(draw(st.integers(1, 2))):
        context = event.get("requestContext")
        nested = [event.get("headers"), context, context.get("http") if isinstance(context, dict) else None]
        target = draw(st.sampled_from([event] + [d for d in nested if isinstance(d, dict) and d]))
        key = draw(st.sampled_from(sorted(target)) | st.text(max_size=8))
        if draw(st.booleans()):
            target[key] = draw(json_values(4))
        else:
            target.pop(key, None)
    return event


@settings(max_examples=600, suppress_health_check=FIXTURES, **fuzz_settings_profile())
@given(event=malformed_events())
def test_malformed_event_shapes(handler, event):
    _invoke(handler, event)


# ---------------------------------------------------------------------------- over real HTTP
@pytest.fixture(scope="module")
def served(churn_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(churn_bundle, workers=1, log_path=tmp_path_factory.mktemp("serve-fuzz") / "serve.log") as proc:
        yield proc


@settings(max_examples=1000, suppress_health_check=FIXTURES, **fuzz_settings_profile())
@given(parts=http_parts(RECORD))
def test_serve_over_http(served, parts):
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        conn.request(parts["method"], parts["path"], body=parts["body"], headers=parts["headers"])
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if parts["path"] == "/predict":
        assert resp.status == 404
        return
    body = check_body(data, resp.getheader("Content-Type"))
    check_status(resp.status, body)
    assert served.proc.poll() is None, served.log()
