"""Helpers for the real-time tests: real-shaped Lambda events, a serve process, a gate proxy."""

from __future__ import annotations

import base64
import csv
import http.client as httplib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]


@dataclass
class LambdaContext:
    """The context object the Lambda runtime passes (it cannot run here); Powertools reads these."""

    aws_request_id: str = "3f0c1d5e-0000-4000-8000-000000000001"
    function_name: str = "mlship-predict"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlship-predict"
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _body(body: bytes | str, b64: bool) -> str:
    raw = body.encode() if isinstance(body, str) else body
    return base64.b64encode(raw).decode() if b64 else raw.decode("utf-8")


def rest_v1_event(body: bytes | str, content_type: str | None = "application/json", *, method: str = "POST",
                  b64: bool = False, path: str = "/predict") -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as API Gateway sends it."""
    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": "curl/8.5.0",
               "X-Forwarded-Proto": "https"}
    if content_type:
        headers["Content-Type"] = content_type
    return {"resource": "/predict", "path": path, "httpMethod": method, "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()}, "queryStringParameters": None,
            "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
            "requestContext": {"resourceId": "x1", "resourcePath": "/predict", "httpMethod": method,
                               "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "path": f"/prod{path}",
                               "accountId": "123456789012", "stage": "prod", "requestTimeEpoch": 1700000000000,
                               "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
                               "apiId": "abc123", "protocol": "HTTP/1.1", "domainName":
                               "abc123.execute-api.us-east-1.amazonaws.com"},
            "body": _body(body, b64) if body is not None else None, "isBase64Encoded": b64}


def http_v2_event(body: bytes | str, content_type: str | None = "application/json", *, method: str = "POST",
                  b64: bool = False, function_url: bool = False) -> dict[str, Any]:
    """An HTTP API (payload v2.0) event, or a Lambda Function URL event (same format)."""
    domain = ("x7v2q3.lambda-url.us-east-1.on.aws" if function_url
              else "abc123.execute-api.us-east-1.amazonaws.com")
    headers = {"host": domain, "user-agent": "python-requests/2.32", "x-forwarded-proto": "https"}
    if content_type:
        headers["content-type"] = content_type
    return {"version": "2.0", "routeKey": "$default" if function_url else "POST /predict",
            "rawPath": "/predict", "rawQueryString": "", "headers": headers,
            "requestContext": {"accountId": "123456789012" if not function_url else "anonymous",
                               "apiId": domain.split(".")[0], "domainName": domain,
                               "domainPrefix": domain.split(".")[0], "requestId": "JKJaXmPLvHcESHA=",
                               "http": {"method": method, "path": "/predict", "protocol": "HTTP/1.1",
                                        "sourceIp": "203.0.113.7", "userAgent": "python-requests/2.32"},
                               "routeKey": "$default", "stage": "$default", "time": "12/Mar/2026:19:03:58 +0000",
                               "timeEpoch": 1700000000000},
            "body": _body(body, b64) if body is not None else None, "isBase64Encoded": b64}


def csv_text(records: list[dict[str, Any]], names: list[str], header: bool = True) -> str:
    lines = [",".join(names)] if header else []
    for rec in records:
        lines.append(",".join("" if rec[n] is None else str(rec[n]) for n in names))
    return "\n".join(lines) + "\n"


def request(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None,
         timeout: float = 60.0) -> tuple[int, Any]:
    """One HTTP request over a real socket; returns (status, parsed JSON or text)."""
    parts = urllib.parse.urlsplit(url)
    conn = httplib.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data.decode("utf-8", "replace")


class ServeProcess:
    """``python -m mlship.serving serve`` as a real subprocess on a free port.

    ``command`` replaces ``-m mlship.serving serve --model MODEL`` (e.g. ``mlship serve DIR``, or no
    model at all so that ``MODEL_URI`` names it); host, port and workers are always added.
    """

    def __init__(self, model: str | Path | None, *, workers: int = 1, env: dict[str, str] | None = None,
                 extra: list[str] | None = None, log_path: Path | None = None, command: list[str] | None = None):
        from mlship.local.environment import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        head = command if command is not None else ["-m", "mlship.serving", "serve", "--model", str(model)]
        self.proc = subprocess.Popen(
            [sys.executable, *head, "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
             *(extra or [])],
            cwd=REPO, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)

    def wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited early: {self.log()}"
            try:
                request("GET", f"{self.url}/ping", timeout=2)
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("serve did not listen")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited early: {self.log()}"
            try:
                if request("GET", f"{self.url}/ping", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"serve did not become ready: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()[-3000:] if self.log_path and self.log_path.exists() else ""

    def __enter__(self) -> ServeProcess:
        """Wait until it serves (``/ping`` 200); a process that never gets there is stopped."""
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class GateProxy:
    """A forwarding HTTP proxy in front of the moto server that holds every request until
    ``open()``: it makes "the model is still loading" a deterministic state (no sleeps)."""

    def __init__(self, target: str):
        self.target = urllib.parse.urlsplit(target)
        self.gate = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.gate.wait()
                conn = httplib.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.target.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward  # noqa: N815

        self.httpd = ThreadingHTTPServer(("localhost", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://localhost:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def open(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def golden_failing_copy(src: Path, dest: Path) -> Path:
    """An unsigned copy whose golden examples expect the wrong labels (hashes re-computed)."""
    from mlship.runtime.bundle import GOLDEN_FILE, SIGNATURE, hash_files, write_manifest

    shutil.copytree(src, dest)
    golden = json.loads((dest / GOLDEN_FILE).read_text())
    golden["expected"]["labels"] = [1 - int(v) for v in golden["expected"]["labels"]]
    (dest / GOLDEN_FILE).write_text(json.dumps(golden))
    (dest / SIGNATURE).unlink()
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["files"] = hash_files(dest)
    write_manifest(dest, manifest)
    return dest


def check_csv(text: str, expected: Any) -> None:
    """CSV answer rows equal the predictor's labels and probabilities."""
    rows = list(csv.reader(io.StringIO(text)))
    assert [int(r[0]) for r in rows] == expected.labels.tolist()
    np.testing.assert_allclose(np.array([[float(v) for v in r[1:]] for r in rows]), expected.probabilities,
                               rtol=0, atol=1e-7)
