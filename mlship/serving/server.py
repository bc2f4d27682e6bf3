"""``mlship serve``: the SageMaker inference container as a plain process (gunicorn, no Docker).

Several worker processes, each loading the bundle itself after the fork (onnxruntime sessions
must not cross a fork). Each worker is gunicorn's ``gthread`` worker with one change
(:class:`BufferingWorker`): a request is received in the worker's event loop, without a thread,
and handed to a request thread only once it is complete. A slow client (headers dribbled byte
by byte, a body that stalls) therefore holds a buffer, never a thread, and is dropped with a
408 when ``request_timeout`` passes; ``/ping`` keeps answering. Pipelined requests are answered
in order. SIGTERM is a graceful stop: the listening socket closes, in-flight requests finish
(up to ``graceful_timeout``), then the workers exit. The environment is read once, at start-up,
through :class:`mlship.serving.settings.ServeSettings`: SageMaker's ``SAGEMAKER_BIND_TO_PORT``
(port), ``SAGEMAKER_MODEL_SERVER_WORKERS`` (workers) and ``SAGEMAKER_MODEL_SERVER_TIMEOUT``,
``MODEL_URI``, ``MLSHIP_PUBLIC_KEY`` and the records variables; a bad value stops the server
before it listens, naming the variable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import re
import selectors
import socket
import sys
import time
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Any

from gunicorn.http.errors import (
    ExpectationFailed,
    ForbiddenProxyRequest,
    LimitRequestHeaders,
    NoMoreData,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

from mlship.runtime import protocol
from mlship.runtime.settings import SettingsError
from mlship.serving.settings import DEFAULT_MODEL_DIR, ServeSettings

DEFAULT_PORT = 8080
DEFAULT_REQUEST_TIMEOUT = 20.0


@dataclass
class ServeConfig:
    """Settings of one ``mlship serve`` process."""

    model: str = DEFAULT_MODEL_DIR
    host: str = "0.0.0.0"  # noqa: S104 - a container must listen on all interfaces
    port: int = DEFAULT_PORT
    workers: int = 0  # 0: SAGEMAKER_MODEL_SERVER_WORKERS or the number of CPUs
    threads: int = 2  # request threads per worker (slow clients do not hold them)
    ort_threads: int = 0  # 0: CPUs / workers
    timeout: int = 60
    graceful_timeout: int = 30
    max_body_bytes: int = protocol.DEFAULT_MAX_BODY_BYTES
    access_log: bool = False
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT  # a whole request must arrive within this
    max_connections: int = 1000  # open connections per worker (idle and slow ones included)

    def resolved(self, settings: ServeSettings) -> ServeConfig:
        """Zeros filled in (CPUs, SageMaker's variables); a port left at 8080 yields to ``SAGEMAKER_BIND_TO_PORT``."""
        cpus = os.cpu_count() or 1
        workers = self.workers or settings.workers or cpus
        port = settings.bind_port if self.port == DEFAULT_PORT and settings.bind_port else self.port
        timeout = settings.timeout or self.timeout
        ort = self.ort_threads or max(1, cpus // workers)
        return dataclasses.replace(self, port=port, workers=workers, ort_threads=ort, timeout=timeout)


# ---------------------------------------------------------------------------- request framing
_RECV_BYTES = 64 * 1024
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _fields(head: bytes) -> dict[bytes, list[bytes]]:
    fields: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return fields


class RequestScanner:
    """Decides, as the bytes of a request arrive, whether it is complete.

    Incremental (each call looks only at new bytes), so a client sending one byte at a time
    costs linear, not quadratic, work. Anything it cannot frame (duplicate or non-numeric
    Content-Length, unknown transfer codings, bare LF line ends, oversized heads, bad chunk
    sizes) counts as complete: gunicorn's parser then refuses it with a 4xx, as it would have
    without this buffering. A body over ``max_body`` is complete as soon as its head is: the
    app answers 413 without reading it.
    """

    def __init__(self, max_body: int, head_limit: int):
        self.max_body, self.head_limit = max_body, head_limit
        self.reset()

    def reset(self) -> None:
        """Start on the next request of the connection."""
        self.scanned = 0  # head bytes searched so far for the blank line
        self.body_start: int | None = None
        self.total: int | None = None  # the request's length, from its Content-Length
        self.chunk_at: int | None = None  # the next chunk-size line of a chunked body
        self.expects_continue = False  # the client waits for ``100 Continue`` before its body

    def complete(self, buf: bytes | bytearray) -> bool:
        if self.body_start is None and not self._head(buf):
            return len(buf) > self.head_limit or buf.find(b"\n\n", max(0, self.scanned - 2)) >= 0
        if self.total is not None:
            return len(buf) >= self.total
        if self.chunk_at is not None:
            # framing overhead: up to twice the body limit is buffered before the app decides (413)
            return len(buf) - (self.body_start or 0) > 2 * self.max_body or self._chunks_done(buf)
        return True

    def _head(self, buf: bytes | bytearray) -> bool:
        """Find the end of the head; once found, read its framing headers."""
        end = buf.find(b"\r\n\r\n", max(0, self.scanned - 3))
        if end < 0:
            self.scanned = len(buf)
            return False
        self.body_start = start = end + 4
        fields = _fields(bytes(buf[:end]))
        self.expects_continue = any(v.lower() == b"100-continue" for v in fields.get(b"expect", []))
        codings, lengths = fields.get(b"transfer-encoding"), fields.get(b"content-length")
        if codings is not None:
            if lengths is None and len(codings) == 1 and codings[0].lower() == b"chunked":
                self.chunk_at = start
        elif lengths is not None and len(lengths) == 1 and lengths[0].isdigit() and len(lengths[0]) < 19 \
                and int(lengths[0]) <= self.max_body:  # else the parser refuses it, or the app (413)
            self.total = start + int(lengths[0])
        return True

    def _chunks_done(self, buf: bytes | bytearray) -> bool:
        """Walk the chunk-size lines received so far; True at the last chunk or a malformed one."""
        pos = self.chunk_at or 0
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                self.chunk_at = pos
                return len(buf) - pos > 4096  # an endless size line: let the parser refuse it
            size_text = bytes(buf[pos:eol]).split(b";", 1)[0].rstrip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                return True  # malformed: the parser answers 400
            size = int(size_text, 16)
            if size == 0:  # the trailer section ends with an empty line
                self.chunk_at = pos
                return buf.startswith(b"\r\n", eol + 2) or buf.find(b"\r\n\r\n", eol) >= 0
            if eol + 2 + size + 2 > len(buf):
                self.chunk_at = pos
                return False
            pos = eol + 2 + size + 2


# ---------------------------------------------------------------------------- the worker
class _BufferedUnreader(SocketUnreader):
    """gunicorn's socket reader, serving first the pieces the event loop already received."""

    def __init__(self, sock: Any):
        super().__init__(sock)
        self.pieces: list[bytes] = []

    def feed(self, data: bytes | bytearray) -> None:
        """Queue ``data`` after what is queued (``pieces`` is a stack: the next piece is last)."""
        # recv-sized pieces: the chunked-body parser copies the rest of a piece per chunk
        new = [bytes(data[i:i + _RECV_BYTES]) for i in range(0, len(data), _RECV_BYTES)]
        self.pieces[:0] = reversed(new)

    def chunk(self) -> bytes:
        return self.pieces.pop() if self.pieces else super().chunk()

    def take_buffered(self) -> bytes:
        rest = b"".join(reversed(self.pieces))
        self.pieces = []
        return super().take_buffered() + rest


class _Conn(TConn):  # type: ignore[misc]
    """A connection plus what the event loop has received of its next request."""

    def __init__(self, scanner: RequestScanner, *args: Any):
        super().__init__(*args)
        self.scanner = scanner
        self.buf = bytearray()
        self.deadline = 0.0
        self.continued = False
        self.closing = False

    def next_request(self, leftover: bytes = b"") -> None:
        self.buf, self.continued = bytearray(leftover), False
        self.scanner.reset()


def _error_response(status: int, body: dict[str, Any]) -> bytes:
    """A whole JSON error answer that closes the connection (for errors outside the app)."""
    data = protocol.dumps(body).encode()
    return (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data


def _parse_error_status(exc: BaseException) -> int:
    if isinstance(exc, LimitRequestHeaders):
        return 431
    if isinstance(exc, ExpectationFailed):
        return 417
    if isinstance(exc, UnsupportedTransferCoding):
        return 501
    if isinstance(exc, ForbiddenProxyRequest):
        return 403
    return 400


class BufferingWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's ``gthread`` worker, receiving each request in the event loop before a thread
    handles it (see the module docstring). Configured by class attributes (:func:`worker_class`)."""

    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_body_bytes: int = protocol.DEFAULT_MAX_BODY_BYTES
    linger_seconds: float = 2.0  # after a ``Connection: close`` answer, read until the client closes

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.receiving: dict[_Conn, None] = {}  # connections the event loop reads (insertion-ordered set)
        self.head_limit = (self.cfg.limit_request_line + 4
                           + self.cfg.limit_request_fields * (self.cfg.limit_request_field_size + 2))
        self.last_sweep = 0.0

    # ------------------------------------------------------------------ event loop (main thread)
    def accept(self, listener: Any) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        conn = _Conn(RequestScanner(self.max_body_bytes, self.head_limit), self.cfg, sock, addr,
                     listener.getsockname())
        self._receive(conn, idle=self.request_timeout)

    def _receive(self, conn: _Conn, idle: float) -> None:
        """Wait (in the event loop) for the rest of the connection's next request."""
        conn.deadline = time.monotonic() + (self.request_timeout if conn.buf else idle)
        if conn.buf and self._ready(conn):
            self._dispatch(conn)
            return
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        self.receiving[conn] = None

    def _on_readable(self, conn: _Conn, _sock: Any) -> None:
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
        elif conn.closing:
            pass  # lingering after an answer: the client's unread bytes are discarded
        else:
            if not conn.buf:  # the first byte of a request starts its clock
                conn.deadline = time.monotonic() + self.request_timeout
            conn.buf += data
            if self._ready(conn):
                self._unwatch(conn)
                self._dispatch(conn)

    def _ready(self, conn: _Conn) -> bool:
        complete = conn.scanner.complete(conn.buf)
        if conn.scanner.expects_continue and not complete and not conn.continued:
            conn.continued = True  # the client sends its body only after this
            self._send_quietly(conn, _CONTINUE)
        return complete

    def _dispatch(self, conn: _Conn) -> None:
        conn.data_ready = True  # gthread must not wait for data again
        self.enqueue_req(conn)

    def _unwatch(self, conn: _Conn) -> None:
        self.receiving.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _drop(self, conn: _Conn) -> None:
        self._unwatch(conn)
        self.nr_conns -= 1
        conn.close()

    @staticmethod
    def _send_quietly(conn: _Conn, data: bytes) -> None:
        with contextlib.suppress(OSError):  # a client that cannot take a few bytes is being dropped anyway
            conn.sock.send(data)

    def finish_request(self, conn: _Conn, fs: Any) -> None:
        """After a thread answered: wait for the next request, or close."""
        try:
            keep = bool(not fs.cancelled() and fs.result())
        except Exception:  # noqa: BLE001 - the thread already logged it
            keep = False
        try:
            conn.sock.setblocking(False)
            if keep and self.alive:
                conn.next_request(conn.parser.unreader.take_buffered())  # pipelined bytes come first
                self._receive(conn, idle=self.cfg.keepalive)
            else:
                self._linger(conn)
        except (OSError, ValueError):  # a socket gone bad: an event-loop callback must not raise
            self._drop(conn)

    def _linger(self, conn: _Conn) -> None:
        """Close after an answer without a reset: half-close, then discard what the client still
        sends until it closes (or ``linger_seconds``), in the event loop rather than a thread."""
        conn.sock.shutdown(socket.SHUT_WR)
        conn.closing, conn.buf = True, bytearray()
        conn.deadline = time.monotonic() + self.linger_seconds
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        self.receiving[conn] = None

    def murder_keepalived(self) -> None:
        """Runs every loop turn: drop connections past their deadline (at most twice a second)
        and, once stopping, the idle ones."""
        super().murder_keepalived()
        now = time.monotonic()
        if now - self.last_sweep < 0.5 and self.alive:
            return
        self.last_sweep = now
        for conn in list(self.receiving):
            if conn.deadline <= now:
                if conn.buf and not conn.closing:
                    self._send_quietly(conn, _error_response(408, {
                        "error": f"request not received within {self.request_timeout:g} s",
                        "kind": "request_timeout"}))
                self._drop(conn)
            elif not self.alive and not conn.buf and self._idle(conn):
                self._drop(conn)

    def _idle(self, conn: _Conn) -> bool:
        """Whether a connection has sent nothing of a next request (read what the kernel holds
        first: a request already sent is in flight and must be answered during a graceful stop)."""
        if not conn.closing:
            self._on_readable(conn, conn.sock)
        return conn in self.receiving and not conn.buf

    # ------------------------------------------------------------------ request threads
    def handle(self, conn: _Conn) -> bool:
        """Parse and answer one complete request; True keeps the connection for another."""
        req = None
        try:
            conn.init()
            if not isinstance(conn.parser.unreader, _BufferedUnreader):
                conn.parser.unreader = _BufferedUnreader(conn.sock)
            # reads past the buffer (an over-limit body) and writes to a client that does not
            # read are bounded, so no client holds this thread longer than request_timeout
            conn.sock.settimeout(self.request_timeout)
            conn.parser.unreader.feed(conn.buf)
            conn.buf = bytearray()
            req = next(conn.parser)
            return bool(req) and self._keepalive_after(conn, self.handle_request(req, conn))
        except (StopIteration, NoMoreData):
            return False
        except OSError as exc:  # timeouts, resets, a body the drain cannot parse: close
            self.log.debug("closing connection: %s", exc)
            return False
        except Exception as exc:  # noqa: BLE001 - gunicorn's parser errors become a JSON 4xx
            self.handle_error(req, conn.sock, conn.client, exc)
            return False

    def _keepalive_after(self, conn: _Conn, keepalive: bool) -> bool:
        """Discard what the app left unread of the body, and say whether to keep the connection.

        The event loop received the whole request, so this reads only buffered bytes, without
        waiting: a body still arriving (one refused 413 or 411 before it was sent) closes the
        connection, in the event loop (:meth:`_linger`), instead of holding this thread.
        """
        if not keepalive:
            return False
        conn.sock.settimeout(0.0)
        try:
            return bool(conn.parser.finish_body(max_bytes=2 * self.max_body_bytes + self.head_limit))
        except BlockingIOError:  # the rest of the body was never received
            return False
        finally:
            conn.sock.settimeout(self.request_timeout)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """A JSON error (not gunicorn's HTML page), then the connection closes."""
        if isinstance(exc, ParseException):
            status = _parse_error_status(exc)
            body = {"error": f"malformed HTTP request: {exc}", "kind": "bad_request"}
            self.log.warning("invalid request from %s: %s", (addr or ("",))[0], exc)
        else:
            status, body = 500, {"error": "internal error", "kind": "internal"}
            self.log.exception("error handling request")
        with contextlib.suppress(OSError):
            client.sendall(_error_response(status, body))


def worker_class(cfg: ServeConfig) -> type[BufferingWorker]:
    """The worker class carrying this config's request limits (gunicorn has no setting for them)."""
    return type("MlshipWorker", (BufferingWorker,), {"request_timeout": float(cfg.request_timeout),
                                                     "max_body_bytes": cfg.max_body_bytes})


def _worker_exit(server: Any, worker: Any) -> None:  # noqa: ARG001 - gunicorn hook signature
    lifecycle = getattr(getattr(worker, "wsgi", None), "lifecycle", None)
    if lifecycle is not None:
        lifecycle.flush()  # the records still buffered


def gunicorn_options(cfg: ServeConfig) -> dict[str, Any]:
    """The gunicorn settings for a resolved config."""
    return {
        "bind": f"{cfg.host}:{cfg.port}",
        "workers": cfg.workers,
        "worker_class": worker_class(cfg),
        "threads": cfg.threads,
        "worker_connections": cfg.max_connections,
        "timeout": cfg.timeout,
        "graceful_timeout": cfg.graceful_timeout,
        "keepalive": 5,
        "preload_app": False,
        "accesslog": "-" if cfg.access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "mlship-serve",
        "control_socket_disable": True,  # one per server: parallel servers would share a socket path
        "worker_exit": _worker_exit,
    }


def run(cfg: ServeConfig, settings: ServeSettings | None = None) -> None:
    """Run the server in the foreground until SIGTERM/SIGINT (``settings``: default read from the
    environment; raises :class:`~mlship.runtime.settings.SettingsError` for a bad variable)."""
    from gunicorn.app.base import BaseApplication

    settings = settings or ServeSettings.from_env()
    cfg = cfg.resolved(settings)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")

    class _Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in gunicorn_options(cfg).items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:  # runs in each worker after the fork
            from mlship.serving.app import create_app

            return create_app(cfg.model, threads=cfg.ort_threads, max_bytes=cfg.max_body_bytes,
                              load_wait=float(cfg.timeout), settings=settings)

    logging.getLogger("mlship.serving").info(
        "serving %s on %s:%d with %d workers x %d threads (onnxruntime threads %d)",
        cfg.model, cfg.host, cfg.port, cfg.workers, cfg.threads, cfg.ort_threads)
    _Application().run()


def main(argv: list[str] | None = None) -> None:
    """``python -m mlship.serving [serve] [--model DIR] [--port N] ...`` (the container entry point)."""
    import argparse

    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in and args_in[0] == "serve":  # SageMaker starts the container with the argument `serve`
        args_in = args_in[1:]
    parser = argparse.ArgumentParser(prog="mlship-serve", description="SageMaker inference server for a bundle")
    parser.add_argument("--model", default=None, help=f"the bundle (default: MODEL_URI, else {DEFAULT_MODEL_DIR})")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-body-bytes", type=int, default=protocol.DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--request-timeout", type=float, default=DEFAULT_REQUEST_TIMEOUT,
                        help="seconds a client has to send a whole request (408 and closed after)")
    ns = parser.parse_args(args_in)
    try:
        settings = ServeSettings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    run(ServeConfig(model=ns.model or settings.model_uri, host=ns.host, port=ns.port, workers=ns.workers,
                    threads=ns.threads, max_body_bytes=ns.max_body_bytes, access_log=ns.access_log,
                    request_timeout=ns.request_timeout), settings)
