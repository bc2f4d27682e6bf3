"""One warm Lambda execution environment: a real process that imports a handler once and runs invocations.

The parent side is :class:`Worker`; the child side is :func:`main` (``python -m
mlship.local.plane.lambda_runtime CODE_DIR HANDLER``). Like Lambda's runtime, the child imports
the handler module in an *init* phase (a failure there is answered to the invocation that
started it as ``Runtime.ImportModuleError`` / ``Runtime.HandlerNotFound``, and the next
invocation initialises again), then runs one invocation at a time with a context object
(``aws_request_id``, ``function_name``, ``get_remaining_time_in_millis()``, ...).

The child's stdout and stderr (the handler's logs) go to a log file; the protocol runs on a
private copy of the original stdout: one JSON line per message, so nothing the handler prints
can corrupt it. Each :class:`Invocation` carries what the function wrote while it ran (``log``),
which the Lambda service forwards to CloudWatch Logs as Lambda does. Only the standard library
is imported before the handler.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

INIT_TIMEOUT_S = 60.0  # Lambda allows 10 s of init; a shared 2-core machine importing onnxruntime needs more
LOG_TAIL_BYTES = 4096  # what Lambda returns in X-Amz-Log-Result


@dataclass
class Invocation:
    """The answer of one invocation: the payload (JSON text) and, for a function error, its type."""

    payload: bytes
    function_error: str | None = None  # "Unhandled" when the handler raised, timed out or crashed
    log_tail: bytes = b""
    duration_ms: float = 0.0
    log: bytes = b""  # everything the function wrote during this invocation (and the init it started)


def error_payload(error_type: str, message: str, request_id: str = "", trace: list[str] | None = None) -> bytes:
    """Lambda's error document for a failed invocation."""
    doc: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    if request_id:
        doc["requestId"] = request_id
    doc["stackTrace"] = trace or []
    return json.dumps(doc).encode()


