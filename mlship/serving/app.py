"""The SageMaker inference contract as a WSGI app (one instance per server worker).

* ``GET /ping``: 200 once the bundle is loaded, verified and its golden examples pass; 503
  (with the reason) while loading or after a failed load.
* ``POST /invocations``: ``application/json`` or ``text/csv`` (see :mod:`mlship.runtime.protocol`);
  415 for other media types, 406 when ``Accept`` allows neither, 413 over the size limit, 411
  for a body with neither ``Content-Length`` nor chunked framing, 400 with field errors or for a
  body that cannot be read (bad chunked framing), 405 for other methods. The request id is
  SageMaker's ``X-Amzn-SageMaker-Inference-Id`` header when given.
* ``GET /execution-parameters``: batch-transform hints.

The model loads in a background thread so ``/ping`` answers 503 (not "connection refused")
while it loads; invocations that arrive meanwhile wait for it (up to ``load_wait`` seconds).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from mlship.errors import BundleError
from mlship.runtime import protocol

log = logging.getLogger("mlship.serving")


class RequestTimeout(protocol.RequestError):
    """The body did not arrive in time (the server's read timeout passed while reading it)."""

    status, kind = 408, "request_timeout"


class LengthRequired(protocol.RequestError):
    """A body without ``Content-Length`` or chunked framing (read to EOF, it would hold a thread)."""

    status, kind = 411, "length_required"


def status_line(status: int) -> str:
    """``'406 Not Acceptable'``: every status with its reason phrase (``http.HTTPStatus``)."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:  # not a registered status: the class's name
        return f"{status} {HTTPStatus(status // 100 * 100).phrase}"


class ModelState:
    """Loads the predictor once, in the background, and remembers success or failure."""

    def __init__(self, model_uri: str, *, threads: int | None = None, public_key: Any = None):
        self.model_uri, self.threads, self.public_key = model_uri, threads, public_key
        self.predictor: Any = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> ModelState:
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._load, name="mlship-model-load", daemon=True).start()
        return self

    def _load(self) -> None:
        from mlship.runtime.predictor import Predictor

        started = time.perf_counter()
        try:
            self.predictor = Predictor.load(self.model_uri, public_key=self.public_key, threads=self.threads)
            log.info("model %s:%s loaded from %s in %.2fs (golden examples pass)", self.predictor.model_name,
                     self.predictor.model_version, self.model_uri, time.perf_counter() - started)
        except BundleError as exc:
            self.error = exc
            log.error("model failed to load from %s: %s", self.model_uri, exc)
        except Exception as exc:  # noqa: BLE001 - any failure must keep /ping at 503, not kill the worker
            self.error = BundleError(f"model failed to load: {type(exc).__name__}: {exc}")
            log.exception("model failed to load from %s", self.model_uri)
        finally:
            self.ready.set()

    def wait(self, timeout: float) -> Any:
        """The predictor, or raise BundleError (still loading after ``timeout``, or failed)."""
        if not self.ready.wait(timeout):
            raise BundleError("the model is still loading")
        if self.error is not None:
            raise self.error
        return self.predictor


class InvocationsApp:
    """WSGI callable implementing ``/ping`` and ``/invocations``."""

    def __init__(self, state: ModelState, *, max_bytes: int = protocol.DEFAULT_MAX_BODY_BYTES,
                 load_wait: float = 60.0, writer: Any = None, source: str = "sagemaker"):
        self.state, self.max_bytes, self.load_wait = state, max_bytes, load_wait
        self.writer, self.source = writer, source

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        request_id = environ.get("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID") or uuid.uuid4().hex
        try:
            if path == "/ping":
                return self._ping(method, start_response)
            if path == "/invocations":
                if method != "POST":
                    raise protocol.MethodNotAllowed(f"method {method} is not allowed on /invocations: use POST")
                return self._invoke(environ, request_id, start_response)
            if path == "/execution-parameters" and method == "GET":
                return _respond(start_response, 200, {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD",
                                                   "MaxPayloadInMB": max(1, self.max_bytes // (1024 * 1024))})
            return _respond(start_response, 404, {"error": f"no route {method} {path}", "request_id": request_id})
        except Exception as exc:  # noqa: BLE001 - statuses, never stack traces
            status, body = protocol.error_answer(exc, request_id)
            if status >= 500:
                log.error("request %s failed (%s): %s", request_id, protocol.error_kind(exc), exc)
            return _respond(start_response, status, body)

    def _ping(self, method: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if method not in ("GET", "HEAD"):
            raise protocol.MethodNotAllowed(f"method {method} is not allowed on /ping: use GET")
        state = self.state
        if not state.ready.is_set():
            return _respond(start_response, 503, {"status": "loading"})
        if state.error is not None:
            return _respond(start_response, 503, {"status": "failed", "reason": str(state.error)})
        return _respond(start_response, 200, {"status": "ok", "model": state.predictor.describe()})

    def _invoke(self, environ: dict[str, Any], request_id: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        media = protocol.response_type(environ.get("HTTP_ACCEPT"))  # 406 before any work
        body = _read_body(environ, self.max_bytes)
        predictor = self.state.wait(self.load_wait)
        payload = protocol.decode(body, environ.get("CONTENT_TYPE"), max_bytes=self.max_bytes)
        prediction, columns = protocol.predict(predictor, payload)
        if self.writer is not None:
            self._record(predictor, request_id, prediction, columns)
        return _respond(start_response, 200, protocol.answer(prediction, request_id), media=media)

    def _record(self, predictor: Any, request_id: str, prediction: Any, columns: Any) -> None:
        from mlship.runtime.records import make_records

        try:
            self.writer.add(make_records(request_id, predictor.model_name, predictor.model_version,
                                         protocol.input_rows(columns, predictor.schema.names),
                                         prediction.records(), source=self.source))
        except Exception as exc:  # noqa: BLE001 - records never fail a prediction
            log.warning("could not buffer inference records: %s", exc)


def _read_body(environ: dict[str, Any], max_bytes: int) -> bytes:
    try:
        return _read_limited(environ, max_bytes)
    except TimeoutError:
        raise RequestTimeout("the request body did not arrive in time") from None
    except OSError:  # the server's body reader: a bad chunk size or terminator, or a body cut short
        raise protocol.RequestError("the request body could not be read: its chunked framing is invalid "
                                    "or it ended before its announced length") from None


def _read_limited(environ: dict[str, Any], max_bytes: int) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            n = int(length)
        except ValueError:
            n = -1
        if n > max_bytes:
            raise protocol.PayloadTooLarge(f"request body is {n} bytes, over the {max_bytes}-byte limit")
        return stream.read(n) if n >= 0 else stream.read(max_bytes + 1)
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        raise LengthRequired("send the body with a Content-Length or Transfer-Encoding: chunked")
    return stream.read(max_bytes + 1)  # chunked: read one byte past the limit to detect it


def _respond(start_response: Callable[..., Any], status: int, body: dict[str, Any],
          media: str = protocol.JSON) -> list[bytes]:
    """Send ``body`` as JSON (or as CSV rows for a prediction when ``media`` is CSV)."""
    text, content_type = protocol.render(body, media)
    data = text.encode("utf-8")
    headers = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    if "request_id" in body:
        headers.append(("X-Request-Id", str(body["request_id"])))
    if status == 405:
        headers.append(("Allow", "POST" if "invocations" in str(body.get("error", "")) else "GET"))
    start_response(status_line(status), headers)
    return [data]


def records_writer(source: str = "sagemaker") -> Any:
    """A RecordWriter when ``RECORDS_BUCKET`` is set, flushed every ``RECORDS_FLUSH_SECONDS``."""
    bucket = os.environ.get("RECORDS_BUCKET")
    if not bucket:
        return None
    from mlship.aws.records import RecordWriter
    from mlship.runtime.records import DEFAULT_PREFIX

    writer = RecordWriter(bucket, os.environ.get("RECORDS_PREFIX") or DEFAULT_PREFIX)
    interval = float(os.environ.get("RECORDS_FLUSH_SECONDS", "5"))

    def loop() -> None:
        while True:
            time.sleep(interval)
            flush_quietly(writer)

    threading.Thread(target=loop, name="mlship-records-flush", daemon=True).start()
    return writer


def flush_quietly(writer: Any) -> None:
    """Flush buffered records; log (never raise) on failure."""
    if writer is None or not len(writer):
        return
    try:
        writer.flush()
    except Exception as exc:  # noqa: BLE001 - records never fail serving
        log.warning("could not write inference records: %s", exc)


def create_app(model_uri: str, *, threads: int | None = None, max_bytes: int = protocol.DEFAULT_MAX_BODY_BYTES,
               load_wait: float = 60.0, public_key: Any = None) -> InvocationsApp:
    """Build the app and start loading the model in the background."""
    state = ModelState(model_uri, threads=threads, public_key=public_key).start()
    return InvocationsApp(state, max_bytes=max_bytes, load_wait=load_wait, writer=records_writer())
