"""A local SageMaker runtime: ``invoke_endpoint`` answered by local ``mlship serve`` processes.

moto records SageMaker endpoints but answers ``invoke_endpoint`` with canned bodies. This
gateway implements the sagemaker-runtime REST route ``POST /endpoints/{name}/invocations``
(with the ``X-Amzn-SageMaker-Target-Variant`` and ``-Inference-Id`` headers) and routes each
call to a ``mlship serve`` process for one of the endpoint's production variants:

* the variants and their weights come from the local AWS (``describe_endpoint``: current
  weights, so ``update_endpoint_weights_and_capacities`` shifts traffic; else the endpoint
  config's initial weights), re-read at most every ``refresh_seconds``;
* each variant's model is its container's ``MODEL_URI`` environment variable when set (as in
  the container), else its ``ModelDataUrl`` (the bundle ``.tar.gz`` in S3); the gateway
  starts one ``mlship serve`` per model on a free port, on first use, with
  the container's ``Environment``, and waits for ``/ping``;
* answers are the container's: 200 with ``X-Amzn-Invoked-Production-Variant``, or
  SageMaker's errors: ``ModelError`` (424, with ``OriginalStatusCode``/``OriginalMessage``) when
  the container refuses the request, ``ValidationError`` (400) for an unknown endpoint or variant.

Point boto3 at it with ``endpoint_url=`` or ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` (``mlship
local env`` prints it when ``mlship local up`` started the gateway).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("mlship.serving.gateway")
ROUTE = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations/?$")
ACCOUNT = "123456789012"


class GatewayError(Exception):
    """A SageMaker runtime error: ``code`` (x-amzn-ErrorType), HTTP status and extra body fields."""

    def __init__(self, status: int, code: str, message: str, **fields: Any):
        super().__init__(message)
        self.status, self.code, self.fields = status, code, fields


@dataclass
class Variant:
    name: str
    weight: float
    model_url: str
    environment: dict[str, str]


class ServeProcess:
    """One local ``mlship serve`` for one model."""

    def __init__(self, model_url: str, environment: dict[str, str], *, workers: int, log_dir: Path | None):
        from mlship.local.environment import free_port

        self.model_url, self.port = model_url, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **environment}
        log_file = open(log_dir / f"serve-{self.port}.log", "ab") if log_dir else subprocess.DEVNULL  # noqa: SIM115
        self.log_path = str(log_dir / f"serve-{self.port}.log") if log_dir else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlship.serving", "serve", "--model", model_url, "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers)],
            env=env, stdout=log_file, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float) -> None:
        """Wait for ``/ping`` 200; raise GatewayError when the model fails or the process dies."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GatewayError(424, "ModelError", f"the container for {self.model_url} exited "
                                   f"(code {self.proc.returncode}); see {self.log_path}",
                                   OriginalStatusCode=503, OriginalMessage=last, LogStreamArn=self.log_path or "")
            try:
                status, body, _ = _http("GET", f"{self.url}/ping", b"", {}, timeout=2)
            except OSError as exc:
                last = str(exc)
            else:
                if status == 200:
                    return
                last = body.decode("utf-8", "replace")
                if '"failed"' in last:
                    raise GatewayError(424, "ModelError", f"the model {self.model_url} failed to load",
                                       OriginalStatusCode=503, OriginalMessage=last,
                                       LogStreamArn=self.log_path or "")
            time.sleep(0.1)
        raise GatewayError(424, "ModelError", f"the container for {self.model_url} did not become healthy "
                           f"within {timeout:.0f}s", OriginalStatusCode=503, OriginalMessage=last,
                           LogStreamArn=self.log_path or "")

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _http(method: str, url: str, body: bytes, headers: dict[str, str], *,
          timeout: float = 65.0) -> tuple[int, bytes, dict[str, str]]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path or "/", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


