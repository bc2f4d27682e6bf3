"""A small local HTTP endpoint on the device (standard library ``http.server``).

``GET /health`` (200 with the model identity, 503 without a model), ``GET /status`` (the status
file) and ``POST /predict``, which speaks the request protocol of the Lambda and ``mlship serve``
(:mod:`mlship.runtime.protocol`): ``{"instances": [...]}``, a single record, a list of records or
CSV, ``Content-Type`` sniffed when absent (415 for other types), ``Accept`` JSON or CSV (406
otherwise), and the same error statuses (400 with every field error, 413, 503 without a model,
500 ``model_error`` for a non-finite output). The body must come with a ``Content-Length``
(411 without, 400 when it is not a non-negative integer, 413 over the limit, read not at all).
Every answer is JSON (or CSV predictions); 500 answers never carry exception text: it is logged.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from mlship.edge.agent.device import Device

from mlship.errors import FieldError, MlshipError, ValidationError
from mlship.runtime import protocol

MAX_BODY = protocol.DEFAULT_MAX_BODY_BYTES
READ_TIMEOUT_S = 30.0  # a client that announces more bytes than it sends is cut off after this
LINGER_BYTES = 8 * 1024 * 1024  # unread request bytes drained after an early answer (then the socket closes)
LINGER_S = 1.0
log = logging.getLogger("edge.agent.server")


class LengthRequired(protocol.RequestError):
    status, kind = 411, "length_required"


class RequestTimeout(protocol.RequestError):
    status, kind = 408, "request_timeout"


def body_length(headers: Any, max_bytes: int) -> int:
    """The request's ``Content-Length``, checked: 411 when absent, 400 when malformed, 413 when over."""
    values = headers.get_all("Content-Length") or []
    if headers.get("Transfer-Encoding") is not None:
        raise LengthRequired("Transfer-Encoding is not supported: send the body with a Content-Length")
    if not values:
        raise LengthRequired("POST /predict needs a Content-Length header")
    texts = {v.strip() for v in values}
    if len(texts) != 1:
        raise protocol.RequestError("conflicting Content-Length headers")
    text = texts.pop()
    if not (text.isascii() and text.isdigit()):
        raise protocol.RequestError(f"Content-Length {text[:40]!r} is not a non-negative integer")
    length = int(text)
    if length > max_bytes:
        raise protocol.PayloadTooLarge(f"request body is {length} bytes, over the {max_bytes}-byte limit")
    return length


def decode(body: bytes, content_type: str | None, max_bytes: int) -> Any:
    """The protocol's decoding, with deep nesting refused as malformed input (never a 500)."""
    try:
        return protocol.decode(body, content_type, max_bytes=max_bytes)
    except RecursionError:
        raise ValidationError([FieldError(None, None, "malformed", "body is nested too deeply")]) from None


