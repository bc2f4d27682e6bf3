"""Content negotiation: ``Accept: text/csv`` answers one CSV line per row (the shape SageMaker Batch
Transform joins back to its input), anything neither JSON nor CSV is a 406, errors stay JSON.
Through the Lambda handler with real-shaped events (``mlship serve`` over real HTTP: test_serve.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlship.runtime import protocol
from realtime.helpers import LambdaContext, check_csv, http_v2_event, rest_v1_event


@pytest.mark.parametrize(("accept", "expected"), [
    (None, protocol.JSON), ("", protocol.JSON), ("*/*", protocol.JSON), ("application/json", protocol.JSON),
    ("application/*", protocol.JSON), ("text/csv", protocol.CSV), ("text/*", protocol.CSV),
    ("text/csv;q=0.5, application/json", protocol.JSON), ("application/json;q=0.2, text/csv", protocol.CSV),
    ("text/csv, application/json", protocol.CSV), ("TEXT/CSV; charset=utf-8", protocol.CSV),
    ("application/xml, */*;q=0.1", protocol.JSON), ("text/html, text/csv;q=0.9", protocol.CSV),
])
def test_response_type_follows_the_accept_header(accept: str | None, expected: str) -> None:
    assert protocol.response_type(accept) == expected


@pytest.mark.parametrize("accept", ["application/xml", "text/html", "text/csv;q=0, application/json;q=0",
                                    "image/png, application/xml;q=0.5"])
def test_unacceptable_types_are_406(accept: str) -> None:
    with pytest.raises(protocol.NotAcceptable, match="accept application/json or text/csv") as info:
        protocol.response_type(accept)
    status, body = protocol.error_answer(info.value, "r1")
    assert (status, body["kind"]) == (406, "not_acceptable")


def test_render_regression_and_errors() -> None:
    text, ctype = protocol.render({"predictions": [1.5, -2.0], "model": {}}, protocol.CSV)
    assert (text, ctype) == ("1.5\n-2.0\n", protocol.CSV)
    text, ctype = protocol.render({"error": "bad", "kind": "validation"}, protocol.CSV)  # errors stay JSON
    assert ctype == protocol.JSON and json.loads(text)["kind"] == "validation"


@pytest.mark.parametrize("kind", ["rest-v1", "http-v2"])
def test_lambda_answers_csv_when_asked(handler: Any, holdout_records: list[dict[str, Any]], predictor: Any,
                                       kind: str) -> None:
    body = json.dumps({"instances": holdout_records[:9]})
    event = rest_v1_event(body) if kind == "rest-v1" else http_v2_event(body)
    event["headers"]["Accept" if kind == "rest-v1" else "accept"] = "text/csv"
    resp = handler.handler(event, LambdaContext())
    assert resp["statusCode"] == 200 and resp["headers"]["Content-Type"] == "text/csv", resp
    check_csv(resp["body"], predictor.predict(holdout_records[:9]))
    event["headers"]["Accept" if kind == "rest-v1" else "accept"] = "application/xml"
    resp = handler.handler(event, LambdaContext())
    assert resp["statusCode"] == 406 and resp["headers"]["Content-Type"] == "application/json"
    assert json.loads(resp["body"])["kind"] == "not_acceptable"