class Gateway:
    """Routes invocations to local serve processes by the endpoint's variant weights."""

    def __init__(self, *, refresh_seconds: float = 1.0, serve_workers: int = 1, ready_timeout: float = 90.0,
                 log_dir: Path | None = None, seed: int | None = None):
        self.refresh_seconds, self.serve_workers, self.ready_timeout = refresh_seconds, serve_workers, ready_timeout
        self.log_dir = log_dir
        self._variants: dict[str, tuple[float, list[Variant]]] = {}
        self._processes: dict[tuple[str, str], ServeProcess] = {}
        self._lock = threading.Lock()
        self._spawn_locks: dict[tuple[str, str], threading.Lock] = {}
        self._random = random.Random(seed)

    # ------------------------------------------------------------------ endpoint description
    def variants(self, endpoint: str) -> list[Variant]:
        """The endpoint's variants with their current weights (cached for ``refresh_seconds``)."""
        cached = self._variants.get(endpoint)
        if cached and time.monotonic() - cached[0] < self.refresh_seconds:
            return cached[1]
        from botocore.exceptions import ClientError

        from mlship.aws.clients import client, is_not_found

        sm = client("sagemaker")
        try:
            desc = sm.describe_endpoint(EndpointName=endpoint)
            config = sm.describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])
        except ClientError as exc:
            if not is_not_found(exc):  # throttling, credentials: an InternalFailure, not the caller's mistake
                raise
            raise GatewayError(400, "ValidationError",
                               f"Endpoint {endpoint} of account {ACCOUNT} not found.") from exc
        configured = {v["VariantName"]: v for v in config.get("ProductionVariants", [])}
        current = {v["VariantName"]: v for v in desc.get("ProductionVariants") or []}
        out = []
        for name, spec in configured.items():
            live = current.get(name, {})
            weight = live.get("CurrentWeight", live.get("DesiredWeight", spec.get("InitialVariantWeight", 1.0)))
            model = sm.describe_model(ModelName=spec["ModelName"])
            container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
            environment = dict(container.get("Environment") or {})
            # the container loads MODEL_URI when set (as `mlship serve` does), else the model data
            url = environment.get("MODEL_URI") or container.get("ModelDataUrl")
            if not url:
                raise GatewayError(424, "ModelError", f"model {spec['ModelName']} has no ModelDataUrl or MODEL_URI",
                                   OriginalStatusCode=503, OriginalMessage="no model data")
            out.append(Variant(name, float(weight), url, environment))
        self._variants[endpoint] = (time.monotonic(), out)
        return out

    def choose(self, endpoint: str, target: str | None) -> Variant:
        """The variant named by ``target``, or one drawn by weight."""
        variants = self.variants(endpoint)
        if target:
            for v in variants:
                if v.name == target:
                    return v
            raise GatewayError(400, "ValidationError", f"Target variant {target} not found for endpoint {endpoint}: "
                               f"variants are {[v.name for v in variants]}")
        total = sum(max(v.weight, 0.0) for v in variants)
        if total <= 0:
            raise GatewayError(400, "ValidationError", f"Endpoint {endpoint} has no variant with a positive weight")
        pick = self._random.uniform(0, total)
        for v in variants:
            pick -= max(v.weight, 0.0)
            if pick <= 0:
                return v
        return variants[-1]

    # ------------------------------------------------------------------ processes
    def backend(self, variant: Variant) -> ServeProcess:
        """The running serve process for a variant's model (started on first use)."""
        key = (variant.model_url, json.dumps(variant.environment, sort_keys=True))
        with self._lock:
            proc = self._processes.get(key)
            if proc is not None and proc.proc.poll() is None:
                return proc
            spawn_lock = self._spawn_locks.setdefault(key, threading.Lock())
        with spawn_lock:
            with self._lock:
                proc = self._processes.get(key)
            if proc is not None and proc.proc.poll() is None:
                return proc
            log.info("starting mlship serve for %s", variant.model_url)
            proc = ServeProcess(variant.model_url, variant.environment, workers=self.serve_workers,
                                log_dir=self.log_dir)
            try:
                proc.wait_ready(self.ready_timeout)
            except GatewayError:
                proc.stop(5)
                raise
            with self._lock:
                self._processes[key] = proc
            return proc

    def invoke(self, endpoint: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        """Serve one ``invoke_endpoint`` call; return (status, body, headers)."""
        variant = self.choose(endpoint, headers.get("x-amzn-sagemaker-target-variant"))
        proc = self.backend(variant)
        forward = {k: v for k, v in headers.items()
                   if k in ("content-type", "accept", "x-amzn-sagemaker-inference-id",
                            "x-amzn-sagemaker-custom-attributes")}
        status, data, resp_headers = _http("POST", f"{proc.url}/invocations", body, forward)
        if status != 200:
            kind = "client" if status < 500 else "server"
            raise GatewayError(424, "ModelError", f"Received {kind} error ({status}) from primary with message "
                               f'"{data.decode("utf-8", "replace")[:500]}". See {proc.log_path} for more information.',
                               OriginalStatusCode=status, OriginalMessage=data.decode("utf-8", "replace"),
                               LogStreamArn=proc.log_path or "")
        return 200, data, {"Content-Type": resp_headers.get("content-type", "application/json"),
                           "x-Amzn-Invoked-Production-Variant": variant.name}

    def close(self) -> None:
        """Stop every serve process this gateway started."""
        with self._lock:
            procs, self._processes = list(self._processes.values()), {}
        for proc in procs:
            proc.stop()


def make_handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mlship-gateway"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path.rstrip("/") in ("", "/ping"):
                self._send(200, b'{"status":"ok"}', {"Content-Type": "application/json"})
            else:
                self._error(GatewayError(404, "UnknownOperationException", f"no route GET {self.path}"))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            match = ROUTE.match(urllib.parse.urlsplit(self.path).path)
            try:
                if not match:
                    raise GatewayError(404, "UnknownOperationException", f"no route POST {self.path}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, data, resp_headers = gateway.invoke(urllib.parse.unquote(match["name"]), body, headers)
            except GatewayError as exc:
                self._error(exc)
            except Exception as exc:  # noqa: BLE001 - SageMaker's InternalFailure, never a traceback
                log.exception("gateway failure")
                self._error(GatewayError(500, "InternalFailure", f"{type(exc).__name__}: {exc}"))
            else:
                self._send(status, data, resp_headers)

        def _error(self, exc: GatewayError) -> None:
            body = json.dumps({"message": str(exc), **exc.fields}).encode()
            self._send(exc.status, body, {"Content-Type": "application/json", "x-amzn-ErrorType": exc.code})

    return Handler


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError)):  # a client hung up: not our problem
            return
        log.exception("gateway connection error from %s", client_address)


class GatewayServer:
    """The gateway's HTTP server, in a background thread (``start``) or the foreground (``serve_forever``)."""

    def __init__(self, host: str = "localhost", port: int = 0, **gateway_options: Any):
        self.gateway = Gateway(**gateway_options)
        self.httpd = _HTTPServer((host, port), make_handler(self.gateway))
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> GatewayServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="mlship-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.gateway.close()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m mlship.serving.gateway --port N``: run the gateway until SIGTERM."""
    import argparse

    parser = argparse.ArgumentParser(prog="mlship-gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--serve-workers", type=int, default=1)
    parser.add_argument("--log-dir", default=None)
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [gateway] %(levelname)s %(message)s")
    server = GatewayServer(ns.host, ns.port, serve_workers=ns.serve_workers,
                           log_dir=Path(ns.log_dir) if ns.log_dir else None)

    def stop(signum: int, frame: Any) -> None:  # noqa: ARG001
        threading.Thread(target=server.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("sagemaker-runtime gateway on %s (AWS at %s)", server.url, os.environ.get("AWS_ENDPOINT_URL"))
    try:
        server.httpd.serve_forever()
    finally:
        server.httpd.server_close()
        server.gateway.close()


if __name__ == "__main__":
    main()
