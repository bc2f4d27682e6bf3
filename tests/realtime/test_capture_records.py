"""Capture lines and what the record reader makes of every shape Firehose can deliver them in."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from functions.predict.capture import Exchange, LogCapture, invoked_alias, lines
from mlship.runtime.records import capture_line, iso, iter_lines, make_records, parse_line

VALUES = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32),
                   st.text(max_size=12), st.none(), st.booleans())
SMALL_LINE = 300  # a line limit small enough that the generated requests get split
ROWS = st.lists(st.dictionaries(st.text(min_size=1, max_size=8), VALUES, min_size=1, max_size=5), min_size=1,
                max_size=30)


def _records(rows: list[dict[str, Any]], request_id: str = "req-1") -> list[dict[str, Any]]:
    outputs = [{"prediction": i % 2, "probabilities": [0.25, 0.75]} for i in range(len(rows))]
    return make_records(request_id, "churn", "4", rows, outputs, source="lambda")


def _expected(records: list[dict[str, Any]], variant: str, alias: str | None) -> list[dict[str, Any]]:
    return [{**rec, "variant": variant, "alias": alias} for rec in records]


@settings(max_examples=150, deadline=None)
@given(ROWS, st.sampled_from([None, "live", "7"]))
def test_a_capture_line_reads_back_as_the_requests_records(rows, alias):
    records = _records(rows)
    assert parse_line(capture_line(records, variant="3", alias=alias)) == _expected(records, "3", alias)


@settings(max_examples=60, deadline=None)
@given(ROWS)
def test_a_large_request_is_split_into_lines_that_fit_and_keep_row_numbers(rows):
    import functions.predict.capture as capture

    records = _records(rows)
    old, capture.MAX_LINE_BYTES = capture.MAX_LINE_BYTES, SMALL_LINE
    try:
        parts = lines(records, "3", "live")
    finally:
        capture.MAX_LINE_BYTES = old
    assert all(len(p) <= SMALL_LINE for p in parts if len(json.loads(p)["rows"]) > 1)
    assert [r for p in parts for r in parse_line(p)] == _expected(records, "3", "live")


def _envelope(messages: list[str], kind: str = "DATA_MESSAGE") -> dict[str, Any]:
    return {"messageType": kind, "owner": "123456789012", "logGroup": "/aws/lambda/fn", "logStream": "s",
            "subscriptionFilters": ["capture"],
            "logEvents": [{"id": str(i), "timestamp": 0, "message": m} for i, m in enumerate(messages)]}


def test_log_envelopes_yield_only_capture_lines_even_back_to_back_and_gzip_members():
    """Without Firehose's processors an object holds gzip'd envelopes back to back (no newline);
    moto writes one per PutLogEvents, with START/REPORT, log and EMF lines the filter would drop."""
    first, second = _records([{"a": 1}, {"a": 2}], "r1"), _records([{"a": 3}], "r2")
    noise = ["START RequestId: r1 Version: 3", '{"level":"INFO","message":"model loaded"}',
             '{"_aws":{"Timestamp":1},"Latency":0.1}', "REPORT RequestId: r1\tDuration: 1.00 ms"]
    env1 = _envelope([noise[0], capture_line(first, variant="3"), noise[1], noise[2], noise[3]])
    env2 = _envelope([capture_line(second, variant="4", alias="live")])
    control = _envelope(["CWL CONTROL MESSAGE: Checking health of destination Firehose."], "CONTROL_MESSAGE")
    body = b"".join(gzip.compress(json.dumps(e).encode()) for e in (control, env1, env2))
    records = [r for line in iter_lines(body) for r in parse_line(line)]
    assert records == _expected(first, "3", None) + _expected(second, "4", "live")


def test_processed_objects_are_gzip_json_lines():
    recs = _records([{"a": 1}])
    body = gzip.compress((capture_line(recs, variant="1") + "\n" + capture_line(recs, variant="2") + "\n").encode())
    assert [r["variant"] for line in iter_lines(body) for r in parse_line(line)] == ["1", "2"]


def _exchange(rows: list[dict[str, Any]], request_text: str, *, records: Any = None) -> Exchange:
    answer = {"model": {"name": "churn", "version": "4"}, "predictions": [i % 2 for i in range(len(rows))],
              "probabilities": [[0.25, 0.75]] * len(rows), "classes": [0, 1], "request_id": "req-1"}
    return Exchange("req-1", "churn", "4", request_text, True, json.dumps(answer),
                    records or (lambda: _records(rows)))


def _parsed_back(text: str) -> list[dict[str, Any]]:
    return [r for line in text.splitlines() for r in parse_line(line)]


REQUEST_SHAPES = st.sampled_from(["record", "list", "instances"])


def _request_text(rows: list[dict[str, Any]], shape: str, indent: int | None) -> str:
    doc: Any = rows[0] if shape == "record" else rows if shape == "list" else {"instances": rows}
    return json.dumps(doc, indent=indent)


@settings(max_examples=150, deadline=None)
@given(ROWS, REQUEST_SHAPES, st.sampled_from([None, 2]), st.sampled_from([None, "live"]))
def test_an_exchange_line_reads_back_as_the_requests_records(rows, shape, indent, alias):
    """What the client sent (any JSON request shape, pretty-printed or not) and what it was answered
    come back as one record per row, the same records a row-wise line gives."""
    if shape == "record":
        rows = rows[:1]
    text = LogCapture(100.0, "3").render(_exchange(rows, _request_text(rows, shape, indent)), alias)
    assert text.endswith("\n") and text.count("\n") == 1  # one log event, even from an indented body
    back = _parsed_back(text)
    expected = _expected(_records(rows), "3", alias)
    assert [{k: v for k, v in r.items() if k != "time"} for r in back] == \
        [{k: v for k, v in r.items() if k != "time"} for r in expected]
    assert json.loads(text)["capture"] == "mlship/2"


def test_a_csv_request_reads_back_with_the_feature_names():
    rows = [{"a": 1.0, "b": "x"}, {"a": 2.5, "b": "y"}]
    exchange = _exchange(rows, "a,b\n1,x\n2.5,y\n")
    exchange.request_is_json = False
    line = LogCapture(100.0, "3").render(exchange, None)
    assert [r["inputs"] for r in parse_line(line.strip(), ["a", "b"])] == rows


@settings(max_examples=40, deadline=None)
@given(ROWS)
def test_a_request_over_one_log_event_falls_back_to_row_lines_that_fit(rows):
    import functions.predict.capture as capture

    text, records = json.dumps({"instances": rows}), _records(rows)
    old, capture.MAX_LINE_BYTES = capture.MAX_LINE_BYTES, SMALL_LINE
    try:
        out = LogCapture(100.0, "3").render(_exchange(rows, text, records=lambda: records), "live")
    finally:
        capture.MAX_LINE_BYTES = old
    parts = out.splitlines()
    if len(text) * 4 > SMALL_LINE:  # (a tiny request still fits one exchange line)
        assert all(json.loads(p)["capture"] == "mlship/1" for p in parts)
        assert all(len(p.encode()) <= SMALL_LINE for p in parts if len(json.loads(p)["rows"]) > 1)
        assert _parsed_back(out) == _expected(records, "3", "live")


def test_a_capture_that_cannot_be_encoded_is_a_typed_failure():
    from functions.predict.capture import MAX_LINE_BYTES, CaptureFailed

    rows = [{"a": float("nan")}] * 2  # only the row-wise fallback encodes values: NaN is not JSON
    big = json.dumps({"instances": rows, "pad": "x" * MAX_LINE_BYTES})
    try:
        LogCapture(100.0, "9").render(_exchange(rows, big), None)
    except CaptureFailed as exc:
        assert "ValueError" in str(exc)
    else:
        raise AssertionError("a NaN in the row-wise records must fail the capture")


@given(st.floats(0, 100))
def test_sampling_is_bounded_by_its_percentage(percentage):
    assert LogCapture(percentage, "1", dice=lambda: 0.0).sampled() is (percentage > 0)
    assert LogCapture(percentage, "1", dice=lambda: 0.999999).sampled() is (percentage >= 100.0 or
                                                                             percentage > 99.9999)


def test_invoked_alias_is_the_arns_qualifier():
    class Ctx:
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"

    assert invoked_alias(Ctx()) is None
    Ctx.invoked_function_arn += ":live"
    assert invoked_alias(Ctx()) == "live"
    assert invoked_alias(object()) is None


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(minutes=330))])))
def test_record_times_are_utc_milliseconds_with_z(ts):
    assert iso(ts) == ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_now_iso_agrees_with_iso_of_now():
    from mlship.runtime.records import now_iso, utc_now

    for _ in range(200):
        before, stamp, after = iso(utc_now()), now_iso(), iso(utc_now())
        assert before <= stamp <= after and stamp.endswith("Z") and len(stamp) == len(before)
