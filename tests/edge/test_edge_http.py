"""The device agent's HTTP endpoint over real sockets (issue 11, items 8 and 12).

It speaks the protocol of the Lambda and ``mlship serve`` (``mlship.runtime.protocol``), refuses
bad framing with a JSON answer (411, 400, 413: never a hang or a dropped connection) and never
shows exception text in a 5xx. A hypothesis fuzz sends a few hundred malformed requests.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from edge_helpers import Http
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlship.edge.agent.device import Device
from mlship.edge.agent.server import MAX_BODY, start_server


def _json(body: bytes) -> dict[str, Any]:
    return json.loads(body)


# ---------------------------------------------------------------------------- the shared protocol
def test_instances_single_record_list_and_csv(served: Http, golden_inputs) -> None:
    status, body = served.post_json({"instances": golden_inputs[:3]})
    assert status == 200 and len(body["predictions"]) == 3 and body["model"]["version"] == "1.0.0"
    assert body["request_id"]
    status, body = served.post_json(golden_inputs[0])
    assert status == 200 and len(body["predictions"]) == 1
    status, body = served.post_json(golden_inputs[:2])
    assert status == 200 and len(body["predictions"]) == 2
    names = list(golden_inputs[0])
    csv = ",".join(names) + "\n" + "\n".join(",".join(str(r[n]) for n in names) for r in golden_inputs[:2])
    for ctype in ("text/csv", None):  # declared, and sniffed
        headers = {"Content-Type": ctype} if ctype else {}
        status, _, raw = served.request("POST", "/predict", csv.encode(), headers)
        assert status == 200 and len(_json(raw)["predictions"]) == 2


def test_records_dialect_is_gone(served: Http, golden_inputs) -> None:
    status, body = served.post_json({"records": golden_inputs[:1]})
    assert status == 400 and body["errors"][0]["kind"] == "unexpected_field"
    assert body["errors"][0]["field"] == "records"


def test_accept_and_content_type_negotiation(served: Http, golden_inputs) -> None:
    doc = json.dumps({"instances": golden_inputs[:2]}).encode()
    status, headers, raw = served.request("POST", "/predict", doc, {"Accept": "text/csv"})
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert len(raw.decode().strip().splitlines()) == 2
    status, headers, raw = served.request("POST", "/predict", doc, {"Accept": "application/xml"})
    assert status == 406 and _json(raw)["kind"] == "not_acceptable"
    status, _, raw = served.request("POST", "/predict", doc, {"Content-Type": "application/xml"})
    assert status == 415 and _json(raw)["kind"] == "unsupported_media_type"


def test_field_errors_are_400_with_every_error(served: Http, golden_inputs) -> None:
    status, body = served.post_json([{**golden_inputs[0], "tenure_months": "abc"}, {"tenure_months": 1}])
    assert status == 400
    assert {e["row"] for e in body["errors"]} == {0, 1}
    assert body["errors"][0]["field"] == "tenure_months"


def test_routes_and_methods(served: Http) -> None:
    status, headers, raw = served.request("GET", "/predict")
    assert status == 405 and headers["allow"] == "POST" and _json(raw)["kind"] == "method_not_allowed"
    status, _, raw = served.request("PUT", "/predict", b"{}")
    assert status == 405 and _json(raw)["kind"] == "method_not_allowed"
    status, _, raw = served.request("GET", "/nowhere")
    assert status == 404 and "error" in _json(raw)
    status, _, raw = served.request("GET", "/health")
    assert status == 200 and _json(raw)["model"]["version"] == "1.0.0"


# ---------------------------------------------------------------------------- Content-Length (item 8)
@pytest.mark.parametrize("length", ["-1", "abc", "1.5", "+5", "0x10", "1 2", "\u00b2"])
def test_malformed_content_length_is_400(served: Http, length: str) -> None:
    status, _, raw = served.request("POST", "/predict", b"{}", length=length)
    assert status == 400
    body = _json(raw)
    assert body["kind"] == "bad_request" and "Content-Length" in body["error"]


def test_missing_content_length_is_411(served: Http) -> None:
    status, _, raw = served.request("POST", "/predict", b"", length=None)
    assert status == 411 and _json(raw)["kind"] == "length_required"
    chunked = b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    status, _, raw = served.raw(chunked)
    assert status == 411 and _json(raw)["kind"] == "length_required"


def test_oversized_content_length_is_413_without_reading_the_body(served: Http) -> None:
    # only the headers are sent: the answer proves the server did not wait for the body
    status, _, raw = served.request("POST", "/predict", b"", length=str(MAX_BODY + 1))
    assert status == 413 and _json(raw)["kind"] == "too_large"
    status, _, raw = served.request("POST", "/predict", b"", length="9" * 40)
    assert status == 413


def test_conflicting_content_lengths_are_400(served: Http) -> None:
    data = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}"
    status, _, raw = served.raw(data)
    assert status == 400 and "conflicting" in _json(raw)["error"]


def test_body_shorter_than_content_length_is_400(served: Http) -> None:
    data = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\": 1}"
    status, _, raw = served.raw(data, half_close=True)  # the client stops sending
    assert status == 400 and "ended after 8 of 100 bytes" in _json(raw)["error"]


def test_a_client_that_stalls_is_cut_off_with_408(device: Device) -> None:
    server = start_server(device, "127.0.0.1", 0, timeout=0.5)
    try:
        data = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        status, _, raw = Http(server.server_address[1]).raw(data)  # never half-closed: a stall
        assert status == 408 and _json(raw)["kind"] == "request_timeout"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------- 5xx answers (item 12)
def test_non_finite_output_is_500_model_error(device: Device, nan_pkg, golden_inputs, served: Http) -> None:
    assert device.install(nan_pkg).outcome == "installed"
    status, body = served.post_json({"instances": [{**golden_inputs[0], "monthly_charges": 5000.0}]})
    assert status == 500 and body["kind"] == "model_error"
    assert "NaN" not in json.dumps(body["error"])  # a valid JSON body, the reason names the rows
    assert "row(s) 0" in body["reason"]


def test_no_model_is_503(tmp_path, signing_keys) -> None:
    empty = Device.init(tmp_path / "empty", [signing_keys / "mlship.pub"])
    server = start_server(empty, "127.0.0.1", 0)
    try:
        http = Http(server.server_address[1])
        status, body = http.post_json([{"tenure_months": 1}])
        assert status == 503 and body["kind"] == "model_unavailable"
        status, _, raw = http.request("GET", "/health")
        assert status == 503 and _json(raw)["status"] == "unavailable"
    finally:
        server.shutdown()
        server.server_close()


def test_internal_errors_do_not_show_exception_text(device: Device, served: Http, golden_inputs) -> None:
    def broken_run(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("/opt/secret/path: kernel exploded")

    device.predictor().run_session = broken_run
    status, _, raw = served.request("POST", "/predict", json.dumps(golden_inputs[:1]).encode())
    assert status == 500
    assert _json(raw) == {"error": "internal error", "kind": "internal", "request_id": _json(raw)["request_id"]}
    assert b"secret" not in raw and b"RuntimeError" not in raw


# ---------------------------------------------------------------------------- fuzz
HUGE_INT = "1" + "0" * 400
GOOD = {"tenure_months": "46", "monthly_charges": "34.19", "total_charges": "1693.74", "support_calls": "0",
        "age": "41", "contract": '"month-to-month"', "payment_method": '"mailed-check"', "internet_service": '"dsl"',
        "gender": '"male"'}  # one valid churn record, as raw JSON texts
FIELDS = list(GOOD)


def _values() -> st.SearchStrategy[str]:
    """Raw JSON texts for one field value, including the crafted cases from the issue."""
    return st.one_of(
        st.sampled_from([HUGE_INT, "-" + HUGE_INT, "1e39", "-1e308", "NaN", "Infinity", "null", "true",
                         '"\\u0000"', '"x\\u0000y"', "[]", "{}", "[" * 800 + "]" * 800, '""', "-0", "1e-400"]),
        st.integers().map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.text(max_size=20).map(json.dumps),
    )


@st.composite
def _json_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["record", "instances", "list", "nested", "broken", "scalar", "one_bad_field"]))
    if kind == "nested":
        depth = draw(st.integers(100, 5000))
        return ("[" * depth + "]" * depth).encode()
    if kind == "scalar":
        return draw(st.sampled_from([b"12", b'"x"', b"null", b"true", HUGE_INT.encode()]))
    if kind == "one_bad_field":  # a valid record with at most one field replaced: often a 200
        bad = draw(st.one_of(st.none(), st.sampled_from(FIELDS)))
        values = {**GOOD, **({bad: draw(_values())} if bad else {})}
        return ("[{" + ",".join(f"{json.dumps(f)}: {v}" for f, v in values.items()) + "}]").encode()
    fields = draw(st.lists(st.sampled_from([*FIELDS, "\x00", "extra"]), max_size=10, unique=True))
    record = "{" + ",".join(f"{json.dumps(f)}: {draw(_values())}" for f in fields) + "}"
    text = {"record": record, "list": f"[{record}, {record}]", "instances": f'{{"instances": [{record}]}}'}.get(
        kind, record
    )
    if kind == "broken":
        cut = draw(st.integers(0, max(0, len(text) - 1)))
        text = text[:cut] + draw(st.sampled_from(["", "\x00", "}", "]]]", "\\", '"']))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def _csv_bodies(draw: st.DrawFn) -> bytes:
    header = ",".join(draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=8)))
    rows = draw(st.lists(st.lists(st.sampled_from(["1", "abc", "", "\x00", '"q,"', HUGE_INT, "1e39"]),
                                  max_size=9).map(",".join), max_size=4))
    return ("\n".join([header, *rows]) if draw(st.booleans()) else "\n".join(rows)).encode()


_headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(["application/json", "text/csv", "text/plain", "application/xml",
                                         "application/json; charset=latin-1", "", ";;", "*/*", "text/csv\x7f"]),
        "Accept": st.sampled_from(["*/*", "text/csv", "application/json;q=0", "image/png", "", "text/*;q=abc",
                                   "application/json;q=0.5, text/csv;q=0.9"]),
        "X-Junk": st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=50),
    },
)
_lengths = st.sampled_from(["auto", "auto", "auto", None, "-1", "abc", "", "99999999999999999999", "0", "3"])
_bodies = st.one_of(_json_bodies(), _csv_bodies(), st.binary(max_size=200))
_methods = st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
_paths = st.sampled_from(["/predict", "/predict", "/predict?x=1", "/health", "/status", "/", "/%00", "/" + "a" * 300])


def _check_answer(status: int, headers: dict[str, str], raw: bytes) -> None:
    assert 200 <= status < 600
    if status >= 500:
        assert status == 500 and _json(raw)["kind"] == "model_error", raw[:300]
    for marker in (b"Traceback", b'File "', b"Error(", b"<html", b"<!DOCTYPE"):
        assert marker not in raw, raw[:300]
    if headers.get("content-type", "").startswith("text/csv"):
        assert status == 200 and raw.decode("utf-8")
    else:
        body = _json(raw)  # every other body, errors included, is valid JSON
        assert isinstance(body, dict)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, signing_keys, versioned) -> Any:
    dev = Device.init(tmp_path_factory.mktemp("fuzz") / "dev", [signing_keys / "mlship.pub"])
    assert dev.install(versioned("1.0.0")).outcome == "installed"
    server = start_server(dev, "127.0.0.1", 0, timeout=5.0)
    yield Http(server.server_address[1]), dev
    server.shutdown()
    server.server_close()


_fuzz_settings = settings(deadline=None, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(_fuzz_settings, max_examples=250)
@given(body=_bodies, headers=_headers)
def test_fuzzed_bodies_get_clear_json_answers(fuzz_server, body, headers) -> None:
    """POST /predict with well-framed but bad bodies: bad JSON, nesting, huge numbers, NUL, CSV arity."""
    http, dev = fuzz_server
    requests_before = dev._requests
    status, answer_headers, raw = http.request("POST", "/predict", body, headers)
    _check_answer(status, answer_headers, raw)
    if status >= 400:
        assert dev._requests == requests_before  # a refused request never counts for the health window


@settings(_fuzz_settings, max_examples=100)
@given(method=_methods, path=_paths, body=_bodies, headers=_headers, length=_lengths)
def test_fuzzed_framing_gets_clear_json_answers(fuzz_server, method, path, body, headers, length) -> None:
    """Any method, path and Content-Length (missing, negative, not a number, too large, wrong)."""
    http, _ = fuzz_server
    status, answer_headers, raw = http.request(method, path, body, headers, length=length, half_close=True)
    _check_answer(status, answer_headers, raw)


_request_lines = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST /predict HTTP/1.1\r\nnocolon\r\n\r\n",
                     b"G" * 70000 + b" / HTTP/1.1\r\n\r\n",
                     b"POST /predict HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
                     b"POST /predict HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n",
                     b"POST /predict HTTP/1.1\r\nContent-Length: 5\r\n\r\n\x00\x00\x00\x00\x00"]),
    st.tuples(_methods, st.binary(max_size=40), st.binary(max_size=80)).map(
        lambda t: t[0].encode() + b" /predict HTTP/1.1\r\n" + t[1] + b"\r\n" + t[2]
    ),
).filter(  # a HEAD answer has no body to check; no request line at all gets no answer
    lambda data: not data.startswith(b"HEAD") and bool(data.split(b"\n", 1)[0].decode("latin-1").split())
)


@settings(_fuzz_settings, max_examples=60)
@given(data=_request_lines)
def test_fuzzed_raw_requests_get_clear_json_answers(fuzz_server, data: bytes) -> None:
    """Arbitrary bytes as the request line and headers: still a status line and a JSON body."""
    http, _ = fuzz_server
    status, headers, raw = http.raw(data, half_close=True)
    _check_answer(status, headers, raw)


def test_explain_parameters_follow_the_shared_protocol(served: Http, golden_inputs) -> None:
    """``explain=true`` on the device's MLP answers 200 with the predictions and approximate
    explanations labelled as such (the sampling explainer the package carries, on the device's own
    model); a bad value is a 400, a CSV answer a 406."""
    doc = json.dumps({"instances": golden_inputs[:2]}).encode()
    headers = {"Content-Type": "application/json"}
    status, _, raw = served.request("POST", "/predict?explain=true&top_k=2", doc, headers)
    body = _json(raw)
    assert status == 200 and len(body["predictions"]) == 2
    assert "explanation_unavailable" not in body and len(body["explanations"]) == 2
    for row in body["explanations"]:
        assert (row["method"], row["exact"], row["output_space"]) == ("sampling", False, "probability")
        assert len(row["targets"][0]["contributions"]) == 2  # top_k
    status, _, raw = served.request("POST", "/predict?explain=true&top_k=0", doc, headers)
    assert status == 400 and _json(raw)["kind"] == "bad_parameter"
    status, _, raw = served.request("POST", "/predict?explain=true", doc, {**headers, "Accept": "text/csv"})
    assert status == 406
