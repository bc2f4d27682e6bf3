"""A real HTTP server for the load-test tests: answers at once, except that it stalls.

Every ``period`` seconds it stops answering for ``stall`` seconds (a stop-the-world pause, as a
GC pause or a saturated worker pool looks from outside): a request arriving during a stall is held
until the stall ends. With ``capacity``, it works ``service_time`` seconds per request and refuses
with 503 any request beyond ``capacity`` in flight (a fleet that sheds load)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StallServer:
    """``ThreadingHTTPServer`` on 127.0.0.1 that stalls ``stall`` s once every ``period`` s."""

    def __init__(self, stall: float = 2.0, period: float = 5.0, *, first_stall_at: float = 3.0,
                 status: int = 200, capacity: int | None = None, service_time: float = 0.0):
        self.stall, self.period, self.first, self.status = stall, period, first_stall_at, status
        self.capacity, self.service_time, self.in_flight = capacity, service_time, 0
        self.t0 = time.monotonic()
        self.requests = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one answer, no 40 ms delayed-ACK wait between headers and body

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server.lock:
                    server.requests += 1
                    refused = server.capacity is not None and server.in_flight >= server.capacity
                    server.in_flight += 0 if refused else 1
                if not refused:
                    time.sleep(server.hold() + server.service_time)
                    with server.lock:
                        server.in_flight -= 1
                body = b'{"error": "overloaded"}' if refused else b'{"predictions": [0]}'
                self.send_response(503 if refused else server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 512
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/invocations"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def hold(self) -> float:
        """Seconds until the current stall ends (0 outside a stall). Stalls start at
        ``first_stall_at`` after ``restart()`` and then every ``period`` seconds."""
        if self.stall <= 0:
            return 0.0
        into = (time.monotonic() - self.t0 - self.first) % self.period
        if time.monotonic() - self.t0 < self.first:
            return 0.0
        return max(0.0, self.stall - into)

    def restart(self) -> None:
        """Start the stall clock now (call right before the load starts)."""
        self.t0 = time.monotonic()

    def __enter__(self) -> StallServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