class Worker:
    """A started execution environment for one function version (one invocation at a time)."""

    def __init__(self, code_dir: Path, handler: str, env: dict[str, str], log_path: Path, *,
                 timeout_s: float, function_arn: str, memory_mb: int = 128):
        self.handler, self.timeout_s, self.function_arn, self.memory_mb = handler, timeout_s, function_arn, memory_mb
        self.log_stream = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - the child writes to it for its whole life
        self._lock = threading.Lock()
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "mlship.local.plane.lambda_runtime", str(code_dir), handler],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, cwd=str(code_dir),
            text=True, bufsize=1)
        threading.Thread(target=self._read, name=f"lambda-worker-{self.process.pid}", daemon=True).start()
        self._init_error: dict[str, Any] | None = None
        self._ready = False

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self._answers.put(json.loads(line))
            except ValueError:
                continue
        self._answers.put(None)  # the process ended

    @property
    def alive(self) -> bool:
        return self.process.poll() is None and self._init_error is None

    def _wait_ready(self, request_id: str) -> Invocation | None:
        """``None`` when the child initialised; else the init error as this invocation's answer."""
        if self._ready:
            return None
        try:
            message = self._answers.get(timeout=INIT_TIMEOUT_S)
        except queue.Empty:
            self.close()
            message = {"ready": False, "error": {"errorType": "Runtime.InitTimeout",
                                                 "errorMessage": f"init did not finish in {INIT_TIMEOUT_S:.0f} s"}}
        if message is None:
            message = {"ready": False, "error": {"errorType": "Runtime.ExitError", "errorMessage":
                       f"RequestId: {request_id} Error: Runtime exited during init: exit status "
                       f"{self.process.wait()}"}}
        if message.get("ready"):
            self._ready = True
            return None
        self._init_error = message.get("error") or {}
        return Invocation(error_payload(self._init_error.get("errorType", "Runtime.Unknown"),
                                        self._init_error.get("errorMessage", ""), request_id,
                                        self._init_error.get("stackTrace")), "Unhandled")

    def invoke(self, payload: bytes, request_id: str, client_context: str | None = None,
               invoked_arn: str | None = None) -> Invocation:
        """Run one invocation (waits for a previous one to end, as one Lambda instance does);
        ``invoked_arn`` is the ARN the caller used (with its alias), the context's ``invoked_function_arn``."""
        with self._lock:
            offset = self.log_path.stat().st_size
            answer = self._wait_ready(request_id)
            if answer is None:  # Duration excludes the init phase, as Lambda's metric does
                started = time.perf_counter()
                answer = self._run(payload, request_id, client_context, invoked_arn or self.function_arn)
                answer.duration_ms = (time.perf_counter() - started) * 1000.0
            answer.log = self._since(offset)
            answer.log_tail = answer.log[-LOG_TAIL_BYTES:]
            return answer

    def _run(self, payload: bytes, request_id: str, client_context: str | None, arn: str) -> Invocation:
        deadline = time.time() + self.timeout_s
        message = {"request_id": request_id, "payload": payload.decode("utf-8", "replace"),
                   "deadline_ms": int(deadline * 1000), "arn": arn, "memory_mb": self.memory_mb,
                   "client_context": client_context}
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
            answer = self._answers.get(timeout=self.timeout_s + 1.0)
        except (BrokenPipeError, OSError):
            answer = None
        except queue.Empty:
            self.close()
            return Invocation(error_payload("Sandbox.Timedout", f"RequestId: {request_id} Error: Task timed out "
                                            f"after {self.timeout_s:.2f} seconds"), "Unhandled")
        if answer is None:
            code = self.process.wait()
            return Invocation(error_payload("Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited "
                                            f"with error: exit status {code}"), "Unhandled")
        if answer.get("ok"):
            return Invocation(answer.get("payload", "null").encode())
        error = answer.get("error") or {}
        return Invocation(error_payload(error.get("errorType", "Exception"), error.get("errorMessage", ""),
                                        request_id, error.get("stackTrace")), "Unhandled")

    def _since(self, offset: int) -> bytes:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read()
        except OSError:
            return b""

    def close(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._log.close()


# ------------------------------------------------------------------------------------ child side
class LambdaContext:
    """The context object Lambda's Python runtime passes to a handler."""

    def __init__(self, message: dict[str, Any]):
        self.aws_request_id: str = message["request_id"]
        self.invoked_function_arn: str = message["arn"]
        self.function_name: str = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version: str = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb: int = int(message.get("memory_mb") or 128)
        self.log_group_name: str = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name: str = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.client_context = message.get("client_context")
        self.identity = None
        self._deadline_ms = int(message["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _exception(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {"errorType": error_type or type(exc).__name__, "errorMessage": str(exc),
            "stackTrace": traceback.format_tb(exc.__traceback__)}


def _send(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _load(handler: str) -> Any:
    module_name, _, function_name = handler.rpartition(".")
    if not module_name:
        raise ValueError(f"Bad handler '{handler}': not enough values to unpack (expected module.function)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"Unable to import module '{module_name}': {exc}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise LookupError(f"Handler '{function_name}' missing on module '{module_name}'")
    return function


def _invoke(function: Any, message: dict[str, Any]) -> dict[str, Any]:
    try:
        event = json.loads(message["payload"]) if message.get("payload") else {}
    except ValueError as exc:
        return {"ok": False, "error": _exception(exc, "Runtime.UnmarshalError")}
    try:
        result = function(event, LambdaContext(message))
    except Exception as exc:  # noqa: BLE001 - a handler exception is the invocation's answer
        traceback.print_exc()
        return {"ok": False, "error": _exception(exc)}
    try:
        return {"ok": True, "payload": json.dumps(result)}
    except (TypeError, ValueError) as exc:
        return {"ok": False, "error": _exception(exc, "Runtime.MarshalError")}


def main(argv: list[str] | None = None) -> None:
    """The child: init (import the handler), then one invocation per line on stdin."""
    code_dir, handler = (argv or sys.argv[1:])[:2]
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints and logs go to the log file, never into the protocol
    sys.path.insert(0, code_dir)
    try:
        function = _load(handler)
    except ImportError as exc:
        _send(channel, {"ready": False, "error": _exception(exc, "Runtime.ImportModuleError")})
        return
    except (LookupError, ValueError) as exc:
        _send(channel, {"ready": False, "error": _exception(exc, "Runtime.HandlerNotFound")})
        return
    except Exception as exc:  # noqa: BLE001 - an init failure is reported, as Lambda does
        traceback.print_exc()
        _send(channel, {"ready": False, "error": _exception(exc, "Runtime.Unknown")})
        return
    _send(channel, {"ready": True})
    for line in sys.stdin:
        if line.strip():
            _send(channel, _invoke(function, json.loads(line)))


if __name__ == "__main__":
    main()
