"""A small local HTTP endpoint on the device (standard library ``http.server``).

``GET /health`` (200 with the model identity, 503 without a model), ``GET /status`` (the
status file), ``POST /predict`` (JSON records, ``{"records": [...]}`` or CSV text) answered
by the shared predictor; invalid input gets 400 with every field error.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge.agent.device import Device
from mlship.errors import MlshipError, ValidationError

MAX_BODY = 6 * 1024 * 1024


def make_handler(device: Device) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mlship-edge-agent"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            if self.path == "/health":
                try:
                    self._send(
                        200,
                        {"status": "ok", "model": device.predictor().describe(), "state": device.status().get("state")},
                    )
                except MlshipError as exc:
                    self._send(503, {"status": "unavailable", "error": str(exc)})
            elif self.path == "/status":
                self._send(200, device.status())
            else:
                self._send(404, {"error": f"no route {self.path}: use /health, /status or POST /predict"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/predict":
                self._send(404, {"error": f"no route {self.path}: use POST /predict"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, {"error": f"body of {length} bytes is over the {MAX_BODY} byte limit"})
                return
            raw = self.rfile.read(length)
            ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
            try:
                if ctype == "text/csv":
                    data: Any = raw
                else:
                    data = json.loads(raw or b"null")
                    if isinstance(data, dict) and "records" in data:
                        data = data["records"]
                self._send(200, device.predict(data).to_dict())
            except ValidationError as exc:
                self._send(400, exc.to_dict())
            except json.JSONDecodeError as exc:
                device.record_request(False)
                self._send(400, {"error": f"body is not valid JSON: {exc}"})
            except MlshipError as exc:
                self._send(503, {"error": str(exc)})
            except Exception as exc:  # onnxruntime failure: report, count, keep serving
                self._send(500, {"error": f"prediction failed: {exc}"})

    return Handler


def start_server(device: Device, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """Serve ``device`` on ``host:port`` in a daemon thread; return the server (``.shutdown()``)."""
    server = ThreadingHTTPServer((host, port), make_handler(device))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="edge-agent-http", daemon=True).start()
    return server