class DeviceHandler(BaseHTTPRequestHandler):
    """Serves one device (``device``) over HTTP; :func:`make_handler` binds the device and the limits."""

    server_version = "mlship-edge-agent"
    device: Device  # set by make_handler on a subclass per server
    max_bytes: int = MAX_BODY
    timeout: float = READ_TIMEOUT_S  # socket timeout for every read (stdlib setup()): no request can hang a thread

    def handle_one_request(self) -> None:
        self.unread = True  # until a parsed request shows there is no body, or the body is read
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            length = (self.headers.get("Content-Length") or "0").strip()
            self.unread = length != "0" or self.headers.get("Transfer-Encoding") is not None
        return ok

    def finish(self) -> None:
        super().finish()
        if self.unread:
            _linger(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (bad request line, unknown method, huge headers) as JSON."""
        if code == 501:  # no do_<METHOD>: the method is not allowed, not a server failure
            code, kind, message = 405, "method_not_allowed", f"method {self.command} is not allowed"
        elif code >= 500:  # 505: an HTTP version the client made up is the client's mistake
            code, kind = 400, "bad_request"
        else:
            kind = "bad_request"
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":  # unparsable request line
            self.request_version = "HTTP/1.0"  # still answer with a status line and headers
        self._send(code, {"error": message or self.responses.get(code, ("error",))[0], "kind": kind})

    def _send(self, code: int, body: dict[str, Any], media: str = protocol.JSON) -> None:
        try:
            text, ctype = protocol.render(body, media)
        except ValueError:  # not JSON-able (NaN): a bug, answered without details
            log.exception("answer could not be rendered")
            code, body = 500, {"error": "internal error", "kind": "internal"}
            text, ctype = protocol.render(body, protocol.JSON)
        data = text.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if "request_id" in body:
            self.send_header("X-Request-Id", str(body["request_id"]))
        if code == 405:
            self.send_header("Allow", "POST" if urlsplit(self.path or "").path == "/predict" else "GET")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = urlsplit(self.path).path
        if path == "/health":
            self._health()
        elif path == "/status":
            self._send(200, self.device.status())
        elif path == "/predict":
            self._send(405, {"error": "use POST /predict", "kind": "method_not_allowed"})
        else:
            self._send(404, {"error": f"no route {path[:100]}: use /health, /status or POST /predict"})

    def _health(self) -> None:
        try:
            model = self.device.predictor().describe()
        except MlshipError as exc:
            self._send(503, {"status": "unavailable", "error": str(exc)})
        except Exception:  # noqa: BLE001 - onnxruntime cannot load the model: logged, not shown
            log.exception("health: the current model cannot be loaded")
            self._send(503, {"status": "unavailable", "error": "the current model cannot be loaded"})
        else:
            self._send(200, {"status": "ok", "model": model, "state": self.device.status().get("state")})

    def do_POST(self) -> None:  # noqa: N802
        request_id = uuid.uuid4().hex
        try:
            if urlsplit(self.path).path != "/predict":
                self.close_connection = True  # the body is not read
                self._send(404, {"error": f"no route {self.path[:100]}: use POST /predict", "kind": "not_found"})
                return
            self._predict(request_id)
        except Exception as exc:  # noqa: BLE001 - statuses, never stack traces
            self.close_connection = True
            status, body = protocol.error_answer(exc, request_id)
            if status >= 500:
                log.error("request %s failed (%s)", request_id, protocol.error_kind(exc), exc_info=exc)
            self._send(status, body)

    def _predict(self, request_id: str) -> None:
        length = body_length(self.headers, self.max_bytes)  # 411/400/413 before reading anything
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise RequestTimeout(f"the body did not arrive within {self.timeout:g} s") from None
        if len(body) < length:
            raise protocol.RequestError(f"the body ended after {len(body)} of {length} bytes")
        self.unread = False
        media = protocol.response_type(self.headers.get("Accept"))
        explain = protocol.explain_request(urlsplit(self.path).query)
        protocol.check_explainable_media(media, explain)
        payload = decode(body, self.headers.get("Content-Type"), self.max_bytes)
        prediction = self.device.predict(payload)
        answer = protocol.answer(prediction, request_id)
        if explain is not None:
            answer = protocol.explained(answer, self.device.predictor(), None, payload, explain)
        self._send(200, answer, media)


def make_handler(device: Device, *, max_bytes: int = MAX_BODY,
                 timeout: float = READ_TIMEOUT_S) -> type[DeviceHandler]:
    """The request handler class serving ``device``."""
    return type("Handler", (DeviceHandler,), {"device": device, "max_bytes": max_bytes, "timeout": timeout})


def _linger(conn: socket.socket) -> None:
    """Half-close, then drain what the client still sends, so that closing a socket with unread
    bytes (which makes the kernel send a reset) cannot destroy the answer before the client reads it."""
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(LINGER_S)
        drained = 0
        while drained < LINGER_BYTES:
            chunk = conn.recv(65536)
            if not chunk:
                return
            drained += len(chunk)
    except OSError:  # the client is gone or slow: nothing more to protect
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)  # e.g. client gone


def start_server(
    device: Device, host: str = "127.0.0.1", port: int = 8080, *, max_bytes: int = MAX_BODY,
    timeout: float = READ_TIMEOUT_S,
) -> ThreadingHTTPServer:
    """Serve ``device`` on ``host:port`` in a daemon thread; return the server (``.shutdown()``)."""
    server = _Server((host, port), make_handler(device, max_bytes=max_bytes, timeout=timeout))
    threading.Thread(target=server.serve_forever, name="edge-agent-http", daemon=True).start()
    return server
