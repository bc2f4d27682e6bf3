"""The control plane's HTTP server: each call goes to the first service that answers it, or to moto.

Run it with ``python -m mlship.local.plane --upstream http://localhost:5000`` (``mlship local up``
does); point boto3 at it per service (``AWS_ENDPOINT_URL_SAGEMAKER``, ``..._SAGEMAKER_RUNTIME``,
``..._LAMBDA``, ``..._CODEDEPLOY``) and keep ``AWS_ENDPOINT_URL`` on moto.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import signal
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlship.local.plane.context import PlaneContext
from mlship.local.plane.http import AwsRequest, AwsResponse, Service, forward
from mlship.local.plane.metrics import make_store

log = logging.getLogger("mlship.local.plane")

# module:class, in dispatch order; each is built with the PlaneContext
SERVICES = (
    "mlship.local.plane.lambdas:LambdaService",
    "mlship.local.plane.codedeploy:CodeDeployService",
    "mlship.local.plane.sagemaker:SageMakerService",
)


def build_services(context: PlaneContext, names: tuple[str, ...] = SERVICES) -> list[Service]:
    """Instantiate the plane's services."""
    out: list[Service] = []
    for spec in names:
        module, _, cls = spec.partition(":")
        out.append(getattr(importlib.import_module(module), cls)(context))
    return out


def _read_request(handler: BaseHTTPRequestHandler) -> AwsRequest:
    split = urllib.parse.urlsplit(handler.path)
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length) if length else b""
    return AwsRequest(handler.command, split.path, urllib.parse.parse_qs(split.query, keep_blank_values=True),
                      {k.lower(): v for k, v in handler.headers.items()}, body)


def make_handler(plane: ControlPlane) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``plane``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mlship-plane"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

        def _answer(self) -> None:
            request = _read_request(self)
            response = plane.dispatch(request)
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _answer  # noqa: N815

    return Handler


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client hung up
        log.exception("plane connection error from %s", client_address)


class ControlPlane:
    """The plane: its services, its HTTP server, the pass-through to moto."""

    def __init__(self, upstream: str, *, host: str = "localhost", port: int = 0, log_dir: Path | None = None,
                 time_scale: float = 1.0, services: tuple[str, ...] = SERVICES):
        self.httpd = _HTTPServer((host, port), make_handler(self))
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"
        log_dir = log_dir or Path.cwd()
        log_dir.mkdir(parents=True, exist_ok=True)
        context = PlaneContext(upstream=upstream, url=self.url, log_dir=log_dir, time_scale=time_scale)
        self.context = dataclasses.replace(context, metrics=make_store(context.client))
        self.services = build_services(self.context, services)
        self._thread: threading.Thread | None = None

    def dispatch(self, request: AwsRequest) -> AwsResponse:
        """The answer of the first service that takes ``request``; else moto's."""
        if request.method == "GET" and request.path == "/ping":
            return AwsResponse(200, b'{"status":"ok"}', {"Content-Type": "application/json"})
        try:
            for service in self.services:
                answer = service.handle(request)
                if answer is not None:
                    return answer
            return forward(self.context.upstream, request)
        except Exception as exc:  # noqa: BLE001 - the AWS answer to a server fault, never a traceback
            log.exception("plane failure on %s %s", request.method, request.path)
            return AwsResponse.error(500, "InternalFailure", f"{type(exc).__name__}: {exc}")

    def start(self) -> ControlPlane:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="mlship-plane", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and stop every process the services started."""
        self.httpd.shutdown()
        self.httpd.server_close()
        for service in self.services:
            service.close()
        self.context.metrics.close()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m mlship.local.plane --upstream URL``: run the plane until SIGTERM."""
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="mlship-plane", description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the moto server URL")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log-dir", default=None)
    parser.add_argument("--time-scale", type=float, default=1.0)
    ns = parser.parse_args(argv)
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_")]:
        os.environ.pop(key)  # the plane's own boto3 calls go to moto, never back to itself
    os.environ["AWS_ENDPOINT_URL"] = ns.upstream
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [plane] %(levelname)s %(message)s")
    plane = ControlPlane(ns.upstream, host=ns.host, port=ns.port, time_scale=ns.time_scale,
                         log_dir=Path(ns.log_dir) if ns.log_dir else None)

    def stop(signum: int, frame: Any) -> None:  # noqa: ARG001
        threading.Thread(target=plane.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("control plane on %s (moto at %s, time scale %g)", plane.url, ns.upstream, ns.time_scale)
    try:
        plane.httpd.serve_forever()
    finally:
        plane.httpd.server_close()
        for service in plane.services:
            service.close()
