"""A model container run locally: one ``mlship serve`` process, healthy when ``/ping`` answers 200.

SageMaker runs the serving image per instance; the plane runs ``python -m mlship.serving serve``
with the container's model and environment on a free port, in its own log file.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any


class ServiceError(Exception):
    """An AWS error answer: HTTP status, ``code`` (``x-amzn-ErrorType``) and extra body fields."""

    def __init__(self, status: int, code: str, message: str, **fields: Any):
        super().__init__(message)
        self.status, self.code, self.fields = status, code, fields


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
        """Wait for ``/ping`` 200; raise ServiceError when the model fails or the process dies."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(424, "ModelError", f"the container for {self.model_url} exited "
                                   f"(code {self.proc.returncode}); see {self.log_path}",
                                   OriginalStatusCode=503, OriginalMessage=last, LogStreamArn=self.log_path or "")
            try:
                status, body, _ = http_call("GET", f"{self.url}/ping", b"", {}, timeout=2)
            except OSError as exc:
                last = str(exc)
            else:
                if status == 200:
                    return
                last = body.decode("utf-8", "replace")
                if '"failed"' in last:
                    raise ServiceError(424, "ModelError", f"the model {self.model_url} failed to load",
                                       OriginalStatusCode=503, OriginalMessage=last,
                                       LogStreamArn=self.log_path or "")
            time.sleep(0.1)
        raise ServiceError(424, "ModelError", f"the container for {self.model_url} did not become healthy "
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


def http_call(method: str, url: str, body: bytes, headers: dict[str, str], *,
          timeout: float = 65.0) -> tuple[int, bytes, dict[str, str]]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path or "/", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
