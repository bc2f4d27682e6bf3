"""``mlship serve`` against slow and malformed clients, over raw sockets to a real server process.

Slow clients (headers dribbled byte by byte, bodies that stall) must not starve ``/ping``;
malformed framing gets a JSON 4xx; pipelined requests are answered in order; every status line
carries its reason phrase.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from realtime.helpers import ServeProcess, csv_text

SLOW_CLIENTS = 32
PROBES = 8


@pytest.fixture(scope="module")
def served(churn_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """Two workers with the default threads and request timeout (slow clients stay connected)."""
    with ServeProcess(churn_bundle, workers=2, extra=["--max-body-bytes", "200000"],
                      log_path=tmp_path_factory.mktemp("serve-slow") / "serve.log") as proc:
        _wait_all_workers_loaded(proc, 2)
        yield proc


def _wait_all_workers_loaded(proc: ServeProcess, workers: int) -> None:
    """``wait_ready`` saw one worker answer 200; a probe may reach another one still loading."""
    assert proc.log_path is not None
    for _ in range(1200):  # bounded: 60 s
        if proc.log_path.read_text().count("golden examples pass") >= workers:
            return
        time.sleep(0.05)
    raise TimeoutError(f"not every worker loaded the model: {proc.log()}")


def _connect(proc: ServeProcess, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proc.port), timeout=timeout)


def _read_response(reader: BinaryIO) -> tuple[str, dict[str, str], bytes]:
    """One HTTP/1.1 response (status line, headers, Content-Length body), skipping 1xx."""
    while True:
        status = reader.readline().decode("latin-1").rstrip("\r\n")
        assert status, "the connection closed before a response"
        headers: dict[str, str] = {}
        for line in iter(reader.readline, b"\r\n"):
            assert line, "the connection closed inside a response head"
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if not status.split()[1].startswith("1"):
            return status, headers, reader.read(int(headers.get("content-length", "0")))


def _exchange(proc: ServeProcess, raw: bytes, timeout: float = 10.0) -> tuple[str, dict[str, str], Any]:
    """Send raw bytes on a fresh connection; the first response, its body parsed as JSON."""
    with _connect(proc, timeout) as sock:
        sock.sendall(raw)
        status, headers, body = _read_response(sock.makefile("rb"))
    return status, headers, json.loads(body)


def _post(body: bytes, *, headers: str = "Content-Type: application/json\r\n", rid: str = "") -> bytes:
    extra = f"X-Amzn-SageMaker-Inference-Id: {rid}\r\n" if rid else ""
    return (f"POST /invocations HTTP/1.1\r\nHost: test\r\n{headers}{extra}Content-Length: {len(body)}\r\n\r\n"
            .encode() + body)


def _ping_answers(proc: ServeProcess) -> bool:
    """Whether ``/ping`` answers 200 within a 1 s socket timeout."""
    try:
        with _connect(proc, timeout=1.0) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            return _read_response(sock.makefile("rb"))[0] == "HTTP/1.1 200 OK"
    except (OSError, AssertionError):
        return False


SLOW_HEAD = (b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
             b"X-Padding: " + b"p" * 200)
STALLED_BODY = (b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Content-Length: 5000\r\n\r\n" + b'{"instances": [')
OVERSIZED_BODY = (b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 900000\r\n\r\n" + b'{"instances": [')  # over the limit: 413 at once


@pytest.mark.parametrize("mode", ["headers dribbled byte by byte", "bodies stalled mid-way",
                                  "oversized bodies stalled after their 413"])
def test_ping_answers_while_32_slow_clients_are_connected(served, holdout_records, mode):
    """Before: 2 workers x 2 threads, each slow connection held a thread; 3 made /ping miss most
    probes, 16 all of them. Now slow clients hold only a buffer in the event loop."""
    slow = [_connect(served) for _ in range(SLOW_CLIENTS)]
    try:
        sent = 0
        if not mode.startswith("headers"):
            for sock in slow:
                sock.sendall(OVERSIZED_BODY if mode.startswith("oversized") else STALLED_BODY)
        answered = []
        for _ in range(PROBES):
            if mode.startswith("headers"):  # one more byte on every slow connection per probe
                for sock in slow:
                    sock.sendall(SLOW_HEAD[sent:sent + 1])
                sent += 1
            answered.append(_ping_answers(served))
        assert answered == [True] * PROBES
        body = json.dumps({"instances": holdout_records[:3]}).encode()
        status, _, answer = _exchange(served, _post(body))
        assert status == "HTTP/1.1 200 OK" and len(answer["predictions"]) == 3
        if not mode.startswith("oversized"):  # the slow clients were still connected (held, not refused)
            for sock in slow:
                sock.sendall(b"p")
    finally:
        for sock in slow:
            sock.close()


def test_a_half_sent_request_gets_408_and_is_closed(churn_bundle, tmp_path):
    with ServeProcess(churn_bundle, extra=["--request-timeout", "1"], log_path=tmp_path / "serve.log") as proc:
        for partial in (SLOW_HEAD, STALLED_BODY):
            with _connect(proc, timeout=30) as sock:
                sock.sendall(partial)
                reader = sock.makefile("rb")
                status, headers, body = _read_response(reader)
                assert status == "HTTP/1.1 408 Request Timeout", proc.log()
                assert json.loads(body)["kind"] == "request_timeout" and headers["connection"] == "close"
                assert reader.read() == b""  # closed by the server
        assert _ping_answers(proc)


def test_bad_chunk_size_is_a_json_400(served):
    raw = (b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
    status, _, answer = _exchange(served, raw)
    assert status == "HTTP/1.1 400 Bad Request", answer
    assert answer["kind"] == "bad_request" and "chunked" in answer["error"]


def test_chunked_body_in_many_small_chunks_is_answered(served, holdout_records, feature_names, predictor):
    body = csv_text(holdout_records, feature_names, header=True).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 97]), body[i:i + 97]) for i in range(0, len(body), 97))
    raw = (b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n"
           b"\r\n" + chunks + b"0\r\n\r\n")
    status, _, answer = _exchange(served, raw)
    assert status == "HTTP/1.1 200 OK", answer
    assert answer["predictions"] == predictor.predict(holdout_records).labels.tolist()


def test_pipelined_requests_are_answered_in_order(served, holdout_records):
    body = json.dumps({"instances": holdout_records[:2]}).encode()
    raw = (b"".join(_post(body, rid=f"pipe-{i}") for i in range(3))
           + _post(b'{"instances": [', rid="pipe-bad")
           + b"GET /ping HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    with _connect(served) as sock:
        sock.sendall(raw)
        reader = sock.makefile("rb")
        answers = [_read_response(reader) for _ in range(5)]
        assert reader.read() == b""  # then closed, as the last request asked
    assert [s for s, _, _ in answers] == ["HTTP/1.1 200 OK"] * 3 + ["HTTP/1.1 400 Bad Request", "HTTP/1.1 200 OK"]
    assert [json.loads(b).get("request_id") for _, _, b in answers[:4]] == ["pipe-0", "pipe-1", "pipe-2", "pipe-bad"]
    assert json.loads(answers[4][2])["status"] == "ok"


def test_expect_100_continue_gets_the_interim_answer_before_the_body(served, holdout_records):
    body = json.dumps(holdout_records[0]).encode()
    with _connect(served) as sock:
        sock.sendall(f"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        reader = sock.makefile("rb")
        assert reader.readline() == b"HTTP/1.1 100 Continue\r\n"  # the client waits for it
        assert reader.readline() == b"\r\n"
        sock.sendall(body)
        status, _, answer = _read_response(reader)
    assert status == "HTTP/1.1 200 OK" and len(json.loads(answer)["predictions"]) == 1


@pytest.mark.parametrize(("raw", "line"), [
    (b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", "404 Not Found"),
    (b"GET /invocations HTTP/1.1\r\nHost: t\r\n\r\n", "405 Method Not Allowed"),
    (_post(b"{}", headers="Content-Type: application/json\r\nAccept: application/xml\r\n"), "406 Not Acceptable"),
    (_post(b"x" * 200001, headers="Content-Type: text/csv\r\n"), "413 Request Entity Too Large"),
    (_post(b"<a/>", headers="Content-Type: application/xml\r\n"), "415 Unsupported Media Type"),
    (_post(b'{"age": "old"}'), "400 Bad Request"),
    (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n{}", "400 Bad Request"),
    (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n{}", "400 Bad Request"),
    # no Content-Length and not chunked: gunicorn would read to EOF, a thread held by an idle client
    (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\r\n", "411 Length Required"),
])
def test_every_status_line_has_its_reason_phrase_and_a_json_body(served, raw, line):
    status, headers, answer = _exchange(served, raw)
    assert status == f"HTTP/1.1 {line}"
    assert headers["content-type"] == "application/json" and answer["error"]


@pytest.mark.parametrize(("status", "line"), [(500, "500 Internal Server Error"), (503, "503 Service Unavailable"),
                                              (408, "408 Request Timeout")])
def test_statuses_not_reachable_with_a_healthy_model_have_reason_phrases(status, line):
    from mlship.serving.app import status_line

    assert status_line(status) == line
